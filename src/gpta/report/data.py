"""What a report shows, read from a run directory.

Every file is optional: a run that crashed, an older run written before a field existed, or a
run still in progress gives a report with the missing parts marked as such, never an error.
Only a folder that holds none of a run's files is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gpta import safe_yaml
from gpta.errors import GptaUserError
from gpta.fileio import object_at, read_json_record
from gpta.privacy.audit import LEDGER_FILE, read_ledger

RUN_MARKERS = ("history.jsonl", "metrics.json", "config.yaml", "model/gpta.json")


def _read_json(path: Path) -> dict[str, Any]:
    return read_json_record(path) or {}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file; a torn last line (a crash mid-write) is skipped."""
    if not path.is_file():
        return []
    events = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
    return events


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = safe_yaml.load_file(path, what="run config")
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass
class RoundRow:
    """One training round: its prefix, scores and losses."""

    round: int
    prefix: str
    dev_score: float | None
    dev_loss: float | None
    train_loss: float | None
    seconds: dict[str, float] = field(default_factory=dict)
    select_reason: str | None = None
    best: bool = False


@dataclass
class ImprovementRow:
    """The TA's proposals for one round: how many, how many valid, how many improved."""

    round: int
    proposals: int
    valid: int
    improved: int
    rate: float | None


@dataclass
class ScreenPoint:
    """A screened score: a candidate (``kind`` candidate/empty) or the current prefix."""

    round: int
    prefix: str
    score: float
    kind: str


@dataclass
class Exposure:
    """What left the machine towards the TA (from exposure.jsonl)."""

    requests: int = 0
    responses: int = 0
    errors: int = 0
    blocked: int = 0
    characters: int = 0
    row_ids: list[str] = field(default_factory=list)
    backends: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    policy: dict[str, Any] | None = None
    per_request: list[dict[str, Any]] = field(default_factory=list)
    recorded: bool = False


@dataclass
class RunData:
    """A run directory, read once; every part may be empty."""

    run_dir: Path
    name: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    manifest: dict[str, Any]
    events: list[dict[str, Any]]
    rounds: list[RoundRow]
    improvement: list[ImprovementRow]
    screens: list[ScreenPoint]
    proposals: list[dict[str, Any]]
    exposure: Exposure
    tokens: dict[str, Any]
    missing: list[str]
    cards: dict[str, Any] = field(default_factory=dict)  # cards.json ({}: no card step)

    @property
    def task(self) -> str:
        return str(
            self.metrics.get("task") or self.manifest.get("task") or self.config.get("task") or "?"
        )

    @property
    def metric(self) -> str:
        return str(self.metrics.get("primary_metric") or "score")

    @property
    def best_round(self) -> int | None:
        best = self.metrics.get("best_round", self.manifest.get("best_round"))
        if isinstance(best, int):
            return best
        scored = [r for r in self.rounds if r.dev_score is not None]
        if not scored:
            return None
        return max(scored, key=lambda r: (r.dev_score, -(r.dev_loss or 0.0), -r.round)).round

    @property
    def prefix(self) -> str | None:
        prefix = self.metrics.get("prefix", self.manifest.get("prefix"))
        if isinstance(prefix, str):
            return prefix
        best = self.best_round
        return next((r.prefix for r in self.rounds if r.round == best), None)

    def final_metrics(self, split: str) -> dict[str, float]:
        values = self.metrics.get(split)
        if not isinstance(values, dict):
            values = (self.manifest.get("metrics") or {}).get(split)
        if not isinstance(values, dict):
            return {}
        return {k: float(v) for k, v in values.items() if _number(v) is not None}


