"""The few collective steps GPTA needs on top of Accelerate's data-parallel training.

Under ``torchrun`` / ``accelerate launch`` every process runs ``gpta train``; the
Trainer (through Accelerate) trains the model data-parallel. GPTA adds:

- the main process alone talks to the TA and writes the run directory (history,
  exposure ledger, checkpoint state, model, metrics, report);
- evaluation and screening rows are sharded across processes (``rows[rank::world]``)
  and the per-row outputs gathered back into row order, so every process scores the
  same numbers as a single process would;
- the main process's choice of prefix is broadcast, and every process checks that
  it trains on the same prefix as every other one.

With one process every method is a no-op, so the single-process path is unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

T = TypeVar("T")


class RankMismatchError(RuntimeError):
    """Processes disagree about something they must share (e.g. the round's prefix)."""


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    # --- sharding ------------------------------------------------------------------------------
    def shard(self, rows: Sequence[T]) -> list[T]:
        """This process's rows: every ``world``-th row starting at ``rank``."""
        return list(rows[self.rank :: self.world]) if self.active else list(rows)

    def gather_shards(self, outputs: Sequence[Any], total: int) -> list[Any]:
        """Per-row outputs of every process's shard, back in the order of the full rows."""
        if not self.active:
            return list(outputs)
        parts: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(parts, list(outputs))
        merged: list[Any] = [None] * total
        for rank, part in enumerate(parts):
            merged[rank :: self.world] = part
        return merged

    # --- agreement -----------------------------------------------------------------------------
    def broadcast(self, value: T | None) -> T:
        """The main process's ``value`` on every process."""
        if not self.active:
            return value  # type: ignore[return-value]
        box = [value if self.is_main else None]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]  # type: ignore[return-value]

    def assert_same(self, value: Any, what: str) -> None:
        """Raise :class:`RankMismatchError` unless every process holds an equal ``value``."""
        if not self.active:
            return
        values: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(values, value)
        if any(v != values[0] for v in values):
            shown = ", ".join(f"rank {r}: {v!r}" for r, v in enumerate(values))
            raise RankMismatchError(f"processes disagree on {what} ({shown})")

    def mean(self, value: float | None) -> float | None:
        """The mean of a per-process number (None where a process has none)."""
        if not self.active:
            return value
        values: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(values, value)
        present = [v for v in values if v is not None]
        return sum(present) / len(present) if present else None

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()


def launched_world_size() -> int:
    """Processes started by torchrun / accelerate launch (1 when run directly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_ranks(device: str) -> Ranks:
    """Join the process group that the launcher set up (through Accelerate, as the Trainer
    does), or stay a single process. CPU processes use the gloo backend."""
    if launched_world_size() <= 1:
        return Ranks()
    from accelerate import PartialState

    state = PartialState(cpu=device == "cpu")
    return Ranks(rank=state.process_index, world=state.num_processes)


def shutdown_ranks() -> None:
    """Leave the process group cleanly at the end of a launched command (every process waits
    for the others, then the group is destroyed; exiting with live gloo threads can abort)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
