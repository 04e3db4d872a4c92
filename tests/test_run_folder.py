"""The run folder (issue 28): one run at a time (a lock with its owner's pid), a run is
only what gpta's checked marker says, ``--overwrite`` moves only the files gpta wrote, a
full disk or SIGTERM leaves a resumable run and a message, not a traceback.

Most tests replace ``_execute`` (no model is trained) by one that writes what a run writes,
through the same functions (``_save_best``, ``sync_files``); the slow ones start processes.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import gpta_cli, mark_gpta_run, shared_rows, write_jsonl
from hypothesis import given, settings
from hypothesis import strategies as st

from gpta.cli import main
from gpta.errors import GptaUserError
from gpta.run_folder import (
    PREVIOUS,
    RUN_MARKER,
    gpta_files,
    latest_checkpoint,
    read_marker,
    sync_files,
)
from gpta.run_lock import LOCK_FILE, OWNER_FILE, Owner, RunLock, read_owner

DESCRIPTION = "Short reviews labelled positive or negative."
MANIFEST = {"task": "classification", "prefix": "", "max_length": 32, "text_column": "text",
            "label_column": "label", "labels": ["a", "b"]}  # fmt: skip


def _state(root: Path) -> dict[str, Any]:
    """Every file's bytes and every folder under ``root`` (hidden ones included)."""
    seen: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        seen[key] = "dir" if path.is_dir() else path.read_bytes()
    return seen


def _data(base: Path) -> Path:
    rows = [{"text": f"review number {i}", "label": "ab"[i % 2]} for i in range(40)]
    return write_jsonl(base / "train.jsonl", rows)


class _Saving:
    """A model (or tokenizer) whose save_pretrained writes what ``files`` says."""

    def __init__(self, files: dict[str, str], fail: BaseException | None = None) -> None:
        self.files, self.fail = files, fail

    def save_pretrained(self, directory: str | Path) -> None:
        if self.fail is not None:
            (Path(directory) / "model.safetensors").write_bytes(b"half")
            raise self.fail
        for name, text in self.files.items():
            (Path(directory) / name).write_text(text, encoding="utf-8")


def _fake_execute(tag: str, *, fail: BaseException | None = None, rounds: int = 1):
    """What `_execute` writes, with the same functions: a model saved as the best round's,
    checkpoints, the file list synced, then predictions and metrics; ``fail`` after the
    checkpoints (``rounds=0``: before any)."""
    import gpta.run_lifecycle as lifecycle
    from gpta.run_folder import remove_checkpoints

    def execute(config, run_dir, tables, task, description, **kwargs):
        (run_dir / "history.jsonl").write_text(f'{{"event": "{tag}"}}\n', encoding="utf-8")
        for index in range(rounds):
            written = lifecycle.save_best(
                run_dir,
                _Saving({"config.json": tag, "model.safetensors": tag}),
                _Saving({"tokenizer.json": tag}),
                MANIFEST,
            )
            checkpoint = run_dir / "checkpoints" / f"checkpoint-{index + 1}"
            checkpoint.mkdir(parents=True)
            (checkpoint / "trainer_state.json").write_text("{}", encoding="utf-8")
            state = {"round": index, "history_lines": 1, "loop": {}}
            (checkpoint / "gpta_state.json").write_text(json.dumps(state), encoding="utf-8")
            sync_files(run_dir, written)
        if fail is not None:
            raise fail
        (run_dir / "predictions").mkdir(exist_ok=True)
        for split in ("dev", "test"):
            (run_dir / "predictions" / f"{split}.jsonl").write_text(tag, encoding="utf-8")
        (run_dir / "metrics.json").write_text(json.dumps({"run": tag}), encoding="utf-8")
        remove_checkpoints(run_dir)
        return tag

    return execute


def _train(base: Path, run_dir: Path, *, overwrite: bool = False) -> Any:
    from gpta.config import build_config
    from gpta.run import train

    data = {"train": str(_data(base)), "description": DESCRIPTION}
    config = {"output_dir": str(run_dir), "data": data}
    return train(build_config(config), overwrite=overwrite, quiet=True)


