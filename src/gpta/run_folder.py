"""The run folder: what makes a folder a gpta run, which files in it are gpta's, and the lock
that lets one run at a time write there. The decisions are in docs/run-folder.md.

- **The marker** ``.gpta-run.json`` makes a folder a run. gpta writes it with a content check
  (a SHA-256 of its fields), and it lists the files the run wrote (``files``) and the names
  the run created (``owns``). A folder without a valid marker is not a run, whatever else it
  holds (a ``config.yaml`` copied from a run included), and nothing in it is ever replaced.
- **gpta's files** in a run (what ``--overwrite`` moves aside and a failed start deletes):
  the files the marker lists, and what gpta writes at fixed names and patterns, which covers
  a write between two updates of the list (:func:`gpta_files`). Anything else, such as a file
  the user put in ``model/`` or ``predictions/``, stays, and so does the folder that holds it.
- **The lock** (:mod:`gpta.run_lock`) is taken before anything in the folder is moved and
  held until the run ends; a folder a live run holds is refused, naming its pid.

Under DDP only the main process checks, prepares and writes the folder
(:mod:`gpta.distributed`); the others fail alike when it refuses.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from gpta import run_files
from gpta.distributed import Ranks
from gpta.errors import GptaUserError
from gpta.fileio import read_json_record, replace_atomic
from gpta.progress import warn
from gpta.run_files import CHECKPOINTS, PREVIOUS, RUN_MARKER, STATE_FILE
from gpta.run_lock import (
    RunLock,
    held_lock,
    refuse_if_in_use,
    remove_empty_folders,
    run_lock,
)
from gpta.signals import deferred

# The names gpta writes at the top of a run folder.
RUN_FILES = (
    run_files.CONFIG,
    run_files.SPLITS,
    run_files.HISTORY,
    run_files.EXPOSURE,
    run_files.EXEMPLARS,
    run_files.CARDS,
    run_files.METRICS,
    run_files.PREDICTIONS,
    run_files.MODEL,
    CHECKPOINTS,
    run_files.REPORT,
)
RUN_EXTRA = (run_files.LOGS,)
MARKER_FORMAT = 2

_NAMES = frozenset((*RUN_FILES, *RUN_EXTRA))
# Files gpta always writes at these paths in a run, listed or not.
_FIXED_FILES = (
    run_files.CONFIG,
    run_files.SPLITS,
    run_files.HISTORY,
    run_files.EXPOSURE,
    run_files.EXEMPLARS,
    run_files.METRICS,
    run_files.predictions_file("dev"),
    run_files.predictions_file("test"),
    run_files.MODEL_MANIFEST,
)
_CHECKPOINT_DIR = re.compile(r"checkpoint-[0-9]+")
_TFEVENTS = "events.out.tfevents."
_STAGING = ".model-"  # run_lifecycle.save_best: a new best model before its rename
_MAX_RECORD_BYTES = 16 * 2**20


# --- the marker ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Marker:
    """A run's ``.gpta-run.json``: which run, and which files in its folder are gpta's."""

    run_id: str
    version: str
    created: str
    owns: tuple[str, ...]  # the top-level names this run created
    files: tuple[str, ...]  # relative paths (files, or folders gpta made whole) it wrote

    def body(self) -> dict[str, Any]:
        return {
            "written_by": "gpta",
            "format": MARKER_FORMAT,
            "run_id": self.run_id,
            "version": self.version,
            "created": self.created,
            "owns": list(self.owns),
            "files": list(self.files),
        }


def _check_of(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _valid_entry(entry: Any) -> bool:
    """A relative path inside one of gpta's top-level names: no way out of the folder."""
    if not isinstance(entry, str) or not entry or "\\" in entry or "\x00" in entry:
        return False
    path = PurePosixPath(entry)
    return (
        not path.is_absolute()
        and ".." not in path.parts
        and path.as_posix() == entry
        and path.parts[0] in _NAMES
    )


def read_marker(run_dir: str | Path) -> Marker | None:
    """The folder's marker if gpta wrote it (its check holds, its paths stay inside the
    folder), else None."""
    data = read_json_record(Path(run_dir) / RUN_MARKER)
    if data is None or data.get("written_by") != "gpta" or data.get("format") != MARKER_FORMAT:
        return None
    check = data.pop("check", None)
    if not isinstance(check, str) or check != _check_of(data):
        return None
    owns, files = data.get("owns"), data.get("files")
    run_id, version, created = (data.get(key) for key in ("run_id", "version", "created"))
    if not (isinstance(run_id, str) and isinstance(version, str) and isinstance(created, str)):
        return None
    if not isinstance(owns, list):
        return None
    if not isinstance(files, list) or not all(_valid_entry(e) for e in files):
        return None
    if not all(isinstance(n, str) and n in _NAMES for n in owns):
        return None
    return Marker(run_id, version, created, tuple(owns), tuple(files))


