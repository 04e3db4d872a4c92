"""``gpta audit RUN_DIR``: what left the machine, read from the run's exposure ledger.

The report counts the requests sent, the HTTP requests that carried them (every retry, every
structured-output form tried and every candidate fetched on its own is one more: the
``attempts`` of each response and error record; a request with no answer counts once), their
characters and tokens, the training rows they carried (by id), the requests the leak guard
blocked, and ends with one verdict line. A row
is *beyond policy* when a request carried it and the policy did not allow it: under
``none`` any row; under ``exemplars`` any row that is not one of the listed exemplars.

The ledger is checked before it is believed, and the audit fails closed: the verdict is
``UNVERIFIABLE`` (``--strict`` exits 1) when

* the ledger is empty, or was written by a gpta without the hash chain;
* the hash chain is broken: a record's ``hash`` is not the SHA-256 of its content, or its
  ``prev`` is not the hash of the record before it (an edited, deleted, inserted or
  reordered record; see :mod:`gpta.privacy.ledger`);
* a request's messages do not match its recorded SHA-256, whatever flags the record carries;
* the seal in the run's metrics.json (``ledger_sha256``, ``ledger_records``) is missing or
  does not match the ledger's final hash and record count (records removed from the end, or
  added after the run finished); a run that has not finished has no seal, and its ledger is
  unverifiable until it has;
* a line other than the last cannot be read as JSON (gpta removes a line a crash cut short
  before it appends again).

A ledger that is not UTF-8 text, or holds a record of the wrong shape, is not audited at
all: :class:`GptaUserError` (exit 2). Anyone who can rewrite the run's files can recompute
every hash and the seal: the chain shows careless and partial edits, not a determined forger.

``--recheck`` does not trust the recorded ``row_ids``: it reads the run's data again (the
files named in its config.yaml, every row of them, as the run's guard did), builds the leak
guard, allows only the redacted exemplars of exemplars.jsonl, and scans every recorded
request for copied rows.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from gpta.errors import GptaUserError
from gpta.privacy.ledger import GENESIS, messages_hash, record_hash
from gpta.privacy.policy import EXEMPLARS_FILE, read_exemplars

LEDGER_FILE = "exposure.jsonl"
#: backends whose requests go out over HTTP (the others run in this process)
HTTP_BACKENDS = frozenset({"openai"})
METRICS_FILE = "metrics.json"
_DAMAGED_HINT = (
    "the ledger was damaged or edited after gpta wrote it and cannot be audited: restore it "
    "from a copy, or treat everything the run's TA requests could hold as exposed"
)


@dataclass
class AuditReport:
    """The facts of one run's ledger and the verdict on them."""

    run_dir: str
    exposure: str
    allowed_row_ids: list[str]
    records: int = 0
    requests: int = 0
    http_requests: int = 0  # HTTP requests that carried a prompt (retries, form fallbacks)
    responses: int = 0
    errors: int = 0
    unanswered: int = 0  # sent (recorded) but no response or error: e.g. the process died
    cached: int = 0
    blocked: int = 0
    chars_sent: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    backends: list[str] = field(default_factory=list)
    rows_exposed: dict[str, int] = field(default_factory=dict)  # row id -> requests carrying it
    beyond_policy: list[str] = field(default_factory=list)
    blocked_rows: list[str] = field(default_factory=list)
    hash_mismatches: list[int] = field(default_factory=list)  # request ids
    chain_breaks: list[int] = field(default_factory=list)  # line numbers
    final_hash: str | None = None
    sealed: bool = False  # metrics.json's seal matches the ledger
    integrity: list[str] = field(default_factory=list)  # why the ledger cannot be trusted
    scrubbed: int = 0
    unreadable_lines: int = 0
    rechecked: bool = False
    recheck_rows: list[str] = field(default_factory=list)  # copied rows found by --recheck

    @property
    def ok(self) -> bool:
        return not self.beyond_policy and not self.integrity

    @property
    def verdict(self) -> str:
        unverifiable = "; ".join(self.integrity)
        if self.beyond_policy:
            return (
                f"VERDICT: EXPOSED BEYOND POLICY: {len(self.beyond_policy)} training row(s) left "
                f"the machine that policy '{self.exposure}' does not allow: "
                + ", ".join(self.beyond_policy[:10])
                + (" ..." if len(self.beyond_policy) > 10 else "")
                + (f" (and the ledger is unverifiable: {unverifiable})" if unverifiable else "")
            )
        if self.integrity:
            return f"VERDICT: UNVERIFIABLE: {unverifiable}"
        if self.rows_exposed:
            return (
                f"VERDICT: WITHIN POLICY: {len(self.rows_exposed)} redacted exemplar row(s) left "
                f"the machine, as policy '{self.exposure}' allows; no other row"
            )
        return (
            f"VERDICT: WITHIN POLICY: no training row left the machine (policy "
            f"'{self.exposure}'); {self.requests} request(s) ({self.http_requests} HTTP "
            "request(s)) carried the description and aggregate scores only"
        )