def _cli(capsys, *args: str) -> tuple[int | str | None, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    return exit_info.value.code, capsys.readouterr().err


# --- gpta's files, and only those, move -------------------------------------------------------


def test_overwrite_moves_only_gpta_files_and_user_files_survive(tmp_path, monkeypatch):
    import gpta.run

    run_dir = tmp_path / "run"
    monkeypatch.setattr(gpta.run, "_execute", _fake_execute("old"))
    _train(tmp_path, run_dir)
    marker = read_marker(run_dir)
    assert marker is not None and "model/config.json" in marker.files
    assert "predictions/dev.jsonl" in marker.files and "metrics.json" in marker.files
    mine = {"model/notes.txt": b"my notes", "predictions/mine.csv": b"a,b\n",
            "report/q3.pdf": b"%PDF", "notes.txt": b"top"}  # fmt: skip
    for name, data in mine.items():
        (run_dir / name).parent.mkdir(exist_ok=True)
        (run_dir / name).write_bytes(data)

    monkeypatch.setattr(gpta.run, "_execute", _fake_execute("new", rounds=2))
    assert _train(tmp_path, run_dir, overwrite=True) == "new"
    for name, data in mine.items():
        assert (run_dir / name).read_bytes() == data, name
    assert (run_dir / "model" / "config.json").read_text(encoding="utf-8") == "new"
    assert json.loads((run_dir / "metrics.json").read_text(encoding="utf-8")) == {"run": "new"}
    assert not (run_dir / PREVIOUS).exists() and not (run_dir / "checkpoints").exists()
    listed = read_marker(run_dir).files
    assert not any(name in listed for name in mine)  # the user's files are never listed

    # a user file inside model/ also survives the saves of a run's later best rounds
    monkeypatch.setattr(gpta.run, "_execute", _fake_execute("third", rounds=3))
    _train(tmp_path, run_dir, overwrite=True)
    assert (run_dir / "model" / "notes.txt").read_bytes() == b"my notes"


def test_a_failed_start_deletes_only_its_own_files(tmp_path, monkeypatch):
    import gpta.run

    run_dir = tmp_path / "run"
    monkeypatch.setattr(gpta.run, "_execute", _fake_execute("old"))
    _train(tmp_path, run_dir)
    (run_dir / "model" / "notes.txt").write_text("mine", encoding="utf-8")
    before = _state(run_dir)

    def fail_after_adding_a_user_file(config, run_dir, *args, **kwargs):
        (run_dir / "predictions").mkdir(exist_ok=True)
        (run_dir / "predictions" / "added-meanwhile.txt").write_text("mine", encoding="utf-8")
        return _fake_execute("new", rounds=0, fail=RuntimeError("boom"))(
            config, run_dir, *args, **kwargs
        )

    monkeypatch.setattr(gpta.run, "_execute", fail_after_adding_a_user_file)
    with pytest.raises(RuntimeError):
        _train(tmp_path, run_dir, overwrite=True)
    after = _state(run_dir)
    assert after.pop("predictions/added-meanwhile.txt") == b"mine"  # the user's, kept
    assert after == before  # the old run is back, byte for byte


def test_a_copied_config_yaml_does_not_make_a_run(capsys, tmp_path):
    from gpta.config import build_config, dump_config

    folder = tmp_path / "mine"
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "weights.bin").write_bytes(b"\x00weights")
    dump_config(build_config({"output_dir": str(folder)}), folder / "config.yaml")
    before = _state(folder)
    for extra in ([], ["--overwrite"]):
        code, err = _cli(capsys, "train", "--train", str(_data(tmp_path)), "--description",
                         DESCRIPTION, "--output-dir", str(folder), *extra)  # fmt: skip
        assert code == 2 and "not a gpta run" in err and RUN_MARKER in err
        assert _state(folder) == before