def _rounds(events: list[dict[str, Any]], metrics: dict[str, Any]) -> list[RoundRow]:
    """Rounds from history.jsonl ``round`` events, else from metrics.json ``rounds``."""
    raw = [e for e in events if e.get("event") == "round"]
    if not raw and isinstance(metrics.get("rounds"), list):
        raw = [r for r in metrics["rounds"] if isinstance(r, dict)]
    by_round: dict[int, RoundRow] = {}
    for item in raw:
        if not isinstance(item.get("round"), int):
            continue
        seconds = object_at(item, "seconds")
        by_round[item["round"]] = RoundRow(  # a resumed run may repeat a round: keep the last
            round=item["round"],
            prefix=str(item.get("prefix") or ""),
            dev_score=_number(item.get("dev_score")),
            dev_loss=_number(item.get("dev_loss")),
            train_loss=_number(item.get("train_loss")),
            seconds={k: float(v) for k, v in seconds.items() if _number(v) is not None},
        )
    reasons = {
        e["round"]: str(e.get("reason"))
        for e in events
        if e.get("event") == "select" and isinstance(e.get("round"), int)
    }
    rows = [by_round[r] for r in sorted(by_round)]
    for row in rows:
        row.select_reason = reasons.get(row.round)
    return rows


def _improvement(events: list[dict[str, Any]]) -> list[ImprovementRow]:
    """Per screened round: the run's own ``ta_improvement`` events where recorded, else
    counted from its ``proposal`` events (the same definition: improved / all proposals)."""
    explicit: dict[int, ImprovementRow] = {}
    for e in events:
        if e.get("event") == "ta_improvement" and isinstance(e.get("round"), int):
            explicit[e["round"]] = ImprovementRow(
                round=e["round"],
                proposals=int(e.get("proposals") or 0),
                valid=int(e.get("valid") or 0),
                improved=int(e.get("improved") or 0),
                rate=_number(e.get("improvement_rate")),
            )
    screened = {e["round"] for e in events if e.get("event") == "screen" and "round" in e}
    screened |= {
        e["round"]
        for e in events
        if e.get("event") == "proposal" and e.get("screen_score") is not None and "round" in e
    }
    counted: dict[int, ImprovementRow] = {}
    for r in sorted(screened):
        if not isinstance(r, int):
            continue
        items = [e for e in events if e.get("event") == "proposal" and e.get("round") == r]
        total = len(items)
        improved = sum(1 for p in items if p.get("improved") is True)
        counted[r] = ImprovementRow(
            round=r,
            proposals=total,
            valid=sum(1 for p in items if p.get("valid", p.get("prefix") is not None)),
            improved=improved,
            rate=improved / total if total else None,
        )
    merged = {**counted, **explicit}
    return [merged[r] for r in sorted(merged)]


def _screens(events: list[dict[str, Any]]) -> list[ScreenPoint]:
    points: list[ScreenPoint] = []
    seen_rounds: set[int] = set()
    for e in events:
        if e.get("event") != "screen" or not isinstance(e.get("round"), int):
            continue
        seen_rounds.add(e["round"])
        current = e.get("current")
        if isinstance(current, dict) and _number(current.get("score")) is not None:
            points.append(
                ScreenPoint(
                    e["round"], str(current.get("prefix") or ""), current["score"], "current"
                )
            )
        for c in e.get("candidates") or []:
            if isinstance(c, dict) and _number(c.get("score")) is not None:
                prefix = str(c.get("prefix") or "")
                kind = "empty" if not prefix else "candidate"
                points.append(ScreenPoint(e["round"], prefix, c["score"], kind))
    # older runs: no screen events, but proposals with screened scores
    for e in events:
        if (
            e.get("event") == "proposal"
            and isinstance(e.get("round"), int)
            and e["round"] not in seen_rounds
            and _number(e.get("screen_score")) is not None
        ):
            points.append(
                ScreenPoint(e["round"], str(e.get("prefix") or ""), e["screen_score"], "candidate")
            )
    return points