# --- the shapes of the records (a record of another shape is not audited) -----------------
class _Record(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    event: Literal["policy", "request", "response", "error", "blocked"]
    prev: str | None = None
    hash: str | None = None
    scrubbed: bool = False


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    role: str
    content: str


class _Policy(_Record):
    exposure: str = "none"
    exemplar_ids: list[str] = []
    guard_ngram: int | None = None


class _Request(_Record):
    id: int
    messages: list[_Message]
    sha256: str
    row_ids: list[str] = []
    backend: str | None = None
    model: str | None = None


class _Response(_Record):
    id: int
    texts: list[str] = []
    usage: dict[str, int] = {}
    cached: bool = False
    attempts: int = 1  # HTTP requests made for it (0: answered from the cache)


class _Error(_Record):
    id: int
    error: str = ""
    attempts: int = 1


class _Blocked(_Record):
    id: int
    sha256: str | None = None
    copied_row_ids: list[str] = []


_SHAPES: dict[str, type[_Record]] = {
    "policy": _Policy,
    "request": _Request,
    "response": _Response,
    "error": _Error,
    "blocked": _Blocked,
}


def _check_shape(path: Path, number: int, record: Any) -> None:
    if not isinstance(record, dict):
        raise GptaUserError(
            f"{path}, line {number}: a ledger record must be a JSON object, not "
            f"{type(record).__name__}",
            hint=_DAMAGED_HINT,
        )
    try:
        _Record.model_validate(record)
        _SHAPES[record["event"]].model_validate(record)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(record)"
        raise GptaUserError(
            f"{path}, line {number}: not a ledger record of the expected shape ({where}: "
            f"{first['msg']})",
            hint=_DAMAGED_HINT,
        ) from None


def read_ledger(path: Path, *, strict: bool = True) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """(line number, record) of every record of an exposure ledger, and how many lines could
    not be read. A last line without its newline that is not JSON (cut short by a crash) is
    counted as unreadable.

    ``strict`` (the audit, which fails closed): a ledger that cannot be read, is not UTF-8
    or holds a record of the wrong shape raises :class:`GptaUserError`; a line in the middle
    that is not JSON stays as an ``{"event": "unreadable"}`` record. Otherwise (a report,
    which never fails): text is decoded with replacement characters, and what is not a JSON
    object is left out."""
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError as err:
        if not strict:
            return [], 0
        raise GptaUserError(f"cannot read {path}: {err.strerror or err}") from None
    cut = lines.pop() if lines else b""  # after the last newline: empty, or a cut line
    records: list[tuple[int, dict[str, Any]]] = []
    bad = 0
    for number, raw in enumerate([*lines, cut], start=1):
        last = number == len(lines) + 1
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8", "strict" if strict else "replace")
        except UnicodeDecodeError as err:
            if last:
                bad += 1  # a crash cut a character in two
                continue
            raise GptaUserError(
                f"{path}, line {number}: not UTF-8 text (byte {err.start + 1} of the line)",
                hint=_DAMAGED_HINT,
            ) from None
        try:
            record = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            bad += 1
            if strict and not last:
                records.append((number, {"event": "unreadable"}))
            continue
        if strict:
            _check_shape(path, number, record)
        elif not isinstance(record, dict):
            bad += 1
            continue
        records.append((number, record))
    return records, bad


def _verify_chain(report: AuditReport, records: list[tuple[int, dict[str, Any]]]) -> None:
    """The hash chain, record by record (see :mod:`gpta.privacy.ledger`)."""
    chained = [r for _, r in records if r.get("event") != "unreadable" and "hash" in r]
    legacy = [n for n, r in records if r.get("event") != "unreadable" and "hash" not in r]
    unreadable = [n for n, r in records if r.get("event") == "unreadable"]
    if unreadable:
        report.integrity.append(
            f"{len(unreadable)} line(s) in the middle of the ledger are not JSON (line "
            f"{unreadable[0]}{' ...' if len(unreadable) > 1 else ''})"
        )
    if not chained and legacy:
        report.integrity.append(
            "the ledger has no hash chain (written by a gpta older than the chain): it "
            "cannot be verified"
        )
        return
    expected = GENESIS
    for number, record in records:
        if record.get("event") == "unreadable":
            continue
        if record.get("prev") != expected or record.get("hash") != record_hash(record):
            report.chain_breaks.append(number)
        expected = str(record.get("hash") or record_hash(record))
    report.final_hash = expected if records else None
    if report.chain_breaks:
        report.integrity.append(
            f"the hash chain is broken at line {report.chain_breaks[0]}"
            + (f" and {len(report.chain_breaks) - 1} more" if len(report.chain_breaks) > 1 else "")
            + " (a record was edited, removed, inserted or moved)"
        )


def _verify_seal(report: AuditReport, ledger: Path) -> None:
    """The final hash and record count the run wrote to metrics.json at its end."""
    metrics_path = ledger.parent / METRICS_FILE
    if ledger.name != LEDGER_FILE or not metrics_path.is_file():
        report.integrity.append(
            f"the ledger is not sealed: no {METRICS_FILE} beside it (the run has not finished, "
            "or was stopped), so records removed from its end cannot be detected"
        )
        return
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        report.integrity.append(f"{METRICS_FILE} cannot be read, so the ledger's seal cannot")
        return
    if not isinstance(metrics, dict) or "ledger_sha256" not in metrics:
        report.integrity.append(
            f"{METRICS_FILE} holds no ledger seal (a run of a gpta older than the seal, or "
            "the seal was removed)"
        )
        return
    sealed_count = metrics.get("ledger_records")
    if type(sealed_count) is not int or sealed_count != report.records:
        report.integrity.append(
            f"the ledger holds {report.records} record(s) but the run sealed "
            f"{metrics.get('ledger_records')!r} in {METRICS_FILE} (records were removed or "
            "added after the run)"
        )
    elif metrics.get("ledger_sha256") != report.final_hash:
        report.integrity.append(
            f"the ledger's final hash does not match the seal in {METRICS_FILE}"
        )
    else:
        report.sealed = True


def _policy_from_run_dir(run_dir: Path) -> tuple[str, list[str]]:
    """For ledgers without a ``policy`` record: config.yaml and exemplars.jsonl."""
    import yaml

    from gpta import safe_yaml

    exposure = "none"
    config_path = run_dir / "config.yaml"
    if config_path.is_file():
        try:
            config = safe_yaml.load_file(config_path, what="run config") or {}
            exposure = str((config.get("privacy") or {}).get("exposure", "none"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError):
            exposure = "none"  # the strictest reading: any row is beyond policy
    allowed = []
    exemplars = run_dir / EXEMPLARS_FILE
    if exposure != "none" and exemplars.is_file():
        allowed = [str(r["row_id"]) for r in read_exemplars(exemplars) if "row_id" in r]
    return exposure, allowed


def audit_run(run_dir: str | Path, *, recheck: bool = False) -> AuditReport:
    """Read ``RUN_DIR/exposure.jsonl``, verify its hash chain and seal, and judge it against
    the run's exposure policy; with ``recheck``, also scan every request against the run's
    data (see the module doc)."""
    run_dir = Path(run_dir)
    ledger = run_dir / LEDGER_FILE if run_dir.is_dir() else run_dir
    if not ledger.is_file():
        raise GptaUserError(
            f"no exposure ledger at {ledger}",
            hint="pass the run directory of a `gpta train` run (it holds exposure.jsonl); a "
            "run whose ledger was deleted cannot be audited: treat what its TA saw as exposed",
        )
    lines, bad = read_ledger(ledger)
    records = [r for _, r in lines if r.get("event") != "unreadable"]
    policy = next((r for r in records if r.get("event") == "policy"), None)
    if policy is not None:
        exposure = str(policy.get("exposure", "none"))
        allowed = [str(r) for r in policy.get("exemplar_ids", [])]
    else:
        exposure, allowed = _policy_from_run_dir(ledger.parent)
    allowed_set = set(allowed) if exposure != "none" else set()
    report = AuditReport(
        run_dir=str(ledger.parent),
        exposure=exposure,
        allowed_row_ids=allowed,
        records=len(records),
        unreadable_lines=bad,
    )
    if not records:
        report.integrity.append(
            "the ledger holds no record (a run writes its policy record before any request: "
            "it was emptied, or is not a run's ledger)"
        )
    else:
        _verify_chain(report, lines)
        if not any("no hash chain" in problem for problem in report.integrity):
            _verify_seal(report, ledger)
    answered: set[int] = set()
    sent: list[int] = []
    over_http: set[int] = set()
    backends: dict[str, None] = {}
    beyond: dict[str, None] = {}
    blocked_rows: dict[str, None] = {}
    for record in records:
        event = record.get("event")
        report.scrubbed += bool(record.get("scrubbed"))
        if event == "request":
            report.requests += 1
            sent.append(record["id"])
            messages = record["messages"]
            report.chars_sent += sum(len(m["content"]) for m in messages)
            backends[f"{record.get('backend')}:{record.get('model')}"] = None
            if record.get("backend") in HTTP_BACKENDS:
                over_http.add(record["id"])
            if messages_hash(messages) != record["sha256"]:  # scrubbed or not
                report.hash_mismatches.append(record["id"])
            for row_id in record.get("row_ids") or []:
                report.rows_exposed[row_id] = report.rows_exposed.get(row_id, 0) + 1
                if row_id not in allowed_set:
                    beyond[row_id] = None
        elif event == "response":
            report.responses += 1
            answered.add(record["id"])
            report.http_requests += _attempts(record) if record["id"] in over_http else 0
            usage = record.get("usage") or {}
            report.prompt_tokens += int(usage.get("prompt_tokens", 0))
            report.completion_tokens += int(usage.get("completion_tokens", 0))
            report.cached += bool(record.get("cached"))
        elif event == "error":
            report.errors += 1
            answered.add(record["id"])
            report.http_requests += _attempts(record) if record["id"] in over_http else 0
        elif event == "blocked":
            report.blocked += 1
            for row_id in record.get("copied_row_ids") or []:
                blocked_rows[row_id] = None
    if report.hash_mismatches:
        report.integrity.append(
            f"{len(report.hash_mismatches)} request(s) do not match their recorded hash "
            f"(ids {', '.join(map(str, report.hash_mismatches[:10]))}): the ledger was "
            "changed after it was written"
        )
    if recheck:
        _recheck(report, ledger.parent, records, policy)
        for row_id in report.recheck_rows:
            beyond.setdefault(row_id, None)
    report.unanswered = sum(1 for i in sent if i not in answered)
    # no answer recorded (the process died): at least the one HTTP request may have gone out
    report.http_requests += sum(1 for i in over_http if i not in answered)
    report.backends = list(backends)
    report.beyond_policy = list(beyond)
    report.blocked_rows = list(blocked_rows)
    return report


def _attempts(record: dict[str, Any]) -> int:
    """HTTP requests made for a response or error record: its ``attempts`` (1 in a ledger
    written before gpta recorded them; never fewer than 0)."""
    attempts = record.get("attempts", 1)
    return max(0, attempts) if type(attempts) is int else 1


def _recheck(
    report: AuditReport, run_dir: Path, records: list[dict[str, Any]], policy: dict[str, Any] | None
) -> None:
    from gpta.privacy.policy import rebuild_guard

    n = (policy or {}).get("guard_ngram")
    try:
        guard, _config = rebuild_guard(
            run_dir, n=int(n) if n else None, allow_exemplars=report.exposure != "none"
        )
    except GptaUserError as err:
        raise GptaUserError(f"--recheck: {err.message}", hint=err.hint) from None
    found: dict[str, None] = {}
    for record in records:
        if record.get("event") == "request":
            hit = guard.check(record.get("messages") or [])
            for row_id in hit.row_ids if hit else []:
                found[row_id] = None
    report.rechecked = True
    report.recheck_rows = list(found)


def format_report(report: AuditReport) -> str:
    """The human-readable audit."""
    lines = [
        f"exposure audit of {report.run_dir}",
        f"  policy:            {report.exposure}"
        + (
            f" ({len(report.allowed_row_ids)} allowed exemplar rows)"
            if report.allowed_row_ids
            else ""
        ),
        f"  TA backends:       {', '.join(report.backends) or '(none)'}",
        f"  requests sent:     {report.requests} ({report.responses} answered, "
        f"{report.cached} of them from the cache, {report.errors} failed, "
        f"{report.unanswered} without an answer)",
        f"  HTTP requests:     {report.http_requests} carried a prompt (retries, "
        "structured-output forms and candidates fetched one by one included)",
        f"  characters sent:   {report.chars_sent}",
        f"  tokens:            {report.prompt_tokens} prompt, {report.completion_tokens} "
        "completion (as the backend counted them)",
        f"  rows exposed:      {len(report.rows_exposed)}"
        + (": " + ", ".join(sorted(report.rows_exposed)) if report.rows_exposed else ""),
        f"  blocked requests:  {report.blocked}"
        + (
            f" (copying rows {', '.join(report.blocked_rows[:10])}"
            + (" ..." if len(report.blocked_rows) > 10 else "")
            + "; not sent)"
            if report.blocked
            else ""
        ),
    ]
    if report.rechecked:
        lines.append(
            "  recheck:           every request scanned against the run's data: "
            + (
                f"{len(report.recheck_rows)} row(s) copied beyond the allowed exemplars: "
                + ", ".join(report.recheck_rows[:10])
                if report.recheck_rows
                else "no row copied beyond the allowed exemplars"
            )
        )
    if report.scrubbed:
        lines.append(
            f"  scrubbed records:  {report.scrubbed} (a secret-shaped string was removed from "
            "the record after the fact)"
        )
    if report.unreadable_lines:
        lines.append(f"  unreadable lines:  {report.unreadable_lines} (cut short by a crash?)")
    if report.records and not report.integrity:
        lines.append(
            f"  hash chain:        intact, {report.records} records, final sha256 "
            f"{report.final_hash}, sealed in {METRICS_FILE}"
        )
    for problem in report.integrity:
        lines.append(f"  integrity:         {problem}")
    lines.append(report.verdict)
    return "\n".join(lines)


def report_json(report: AuditReport) -> dict[str, Any]:
    return {**asdict(report), "ok": report.ok, "verdict": report.verdict}
