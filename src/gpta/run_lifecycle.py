"""A run folder's life around one run: taken, prepared, written at each round, given back.

- :func:`new_run`: the lock, the folder prepared (an old run that ``--overwrite`` replaces
  moved aside), undone if the run stops before its first complete round, the replaced run
  dropped once the new one has finished, the lock released.
- :func:`resumable_checkpoint` and :func:`resumed_run`: ``--resume``'s checks, then the same
  for a run continued from its last complete round.
- :func:`save_best`: the best round's model written into ``model/`` at a checkpoint.
- A run that stops early says what it leaves and how to go on (a full disk included).

What makes a folder a run and which files are gpta's: :mod:`gpta.run_folder`; the lock:
:mod:`gpta.run_lock` (docs/run-folder.md).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gpta import run_files
from gpta.distributed import Ranks
from gpta.downstream.artifact import save_model, write_manifest
from gpta.errors import GptaUserError
from gpta.progress import warn
from gpta.run_folder import (
    drop_previous,
    latest_checkpoint,
    prepare_run_dir,
    read_marker,
    remove_incomplete_checkpoints,
    sync_files,
    undo_failed_start,
)
from gpta.run_lock import first_missing_folder, refuse_if_in_use, run_lock


@contextlib.contextmanager
def new_run(output_dir: str | Path, *, overwrite: bool, ranks: Ranks) -> Iterator[Path]:
    """The prepared run folder of a new run, locked until the run ends, however it ends. An
    old run that ``overwrite`` replaces is kept until the new one has finished (see
    :func:`gpta.run_folder.prepare_run_dir`); a run that fails before its first complete
    round leaves the folder as it was."""
    created = first_missing_folder(Path(output_dir))
    with run_lock(output_dir, ranks=ranks):
        run_dir = prepare_run_dir(output_dir, overwrite=overwrite, ranks=ranks)
        try:
            yield run_dir
        except BaseException as err:
            undone = ranks.is_main and undo_failed_start(run_dir, created=created)
            _stopped(err, run_dir, undone=undone, ranks=ranks)
            raise
        if ranks.is_main:
            drop_previous(run_dir)
            sync_files(run_dir)


def resumable_checkpoint(run_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint ``--resume`` continues ``run_dir`` from (its last complete round), or
    a :class:`GptaUserError` saying why there is none; a damaged newer one is warned about."""
    if run_dir.is_dir():
        refuse_if_in_use(run_dir)  # early; taking the lock in resumed_run is the check that counts
    if not (run_dir / run_files.CONFIG).is_file():
        raise GptaUserError(
            f"--resume: {run_dir} holds no run (no config.yaml)",
            hint="pass the output directory of an earlier `gpta train`",
        )
    if (run_dir / run_files.METRICS).is_file():
        raise GptaUserError(
            f"--resume: {run_dir} is a finished run, nothing is left to resume; its model is "
            f"{run_dir / 'model'}",
            hint=f"use it (gpta predict --model {run_dir} --input FILE, gpta report {run_dir}); "
            "to train again, give a new --output-dir",
        )
    unreadable: list[str] = []
    checkpoint = latest_checkpoint(run_dir, unreadable=unreadable)
    if checkpoint is None:
        why = f" (unreadable: {'; '.join(unreadable)})" if unreadable else ""
        raise GptaUserError(
            f"--resume: {run_dir} has no complete round to resume from{why}",
            hint="the run stopped before its first round ended, or its checkpoints are "
            "damaged; start it again (with --overwrite)",
        )
    if unreadable:
        warn(
            f"skipped damaged checkpoint(s) ({'; '.join(unreadable)}); resuming from "
            f"{checkpoint[0].name} (after round {checkpoint[1]['round']}) instead"
        )
    return checkpoint


