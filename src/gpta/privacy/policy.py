"""The exposure policy of a run: row ids, the allowed exemplars, the guard, the channel.

``privacy.exposure``:

* ``none`` (default): the TA reads the description, label names and aggregate scores. No
  row, no part of a row. The leak guard enforces it: any request holding
  ``privacy.guard_ngram`` consecutive words of a data row is blocked.
* ``exemplars``: additionally ``k`` training rows, named by ``privacy.exemplar_ids`` or
  sampled (seeded, spread over the labels), each cleaned as every request is (secrets and
  personal details replaced: :func:`gpta.privacy.channel.clean_text`), cut to
  :data:`MAX_EXEMPLAR_CHARS`, printed at run start and listed in the run's
  ``exemplars.jsonl``. Exactly those redacted texts may be sent; the guard blocks anything
  else, including an unredacted form of the same rows.

Row ids: the value of ``privacy.id_column`` when the user names one (it must be unique in
the training split), else ``<file name>:<location>``, e.g. ``train.jsonl:line 12`` or
``train.parquet:row 7`` (``hub:imdb[train]:row 7`` for Hub data) — the place the row sits in
the user's own file, stable across runs and seeds.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpta import run_files
from gpta.errors import GptaUserError
from gpta.privacy.channel import ExposureChannel, clean_messages, clean_text
from gpta.privacy.exemplar import Exemplar
from gpta.privacy.guard import LeakGuard, LeakReport
from gpta.privacy.ledger import ExposureLedger
from gpta.privacy.redaction import Redactor
from gpta.secrets import register_secret

if TYPE_CHECKING:
    from gpta.chat.base import ChatModel, Message
    from gpta.chat.usage import UsageMeter
    from gpta.config import GptaConfig
    from gpta.data import Table
    from gpta.progress import Progress

DEFAULT_EXEMPLARS = 4
MAX_EXEMPLAR_CHARS = 600


def register_config_secrets(config: GptaConfig) -> None:
    """Register the API key and every header read from the environment (``env:NAME``), so
    that :func:`gpta.secrets.scrub` removes them. Here, not in secrets.py: secrets
    sits below the config (the config validates with :func:`~gpta.secrets.scrub`)."""
    assistant = config.assistant
    key_env = assistant.api_key_env
    if key_env:
        register_secret(os.environ.get(key_env))
    for value in assistant.extra_headers.values():
        if isinstance(value, str) and value.startswith("env:"):
            register_secret(os.environ.get(value.removeprefix("env:")))


def source_name(source: str) -> str:
    """The short name of a table's source used in row ids."""
    if source.startswith("hub:"):
        return source
    return Path(source).name or source


def row_ids(table: Table, id_column: str | None = None) -> list[str]:
    """A stable id per row: the id column's value, else ``<file name>:<location>``."""
    if id_column is not None and table.rows and all(id_column in row for row in table.rows):
        return [str(row[id_column]) for row in table.rows]
    name = source_name(table.source)
    return [f"{name}:{where}" for where in table.locations]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def build_guard(tables: dict[str, Table], *, n: int, id_column: str | None = None) -> LeakGuard:
    """The n-gram index over every string of every row of every split (all the user's data)."""

    def rows() -> Iterator[tuple[str, list[str]]]:
        seen: set[int] = set()
        for table in tables.values():
            if id(table) in seen:
                continue
            seen.add(id(table))
            for row_id, row in zip(row_ids(table, id_column), table.rows, strict=True):
                yield row_id, list(_strings(row))

    return LeakGuard(rows(), n=n)


def read_guarded_tables(config: GptaConfig) -> dict[str, Table] | None:
    """Every row of every file the run reads (``data.train``, ``data.dev``, ``data.test``),
    as read from disk: before dev/test are carved out of train and before ``data.train_size``
    samples it, so rows the run does not train on are guarded too. None when the config
    names no data (tests that hand in tables).

    The run reads its files once more here (load_data has already read them and thrown away
    what it did not sample); ``gpta audit --recheck`` calls this same function, so the guard
    a run used and the one an audit rebuilds cover the same rows.
    """
    data = config.data
    if data.train is None:
        return None
    from gpta.data import read_splits

    return read_splits(data.train, data.dev, data.test, fmt=data.format)