def _older_marker(run_dir: Path) -> bool:
    """A marker written by a gpta from before the file list (it named only the folders)."""
    data = read_json_record(run_dir / RUN_MARKER)
    return data is not None and data.get("written_by") == "gpta" and "format" not in data


def is_gpta_run(run_dir: str | Path) -> bool:
    """Written by gpta: a valid marker (a copied ``config.yaml`` does not make a run)."""
    return read_marker(run_dir) is not None


def write_marker(run_dir: str | Path, marker: Marker) -> None:
    """Write ``marker`` (atomically) as the folder's ``.gpta-run.json``."""
    body = marker.body()
    text = json.dumps({**body, "check": _check_of(body)}, indent=2, ensure_ascii=False)
    replace_atomic(Path(run_dir) / RUN_MARKER, text + "\n")


def new_marker(owns: Iterable[str], files: Iterable[str] = ()) -> Marker:
    """The marker of a run starting now."""
    from gpta._version import __version__

    return Marker(
        run_id=uuid.uuid4().hex,
        version=__version__,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        owns=tuple(owns),
        files=tuple(sorted(set(files))),
    )


# --- gpta's files ----------------------------------------------------------------------------


def _real(run_dir: Path, entry: str) -> bool:
    """``entry`` exists in the folder, neither it nor a folder on its way being a link."""
    path = run_dir
    for part in PurePosixPath(entry).parts:
        path = path / part
        if path.is_symlink() or not os.path.lexists(path):
            return False
    return True


def _patterns(run_dir: Path) -> set[str]:
    """What gpta writes at fixed names and patterns (present now): its fixed files, the
    Trainer's checkpoint folders, TensorBoard's event files, save_best's staging folders."""
    found = {entry for entry in _FIXED_FILES if _real(run_dir, entry)}
    found = {entry for entry in found if (run_dir / entry).is_file()}
    for folder, keep in (
        (CHECKPOINTS, lambda p: _CHECKPOINT_DIR.fullmatch(p.name) and p.is_dir()),
        (run_files.LOGS, lambda p: p.name.startswith(_TFEVENTS) and p.is_file()),
    ):
        if _real(run_dir, folder) and (run_dir / folder).is_dir():
            found |= {
                f"{folder}/{p.name}"
                for p in (run_dir / folder).iterdir()
                if not p.is_symlink() and keep(p)
            }
    found |= {p.name for p in run_dir.glob(f"{_STAGING}*") if p.is_dir() and not p.is_symlink()}
    return found


def _outermost(entries: Iterable[str]) -> list[str]:
    """The entries without those inside another entry (a folder moves whole)."""
    chosen: list[str] = []
    for entry in sorted(set(entries), key=lambda e: (len(PurePosixPath(e).parts), e)):
        parts = PurePosixPath(entry).parts
        if not any(parts[: len(PurePosixPath(c).parts)] == PurePosixPath(c).parts for c in chosen):
            chosen.append(entry)
    return sorted(chosen)


def gpta_files(run_dir: str | Path, marker: Marker | None) -> list[str]:
    """gpta's files in the run folder now (relative paths; a folder gpta made whole counts
    as one): those ``marker`` lists that are still there, and those at gpta's fixed names and
    patterns. Never a link, nothing reached through one, nothing else."""
    run_dir = Path(run_dir)
    listed = {e for e in (marker.files if marker else ()) if _real(run_dir, e)}
    return _outermost(listed | _patterns(run_dir))


def sync_files(run_dir: str | Path, written: Iterable[str] = ()) -> None:
    """Bring the marker's file list up to date: what it listed and is still there, what was
    just ``written`` (relative paths), what gpta wrote at its fixed names and patterns. The
    main process, holding the lock; a folder without a valid marker (a run from an older gpta
    resumed) is left as it is."""
    run_dir = Path(run_dir)
    marker = read_marker(run_dir)
    if marker is None:
        return
    new = {e for e in written if _valid_entry(e) and _real(run_dir, e)}
    files = [e for e in gpta_files(run_dir, marker) if not e.startswith(_STAGING)]
    files = _outermost(set(files) | new)
    if tuple(files) != marker.files:
        write_marker(
            run_dir,
            Marker(marker.run_id, marker.version, marker.created, marker.owns, tuple(files)),
        )