@contextlib.contextmanager
def resumed_run(run_dir: Path, checkpoint: Path, *, ranks: Ranks) -> Iterator[None]:
    """A resumed run's folder, locked until the run ends; refused if another gpta command
    wrote there since ``checkpoint`` was chosen. A replaced run it kept goes once it has
    finished."""
    with run_lock(run_dir, ranks=ranks):
        latest = latest_checkpoint(run_dir)
        if (run_dir / run_files.METRICS).is_file() or latest is None or latest[0] != checkpoint:
            raise GptaUserError(
                f"--resume: {run_dir} changed while this command read its data (another "
                "gpta command wrote there)",
                hint=f"check the folder, then run gpta train --resume {run_dir} again",
            )
        try:
            yield
        except BaseException as err:
            _stopped(err, run_dir, undone=False, ranks=ranks)
            raise
        if ranks.is_main:
            drop_previous(run_dir)  # a resumed replacement has finished: the replaced run goes
            sync_files(run_dir)


def save_best(run_dir: Path, model: Any, tokenizer: Any, manifest: dict[str, Any]) -> list[str]:
    """Write the model of a new best round atomically (staging folder, then rename); the
    files it wrote (relative to the run folder). A full disk leaves no staging folder behind;
    a file of the user's in the old ``model/`` moves into the new one."""
    staging = Path(tempfile.mkdtemp(prefix=".model-", dir=run_dir))
    try:
        save_model(model, tokenizer, staging)
        write_manifest(staging, manifest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    written = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
    target = run_dir / run_files.MODEL
    if not target.exists():
        staging.rename(target)
        return [f"{run_files.MODEL}/{name}" for name in written]
    marker = read_marker(run_dir)
    old = run_dir / ".model-old"
    shutil.rmtree(old, ignore_errors=True)  # left by a crash between the renames: gpta's
    target.rename(old)
    staging.rename(target)
    inside = f"{run_files.MODEL}/"
    listed = {e[len(inside) :] for e in marker.files if e.startswith(inside)} if marker else None
    for path in sorted(old.rglob("*")):
        name = path.relative_to(old).as_posix()
        mine = listed is None or name in listed or name in written
        if not mine and (path.is_file() or path.is_symlink()) and not (target / name).exists():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            path.rename(target / name)
    shutil.rmtree(old)
    return [f"{run_files.MODEL}/{name}" for name in written]


def _stopped(err: BaseException, run_dir: Path, *, undone: bool, ranks: Ranks) -> None:
    """A run stopped early: keep the file list of what it leaves up to date, and say so. A
    disk that is full, over quota or read-only is a :class:`GptaUserError` (no traceback)
    saying what is kept and how to go on; a stop before any round ended says the folder is as
    it was."""
    from gpta.fileio import disk_write_error

    if ranks.is_main and not undone:
        with contextlib.suppress(OSError):  # a full disk: the last checkpoint's list stays
            sync_files(run_dir)
    if isinstance(err, GptaUserError):
        return
    reason = disk_write_error(err) if isinstance(err, Exception) else None
    if reason is not None:
        if ranks.is_main and not undone:
            remove_incomplete_checkpoints(run_dir)  # the one cut short: space back, never resumed
        there = run_dir
        while not there.exists() and there != there.parent:  # the folder may be gone (undone)
            there = there.parent
        try:
            free = f" ({shutil.disk_usage(there).free / 2**20:,.0f} MiB free there now)"
        except OSError:
            free = ""
        if undone:
            raise GptaUserError(
                f"could not write the run in {run_dir}: {reason}{free}. No round had finished: "
                "the folder is left as it was before this run",
                hint="free space on that disk (or make it writable), or choose another "
                "--output-dir; then run again",
            ) from None
        checkpoint = latest_checkpoint(run_dir)
        kept = (
            f"The run stopped after round {checkpoint[1]['round']}, whose checkpoint is kept"
            if checkpoint
            else "The run stopped"
        )
        raise GptaUserError(
            f"could not write the run in {run_dir}: {reason}{free}. {kept}",
            hint=f"free space on that disk (or make it writable), then continue with: "
            f"gpta train --resume {run_dir}",
        ) from None
    if undone and isinstance(err, KeyboardInterrupt):
        warn(f"no round had finished: {run_dir} is left as it was before this run")