def _valid_marker(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    (run_dir / "model").mkdir(parents=True)
    (run_dir / "model" / "config.json").write_text("{}", encoding="utf-8")
    (run_dir / "metrics.json").write_text("{}", encoding="utf-8")
    return mark_gpta_run(run_dir)


@settings(max_examples=40, deadline=None, database=None)
@given(
    st.sampled_from(["run_id", "version", "owns", "files", "written_by", "format", "check"]),
    st.one_of(st.none(), st.integers(), st.text(max_size=8), st.lists(st.text(max_size=8))),
)
def test_an_edited_marker_is_not_gpta_s(tmp_path_factory, field, value):
    run_dir = _valid_marker(tmp_path_factory.mktemp("marker"))
    data = json.loads((run_dir / RUN_MARKER).read_text(encoding="utf-8"))
    if data[field] == value:
        return
    data[field] = value
    (run_dir / RUN_MARKER).write_text(json.dumps(data), encoding="utf-8")
    assert read_marker(run_dir) is None


@pytest.mark.parametrize(
    "entry", ["../outside.txt", "/etc/passwd", "model/../../outside.txt", "notes.txt", "model\\x"]
)
def test_a_marker_cannot_list_files_outside_gpta_s_names(tmp_path, entry):
    from gpta.run_folder import new_marker, write_marker

    run_dir = _valid_marker(tmp_path)
    write_marker(run_dir, new_marker(["model"], ["model/config.json", entry]))  # a valid check
    assert read_marker(run_dir) is None


def test_gpta_files_never_follow_a_link(tmp_path):
    run_dir = _valid_marker(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "config.json").write_text("mine", encoding="utf-8")
    (run_dir / "model" / "config.json").unlink()
    (run_dir / "model").rmdir()
    (run_dir / "model").symlink_to(elsewhere)
    assert "model/config.json" not in gpta_files(run_dir, read_marker(run_dir))


# --- the lock -------------------------------------------------------------------------------

HOLDER = """
import sys, time
from gpta.run_lock import RunLock
lock = RunLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
lock.release()
"""


def _hold(run_dir: Path, seconds: float = 120) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


@pytest.mark.slow
def test_two_processes_one_run_folder(tmp_path):
    """A live run holds the folder (a second process took the lock through gpta's module):
    `gpta train --overwrite` and `--resume` into it exit 2, name its pid, change nothing;
    once it is gone, its stale record is taken over with a note."""
    run_dir = _valid_marker(tmp_path)
    holder = _hold(run_dir)
    try:
        before = _state(run_dir)
        args = ["--train", str(_data(tmp_path)), "--description", DESCRIPTION]
        for command in (["train", *args, "--output-dir", str(run_dir), "--overwrite"],
                        ["train", "--resume", str(run_dir)]):  # fmt: skip
            done = gpta_cli(*command)
            assert done.returncode == 2, done.stderr
            assert f"pid {holder.pid}" in done.stderr and "in use" in done.stderr
            assert "Traceback" not in done.stderr
            assert _state(run_dir) == before
    finally:
        holder.kill()  # SIGKILL: no release, its record stays behind
        holder.wait()
    assert read_owner(run_dir) is not None and read_owner(run_dir).pid == holder.pid
    from gpta.run_lock import run_lock

    with run_lock(run_dir):  # a dead holder's lock is free; its record is replaced
        assert read_owner(run_dir).pid == os.getpid()
    assert read_owner(run_dir) is None


@pytest.mark.slow
def test_the_os_lock_refuses_even_without_an_owner_record(tmp_path):
    """The record is only what the message says: a folder whose lock is held but whose
    record is gone (or names a dead pid) is still refused, by the lock itself."""
    from gpta.run import prepare_run_dir

    run_dir = _valid_marker(tmp_path)
    holder = _hold(run_dir)
    try:
        (run_dir / OWNER_FILE).unlink()
        before = _state(run_dir)
        with pytest.raises(GptaUserError, match="in use by a running gpta run"):
            prepare_run_dir(run_dir, overwrite=True)
        assert _state(run_dir) == before
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_owner_is_taken_over_with_a_note(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    record = {"pid": dead.pid, "host": os.uname().nodename, "started": time.time(), "since": "x"}
    (run_dir / OWNER_FILE).write_text(json.dumps(record), encoding="utf-8")
    assert read_owner(run_dir).alive() is False
    lock = RunLock(run_dir)
    lock.acquire()
    try:
        assert "no longer running" in capsys.readouterr().err
        me = read_owner(run_dir)
        assert me.pid == os.getpid() and me.alive() is True
        reused = Owner(me.pid, me.host, me.started - 3600, me.since)  # same pid, other process
        assert reused.alive() is False
    finally:
        lock.release()
    assert not (run_dir / OWNER_FILE).exists() and (run_dir / LOCK_FILE).exists()


def test_only_the_main_process_takes_the_lock(tmp_path):
    from gpta.distributed import Ranks
    from gpta.run_lock import run_lock

    class Second(Ranks):  # rank 1 of 2, without a process group: collectives are no-ops
        def broadcast(self, value):
            return value

        def barrier(self) -> None:
            pass

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with run_lock(run_dir, ranks=Second(rank=1, world=2)):
        assert not (run_dir / LOCK_FILE).exists()
    with run_lock(run_dir):
        assert (run_dir / LOCK_FILE).exists()


# --- a full disk, SIGTERM, out of memory ----------------------------------------------------

DISK_ERRORS = [
    OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
    OSError(errno.EDQUOT, os.strerror(errno.EDQUOT)),
    OSError(errno.EROFS, os.strerror(errno.EROFS)),
    RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)"),
    RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"),
]


@pytest.mark.parametrize("error", DISK_ERRORS, ids=lambda e: str(e)[:30])
def test_a_full_disk_after_a_round_says_so_and_stays_resumable(
    capsys, tmp_path, monkeypatch, error
):
    import gpta.run

    run_dir = tmp_path / "run"
    monkeypatch.setattr(gpta.run, "_execute", _fake_execute("new", rounds=2, fail=error))
    code, err = _cli(capsys, "train", "--train", str(_data(tmp_path)), "--description",
                     DESCRIPTION, "--output-dir", str(run_dir), "-q")  # fmt: skip
    assert code == 2 and "Traceback" not in err
    assert "could not write the run" in err and f"gpta train --resume {run_dir}" in err
    assert "after round 1" in err
    assert latest_checkpoint(run_dir) is not None and read_owner(run_dir) is None


def test_a_full_disk_before_any_round_leaves_the_folder_as_it_was(capsys, tmp_path, monkeypatch):
    import gpta.run

    run_dir = tmp_path / "run"
    monkeypatch.setattr(gpta.run, "_execute", _fake_execute("old"))
    _train(tmp_path, run_dir)
    before = _state(run_dir)
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(gpta.run, "_execute", _fake_execute("new", rounds=0, fail=full))
    code, err = _cli(capsys, "train", "--train", str(_data(tmp_path)), "--description",
                     DESCRIPTION, "--output-dir", str(run_dir), "--overwrite")  # fmt: skip
    assert code == 2 and "No space left on device" in err and "left as it was" in err
    assert _state(run_dir) == before


def test_a_model_save_that_fills_the_disk_leaves_no_staging_folder(tmp_path):
    import gpta.run_lifecycle

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    good = gpta.run_lifecycle.save_best(run_dir, _Saving({"a.bin": "1"}), _Saving({}), MANIFEST)
    assert good == ["model/a.bin", "model/gpta.json"]
    full = RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")
    with pytest.raises(RuntimeError):
        gpta.run_lifecycle.save_best(run_dir, _Saving({}, fail=full), _Saving({}), MANIFEST)
    assert sorted(p.name for p in run_dir.iterdir()) == ["model"]  # no .model-* left
    assert (run_dir / "model" / "a.bin").read_text(encoding="utf-8") == "1"  # the old best stays


@settings(max_examples=60, deadline=None, database=None)
@given(
    st.sampled_from(sorted(errno.errorcode)),
    st.sampled_from(["plain", "cause", "context"]),
    st.text(max_size=20),
)
def test_disk_errors_are_told_from_other_errors(code, wrapping, text):
    from gpta.fileio import disk_write_error

    inner = OSError(code, os.strerror(code))
    err: BaseException = inner
    if wrapping != "plain":
        err = RuntimeError(f"wrapper {text}")
        setattr(err, f"__{wrapping}__", inner)
    disk = code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)
    assert (disk_write_error(err) == os.strerror(code)) if disk else disk_write_error(err) is None


