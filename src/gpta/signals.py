"""SIGTERM handled like Ctrl-C, and the few steps that neither may cut in half.

Timeouts, systemd and SLURM stop a job with SIGTERM. Under :func:`stop_signals` (the
``gpta`` command installs it) SIGTERM raises :class:`Terminated`, a ``KeyboardInterrupt``,
so every path that cleans up after Ctrl-C (a run's lock released, a failed start undone,
"continue with --resume") runs for it too; the command then exits with status 143
(128 + SIGTERM), as a process killed by it would.

:func:`deferred` holds both signals back while a short step runs that must not stop half
done (a round's checkpoint marked complete, files moved aside for ``--overwrite``); the
signal is raised when the step ends. Without :func:`stop_signals` (gpta used as a library)
SIGTERM keeps its default action and Ctrl-C is raised at once, as Python does.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

#: The exit status of a command stopped by SIGTERM (128 + the signal's number).
SIGTERM_EXIT = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: stop as for Ctrl-C."""


_depth = 0  # how many deferred() steps are running (main thread only)
_pending: list[type[KeyboardInterrupt]] = []


def _raise(signum: int, frame: FrameType | None) -> None:
    stop = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    if _depth:
        _pending.append(stop)
        return
    raise stop()


@contextmanager
def stop_signals() -> Iterator[None]:
    """SIGINT raises ``KeyboardInterrupt`` and SIGTERM :class:`Terminated` (both held back
    inside :func:`deferred`); the previous handlers come back afterwards. Main thread only
    (elsewhere it does nothing: Python delivers signals to the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _pending.clear()


@contextmanager
def deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back until the block ends; then raise the first that came
    (in place of an exception the block ended with: stopping is what was asked)."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if not _depth and _pending:
            stop = _pending[0]
            _pending.clear()
            raise stop()
