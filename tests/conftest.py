"""Shared test setup and helpers. Nothing may download at test time.

The helpers below are plain functions and constants that test modules import
(``from conftest import balanced, gpta_cli``): each call takes its own arguments (rows, a
command line), which a fixture would only wrap. They live here, in one place, rather than
copied into each test module.

A test that trains a model, runs a benchmark method, starts a server, runs `gpta train` (or
another pipeline) in a subprocess, or runs a real model for seconds is marked
``@pytest.mark.slow`` (a whole module by ``pytestmark``): ``make test-fast`` leaves those out,
``make test`` and CI run everything.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

# The TA response cache of a test session is its own: runs never replay answers cached by an
# earlier session or by the user's own runs (subprocesses inherit this).
_LLM_CACHE_DIR = tempfile.mkdtemp(prefix="gpta-test-llm-cache-")
atexit.register(shutil.rmtree, _LLM_CACHE_DIR, True)
os.environ["GPTA_LLM_CACHE"] = os.path.join(_LLM_CACHE_DIR, "llm-cache.sqlite")
# Likewise the prefix library: every finished run adds to it; never to the user's own.
_DATA_DIR = tempfile.mkdtemp(prefix="gpta-test-data-")
atexit.register(shutil.rmtree, _DATA_DIR, True)
os.environ["GPTA_DATA_DIR"] = _DATA_DIR

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_rows(name: str, split: str, limit: int | None = None) -> list[dict]:
    """Rows of ../shared/data/<name>/<split>.jsonl, read in place."""
    path = SHARED_DATA / name / f"{split}.jsonl"
    if not path.is_file():
        pytest.fail(f"{path} is missing: tests read the benchmark samples in ../shared/data")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            rows.append(json.loads(line))
            if limit is not None and len(rows) >= limit:
                break
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def mark_gpta_run(run_dir: Path) -> Path:
    """Mark ``run_dir`` as a gpta run the way gpta does (its .gpta-run.json), listing every
    file under gpta's names there as one gpta wrote: a hand-made run for tests that replace
    or resume one without training it."""
    from gpta.run_folder import RUN_EXTRA, RUN_FILES, new_marker, write_marker

    names = (*RUN_FILES, *RUN_EXTRA)
    files = [
        p.relative_to(run_dir).as_posix()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.relative_to(run_dir).parts[0] in names
    ]
    owns = [n for n in names if (run_dir / n).exists()]
    write_marker(run_dir, new_marker(owns, files))
    return run_dir


TWEETS_DESCRIPTION = (
    "English tweets from the SemEval-2017 sentiment task. Each tweet is labelled with the "
    "overall sentiment its author expresses: negative, neutral or positive."
)


def balanced(
    rows: list[dict], per_label: int, column: str = "label", *, min_words: int = 0
) -> list[dict]:
    """Up to ``per_label`` rows of each label, interleaved label by label; with
    ``min_words``, only rows whose "text" has at least that many words."""
    picked: dict = {}
    for row in rows:
        if min_words and len(row["text"].split()) < min_words:
            continue
        bucket = picked.setdefault(row[column], [])
        if len(bucket) < per_label:
            bucket.append(row)
    return [row for group in zip(*picked.values(), strict=False) for row in group]


def gpta_cli(
    *args: str,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    """``python -m gpta.cli ARGS`` in a new process, as a shell runs it; stdout and stderr
    captured as text. ``env`` adds to (or overrides) this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "gpta.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env} if env is not None else None,
    )