def rebuild_guard(
    run_dir: str | Path, *, n: int | None = None, allow_exemplars: bool = True
) -> tuple[LeakGuard, GptaConfig]:
    """The leak guard a finished run's requests are held to, rebuilt from its
    ``config.yaml``: every row of every data file it names, as those files read now
    (:func:`read_guarded_tables`), ``n``-word windows (default the config's
    ``privacy.guard_ngram``), the label names its ledger's ``policy`` record lists (the TA is
    told them under every policy), and, with ``allow_exemplars``, the redacted exemplars the
    run listed in its ``exemplars.jsonl``. Also the run's config. Used by ``gpta audit
    --recheck`` and by the fine-tuning upload, so both hold a run's text to the rows it read."""
    from gpta.config import load_config

    run_dir = Path(run_dir)
    config_path = run_dir / run_files.CONFIG
    if not config_path.is_file():
        raise GptaUserError(
            f"{config_path} is missing",
            hint="the check needs the run's config.yaml, which names the data it read",
        )
    config = load_config(config_path)
    tables = read_guarded_tables(config)  # the same rows the run's guard covered
    if tables is None:
        raise GptaUserError(f"{config_path} names no training data (data.train)")
    guard = build_guard(
        tables, n=n or config.privacy.guard_ngram, id_column=config.privacy.id_column
    )
    allow_label_names(
        guard,
        _ledger_label_names(run_dir / run_files.EXPOSURE),
        Redactor(config.privacy.redact_names),
    )
    exemplars = run_dir / run_files.EXEMPLARS
    if allow_exemplars and exemplars.is_file():
        guard.allow(str(e.get("text", "")) for e in read_exemplars(exemplars))
    return guard, config


def allow_label_names(
    guard: LeakGuard, label_names: Iterable[str], redactor: Redactor | None = None
) -> None:
    """The label names may be sent: the TA is told them under every policy, so a label of
    ``guard_ngram`` words or more (indexed as part of its rows) is not a copy of a row.
    As written and as the channel cleans them (docs/meaning.md)."""
    names = [str(name) for name in label_names]
    cleaned, _ = clean_messages([{"role": "user", "content": name} for name in names], redactor)
    guard.allow([*names, *(m["content"] for m in cleaned)])


