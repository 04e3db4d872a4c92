"""``gpta audit RUN_DIR``: what left the machine, read from the run's exposure ledger.

The report counts the requests sent, their characters and tokens, the training rows they
carried (by id), the requests the leak guard blocked, and ends with one verdict line. A row
is *beyond policy* when a request carried it and the policy did not allow it: under
``none`` any row; under ``exemplars`` any row that is not one of the listed exemplars. Each
request's SHA-256 is recomputed from its recorded messages, so an edited ledger shows.

``--recheck`` does not trust the recorded ``row_ids``: it reads the run's data again (the
files named in its config.yaml), builds the leak guard over every row, allows only the
redacted exemplars of exemplars.jsonl, and scans every recorded request for copied rows.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gpta.errors import GptaUserError
from gpta.privacy.ledger import messages_hash
from gpta.privacy.policy import EXEMPLARS_FILE

LEDGER_FILE = "exposure.jsonl"


@dataclass
class AuditReport:
    """The facts of one run's ledger and the verdict on them."""

    run_dir: str
    exposure: str
    allowed_row_ids: list[str]
    requests: int = 0
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
    hash_mismatches: list[int] = field(default_factory=list)
    scrubbed: int = 0
    unreadable_lines: int = 0
    rechecked: bool = False
    recheck_rows: list[str] = field(default_factory=list)  # copied rows found by --recheck

    @property
    def ok(self) -> bool:
        return not self.beyond_policy and not self.hash_mismatches

    @property
    def verdict(self) -> str:
        if self.hash_mismatches:
            return (
                f"VERDICT: UNVERIFIABLE: {len(self.hash_mismatches)} request(s) do not match "
                "their recorded hash; the ledger was changed after it was written"
            )
        if self.beyond_policy:
            return (
                f"VERDICT: EXPOSED BEYOND POLICY: {len(self.beyond_policy)} training row(s) left "
                f"the machine that policy '{self.exposure}' does not allow: "
                + ", ".join(self.beyond_policy[:10])
                + (" ..." if len(self.beyond_policy) > 10 else "")
            )
        if self.rows_exposed:
            return (
                f"VERDICT: WITHIN POLICY: {len(self.rows_exposed)} redacted exemplar row(s) left "
                f"the machine, as policy '{self.exposure}' allows; no other row"
            )
        return (
            f"VERDICT: WITHIN POLICY: no training row left the machine (policy "
            f"'{self.exposure}'); {self.requests} request(s) carried the description and "
            "aggregate scores only"
        )


def _read_lines(path: Path) -> tuple[list[dict[str, Any]], int]:
    records, bad = [], 0
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                bad += 1  # a line cut short by a crash
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                bad += 1
    return records, bad


def _policy_from_run_dir(run_dir: Path) -> tuple[str, list[str]]:
    """For ledgers without a ``policy`` record: config.yaml and exemplars.jsonl."""
    import yaml

    exposure = "none"
    config_path = run_dir / "config.yaml"
    if config_path.is_file():
        config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        exposure = (config.get("privacy") or {}).get("exposure", "none")
    allowed = []
    exemplars = run_dir / EXEMPLARS_FILE
    if exposure != "none" and exemplars.is_file():
        records, _ = _read_lines(exemplars)
        allowed = [str(r["row_id"]) for r in records if "row_id" in r]
    return exposure, allowed


def audit_run(run_dir: str | Path, *, recheck: bool = False) -> AuditReport:
    """Read ``RUN_DIR/exposure.jsonl`` and judge it against the run's exposure policy;
    with ``recheck``, also scan every request against the run's data (see the module doc)."""
    run_dir = Path(run_dir)
    ledger = run_dir / LEDGER_FILE if run_dir.is_dir() else run_dir
    if not ledger.is_file():
        raise GptaUserError(
            f"no exposure ledger at {ledger}",
            hint="pass the run directory of a `gpta train` run (it holds exposure.jsonl)",
        )
    records, bad = _read_lines(ledger)
    policy = next((r for r in records if r.get("event") == "policy"), None)
    if policy is not None:
        exposure = str(policy.get("exposure", "none"))
        allowed = [str(r) for r in policy.get("exemplar_ids", [])]
    else:
        exposure, allowed = _policy_from_run_dir(ledger.parent)
    allowed_set = set(allowed) if exposure != "none" else set()
    report = AuditReport(
        run_dir=str(ledger.parent), exposure=exposure, allowed_row_ids=allowed, unreadable_lines=bad
    )
    answered: set[int] = set()
    sent: list[int] = []
    backends: dict[str, None] = {}
    beyond: dict[str, None] = {}
    blocked_rows: dict[str, None] = {}
    for record in records:
        event = record.get("event")
        report.scrubbed += bool(record.get("scrubbed"))
        if event == "request":
            report.requests += 1
            sent.append(record.get("id"))
            messages = record.get("messages") or []
            report.chars_sent += sum(len(m.get("content", "")) for m in messages)
            backends[f"{record.get('backend')}:{record.get('model')}"] = None
            if not record.get("scrubbed") and messages_hash(messages) != record.get("sha256"):
                report.hash_mismatches.append(record.get("id"))
            for row_id in record.get("row_ids") or []:
                report.rows_exposed[row_id] = report.rows_exposed.get(row_id, 0) + 1
                if row_id not in allowed_set:
                    beyond[row_id] = None
        elif event == "response":
            report.responses += 1
            answered.add(record.get("id"))
            usage = record.get("usage") or {}
            report.prompt_tokens += int(usage.get("prompt_tokens", 0))
            report.completion_tokens += int(usage.get("completion_tokens", 0))
            report.cached += bool(record.get("cached"))
        elif event == "error":
            report.errors += 1
            answered.add(record.get("id"))
        elif event == "blocked":
            report.blocked += 1
            for row_id in record.get("copied_row_ids") or []:
                blocked_rows[row_id] = None
    if recheck:
        _recheck(report, ledger.parent, records, policy)
        for row_id in report.recheck_rows:
            beyond.setdefault(row_id, None)
    report.unanswered = sum(1 for i in sent if i not in answered)
    report.backends = list(backends)
    report.beyond_policy = list(beyond)
    report.blocked_rows = list(blocked_rows)
    return report


def _recheck(
    report: AuditReport, run_dir: Path, records: list[dict[str, Any]], policy: dict | None
) -> None:
    from gpta.config import load_config
    from gpta.data import read_splits
    from gpta.privacy.policy import build_guard

    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise GptaUserError(
            f"--recheck: {config_path} is missing", hint="recheck needs the run's config.yaml"
        )
    config = load_config(config_path)
    data = config.data
    if data.train is None:
        raise GptaUserError("--recheck: the run's config names no training data")
    tables = read_splits(data.train, data.dev, data.test, fmt=data.format)
    n = int((policy or {}).get("guard_ngram", config.privacy.guard_ngram))
    guard = build_guard(tables, n=n, id_column=config.privacy.id_column)
    exemplars = run_dir / EXEMPLARS_FILE
    if report.exposure != "none" and exemplars.is_file():
        listed, _ = _read_lines(exemplars)
        guard.allow(str(e.get("text", "")) for e in listed)
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
        lines.append(f"  scrubbed records:  {report.scrubbed} (a secret-shaped string was removed)")
    if report.unreadable_lines:
        lines.append(f"  unreadable lines:  {report.unreadable_lines} (cut short by a crash?)")
    lines.append(report.verdict)
    return "\n".join(lines)


def report_json(report: AuditReport) -> dict[str, Any]:
    return {**asdict(report), "ok": report.ok, "verdict": report.verdict}
