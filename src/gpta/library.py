"""The prefix library: the best prefix of every finished run, kept across runs.

One SQLite file, ``prefixes.sqlite`` in the user data dir (``platformdirs.user_data_dir("gpta")``;
the ``GPTA_DATA_DIR`` environment variable names another folder). Each entry holds the prefix,
the task family, a domain tag (``data.domain``, default: the task family), the dataset
description the TA read, the metric and the dev score of the saved model, and where it came
from. ``gpta prefixes list|show|export|import`` manage it; ``gpta train --warm-start-from ID``
starts a run from an entry's prefix instead of asking the TA for round 0 (the paper's
transfer experiment: a Yelp prefix reused on Twitter).

An entry's id is a hash of its content, so exporting and importing the same entries twice
adds nothing; any unique leading part of an id names it (like a git commit).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import platformdirs
import yaml

from gpta import run_files, safe_yaml
from gpta.config import bounded_description
from gpta.errors import GptaUserError
from gpta.fileio import object_at
from gpta.limits import (
    DATA_BYTES,
    DESCRIPTION_BYTES_PER_TOKEN,
    DESCRIPTION_TOKENS,
    PREFIX_CHARS,
    read_file_bounded,
)

EXPORT_FORMAT = "gpta-prefix-library"
EXPORT_VERSION = 1
REQUIRED = ("prefix", "task", "metric", "score")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS prefixes (
    id TEXT PRIMARY KEY,
    prefix TEXT NOT NULL,
    task TEXT NOT NULL,
    domain TEXT NOT NULL,
    description TEXT NOT NULL,
    metric TEXT NOT NULL,
    score REAL NOT NULL,
    test_score REAL,
    base_model TEXT,
    ta_model TEXT,
    rounds INTEGER,
    best_round INTEGER,
    source_run TEXT,
    created TEXT NOT NULL
)
"""


