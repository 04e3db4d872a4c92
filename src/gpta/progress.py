"""What a run prints on the terminal: rounds, TA proposals, screening, the final table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table as RichTable

if TYPE_CHECKING:
    from gpta.assistant import ProposalBatch, RoundRecord


def _short(prefix: str, width: int = 70) -> str:
    if not prefix:
        return "(none)"
    return prefix if len(prefix) <= width else prefix[: width - 1] + "…"


class Progress:
    """Human-readable progress on stderr; silent when ``quiet``."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)

    def info(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message)

    def ta_start(self, round_index: int) -> None:
        self.info(f"[bold]TA[/] proposing prefixes for round {round_index} …")

    def ta_done(self, batch: ProposalBatch) -> None:
        if batch.error:
            self.info(f"  [red]TA failed[/] ({batch.error}); keeping the current prefix")
            return
        self.info(
            f"  {len(batch.proposals)} proposals in {batch.seconds:.1f}s, {len(batch.valid)} valid"
        )
        for proposal in batch.proposals:
            if proposal.prefix is not None:
                self.info(f"  [green]+[/] {_short(proposal.prefix)}")
            else:
                self.info(f"  [dim]- rejected ({proposal.reason})[/]")

    def prefix_chosen(self, round_index: int, prefix: str, *, changed: bool) -> None:
        note = "" if changed else " (unchanged)"
        self.info(f"[bold]round {round_index}[/] prefix{note}: [cyan]{_short(prefix)}[/]")

    def screen_done(
        self, current: Any, screened: Sequence[Any], prefix: str, changed: bool
    ) -> None:
        scores = ", ".join(f"{s.score:.3f}" for s in screened) or "none"
        verdict = "a candidate wins" if changed else "the current prefix stays"
        self.info(f"  screened: current {current.score:.3f}; candidates {scores}: {verdict}")

    def round_done(self, record: RoundRecord, metric: str, is_best: bool, rounds: int) -> None:
        loss = f"{record.train_loss:.4f}" if record.train_loss is not None else "-"
        best = " [yellow](best)[/]" if is_best else ""
        self.info(
            f"[bold]round {record.round}[/] ({record.round + 1} of {rounds}) done: "
            f"train loss {loss}, dev {metric} {record.dev_score:.4f}{best}"
        )

    def summary(
        self,
        run_dir: str,
        rounds: Sequence[RoundRecord],
        metric: str,
        best_round: int,
        test_metrics: dict[str, Any] | None,
    ) -> None:
        """The closing table: round, prefix, dev score. Printed even when quiet."""
        table = RichTable(title=f"GPTA run: {run_dir}")
        table.add_column("round", justify="right")
        table.add_column("prefix")
        table.add_column(f"dev {metric}", justify="right")
        for record in rounds:
            mark = " *" if record.round == best_round else ""
            table.add_row(
                str(record.round), _short(record.prefix, 80), f"{record.dev_score:.4f}{mark}"
            )
        out = Console(highlight=False, soft_wrap=True)
        out.print(table)
        out.print(f"* saved model: round {best_round}")
        if test_metrics is not None:
            shown = ", ".join(
                f"{k} {v:.4f}" for k, v in test_metrics.items() if isinstance(v, float)
            )
            out.print(f"test: {shown}")
        out.print(f"run directory: {run_dir}")