def _ledger_label_names(ledger: Path) -> list[str]:
    """The label names a run's ``policy`` record lists (none in a ledger written before
    gpta recorded them: the stricter reading). Only the hash-chained ledger is believed."""
    try:
        with ledger.open(encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == "policy":
                    names = record.get("label_names")
                    return [str(n) for n in names] if isinstance(names, list) else []
    except (OSError, UnicodeDecodeError, ValueError):
        return []
    return []


def read_exemplars(path: str | Path) -> list[dict[str, Any]]:
    """The records of an ``exemplars.jsonl`` (lines that are not JSON objects are skipped)."""
    out = []
    with Path(path).open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                out.append(record)
    return out


def _cut(text: str, limit: int = MAX_EXEMPLAR_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"


def select_exemplars(
    config: GptaConfig,
    train: Table,
    *,
    text_column: str,
    label_column: str | None,
) -> list[Exemplar]:
    """The exemplars the policy allows: none, the named rows, or k sampled over the labels."""
    privacy = config.privacy
    if privacy.exposure == "none":
        return []
    ids = row_ids(train, privacy.id_column)
    if privacy.id_column is not None:
        _check_id_column(train, ids, privacy.id_column)
    position = {row_id: i for i, row_id in enumerate(ids)}
    if privacy.exemplar_ids:
        missing = [r for r in privacy.exemplar_ids if r not in position]
        if missing:
            raise GptaUserError(
                f"privacy.exemplar_ids: no training row with id {missing[0]!r}"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                hint=f"row ids look like {ids[0]!r}; only rows of the training split can be "
                "exemplars (dev/test rows and rows left out by data.train_size cannot)",
            )
        chosen = [position[r] for r in privacy.exemplar_ids]
    else:
        chosen = _sample(train, privacy.exemplars or DEFAULT_EXEMPLARS, config.seed, label_column)
    redactor = Redactor(privacy.redact_names)
    exemplars = []
    for i in chosen:
        row = train.rows[i]
        value = row.get(text_column)
        if not isinstance(value, str) or not value.strip():
            raise GptaUserError(
                f"privacy.exposure exemplars: training row {ids[i]!r} has no text in column "
                f"{text_column!r}",
                hint="exemplars are shown for tasks whose rows have one text column; name other "
                "rows with privacy.exemplar_ids, or use privacy.exposure: none",
            )
        # cleaned whole, then cut: a key or an address across the cut is still found
        cleaned, removed = clean_text(value, redactor)
        label = row.get(label_column) if label_column else None
        exemplars.append(
            Exemplar(ids[i], _cut(cleaned), None if label is None else str(label), removed)
        )
    return exemplars


def _first_repeat(values: list[str]) -> str:
    """The first value that appears a second time (``values`` holds a repeat)."""
    seen: set[str] = set()
    return next(v for v in values if v in seen or _added(seen, v))


def _added(seen: set[str], value: str) -> bool:
    seen.add(value)
    return False


def _check_id_column(train: Table, ids: list[str], column: str) -> None:
    if not all(column in row for row in train.rows):
        raise GptaUserError(
            f"privacy.id_column: column {column!r} is missing in {train.source}",
            hint=f"name a column every row has: {', '.join(train.columns)}",
        )
    if len(set(ids)) != len(ids):
        duplicate = _first_repeat(ids)
        raise GptaUserError(
            f"privacy.id_column: {column!r} is not unique in {train.source} "
            f"(id {duplicate!r} repeats)",
            hint="name a column with one distinct value per row, or leave it out "
            "(rows are then named by file and line)",
        )


def _sample(train: Table, k: int, seed: int, label_column: str | None) -> list[int]:
    """k row indices, seeded, round-robin over the labels so each label is shown."""
    rng = random.Random(seed)
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(train.rows):
        key = str(row.get(label_column)) if label_column else ""
        groups.setdefault(key, []).append(i)
    for members in groups.values():
        rng.shuffle(members)
    order = sorted(groups)
    picked: list[int] = []
    while len(picked) < min(k, len(train)):
        for key in order:
            if groups[key] and len(picked) < k:
                picked.append(groups[key].pop())
    return picked


@dataclass
class Exposure:
    """What a run's TA requests are held to; :meth:`channel` wraps a chat model with it."""

    policy: str
    exemplars: list[Exemplar]
    guard: LeakGuard
    ledger: ExposureLedger
    build_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    redactor: Redactor = field(default_factory=Redactor)  # privacy.redact_names included

    def channel(
        self, chat_model: ChatModel | None, meter: UsageMeter | None = None
    ) -> ExposureChannel:
        """The channel a run's TA requests go through (``chat_model`` None: a run that never
        asks the TA)."""
        return ExposureChannel(
            chat_model,
            self.ledger,
            meter,
            guard=self.guard,
            exemplars=self.exemplars,
            policy=self.policy,
            redactor=self.redactor,
        )

    def check(self, messages: list[Message]) -> LeakReport | None:
        """What the guard finds in ``messages`` as the channel would send them (cleaned
        first), or None: a request built of them would be sent."""
        cleaned, _ = clean_messages(messages, self.redactor)
        return self.guard.check(cleaned)

    def seal(self) -> dict[str, Any]:
        """The ledger's final hash and record count, for the run's metrics.json."""
        return self.ledger.seal()

    def announce(self, progress: Progress) -> None:
        """Print the warnings and :meth:`describe` (not read as terminal markup)."""
        from rich.markup import escape

        for warning in self.warnings:  # it changes what the run does: printed even with -q
            progress.warn(warning)
        for line in self.describe():
            progress.info(escape(line))

    def describe(self) -> list[str]:
        """Lines for the terminal: the policy and every exemplar exactly as it will be sent."""
        if self.policy == "none":
            return [
                "privacy: exposure none: the TA sees the description and aggregate scores, "
                f"no row (leak guard: {self.guard.n}-word runs of "
                f"{len(self.guard.row_ids)} rows)"
            ]
        lines = [
            f"privacy: exposure exemplars: these {len(self.exemplars)} redacted training rows "
            f"will be sent to the TA (also in {run_files.EXEMPLARS}):"
        ]
        for e in self.exemplars:
            label = f" [{e.label}]" if e.label is not None else ""
            lines.append(f"  {e.row_id}{label}: {e.text}")
        return lines


def build_exposure(
    config: GptaConfig,
    tables: dict[str, Table],
    run_dir: str | Path,
    *,
    text_column: str,
    label_column: str | None,
    description: str | None = None,
    label_names: Sequence[str] = (),
) -> Exposure:
    """Everything privacy needs for one run, built once before the first TA request.

    Registers the configured secrets, builds the leak guard over every row of every data
    file (:func:`read_guarded_tables`; ``tables`` when the config names none), chooses and
    redacts the exemplars, writes ``exemplars.jsonl`` (exposure ``exemplars``) and the
    ledger's ``policy`` record. A description that copies a data row is not an error (the
    guard blocks each request that carries it, and the run goes on without proposals), but
    it is named in :attr:`Exposure.warnings` so the user hears of it before round 0.
    ``label_names`` (what the TA is told the labels are) may be sent whatever their length.
    """
    import time

    register_config_secrets(config)
    privacy = config.privacy
    run_dir = Path(run_dir)
    started = time.perf_counter()
    # every row read from disk, not only those the run sampled (the run's tables are subsets)
    guarded = read_guarded_tables(config) or tables
    guard = build_guard(guarded, n=privacy.guard_ngram, id_column=privacy.id_column)
    del guarded
    build_seconds = time.perf_counter() - started
    exemplars = select_exemplars(
        config, tables["train"], text_column=text_column, label_column=label_column
    )
    guard.allow(e.text for e in exemplars)
    allow_label_names(guard, label_names, Redactor(privacy.redact_names))
    warnings = []
    if description is not None:  # as the channel would send it: cleaned first
        cleaned, _ = clean_messages(
            [{"role": "user", "content": description}], Redactor(privacy.redact_names)
        )
        report = guard.check(cleaned)
        if report is not None:
            warnings.append(
                f"the dataset description copies data rows word for word ({report.summary()}); "
                "the leak guard will block every TA request that carries it: describe the "
                "data in your own words"
            )
    if exemplars:
        with (run_dir / run_files.EXEMPLARS).open("w", encoding="utf-8") as handle:
            for e in exemplars:
                handle.write(json.dumps(asdict(e), ensure_ascii=False) + "\n")
    ledger = ExposureLedger(run_dir / run_files.EXPOSURE)
    ledger.record_policy(
        exposure=privacy.exposure,
        exemplar_ids=[e.row_id for e in exemplars],
        guard_ngram=privacy.guard_ngram,
        label_names=[str(name) for name in label_names],
        indexed_rows=len(guard.row_ids),
        indexed_windows=guard.windows,
    )
    return Exposure(
        privacy.exposure,
        exemplars,
        guard,
        ledger,
        build_seconds,
        warnings,
        Redactor(privacy.redact_names),
    )
