"""The prefix library: export/import round trip, errors, and a real warm-started run (a review
prefix transferred to tweets: round 0 uses it, no TA request is made for round 0), whose own
best prefix is added to the library when it finishes. Also `--log-format json`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import TWEETS_DESCRIPTION, balanced, gpta_cli, shared_rows, write_jsonl

from gpta.errors import GptaUserError
from gpta.library import (
    LibraryEntry,
    PrefixLibrary,
    read_export,
    resolve_warm_start,
    warm_start_select,
)

YELP_PREFIX = "Read the customer's review and judge whether they were pleased or disappointed."


def _entry(
    prefix: str, *, task: str = "classification", domain: str = "reviews", score: float = 0.81
) -> dict:
    return {
        "prefix": prefix,
        "task": task,
        "domain": domain,
        "description": "Yelp reviews labelled with the number of stars, 1 to 5.",
        "metric": "accuracy",
        "score": score,
        "source_run": "/elsewhere/runs/yelp",
    }


def _gpta(*args: str, data_dir: Path) -> subprocess.CompletedProcess:
    return gpta_cli(*args, env={"GPTA_DATA_DIR": str(data_dir)})


def _write_export(path: Path, entries: list[dict]) -> Path:
    path.write_text(
        json.dumps({"format": "gpta-prefix-library", "version": 1, "entries": entries}),
        encoding="utf-8",
    )
    return path


@pytest.mark.slow
def test_export_import_round_trip(tmp_path):
    source = _write_export(tmp_path / "in.json", [_entry(YELP_PREFIX), _entry("", score=0.7)])
    lib_a, lib_b = tmp_path / "a", tmp_path / "b"
    result = _gpta("prefixes", "import", str(source), data_dir=lib_a)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("imported 2 prefixes (0 already")
    assert (lib_a / "prefixes.sqlite").is_file()

    listed = _gpta("prefixes", "list", "--json", data_dir=lib_a)
    entries = json.loads(listed.stdout)
    assert [e["prefix"] for e in entries] == [YELP_PREFIX, ""]
    assert all(e["domain"] == "reviews" and e["task"] == "classification" for e in entries)

    exported = tmp_path / "out.json"
    result = _gpta("prefixes", "export", "--output", str(exported), data_dir=lib_a)
    assert result.returncode == 0, result.stderr
    result = _gpta("prefixes", "import", str(exported), data_dir=lib_b)
    assert result.stdout.startswith("imported 2 prefixes")
    again = _gpta("prefixes", "import", str(exported), data_dir=lib_b)
    assert again.stdout.startswith("imported 0 prefixes (2 already")
    # the same entries, ids and all, in the other library
    assert (
        PrefixLibrary(lib_b / "prefixes.sqlite").entries()
        == PrefixLibrary(lib_a / "prefixes.sqlite").entries()
    )

    short = entries[0]["id"][:6]
    shown = _gpta("prefixes", "show", short, data_dir=lib_b)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == entries[0]
    table = _gpta("prefixes", "list", "--domain", "reviews", data_dir=lib_b)
    assert entries[0]["id"] in table.stdout and entries[1]["id"] in table.stdout
    assert _gpta("prefixes", "list", "--domain", "news", data_dir=lib_b).stdout == ""


@pytest.mark.slow
def test_import_errors_name_the_entry_and_field(tmp_path):
    bad = _write_export(tmp_path / "bad.json", [_entry("ok"), {**_entry("x"), "score": None}])
    result = _gpta("prefixes", "import", str(bad), data_dir=tmp_path / "lib")
    assert result.returncode == 2
    assert "entry 1: field 'score' is missing" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "lib" / "prefixes.sqlite").exists()  # nothing half-imported

    exported = read_export(_write_export(tmp_path / "one.json", [_entry(YELP_PREFIX)]))
    edited = {**exported[0].to_json(), "prefix": "something else"}
    with pytest.raises(GptaUserError, match="does not match its content"):
        read_export(_write_export(tmp_path / "edited.json", [edited]))
    with pytest.raises(GptaUserError, match="unknown field"):
        read_export(_write_export(tmp_path / "typo.json", [{**_entry("a"), "scroe": 1}]))


def test_unknown_and_ambiguous_ids(tmp_path):
    library = PrefixLibrary(tmp_path / "lib.sqlite")
    entries = read_export(
        _write_export(tmp_path / "e.json", [_entry(f"prefix {i}") for i in range(40)])
    )
    library.add_many(entries)
    with pytest.raises(GptaUserError, match="no prefix library entry"):
        library.get("zzzz")
    first = entries[0].id[0]
    if sum(e.id.startswith(first) for e in entries) > 1:  # 40 hex ids: always true in practice
        with pytest.raises(GptaUserError, match="ambiguous"):
            library.get(first)
    assert library.get(entries[5].id[:8]) == entries[5]
    with pytest.raises(GptaUserError, match="neither a run directory nor a library id"):
        resolve_warm_start(str(tmp_path / "no-such-run"), library)


def test_a_long_transferred_prefix_is_cut_to_this_runs_cap(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTA_DATA_DIR", str(tmp_path))
    long_prefix = "Judge the sentiment of the text. " + " ".join(["Consider every word."] * 10)
    (entry,) = read_export(_write_export(tmp_path / "e.json", [_entry(long_prefix)]))
    PrefixLibrary().add(entry)
    prefix, select = warm_start_select(entry.id, 8, lambda text: len(text.split()))
    assert prefix == "Judge the sentiment of the text."
    assert select["reason"] == "warm_start" and select["truncated"] is True
    assert select["source"]["id"] == entry.id and select["source"]["kind"] == "library"


@pytest.fixture(scope="module")
def warm_run(tmp_path_factory) -> dict:
    """A real 2-round run on tweets, warm-started from a review prefix in the library."""
    base = tmp_path_factory.mktemp("warm")
    data_dir = base / "data-dir"
    source = _write_export(base / "yelp.json", [_entry(YELP_PREFIX)])
    imported = _gpta("prefixes", "import", str(source), data_dir=data_dir)
    assert imported.returncode == 0, imported.stderr
    (entry,) = PrefixLibrary(data_dir / "prefixes.sqlite").entries()

    held_out = balanced(shared_rows("twitter", "test"), 8)
    train = write_jsonl(base / "train.jsonl", balanced(shared_rows("twitter", "train"), 8))
    config = {
        "output_dir": str(base / "run"),
        "data": {
            "train": str(train),
            "dev": str(write_jsonl(base / "dev.jsonl", held_out[:12])),
            "test": str(write_jsonl(base / "test.jsonl", held_out[12:])),
            "description": TWEETS_DESCRIPTION,
        },
        "model": {"max_length": 48},
        "training": {"epochs_per_round": 1, "rounds": 2, "batch_size": 8, "learning_rate": 1e-4},
        "assistant": {
            "warmup_rounds": 0,
            "candidates": 2,
            "screen_size": 8,
            "max_new_tokens": 24,
            "max_prefix_tokens": 24,
        },
    }
    config_path = base / "run.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = _gpta(
        "train",
        "--config",
        str(config_path),
        "--warm-start-from",
        entry.id[:7],
        "--domain",
        "twitter-sentiment",
        "--log-format",
        "json",
        data_dir=data_dir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {"dir": base / "run", "entry": entry, "data_dir": data_dir, "result": result}


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "history.jsonl").open(encoding="utf-8")]


@pytest.mark.slow
def test_warm_start_uses_the_library_prefix_and_asks_no_ta_for_round_0(warm_run):
    run_dir, entry = warm_run["dir"], warm_run["entry"]
    events = _events(run_dir)
    select0 = next(e for e in events if e["event"] == "select" and e["round"] == 0)
    assert select0["prefix"] == YELP_PREFIX
    assert select0["reason"] == "warm_start"
    assert select0["source"]["id"] == entry.id and select0["source"]["kind"] == "library"
    assert select0["source"]["domain"] == "reviews"
    round0 = next(e for e in events if e["event"] == "round" and e["round"] == 0)
    assert round0["prefix"] == YELP_PREFIX
    assert not [e for e in events if e["event"] == "proposal" and e["round"] == 0]
    assert [e["round"] for e in events if e["event"] == "proposal"] == [1, 1]
    ledger = [json.loads(line) for line in (run_dir / "exposure.jsonl").open(encoding="utf-8")]
    requests = [r for r in ledger if r["event"] == "request"]
    assert len(requests) == 1  # round 1's proposals only (a run without warm start makes 2)
    sent = " ".join(m["content"] for m in requests[0]["messages"])
    assert YELP_PREFIX in sent  # the TA is told how the transferred prefix scored


@pytest.mark.slow
def test_finished_run_adds_its_best_prefix_to_the_library(warm_run):
    run_dir = warm_run["dir"]
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    library = PrefixLibrary(warm_run["data_dir"] / "prefixes.sqlite")
    added = [e for e in library.entries() if e.id != warm_run["entry"].id]
    assert len(added) == 1
    (entry,) = added
    assert entry.prefix == metrics["prefix"]
    assert entry.task == "classification" and entry.domain == "twitter-sentiment"
    assert entry.metric == "accuracy"
    assert entry.score == pytest.approx(metrics["dev"]["accuracy"])
    assert entry.test_score == pytest.approx(metrics["test"]["accuracy"])
    assert entry.description == TWEETS_DESCRIPTION
    assert entry.source_run == str(run_dir.resolve())
    assert entry.rounds == 2 and entry.best_round == metrics["best_round"]
    library_event = next(e for e in _events(run_dir) if e["event"] == "library")
    assert library_event["id"] == entry.id

    # a run directory is a warm-start source too: its saved prefix
    warm = resolve_warm_start(str(run_dir))
    assert warm.prefix == metrics["prefix"] and warm.source["kind"] == "run"
    assert isinstance(LibraryEntry.make_id("a", "b", "c", "d", "e", 1.0, None), str)


@pytest.mark.slow
def test_json_logs(warm_run):
    stderr = warm_run["result"].stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # every line is one JSON object
    kinds = [e["event"] for e in events]
    assert "step" in kinds and "ta_proposals" in kinds and "summary" in kinds
    rounds = [e for e in events if e["event"] == "round"]
    assert [r["round"] for r in rounds] == [0, 1]
    assert rounds[0]["eta_seconds"] > 0 and rounds[1]["eta_seconds"] == 0
    assert rounds[0]["metric"] == "accuracy" and rounds[0]["train_loss"] > 0
    steps = [e for e in events if e["event"] == "step"]
    assert steps[-1]["step"] == steps[-1]["max_steps"]
    prefix0 = next(e for e in events if e["event"] == "prefix" and e["round"] == 0)
    assert prefix0["prefix"] == YELP_PREFIX
    assert "(2 of 2) done" not in stderr  # no rich text in between


@pytest.mark.slow
def test_bad_warm_start_fails_before_writing_anything(tmp_path):
    train = write_jsonl(tmp_path / "t.jsonl", shared_rows("twitter", "train", limit=30))
    result = _gpta(
        "train",
        "--train",
        str(train),
        "--description",
        TWEETS_DESCRIPTION,
        "--warm-start-from",
        "0123abcd",
        "--output-dir",
        str(tmp_path / "run"),
        data_dir=tmp_path / "lib",
    )
    assert result.returncode == 2
    assert "no prefix library entry '0123abcd'" in result.stderr
    assert not (tmp_path / "run").exists()
