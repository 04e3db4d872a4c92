"""The run's history: every round and every proposal, appended to ``history.jsonl`` as it
happens, and kept in memory as the TA's feedback."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpta.assistant.prompts import ScoredPrefix

if TYPE_CHECKING:
    from gpta.assistant.prefix import PrefixCandidate


@dataclass
class RoundRecord:
    """One training round and its dev evaluation."""

    round: int
    prefix: str
    dev_score: float
    dev_loss: float | None
    train_loss: float | None
    dev_metrics: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)
    # the same round's model with NO prefix (the loop, when the round's prefix is not empty)
    empty_dev_score: float | None = None
    empty_dev_loss: float | None = None
    empty_dev_metrics: dict[str, Any] | None = None

    @property
    def serves_empty(self) -> bool:
        """The round's model scores at least as well on dev with no prefix as with its own:
        it is saved to serve with none (a prefix must earn its place)."""
        return self.empty_dev_score is not None and (
            self.empty_dev_score,
            -(self.empty_dev_loss or 0.0),
        ) >= (self.dev_score, -(self.dev_loss or 0.0))

    @property
    def serving_prefix(self) -> str:
        """The prefix the round's saved model uses: its own, or none (``serves_empty``)."""
        return "" if self.serves_empty else self.prefix

    @property
    def serving_score(self) -> tuple[float, float]:
        """(dev score, minus dev loss) of the model as it would be saved: what rounds compete on."""
        if self.serves_empty:
            return (float(self.empty_dev_score or 0.0), -(self.empty_dev_loss or 0.0))
        return (self.dev_score, -(self.dev_loss or 0.0))

    @property
    def serving_metrics(self) -> dict[str, Any]:
        """The dev metrics of the model as it would be saved."""
        return (self.empty_dev_metrics or {}) if self.serves_empty else self.dev_metrics


class History:
    """Rounds, proposals and screened scores of one run."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rounds: list[RoundRecord] = []
        self.screened: dict[str, float] = {}  # prefix -> best screened score seen
        self._lock = threading.Lock()

    def _append(self, record: dict[str, Any]) -> None:
        record = {"time": round(time.time(), 3), **record}
        line = json.dumps(record, ensure_ascii=False) + "\n"
        # a background TA request logs its call from its own thread
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    @classmethod
    def resume(cls, path: str | Path, *, lines: int) -> History:
        """Reopen a run's history at a checkpoint: keep its first ``lines`` events, drop the
        rest (they belong to a round that did not finish), and rebuild the memory."""
        history = cls(path)
        kept = history.path.read_text(encoding="utf-8").splitlines(keepends=True)[:lines]
        tmp = history.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(kept), encoding="utf-8")
        os.replace(tmp, history.path)
        for line in kept:
            event = json.loads(line)
            kind = event.pop("event")
            if kind == "round":
                known = {f.name for f in fields(RoundRecord)}
                history.rounds.append(RoundRecord(**{k: v for k, v in event.items() if k in known}))
            elif kind == "proposal" and event.get("prefix") is not None:
                if event.get("screen_score") is not None:
                    history.note_screened(event["prefix"], event["screen_score"])
            elif kind == "screen":
                history.note_screened(event["current"]["prefix"], event["current"]["score"])
                for candidate in event["candidates"]:
                    history.note_screened(candidate["prefix"], candidate["score"])
        return history

    def line_count(self) -> int:
        """Events written so far."""
        if not self.path.exists():
            return 0
        with self.path.open(encoding="utf-8") as handle:
            return sum(1 for _ in handle)

    def log(self, event: str, **fields: Any) -> None:
        """Append a free-form event (selection, TA error, ...)."""
        self._append({"event": event, **fields})

    def add_round(self, record: RoundRecord) -> None:
        self.rounds.append(record)
        self._append({"event": "round", **asdict(record)})

    def add_proposal(self, candidate: PrefixCandidate, *, round: int, improved: bool) -> None:
        """A TA proposal of round ``round`` (event ``proposal``), in the common shape of
        teaching material (:meth:`gpta.assistant.material.Material.record`)."""
        record = candidate.record()
        if candidate.prefix is not None and record["screen_score"] is not None:
            self.note_screened(candidate.prefix, record["screen_score"])
        self._append({"event": "proposal", "round": round, **record, "improved": improved})

    def note_screened(self, prefix: str, score: float) -> None:
        self.screened[prefix] = max(score, self.screened.get(prefix, score))

    def tried(self, top_m: int) -> list[ScoredPrefix]:
        """The top-M distinct prefixes by their best screened score (one scale: the screen's)."""
        ranked = sorted(self.screened.items(), key=lambda kv: kv[1], reverse=True)[:top_m]
        return [ScoredPrefix(p, s) for p, s in ranked]

    def all_prefixes(self) -> set[str]:
        """Every prefix trained with or screened, for duplicate rejection."""
        return set(self.screened) | {r.prefix for r in self.rounds}

    def best_round(self) -> RoundRecord | None:
        """Highest dev score; ties go to the lower dev loss, then the earlier round."""
        if not self.rounds:
            return None
        return max(self.rounds, key=lambda r: (r.dev_score, -(r.dev_loss or 0.0), -r.round))
