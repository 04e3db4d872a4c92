"""The lock of a run folder: one run at a time writes there (docs/run-folder.md).

``.gpta-lock`` is an OS file lock (``filelock``: the kernel drops it when its process ends,
however it ends, so a dead run never blocks a folder); ``.gpta-lock.json`` says who holds it
(pid, host, the process's start time, which tells a reused pid apart). The lock file's
contents belong to the library (its soft-lock fallback writes its own record there), so the
owner record is a file of its own. A record whose process is gone is taken over with a note.

Under DDP only the main process takes the lock (it alone writes the run: :mod:`gpta.distributed`);
every process fails alike when it cannot.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gpta.distributed import Ranks
from gpta.errors import GptaUserError
from gpta.fileio import read_json_record, replace_atomic
from gpta.progress import warn
from gpta.signals import deferred

LOCK_FILE = ".gpta-lock"
OWNER_FILE = ".gpta-lock.json"


@dataclass(frozen=True)
class Owner:
    """Who holds a run folder's lock (``.gpta-lock.json``)."""

    pid: int
    host: str
    started: float  # the process's start time (seconds since the epoch): tells a reused pid
    since: str  # when it took the lock

    def alive(self) -> bool | None:
        """Whether that process still runs (None: on another host, no way to tell)."""
        import psutil

        if self.host != socket.gethostname():
            return None
        try:
            return abs(psutil.Process(self.pid).create_time() - self.started) < 1.0
        except psutil.NoSuchProcess:
            return False
        except psutil.Error:
            return True

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, holding it since {self.since}"


def _this_process() -> Owner:
    import psutil

    return Owner(
        pid=os.getpid(),
        host=socket.gethostname(),
        started=psutil.Process().create_time(),
        since=time.strftime("%Y-%m-%d %H:%M:%S%z"),
    )


def read_owner(run_dir: str | Path) -> Owner | None:
    """The recorded holder of the folder's lock (it may have died since), or None."""
    data = read_json_record(Path(run_dir) / OWNER_FILE)
    if data is None:
        return None
    pid, host, started, since = (data.get(k) for k in ("pid", "host", "started", "since"))
    if not (isinstance(pid, int) and not isinstance(pid, bool) and pid > 0):
        return None
    if not (isinstance(host, str) and isinstance(since, str)):
        return None
    if not isinstance(started, int | float) or isinstance(started, bool):
        return None
    return Owner(pid, host, float(started), since)


def _in_use(run_dir: Path, owner: Owner | None) -> GptaUserError:
    who = owner.describe() if owner else "its holder did not record itself"
    stop = f"kill {owner.pid}" if owner else "stop it"
    return GptaUserError(
        f"{run_dir} is in use by a running gpta run ({who}); nothing in it was changed",
        hint=f"wait for that run to finish, or stop it ({stop}: it can then be continued "
        f"with gpta train --resume {run_dir}); or use another folder",
    )


_HELD: dict[str, RunLock] = {}  # folder (resolved) -> the lock this process holds on it


class RunLock:
    """The lock of one run folder (which must exist)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self._lock: Any = None
        self._owner: Owner | None = None
        self.made_file = False  # the lock file did not exist before: it is this run's

    def acquire(self, *, note_stale: bool = True) -> None:
        """Take the lock now or raise a :class:`GptaUserError` naming its holder."""
        from filelock import FileLock, Timeout

        path = self.run_dir / LOCK_FILE
        self.made_file = not os.path.lexists(path)
        lock = FileLock(str(path), timeout=0, thread_local=False)
        try:
            lock.acquire()
        except Timeout:
            raise _in_use(self.run_dir, read_owner(self.run_dir)) from None
        except OSError as err:
            raise GptaUserError(
                f"{self.run_dir}: could not take the run folder's lock {path} "
                f"({err.strerror or err})",
                hint="check that the folder is writable, or use another folder",
            ) from None
        self._lock = lock
        stale = read_owner(self.run_dir)
        if stale is not None and note_stale:
            warn(
                f"{self.run_dir}: the gpta run that held this folder ({stale.describe()}) "
                "is no longer running; its lock is taken over"
            )
        self._owner = _this_process()
        try:
            replace_atomic(self.run_dir / OWNER_FILE, json.dumps(asdict(self._owner)) + "\n")
        except OSError as err:
            self.release()
            from gpta.fileio import disk_write_error

            raise GptaUserError(
                f"{self.run_dir}: could not write {OWNER_FILE} "
                f"({disk_write_error(err) or err.strerror or err})",
                hint="free space on that disk (or make it writable), or use another folder",
            ) from None
        _HELD[str(self.run_dir.resolve())] = self

    def forget_files(self) -> None:
        """Delete the lock's files while holding it (a failed start that leaves the folder
        as it was before it made them)."""
        for name in (OWNER_FILE, LOCK_FILE):
            with suppress(OSError):
                (self.run_dir / name).unlink()

    def release(self) -> None:
        """Give the lock back; the owner record goes with it (only if it is still this
        process's own)."""
        if self._lock is None:
            return
        if read_owner(self.run_dir) == self._owner:
            with suppress(OSError):
                (self.run_dir / OWNER_FILE).unlink()
        self._lock.release()
        self._lock = None
        _HELD.pop(str(self.run_dir.resolve()), None)


def held_lock(run_dir: str | Path) -> RunLock | None:
    """The lock this process holds on ``run_dir``, if any."""
    with suppress(OSError):
        return _HELD.get(str(Path(run_dir).resolve()))
    return None


def refuse_if_in_use(run_dir: Path) -> None:
    """Refuse a folder whose recorded lock holder runs (read only: the early check, before
    any work; taking the lock is the check that counts)."""
    owner = read_owner(run_dir)
    if owner is not None and owner.alive() and held_lock(run_dir) is None:
        raise _in_use(run_dir, owner)


@contextmanager
def run_lock(run_dir: str | Path, *, ranks: Ranks | None = None) -> Iterator[Path]:
    """Hold the run folder's lock for the block (the main process; made if need be), released
    however the block ends. Every process raises alike when another run holds it. Within a
    process that holds it already, nothing more is done."""
    from gpta.fileio import make_dir

    ranks = ranks or Ranks()
    run_dir = Path(run_dir)
    lock: RunLock | None = None
    error: tuple[str, str | None] | None = None
    if ranks.is_main and held_lock(run_dir) is None:
        created = first_missing_folder(run_dir)
        try:
            make_dir(run_dir, "output_dir (--output-dir)")
            lock = RunLock(run_dir)
            lock.acquire()
        except GptaUserError as err:
            error, lock = (err.message, err.hint), None
            if created is not None and not _in_use_error(err):
                remove_empty_folders(run_dir, created)
    error = ranks.broadcast(error)
    if error is not None:
        raise GptaUserError(error[0], hint=error[1])
    try:
        yield run_dir
    finally:
        if lock is not None:
            with deferred():
                lock.release()


def _in_use_error(err: GptaUserError) -> bool:
    return "in use by a running gpta run" in err.message


def first_missing_folder(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (None: it exists)."""
    missing = None
    while not path.exists() and path != path.parent:
        missing, path = path, path.parent
    return missing


def remove_empty_folders(run_dir: Path, created: Path) -> None:
    """The folders from ``run_dir`` up to ``created`` (which this run made), while empty."""
    folder = run_dir
    with suppress(OSError):
        while folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            if folder == created:
                break
            folder = folder.parent