def record_written(run_dir: str | Path, paths: Iterable[str | Path]) -> None:
    """Files written into a run after it ended (``gpta report``) join its list, so that a
    later ``--overwrite`` moves them too. Not while a run holds the folder: they stay
    unlisted then, which only means they are kept."""
    run_dir = Path(run_dir)
    if read_marker(run_dir) is None:
        return
    root = run_dir.resolve()
    entries = []
    for path in paths:
        with suppress(ValueError, OSError):
            entries.append(Path(path).resolve().relative_to(root).as_posix())
    lock = RunLock(run_dir)
    try:
        lock.acquire(note_stale=False)
    except GptaUserError:
        return
    try:
        sync_files(run_dir, entries)
    except OSError:
        pass  # the list is a record: its update failing loses nothing
    finally:
        lock.release()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def _prune(run_dir: Path, entry: str) -> None:
    """Remove the folders on the way to a removed ``entry`` that are now empty (up to, and
    with, its top-level folder); a folder that still holds anything stays."""
    parts = PurePosixPath(entry).parts
    for depth in range(len(parts) - 1, 0, -1):
        folder = run_dir.joinpath(*parts[:depth])
        try:
            folder.rmdir()
        except OSError:  # not empty (or gone): what is above it is not empty either
            return


def _move_into(source_root: Path, entry: str, target_root: Path) -> bool:
    """Move ``source_root/entry`` to ``target_root/entry``; False (nothing moved) when
    something is already there."""
    target = target_root / entry
    if os.path.lexists(target):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(source_root / entry, target)
    return True


# --- checkpoints -----------------------------------------------------------------------------


