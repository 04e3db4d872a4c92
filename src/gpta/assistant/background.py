"""One TA request running in a background thread while the next round trains.

With ``assistant.background`` the conversation of round boundary r is sent when that
boundary ends, and its proposals are screened at boundary r+1 (one round of lag), so the
TA's latency hides behind a round of training instead of adding to it. The thread is a
daemon: an interrupted run does not wait for the TA.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from gpta.assistant.teacher import ProposalBatch


class BackgroundProposals:
    """A :class:`ProposalBatch` being produced by ``ask`` in a daemon thread."""

    def __init__(self, ask: Callable[[], ProposalBatch], *, asked_after_round: int) -> None:
        self.asked_after_round = asked_after_round
        self._batch: ProposalBatch | None = None
        self._thread = threading.Thread(target=self._run, args=(ask,), daemon=True, name="gpta-ta")
        self._thread.start()

    def _run(self, ask: Callable[[], ProposalBatch]) -> None:
        try:
            self._batch = ask()
        except Exception as err:  # the TA never ends a run, not even from a thread
            self._batch = ProposalBatch(error=f"{type(err).__name__}: {err}")

    def result(self) -> tuple[ProposalBatch, float]:
        """The batch, and the seconds spent waiting for it here (0 when it was ready)."""
        started = time.perf_counter()
        self._thread.join()
        assert self._batch is not None
        return self._batch, time.perf_counter() - started