def data_dir() -> Path:
    """Where gpta keeps user data: ``GPTA_DATA_DIR``, else the platform's user data dir."""
    override = os.environ.get("GPTA_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir("gpta"))


def default_path() -> Path:
    return data_dir() / "prefixes.sqlite"


@dataclass
class LibraryEntry:
    """One prefix in the library."""

    id: str
    prefix: str
    task: str
    domain: str
    description: str
    metric: str
    score: float
    test_score: float | None = None
    base_model: str | None = None
    ta_model: str | None = None
    rounds: int | None = None
    best_round: int | None = None
    source_run: str | None = None
    created: str = ""

    @staticmethod
    def make_id(prefix: str, task: str, domain: str, description: str, metric: str,
                score: float, source_run: str | None) -> str:  # fmt: skip
        blob = json.dumps(
            [prefix, task, domain, description, metric, round(float(score), 6), source_run or ""],
            ensure_ascii=False,
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_COLUMNS = [f.name for f in fields(LibraryEntry)]


class PrefixLibrary:
    """The SQLite store of prefixes."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=30)
            connection.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as err:
            raise GptaUserError(
                f"prefix library {self.path} cannot be opened: {err}",
                hint="set GPTA_DATA_DIR to a writable folder",
            ) from None
        connection.row_factory = sqlite3.Row
        return connection

    # --- writing --------------------------------------------------------------------------------
    def add(self, entry: LibraryEntry) -> bool:
        """Store an entry; False when an identical one is already there."""
        with closing(self._connect()) as db, db:
            cursor = db.execute(
                f"INSERT OR IGNORE INTO prefixes ({', '.join(_COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in _COLUMNS)})",
                [getattr(entry, name) for name in _COLUMNS],
            )
            return cursor.rowcount == 1

    def add_many(self, entries: Iterable[LibraryEntry]) -> tuple[int, int]:
        """(added, already there)."""
        added = skipped = 0
        for entry in entries:
            if self.add(entry):
                added += 1
            else:
                skipped += 1
        return added, skipped

    # --- reading --------------------------------------------------------------------------------
    def entries(self, *, task: str | None = None, domain: str | None = None) -> list[LibraryEntry]:
        if not self.path.exists():
            return []
        query, args = "SELECT * FROM prefixes", []
        where = []
        if task:
            where.append("task = ?")
            args.append(task)
        if domain:
            where.append("domain = ?")
            args.append(domain)
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY created, rowid"
        with closing(self._connect()) as db:
            return [LibraryEntry(**dict(row)) for row in db.execute(query, args)]

    def get(self, ref: str) -> LibraryEntry:
        """The entry whose id is ``ref`` or starts with it (unique)."""
        ref = ref.strip()
        found = []
        if ref and self.path.exists():
            with closing(self._connect()) as db:
                found = [
                    LibraryEntry(**dict(row))
                    for row in db.execute(
                        "SELECT * FROM prefixes WHERE id LIKE ? ESCAPE '\\'",
                        [ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"],
                    )
                ]
        if not found:
            raise GptaUserError(
                f"no prefix library entry {ref!r} in {self.path}",
                hint="`gpta prefixes list` shows the ids; a run directory works too",
            )
        if len(found) > 1:
            raise GptaUserError(
                f"prefix library id {ref!r} is ambiguous ({', '.join(e.id for e in found)})",
                hint="give more characters of the id",
            )
        return found[0]

    # --- export / import ------------------------------------------------------------------------
    def export(self, entries: list[LibraryEntry]) -> dict[str, Any]:
        return {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "entries": [e.to_json() for e in entries],
        }

    def import_file(self, path: str | Path) -> tuple[int, int]:
        return self.add_many(read_export(path))


def read_export(path: str | Path) -> list[LibraryEntry]:
    """Entries of an exported JSON file, validated; errors name the entry and the field."""
    path = Path(path)
    if not path.is_file():
        raise GptaUserError(f"prefix file not found: {path}")
    try:
        data = json.loads(read_file_bounded(path, what="prefix file", bound=DATA_BYTES))
    except (UnicodeDecodeError, ValueError) as err:
        raise GptaUserError(f"{path} is not a JSON prefix export: {err}") from None
    if isinstance(data, list):
        items = data
    elif isinstance(data, dict) and isinstance(data.get("entries"), list):
        if data.get("format", EXPORT_FORMAT) != EXPORT_FORMAT:
            raise GptaUserError(f"{path}: format {data.get('format')!r} is not {EXPORT_FORMAT}")
        items = data["entries"]
    else:
        raise GptaUserError(
            f"{path}: expected {{'format': '{EXPORT_FORMAT}', 'entries': [...]}}",
            hint="write it with `gpta prefixes export`",
        )
    entries = []
    for index, item in enumerate(items):
        where = f"{path}, entry {index}"
        if not isinstance(item, dict):
            raise GptaUserError(f"{where}: expected a JSON object")
        unknown = sorted(set(item) - set(_COLUMNS))
        if unknown:
            raise GptaUserError(f"{where}: unknown field(s) {', '.join(unknown)}")
        for name in REQUIRED:
            if item.get(name) is None:
                raise GptaUserError(f"{where}: field {name!r} is missing")
        if not isinstance(item["prefix"], str):
            raise GptaUserError(f"{where}: field 'prefix' must be a string")
        check_prefix_size(item["prefix"], where)
        score = item["score"]
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise GptaUserError(f"{where}: field 'score' must be a number (got {score!r})")
        task = str(item["task"])
        domain = str(item.get("domain") or task)
        description = str(item.get("description") or "")
        bounded_description(description, f"{where}, field 'description'")
        metric = str(item["metric"])
        source = item.get("source_run")
        entry_id = LibraryEntry.make_id(
            item["prefix"], task, domain, description, metric, float(score), source
        )
        if item.get("id") not in (None, entry_id):
            raise GptaUserError(
                f"{where}: id {item['id']!r} does not match its content (expected {entry_id})",
                hint="an entry was edited after export; remove its 'id' field to accept the edit",
            )
        values: dict[str, Any] = {
            **{k: item.get(k) for k in _COLUMNS},
            "id": entry_id,
            "task": task,
            "domain": domain,
            "description": description,
            "metric": metric,
            "score": float(score),
            "created": str(item.get("created") or _now()),
        }
        entries.append(LibraryEntry(**values))
    return entries


def check_prefix_size(prefix: str, where: str) -> None:
    """Refuse a saved prefix over :data:`gpta.limits.PREFIX_CHARS` (an import, a warm start):
    it would be cut to the run's assistant.max_prefix_tokens or fill the model's input."""
    limit = PREFIX_CHARS.value()
    if len(prefix) > limit:
        raise PREFIX_CHARS.error(
            where,
            f"a prefix of {len(prefix):,} characters",
            limit,
            fix="check the entry: a prefix gpta wrote is at most assistant.max_prefix_tokens "
            "tokens",
        )


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def entry_from_run(
    run_dir: str | Path, *, domain: str | None = None, description: str | None = None
) -> LibraryEntry:
    """A library entry for a finished run directory (its saved prefix and dev score)."""
    run_dir = Path(run_dir)
    metrics = _json(run_dir / run_files.METRICS)
    manifest = _json(run_dir / run_files.MODEL_MANIFEST)
    config = _yaml(run_dir / run_files.CONFIG)
    prefix = metrics.get("prefix", manifest.get("prefix"))
    if not isinstance(prefix, str):
        raise GptaUserError(
            f"{run_dir} holds no finished run (no prefix in metrics.json or model/gpta.json)",
            hint="give the --output-dir of a run that finished, or a library id",
        )
    task = str(metrics.get("task") or manifest.get("task") or config.get("task") or "unknown")
    metric = str(metrics.get("primary_metric") or "score")
    dev = object_at(metrics, "dev")
    test = object_at(metrics, "test")
    data = object_at(config, "data")
    if description is None:
        description = data.get("description")
        if not description and data.get("description_file"):
            try:
                description = (
                    read_file_bounded(
                        data["description_file"],
                        what="description file",
                        bound=DESCRIPTION_TOKENS,
                        limit=DESCRIPTION_TOKENS.value() * DESCRIPTION_BYTES_PER_TOKEN,
                    )
                    .decode("utf-8", "replace")
                    .strip()
                )
            except GptaUserError:  # gone or unreadable: the entry keeps no description
                description = None
    domain = domain or data.get("domain") or task
    score = dev.get(metric)
    if not isinstance(score, int | float):
        best = metrics.get("best_round")
        score = next(
            (r.get("dev_score") for r in metrics.get("rounds", []) if r.get("round") == best), 0.0
        )
    source = str(run_dir.resolve())
    description = description or ""
    assistant = object_at(config, "assistant")
    rounds = metrics.get("rounds")
    return LibraryEntry(
        id=LibraryEntry.make_id(prefix, task, domain, description, metric, score, source),
        prefix=prefix,
        task=task,
        domain=str(domain),
        description=description,
        metric=metric,
        score=float(score or 0.0),
        test_score=float(test[metric]) if isinstance(test.get(metric), int | float) else None,
        base_model=manifest.get("base_model"),
        ta_model=assistant.get("model"),
        rounds=len(rounds) if isinstance(rounds, list) else None,
        best_round=metrics.get("best_round"),
        source_run=source,
        created=_now(),
    )


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _yaml(path: Path) -> dict[str, Any]:
    try:
        data = safe_yaml.load_file(path, what="run config")
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class WarmStart:
    """A transferred round-0 prefix and where it came from."""

    prefix: str
    source: dict[str, Any]


def resolve_warm_start(ref: str, library: PrefixLibrary | None = None) -> WarmStart:
    """``ref`` is a run directory (its saved prefix) or a library entry id (or a unique start)."""
    path = Path(ref).expanduser()
    if path.is_dir():
        entry = entry_from_run(path)
        kind = "run"
    else:
        if "/" in ref or "\\" in ref:
            raise GptaUserError(
                f"assistant.warm_start: {ref!r} is neither a run directory nor a library id",
                hint="give an existing run folder, or an id from `gpta prefixes list`",
            )
        entry = (library or PrefixLibrary()).get(ref)
        kind = "library"
    check_prefix_size(entry.prefix, f"assistant.warm_start {ref}")
    return WarmStart(
        prefix=entry.prefix,
        source={
            "kind": kind,
            "id": entry.id if kind == "library" else None,
            "run": entry.source_run,
            "task": entry.task,
            "domain": entry.domain,
            "metric": entry.metric,
            "score": entry.score,
        },
    )


def warm_start_select(
    ref: str, max_tokens: int, count_tokens: Callable[[str], int]
) -> tuple[str, dict[str, Any]]:
    """The round-0 prefix for ``assistant.warm_start`` and the fields of its ``select`` event.

    A prefix longer than this run's ``assistant.max_prefix_tokens`` is cut down the way the
    TA's own proposals are (whole sentences first), and marked ``truncated``.
    """
    from gpta.assistant.parsing import _apply_cap

    warm = resolve_warm_start(ref)
    prefix, truncated = _apply_cap(warm.prefix, max_tokens, count_tokens)
    return prefix, {
        "reason": "warm_start",
        "source": {"ref": ref, **warm.source},
        "truncated": truncated,
    }


def record_run(
    run_dir: str | Path, *, domain: str | None, history: Any = None, progress: Any = None
) -> LibraryEntry | None:
    """Add a finished run's best prefix to the library (called at the end of every run).

    Never raises: a library that cannot be written (read-only disk, locked file) must not fail
    a finished run; the error goes to the history (``library_error``) and the terminal.
    """
    try:
        entry = entry_from_run(run_dir, domain=domain)
        library = PrefixLibrary()
        library.add(entry)
    except (GptaUserError, OSError, sqlite3.Error) as err:
        message = err.message if isinstance(err, GptaUserError) else f"{type(err).__name__}: {err}"
        if history is not None:
            history.log("library_error", error=message)
        if progress is not None:
            progress.info(f"prefix library not updated: {message}")
        return None
    if history is not None:
        history.log("library", id=entry.id, path=str(library.path), domain=entry.domain)
    if progress is not None:
        progress.info(f"prefix library: added {entry.id} ({entry.task}/{entry.domain})")
    return entry