def _read_state(state_file: Path) -> dict[str, Any]:
    """A checkpoint's gpta state, checked; ValueError says what is wrong with it."""
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except OSError as err:
        raise ValueError(err.strerror or str(err)) from None
    except ValueError as err:  # not UTF-8, not JSON
        raise ValueError(f"not valid JSON: {err}") from None
    if not isinstance(state, dict):
        raise ValueError("not a JSON object")
    for key, kind in (("round", int), ("history_lines", int), ("loop", dict)):
        value = state.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"no valid {key!r}")
    if state["round"] < 0 or state["history_lines"] < 0:
        raise ValueError("negative round or line count")
    trainer_state = state_file.parent / "trainer_state.json"
    try:
        json.loads(trainer_state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ValueError(f"{trainer_state.name} is missing or not valid JSON") from None
    return state


def write_state(path: Path, state: dict[str, Any]) -> None:
    """A checkpoint's gpta state (what :func:`_read_state` checks), written atomically and
    synced: its presence marks the checkpoint complete."""
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(json.dumps(state, ensure_ascii=False))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def latest_checkpoint(
    run_dir: Path, *, unreadable: list[str] | None = None
) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint whose round was completely recorded (its state file exists).

    A checkpoint whose state is damaged (a crash or a disk error while it was written) is
    skipped for the older one (two are kept for this); ``unreadable`` collects why.
    """
    found = []
    for path in sorted((run_dir / CHECKPOINTS).glob("checkpoint-*")):
        state_file = path / STATE_FILE
        if not state_file.is_file():
            continue
        try:
            state = _read_state(state_file)
        except ValueError as err:
            if unreadable is not None:
                unreadable.append(f"{path.name}: {err}")
            continue
        found.append((state["round"], path, state))
    if not found:
        return None
    _, path, state = max(found, key=lambda item: item[0])
    return path, state


def remove_checkpoints(run_dir: Path) -> None:
    """The run has finished: its checkpoint folders go (a file of the user's there stays)."""
    folder = run_dir / CHECKPOINTS
    for entry in gpta_files(run_dir, None):
        if entry.startswith(f"{CHECKPOINTS}/"):
            shutil.rmtree(run_dir / entry, ignore_errors=True)
    with suppress(OSError):
        folder.rmdir()


def remove_incomplete_checkpoints(run_dir: Path) -> list[str]:
    """Checkpoint folders newer than the last complete one (a write cut short: resume never
    uses them) go, giving their space back; their names."""
    latest = latest_checkpoint(run_dir)
    done = int(latest[0].name.rpartition("-")[2]) if latest else -1
    removed = []
    for entry in gpta_files(run_dir, None):
        name = entry.rpartition("/")[2]
        if entry.startswith(f"{CHECKPOINTS}/") and int(name.rpartition("-")[2]) > done:
            shutil.rmtree(run_dir / entry, ignore_errors=True)
            removed.append(name)
    return removed


# --- preparing, undoing, replacing -----------------------------------------------------------


@dataclass
class RunDirPlan:
    """What preparing a run folder will do (nothing is done yet)."""

    run_dir: Path
    move: list[str]  # gpta's files of the replaced run, moved into PREVIOUS
    drop: list[str]  # gpta's files of an unfinished run, deleted (its replaced run stays kept)
    drop_previous: bool  # PREVIOUS is older than the finished run that is now replaced
    move_marker: bool = True  # False: the replaced run's marker is in PREVIOUS already


def _names_present(run_dir: Path) -> list[str]:
    return [n for n in (*RUN_FILES, PREVIOUS) if os.path.lexists(run_dir / n)]


def check_run_dir(path: str | Path, *, overwrite: bool) -> RunDirPlan:
    """Whether a new run may go into ``path``, and what preparing it will do; raises (and
    writes nothing) when it may not: a file in its place, a folder that cannot be made, a
    run there that is running or (without ``overwrite``) finished, a run from an older gpta
    that did not list its files, or names a run writes in a folder that is not a gpta run
    (those are never replaced)."""
    from gpta.fileio import check_dir_creatable

    run_dir = Path(path)
    check_dir_creatable(run_dir, "output_dir (--output-dir)")
    if not run_dir.exists():
        return RunDirPlan(run_dir, [], [], False)
    refuse_if_in_use(run_dir)
    existing = _names_present(run_dir)
    if not existing:
        return RunDirPlan(run_dir, [], [], False)
    marker = read_marker(run_dir)
    previous_dir = run_dir / PREVIOUS
    kept = read_marker(previous_dir) if previous_dir.is_dir() else None
    if marker is None and kept is None:
        if _older_marker(run_dir):
            raise GptaUserError(
                f"output_dir {run_dir} holds a run written by an older gpta, whose "
                f"{RUN_MARKER} does not list the files it wrote: gpta cannot tell them from "
                "yours there, so it does not replace that run",
                hint="choose another --output-dir, or move that folder away (or delete it) "
                "yourself",
            )
        why = (
            f"its {RUN_MARKER} does not pass gpta's check"
            if os.path.lexists(run_dir / RUN_MARKER)
            else f"no {RUN_MARKER}"
        )
        raise GptaUserError(
            f"output_dir {run_dir} holds {', '.join(existing)} but is not a gpta run ({why}): "
            "gpta replaces only runs it wrote",
            hint="choose another --output-dir (a new or empty folder), or move those files away",
        )
    finished = marker is not None and (run_dir / run_files.METRICS).is_file()
    if not overwrite:
        note = (
            f"; the finished run it was replacing is kept in {previous_dir}"
            if kept is not None and not finished
            else ""
        )
        raise GptaUserError(
            f"output_dir {run_dir} already holds a run ({', '.join(existing)}){note}",
            hint="choose another --output-dir, or pass --overwrite to replace it",
        )
    if marker is None:  # a replacement stopped while it moved the old run aside: finish that
        assert kept is not None
        rest = [e for e in gpta_files(run_dir, kept) if not os.path.lexists(previous_dir / e)]
        return RunDirPlan(run_dir, rest, [], False, move_marker=False)
    mine = gpta_files(run_dir, marker)
    if kept is not None and not finished:  # an unfinished replacement: the finished run stays
        return RunDirPlan(run_dir, [], mine, False)
    return RunDirPlan(run_dir, mine, [], previous_dir.exists())


def _carry_out(plan: RunDirPlan) -> None:
    run_dir = plan.run_dir
    previous = run_dir / PREVIOUS
    if plan.drop_previous:
        _remove(previous)
    for entry in plan.drop:
        _remove(run_dir / entry)
        _prune(run_dir, entry)
    if plan.move:
        previous.mkdir(exist_ok=True)
        for entry in plan.move:
            if _move_into(run_dir, entry, previous):
                _prune(run_dir, entry)
    if plan.move_marker and plan.move:
        os.replace(run_dir / RUN_MARKER, previous / RUN_MARKER)  # put back with the run
    owns = [n for n in sorted(_NAMES) if not os.path.lexists(run_dir / n)]
    write_marker(run_dir, new_marker(owns))


def _on_main(ranks: Ranks, action: Callable[[], Any]) -> None:
    """Run ``action`` on the main process; every process raises its refusal alike."""
    error: tuple[str, str | None] | None = None
    if ranks.is_main:
        try:
            action()
        except GptaUserError as err:
            error = (err.message, err.hint)
    error = ranks.broadcast(error)
    if error is not None:
        raise GptaUserError(error[0], hint=error[1])


def _prepare_locked(run_dir: Path, *, overwrite: bool) -> None:
    """Check again, now that no other run can change the folder, and prepare it."""
    from gpta.fileio import disk_write_error

    try:
        plan = check_run_dir(run_dir, overwrite=overwrite)
        with deferred():
            _carry_out(plan)
    except GptaUserError:
        lock = held_lock(run_dir)
        if lock is not None and lock.made_file:  # refused: the folder keeps no lock file
            lock.forget_files()
        raise
    except OSError as err:
        raise GptaUserError(
            f"output_dir {run_dir} could not be prepared "
            f"({disk_write_error(err) or err.strerror or err})",
            hint="check the folder's permissions and free space, or choose another --output-dir",
        ) from None


def prepare_run_dir(path: str | Path, *, overwrite: bool, ranks: Ranks | None = None) -> Path:
    """Create the run folder and mark it as a new run; refuse to mix a new run into an old
    one. Holds the folder's lock meanwhile (taken here unless held already).

    With ``overwrite`` the old run is not deleted: gpta's files of it move into ``PREVIOUS``
    inside the run folder (deleted once the new run has finished; put back if it fails
    before its first complete round); files of the user's stay where they are. The main
    process checks and prepares; every process fails alike.
    """
    ranks = ranks or Ranks()
    run_dir = Path(path)
    held = ranks.broadcast(held_lock(run_dir) is not None if ranks.is_main else None)
    if not held:  # a plain refusal writes nothing, not even the lock
        _on_main(ranks, lambda: check_run_dir(run_dir, overwrite=overwrite))
    with run_lock(run_dir, ranks=ranks):
        _on_main(ranks, lambda: _prepare_locked(run_dir, overwrite=overwrite))
    ranks.barrier()
    return run_dir


def _merge_back(source: Path, target: Path, prefix: str, stayed: list[str]) -> None:
    """Move what ``source`` holds into ``target``, folder by folder; an entry whose place is
    taken (a file of the user's, made since) stays in ``source`` and joins ``stayed``."""
    for child in sorted(source.iterdir()):
        place = target / child.name
        if not os.path.lexists(place):
            os.rename(child, place)
        elif (
            child.is_dir() and not child.is_symlink() and place.is_dir() and not place.is_symlink()
        ):
            _merge_back(child, place, f"{prefix}{child.name}/", stayed)
            with suppress(OSError):
                child.rmdir()
        else:
            stayed.append(f"{prefix}{child.name}")


def _real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _put_back(run_dir: Path) -> list[str]:
    """Move what ``PREVIOUS`` holds back where it was; what cannot go back stays there.
    Returns what stayed."""
    previous = run_dir / PREVIOUS
    stayed: list[str] = []
    _merge_back(previous, run_dir, "", stayed)
    with suppress(OSError):
        previous.rmdir()
    return stayed


def undo_failed_start(run_dir: Path, *, created: Path | None) -> bool:
    """A new run failed before its first complete round: delete gpta's files of it and put
    back the run it was replacing, so the folder is as it was (files of the user's stay). A
    run with a complete round is kept (``--resume`` continues it; the replaced run stays in
    ``PREVIOUS``). True if undone."""
    if latest_checkpoint(run_dir) is not None:
        return False
    with deferred():
        for entry in gpta_files(run_dir, read_marker(run_dir)):
            _remove(run_dir / entry)
            _prune(run_dir, entry)
        (run_dir / RUN_MARKER).unlink(missing_ok=True)
        if (run_dir / PREVIOUS).is_dir():
            stayed = _put_back(run_dir)
            if stayed:
                warn(
                    f"{', '.join(stayed)} could not go back into {run_dir} (something new "
                    f"is there): kept in {run_dir / PREVIOUS}"
                )
        lock = held_lock(run_dir)
        if lock is not None and lock.made_file:
            lock.forget_files()
        if created is not None:
            remove_empty_folders(run_dir, created)
    return True


def drop_previous(run_dir: Path) -> None:
    """The new run has finished: the run it replaced (gpta's files only) goes."""
    shutil.rmtree(run_dir / PREVIOUS, ignore_errors=True)