@pytest.mark.parametrize(
    "error", [MemoryError(), RuntimeError("DefaultCPUAllocator: can't allocate memory: 9 GB")]
)
def test_out_of_memory_is_a_message(capsys, monkeypatch, tmp_path, error):
    import gpta.run

    def run_out(*args, **kwargs):
        raise error

    monkeypatch.setattr(gpta.run, "train", run_out)
    code, err = _cli(capsys, "train", "--train", str(_data(tmp_path)), "--description",
                     DESCRIPTION, "--output-dir", str(tmp_path / "run"))  # fmt: skip
    assert code == 2 and "out of memory" in err and "Traceback" not in err


def test_a_manifest_with_no_labels_is_named(capsys, tmp_path):
    for labels in ([], ["only"]):
        (tmp_path / "gpta.json").write_text(json.dumps({**MANIFEST, "labels": labels}), "utf-8")
        (tmp_path / "rows.txt").write_text("fine\n", encoding="utf-8")
        code, err = _cli(capsys, "predict", "--model", str(tmp_path), "--input",
                         str(tmp_path / "rows.txt"))  # fmt: skip
        assert code == 2 and "gpta.json" in err and "'labels'" in err and "Traceback" not in err


def test_predict_output_refuses_a_user_file_and_writes_through_links(capsys, tmp_path):
    from gpta.cli.inference import _check_output, _write_output

    (tmp_path / "gpta.json").write_text(json.dumps(MANIFEST), encoding="utf-8")
    (tmp_path / "rows.txt").write_text("fine\n", encoding="utf-8")
    mine = tmp_path / "results.csv"
    mine.write_text("id,score\n1,0.5\n", encoding="utf-8")
    code, err = _cli(capsys, "predict", "--model", str(tmp_path), "--input",
                     str(tmp_path / "rows.txt"), "--output", str(mine))  # fmt: skip
    assert code == 2 and "not a file gpta predict wrote" in err and "--overwrite" in err
    assert mine.read_text(encoding="utf-8") == "id,score\n1,0.5\n"
    _check_output(str(mine), "rows.txt", overwrite=True)  # with --overwrite: allowed
    link = tmp_path / "latest.jsonl"
    link.symlink_to(mine)
    _write_output(str(link), '{"row": "line 1"}\n')
    assert link.is_symlink() and mine.read_text(encoding="utf-8") == '{"row": "line 1"}\n'
    _write_output(os.devnull, "x\n")  # a device is written to, never replaced
    assert Path(os.devnull).is_char_device()


