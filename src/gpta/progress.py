"""What a run prints on the terminal: rounds, TA proposals, screening, an ETA, the final table.

Two formats on stderr: ``text`` (rich, for people) and ``json`` (one JSON object per event
and line, for log collectors: ``gpta train --log-format json``). ``-q`` silences both; the
closing table on stdout is printed either way, and so are warnings about something that
changes what the run does (:func:`warn`, :meth:`Progress.warn`). The format is a
process-wide setting (:func:`configure`), like logging's, so the CLI sets it once for
everything a run prints, the Trainer's step progress included.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from rich.console import Console
from rich.errors import MarkupError
from rich.markup import escape
from rich.table import Table as RichTable
from rich.text import Text


# What is shown of the assistant's objects, as protocols: progress sits at the bottom of the
# house (training, the assistant and the loop all print through it), so it cannot import
# them. gpta.assistant's ParsedProposal, ProposalBatch and RoundRecord satisfy these.
class ShownProposal(Protocol):
    """One TA proposal: the cleaned prefix, or None and why it was rejected."""

    @property
    def prefix(self) -> str | None: ...

    @property
    def reason(self) -> str | None: ...


class ShownBatch(Protocol):
    """What one TA request produced (``gpta.assistant.ProposalBatch``)."""

    @property
    def proposals(self) -> Sequence[ShownProposal]: ...

    @property
    def seconds(self) -> float: ...

    @property
    def error(self) -> str | None: ...

    @property
    def valid(self) -> list[str]: ...


class ShownRound(Protocol):
    """One training round and its dev evaluation (``gpta.assistant.RoundRecord``)."""

    @property
    def round(self) -> int: ...

    @property
    def prefix(self) -> str: ...

    @property
    def dev_score(self) -> float: ...

    @property
    def dev_loss(self) -> float | None: ...

    @property
    def train_loss(self) -> float | None: ...


LogFormat = Literal["text", "json"]
_settings: dict[str, Any] = {"log_format": "text"}


def configure(*, log_format: LogFormat = "text") -> None:
    """Set how progress is written for the rest of the process: ``text`` or ``json``."""
    if log_format not in ("text", "json"):
        raise ValueError(f"log_format must be 'text' or 'json', not {log_format!r}")
    _settings["log_format"] = log_format


def log_format() -> LogFormat:
    return _settings["log_format"]


def emit_json(event: str, **fields: Any) -> None:
    """One JSON log line on stderr (``time`` in Unix seconds, then ``event``, then fields)."""
    record = {"time": round(time.time(), 3), "event": event, **fields}
    sys.stderr.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    sys.stderr.flush()


def _is_main_process() -> bool:
    """False on the other processes of a torchrun / accelerate launch (they stay silent)."""
    return os.environ.get("RANK", "0") == "0"


def warn(message: str) -> None:
    """A warning about something that changes what a run does (data cut, a guard that will
    block every TA request, a budget that cannot apply). It is never silenced: ``-q`` hides
    progress, not these. ``message`` is plain text (not markup)."""
    if not _is_main_process():
        return
    if _settings["log_format"] == "json":
        emit_json("warning", message=message)
    else:
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"[bold red]warning:[/] {escape(message)}"
        )


def _short(prefix: str, width: int = 70) -> str:
    if not prefix:
        return "(none)"
    return prefix if len(prefix) <= width else prefix[: width - 1] + "…"


def format_seconds(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Progress on stderr, as rich text or JSON lines; silent when ``quiet``."""

    def __init__(self, *, quiet: bool = False, log_format: LogFormat | None = None) -> None:
        self.quiet = quiet
        self.json = (log_format or _settings["log_format"]) == "json"
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)
        self._mark = time.perf_counter()
        self._round_seconds: list[float] = []

    def info(self, message: str) -> None:
        """A line of rich markup (text) or an ``info`` event with its plain text (json)."""
        if self.quiet:
            return
        if self.json:
            try:
                plain = Text.from_markup(message).plain
            except MarkupError:  # text that only looks like markup
                plain = message
            emit_json("info", message=plain)
        else:
            self.console.print(message)

    def warn(self, message: str) -> None:
        """A warning that changes what the run does: printed even when ``quiet`` (see
        :func:`warn`); ``message`` is plain text."""
        if self.json:
            if _is_main_process():
                emit_json("warning", message=message)
            return
        if _is_main_process():
            self.console.print(f"[bold red]warning:[/] {escape(message)}")

    def ta_start(self, round_index: int) -> None:
        if self.json:
            if not self.quiet:
                emit_json("ta_start", round=round_index)
            return
        self.info(f"[bold]TA[/] proposing prefixes for round {round_index} …")

    def ta_done(self, batch: ShownBatch) -> None:
        if self.json:
            if not self.quiet:
                emit_json(
                    "ta_proposals",
                    seconds=round(batch.seconds, 3),
                    error=batch.error,
                    valid=len(batch.valid),
                    proposals=[
                        {"prefix": p.prefix, "rejected": p.reason if p.prefix is None else None}
                        for p in batch.proposals
                    ],
                )
            return
        if batch.error:
            self.info(
                f"  [red]TA failed[/] ({escape(str(batch.error))}); keeping the current prefix"
            )
            return
        how = " (cached)" if getattr(batch, "cached", False) else ""
        faults = getattr(batch, "faults", [])
        if faults:
            how += f" after {len(faults)} fault(s), last: {escape(faults[-1])}"
        self.info(
            f"  {len(batch.proposals)} proposals in {batch.seconds:.1f}s{how}, "
            f"{len(batch.valid)} valid"
        )
        for proposal in batch.proposals:
            if proposal.prefix is not None:
                self.info(f"  [green]+[/] {escape(_short(proposal.prefix))}")
            else:
                self.info(f"  [dim]- rejected ({escape(str(proposal.reason))})[/]")

    def prefix_chosen(self, round_index: int, prefix: str, *, changed: bool) -> None:
        if round_index == 0:  # training starts now: the ETA counts from here
            self._mark = time.perf_counter()
        if self.json:
            if not self.quiet:
                emit_json("prefix", round=round_index, prefix=prefix, changed=changed)
            return
        note = "" if changed else " (unchanged)"
        self.info(f"[bold]round {round_index}[/] prefix{note}: [cyan]{escape(_short(prefix))}[/]")

    def screen_done(
        self, current: Any, screened: Sequence[Any], prefix: str, changed: bool
    ) -> None:
        if self.json:
            if not self.quiet:
                emit_json(
                    "screen",
                    current={"prefix": current.prefix, "score": current.score},
                    candidates=[{"prefix": s.prefix, "score": s.score} for s in screened],
                    changed=changed,
                )
            return
        scores = ", ".join(f"{s.score:.3f}" for s in screened) or "none"
        verdict = "a candidate wins" if changed else "the current prefix stays"
        self.info(f"  screened: current {current.score:.3f}; candidates {scores}: {verdict}")

    def not_adopted(self, prefix: str, score: float, current: float, reason: str) -> None:
        """A candidate scored higher than the current prefix but failed the adoption test."""
        if self.json:
            if not self.quiet:
                emit_json("not_adopted", prefix=prefix, score=score, current=current, reason=reason)
            return
        self.info(
            f"  best candidate not adopted ({escape(reason)}): {score:.3f} vs {current:.3f} "
            f"for {escape(_short(prefix) or '(none)')}"
        )

    def eta(self, round_index: int, rounds: int) -> float | None:
        """Seconds left: the mean measured round (training, evaluation, TA, screening) times
        the rounds still to run; None before the first round has been timed."""
        if not self._round_seconds:
            return None
        mean = sum(self._round_seconds) / len(self._round_seconds)
        return mean * max(0, rounds - round_index - 1)

    def round_done(self, record: ShownRound, metric: str, is_best: bool, rounds: int) -> None:
        now = time.perf_counter()
        # the time since the previous round ended: this round's training, and the previous
        # round's TA and screening (which ran between the two)
        self._round_seconds.append(now - self._mark)
        self._mark = now
        eta = self.eta(record.round, rounds)
        if self.json:
            if not self.quiet:
                emit_json(
                    "round",
                    round=record.round,
                    rounds=rounds,
                    train_loss=record.train_loss,
                    dev_loss=record.dev_loss,
                    metric=metric,
                    dev_score=record.dev_score,
                    best=is_best,
                    seconds=round(self._round_seconds[-1], 3),
                    eta_seconds=round(eta, 1) if eta is not None else None,
                )
            return
        loss = f"{record.train_loss:.4f}" if record.train_loss is not None else "-"
        best = " [yellow](best)[/]" if is_best else ""
        left = f", ETA {format_seconds(eta)}" if eta and record.round + 1 < rounds else ""
        self.info(
            f"[bold]round {record.round}[/] ({record.round + 1} of {rounds}) done: "
            f"train loss {loss}, dev {metric} {record.dev_score:.4f}{best}{left}"
        )

    def summary(
        self,
        run_dir: str,
        rounds: Sequence[ShownRound],
        metric: str,
        best_round: int,
        test_metrics: dict[str, Any] | None,
        majority: dict[str, Any] | None = None,
        cards: dict[str, Any] | None = None,
    ) -> None:
        """The closing table: round, prefix, dev score; the test scores and the majority-class
        baseline (``metrics.json``'s ``majority_baseline``, None where the task has none);
        the class cards' count per class (``metrics.json``'s ``cards``, None when off).
        Printed on stdout even when quiet."""
        if self.json and not self.quiet:
            emit_json(
                "summary",
                run_dir=run_dir,
                best_round=best_round,
                metric=metric,
                rounds=[
                    {"round": r.round, "prefix": r.prefix, "dev_score": r.dev_score} for r in rounds
                ],
                test=test_metrics,
                majority_baseline=majority,
                cards=cards,
            )
        table = RichTable(title=f"GPTA run: {escape(run_dir)}")
        table.add_column("round", justify="right")
        table.add_column("prefix")
        table.add_column(f"dev {metric}", justify="right")
        for record in rounds:
            mark = " *" if record.round == best_round else ""
            table.add_row(
                str(record.round),
                escape(_short(record.prefix, 80)),
                f"{record.dev_score:.4f}{mark}",
            )
        out = Console(highlight=False, soft_wrap=True)
        out.print(table)
        out.print(f"* saved model: round {best_round}")
        if test_metrics is not None:
            shown = ", ".join(
                f"{k} {v:.4f}" for k, v in test_metrics.items() if isinstance(v, float)
            )
            out.print(f"test: {shown}")
        if majority is not None:
            splits = ", ".join(
                f"{split} {majority[split]:.4f}"
                for split in ("dev", "test")
                if majority.get(split) is not None
            )
            out.print(
                f"majority class (always {escape(repr(majority['answer']))}): "
                f"{majority['metric']} {splits}"
            )
        if cards is not None:
            if cards["adopted"]:
                counts = ", ".join(f"{k} {v}" for k, v in cards["examples_per_class"].items())
                out.print(
                    f"class cards: {escape(str(cards['variant']))} trained with the real rows "
                    f"(examples per class: {escape(counts)})"
                )
            else:
                out.print("class cards: none adopted (the plain rows trained alone)")
        out.print(f"run directory: {escape(run_dir)}")