def _exposure(records: list[dict[str, Any]], present: bool) -> Exposure:
    out = Exposure(recorded=present)
    rows: dict[str, None] = {}
    usage: dict[Any, dict[str, Any]] = {}
    for r in records:
        kind = r.get("event")
        if kind == "response":
            out.responses += 1
            usage[r.get("id")] = object_at(r, "usage")
        elif kind == "error":
            out.errors += 1
        elif kind == "policy":
            out.policy = {k: v for k, v in r.items() if k not in ("event", "time")}
    for r in records:
        kind = r.get("event")
        if kind not in ("request", "blocked"):
            continue
        for row in r.get("row_ids") or []:
            rows[str(row)] = None
        if kind == "blocked":
            out.blocked += 1
            continue
        out.requests += 1
        chars = r.get("chars")
        if not isinstance(chars, int):
            chars = sum(len(str(m.get("content", ""))) for m in r.get("messages") or [])
        out.characters += chars
        for attr, key in (("backends", "backend"), ("models", "model")):
            value = r.get(key)
            if value and value not in getattr(out, attr):
                getattr(out, attr).append(str(value))
        used = usage.get(r.get("id"), {})
        out.per_request.append(
            {
                "id": r.get("id"),
                "chars": chars,
                "rows": len(r.get("row_ids") or []),
                "prompt_tokens": int(used.get("prompt_tokens") or 0),
                "completion_tokens": int(used.get("completion_tokens") or 0),
            }
        )
    out.row_ids = list(rows)
    return out


def _tokens(metrics: dict[str, Any], exposure: Exposure) -> dict[str, Any]:
    """Tokens and cost: metrics.json where recorded, else summed from the ledger."""
    tokens: dict[str, Any] = {}
    for key in ("ta_requests", "ta_prompt_tokens", "ta_completion_tokens"):
        if _number(metrics.get(key)) is not None:
            tokens[key] = int(metrics[key])
    if "ta_prompt_tokens" not in tokens and exposure.per_request:
        tokens["ta_prompt_tokens"] = sum(r["prompt_tokens"] for r in exposure.per_request)
        tokens["ta_completion_tokens"] = sum(r["completion_tokens"] for r in exposure.per_request)
        tokens["ta_requests"] = exposure.requests
    # cost: a top-level field, or inside a usage summary (whatever the run recorded)
    for key, value in metrics.items():
        if "cost" in key and _number(value) is not None:
            tokens[key] = float(value)
        elif isinstance(value, dict) and key.startswith(("ta", "llm", "usage")):
            for sub, v in value.items():
                if ("cost" in sub or "tokens" in sub) and _number(v) is not None:
                    tokens[f"{key}.{sub}"] = float(v)
    return tokens


def load_run(path: str | Path) -> RunData:
    """Read a run directory for a report; refuses only a folder that holds no run."""
    run_dir = Path(path)
    if not run_dir.is_dir():
        raise GptaUserError(f"run directory not found: {run_dir}", hint="give a gpta run folder")
    if not any((run_dir / name).exists() for name in RUN_MARKERS):
        raise GptaUserError(
            f"{run_dir} is not a gpta run directory (none of {', '.join(RUN_MARKERS)} is there)",
            hint="give the --output-dir of a `gpta train` or `gpta demo` run",
        )
    missing = [
        name
        for name in ("history.jsonl", "metrics.json", "exposure.jsonl", "model/gpta.json")
        if not (run_dir / name).is_file()
    ]
    metrics = _read_json(run_dir / "metrics.json")
    manifest = _read_json(run_dir / "model" / "gpta.json")
    events = _read_jsonl(run_dir / "history.jsonl")
    ledger = run_dir / LEDGER_FILE
    records = [record for _, record in read_ledger(ledger, strict=False)[0]]
    rounds = _rounds(events, metrics)
    exposure = _exposure(records, ledger.is_file())
    data = RunData(
        run_dir=run_dir,
        name=run_dir.resolve().name,
        config=_read_yaml(run_dir / "config.yaml"),
        metrics=metrics,
        manifest=manifest,
        events=events,
        rounds=rounds,
        improvement=_improvement(events),
        screens=_screens(events),
        proposals=[e for e in events if e.get("event") == "proposal"],
        exposure=exposure,
        tokens=_tokens(metrics, exposure),
        missing=missing,
        cards=_read_json(run_dir / "cards.json"),
    )
    best = data.best_round
    for row in rounds:
        row.best = row.round == best
    return data