TERM_RUN = {
    "model": {"max_length": 32},
    "training": {"rounds": 3, "steps_per_round": 4, "batch_size": 8},
    "assistant": {"initial": "empty", "fixed_prefix": True, "max_prefix_tokens": 8},
    # all three rounds train (the file is the only labelled data: auto would cross-validate
    # the round count, and one round leaves no round to stop after)
    "selection": {"best_round": "dev"},
}


@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c_with_143_and_a_resumable_run(tmp_path):
    import yaml

    run_dir = tmp_path / "run"
    rows = shared_rows("twitter", "train", limit=60)
    config = {**TERM_RUN, "output_dir": str(run_dir),
              "data": {"train": str(write_jsonl(tmp_path / "t.jsonl", rows)),
                       "description": "Tweets."}}  # fmt: skip
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "gpta.cli", "train", "--config", str(tmp_path / "run.yaml"), "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 600
    while latest_checkpoint(run_dir) is None:  # the first round is complete
        assert process.poll() is None and time.monotonic() < deadline, "no round completed"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 143, err[-2000:]
    assert "stopped by SIGTERM after" in err and "terminated (SIGTERM)" in err
    assert f"gpta train --resume {run_dir}" in err and "Traceback" not in err
    assert latest_checkpoint(run_dir) is not None and read_owner(run_dir) is None

    resumed = gpta_cli("train", "--resume", str(run_dir), "-q")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (run_dir / "metrics.json").is_file()
    assert "model/gpta.json" in read_marker(run_dir).files
