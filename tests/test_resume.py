"""A run killed with SIGKILL (during training, then during a TA call) resumes to the same
history as an uninterrupted run of the same seed."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import gpta_cli as _gpta
from conftest import mark_gpta_run, shared_rows, write_jsonl

ROUNDS = 3


def _config(base: Path, output: str) -> Path:
    rows = shared_rows("twitter", "train", limit=400)
    by_label: dict[str, list] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    pick = [r for label in sorted(by_label) for r in by_label[label][:12]]
    train = write_jsonl(base / "train.jsonl", pick[0::3] + pick[1::3])
    dev = write_jsonl(base / "dev.jsonl", pick[2::3])
    config = {
        "output_dir": str(base / output),
        "data": {
            "train": str(train),
            "dev": str(dev),
            "test": str(dev),
            "description": "Tweets labelled negative, neutral or positive.",
        },
        "model": {"max_length": 48},
        "training": {
            "epochs_per_round": 1,
            "rounds": ROUNDS,
            "batch_size": 8,
            "learning_rate": 1e-4,
        },
        # no response cache: the killed run must really send its TA requests (the kill point
        # is a request in flight), and sampling with the same seed gives the same proposals
        "assistant": {
            "warmup_rounds": 0,  # a TA request at the start and at every boundary to kill in
            "candidates": 2,
            "screen_size": 8,
            "max_new_tokens": 32,
            "max_prefix_tokens": 20,
            "cache": False,
        },
    }
    path = base / f"{output}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _kill_when(process: subprocess.Popen, condition, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the run ended before it could be killed: {process.stderr.read()[-2000:]}")
        if condition():
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return
        time.sleep(0.02)
    process.kill()
    pytest.fail("the kill point was never reached")


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a line cut short by the kill
            out.append(json.loads(line))
    return out


def _round0_checkpoint_done(run_dir: Path) -> bool:
    return any((p / "gpta_state.json").exists() for p in (run_dir / "checkpoints").glob("*"))


def _ta_request_pending(run_dir: Path, request_id: int) -> bool:
    events = _lines(run_dir / "exposure.jsonl")
    sent = any(e["event"] == "request" and e.get("id") == request_id for e in events)
    answered = any(e["event"] != "request" and e.get("id") == request_id for e in events)
    return sent and not answered


def _summary(run_dir: Path) -> list[tuple]:
    events = _lines(run_dir / "history.jsonl")
    return [
        (e["event"], e.get("round"), e.get("prefix"))
        for e in events
        if e["event"] in ("round", "proposal", "select")
    ]


@pytest.mark.slow
def test_sigkill_during_training_and_ta_call_then_resume(tmp_path):
    reference = _gpta("train", "--config", str(_config(tmp_path, "reference")), "-q")
    assert reference.returncode == 0, reference.stderr[-3000:]

    run_dir = tmp_path / "killed"
    command = [
        sys.executable,
        "-m",
        "gpta.cli",
        "train",
        "--config",
        str(_config(tmp_path, "killed")),
        "-q",
    ]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _kill_when(first, lambda: _round0_checkpoint_done(run_dir))  # round 1 is training

    second = subprocess.Popen(
        [sys.executable, "-m", "gpta.cli", "train", "--resume", str(run_dir), "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _kill_when(second, lambda: _ta_request_pending(run_dir, 3))  # round 2's TA call

    final = _gpta("train", "--resume", str(run_dir), "-q")
    assert final.returncode == 0, final.stderr[-3000:]

    # same rounds, proposals and prefixes, each round once
    assert _summary(run_dir) == _summary(tmp_path / "reference")
    got = [e for e in _lines(run_dir / "history.jsonl") if e["event"] == "round"]
    want = [e for e in _lines(tmp_path / "reference" / "history.jsonl") if e["event"] == "round"]
    assert [e["round"] for e in got] == list(range(ROUNDS))
    for a, b in zip(got, want, strict=True):
        assert a["dev_score"] == pytest.approx(b["dev_score"], abs=1e-6)
        assert a["dev_loss"] == pytest.approx(b["dev_loss"], rel=1e-4)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)

    # no TA request that had been answered was sent again
    ledger = _lines(run_dir / "exposure.jsonl")
    answered = {e["id"] for e in ledger if e["event"] == "response"}
    hashes = [e["sha256"] for e in ledger if e["event"] == "request" and e["id"] in answered]
    assert len(hashes) == len(set(hashes))

    got_metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    want_metrics = json.loads((tmp_path / "reference" / "metrics.json").read_text("utf-8"))
    assert got_metrics["best_round"] == want_metrics["best_round"]
    assert got_metrics["test"]["accuracy"] == pytest.approx(want_metrics["test"]["accuracy"])
    assert not (run_dir / "checkpoints").exists()  # removed once the run finished


def test_resume_errors_are_clear(tmp_path, capsys):
    from gpta.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--resume", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "no run" in capsys.readouterr().err
    (tmp_path / "config.yaml").write_text("seed: 0\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        main(["train", "--resume", str(tmp_path)])
    assert "no complete round" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--resume", str(tmp_path), "--rounds", "4"])
    assert "takes no other options" in capsys.readouterr().err


# --- issue 18: a run is replaced safely, a failed start leaves nothing, a damaged newest
# checkpoint falls back to the older one. These replace _execute (no model is trained).

DESCRIPTION = "Short reviews labelled positive or negative."


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _data(base: Path) -> Path:
    rows = [{"text": f"review number {i}", "label": "ab"[i % 2]} for i in range(40)]
    return write_jsonl(base / "train.jsonl", rows)


def _finished_run(run_dir: Path) -> Path:
    from gpta.config import build_config, dump_config

    (run_dir / "model").mkdir(parents=True)
    dump_config(build_config({"output_dir": str(run_dir)}), run_dir / "config.yaml")
    for name in ("metrics.json", "splits.json", "model/gpta.json"):
        (run_dir / name).write_text('{"old": true}\n', encoding="utf-8")
    return mark_gpta_run(run_dir)


def _checkpoint(run_dir: Path, step: int, round_index: int, state: str | None = None) -> Path:
    path = run_dir / "checkpoints" / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "trainer_state.json").write_text("{}", encoding="utf-8")
    body = state or json.dumps({"round": round_index, "history_lines": 3, "loop": {}})
    (path / "gpta_state.json").write_text(body, encoding="utf-8")
    return path


def _fake_execute(*, fail: BaseException | None = None, checkpoint: bool = False, seen=None):
    def execute(config, run_dir, tables, task, description, **kwargs):
        if seen is not None:
            seen.append(sorted(p.name for p in run_dir.iterdir()))
        (run_dir / "history.jsonl").write_text('{"event": "new"}\n', encoding="utf-8")
        if checkpoint:
            _checkpoint(run_dir, 2, 0)
        if fail is not None:
            raise fail
        (run_dir / "model").mkdir()
        (run_dir / "model" / "gpta.json").write_text('{"new": true}\n', encoding="utf-8")
        (run_dir / "metrics.json").write_text('{"new": true}\n', encoding="utf-8")
        return "finished"

    return execute


def _train(base: Path, run_dir: Path, *, overwrite: bool = True):
    from gpta.config import build_config
    from gpta.run import train

    config = build_config(
        {
            "output_dir": str(run_dir),
            "data": {"train": str(_data(base)), "description": DESCRIPTION},
        }
    )
    return train(config, overwrite=overwrite, quiet=True)


def test_overwrite_keeps_the_old_run_until_the_new_one_has_finished(tmp_path, monkeypatch):
    import gpta.run

    run_dir = _finished_run(tmp_path / "run")
    (run_dir / "notes.txt").write_text("mine\n", encoding="utf-8")  # not gpta's: never touched
    seen: list = []
    monkeypatch.setattr(gpta.run, "_execute", _fake_execute(seen=seen))
    assert _train(tmp_path, run_dir) == "finished"
    assert ".gpta-previous" in seen[0] and "metrics.json" not in seen[0]  # moved aside, kept
    assert json.loads((run_dir / "metrics.json").read_text(encoding="utf-8")) == {"new": True}
    assert not (run_dir / ".gpta-previous").exists()  # dropped once the new run finished
    assert (run_dir / "notes.txt").read_text(encoding="utf-8") == "mine\n"
    assert json.loads((run_dir / ".gpta-run.json").read_text("utf-8"))["written_by"] == "gpta"


@pytest.mark.parametrize("failure", [RuntimeError("boom"), KeyboardInterrupt()])
def test_a_failed_start_puts_the_old_run_back_and_leaves_nothing(
    tmp_path, monkeypatch, capsys, failure
):
    import gpta.run

    run_dir = _finished_run(tmp_path / "run")
    before = _tree(run_dir)
    monkeypatch.setattr(gpta.run, "_execute", _fake_execute(fail=failure))
    with pytest.raises(type(failure)):
        _train(tmp_path, run_dir)
    assert _tree(run_dir) == before  # the replaced run is back, byte for byte
    assert sorted(p.name for p in run_dir.iterdir()) == [
        ".gpta-run.json",
        "config.yaml",
        "metrics.json",
        "model",
        "splits.json",
    ]
    if isinstance(failure, KeyboardInterrupt):
        assert "left as it was" in capsys.readouterr().err

    fresh = tmp_path / "fresh" / "run"
    with pytest.raises(type(failure)):
        _train(tmp_path, fresh, overwrite=False)
    assert not (tmp_path / "fresh").exists()  # the folders it made are gone again
    with pytest.raises(type(failure)):  # and the next run into it is not refused
        _train(tmp_path, fresh, overwrite=False)


def test_a_replacement_that_fails_after_a_round_is_resumable_and_the_old_run_stays(
    tmp_path, monkeypatch, capsys
):
    import gpta.run
    from gpta.cli import main

    run_dir = _finished_run(tmp_path / "run")
    old = _tree(run_dir)
    monkeypatch.setattr(gpta.run, "_execute", _fake_execute(fail=RuntimeError(), checkpoint=True))
    with pytest.raises(RuntimeError):
        _train(tmp_path, run_dir)
    assert (run_dir / "checkpoints").is_dir()  # resumable
    previous = run_dir / ".gpta-previous"
    assert _tree(previous) == old

    with pytest.raises(SystemExit):  # without --overwrite: refused, and says where the old run is
        main(["train", "--train", str(_data(tmp_path)), "--description", DESCRIPTION,
              "--output-dir", str(run_dir)])  # fmt: skip
    err = capsys.readouterr().err
    assert "already holds a run" in err and ".gpta-previous" in err

    monkeypatch.setattr(gpta.run, "_execute", _fake_execute())  # replace the unfinished run
    assert _train(tmp_path, run_dir) == "finished"
    assert not previous.exists() and not (run_dir / "checkpoints").exists()
    assert json.loads((run_dir / "metrics.json").read_text(encoding="utf-8")) == {"new": True}


def test_damaged_newest_checkpoint_falls_back_to_the_older(tmp_path):
    from gpta.run import latest_checkpoint

    _checkpoint(tmp_path, 2, 0)
    _checkpoint(tmp_path, 4, 1, state='{"round": 1, "histo')
    unreadable: list[str] = []
    path, state = latest_checkpoint(tmp_path, unreadable=unreadable)
    assert path.name == "checkpoint-2" and state["round"] == 0
    assert unreadable and unreadable[0].startswith("checkpoint-4: not valid JSON")
    for bad in ("[1]", '{"round": "1", "history_lines": 3, "loop": {}}', "\udcff"):
        (tmp_path / "checkpoints" / "checkpoint-4" / "gpta_state.json").write_text(
            bad, encoding="utf-8", errors="surrogateescape"
        )
        assert latest_checkpoint(tmp_path)[0].name == "checkpoint-2"
    (tmp_path / "checkpoints" / "checkpoint-2" / "trainer_state.json").write_text("{", "utf-8")
    assert latest_checkpoint(tmp_path) is None


def test_resume_on_a_finished_or_damaged_run_says_so(tmp_path, capsys):
    from gpta.cli import main

    run_dir = _finished_run(tmp_path / "run")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--resume", str(run_dir)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "is a finished run" in err and "--overwrite" not in err
    assert str(run_dir / "model") in err

    (run_dir / "metrics.json").unlink()
    _checkpoint(run_dir, 2, 0, state="{")
    with pytest.raises(SystemExit):
        main(["train", "--resume", str(run_dir)])
    err = capsys.readouterr().err
    assert "no complete round" in err and "checkpoint-2: not valid JSON" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_resume_after_a_damaged_newest_checkpoint_state(tmp_path):
    """A real run (TA not loaded: a fixed empty prefix) whose newest checkpoint state is
    damaged resumes from the older checkpoint and finishes."""
    run_dir = tmp_path / "run"
    rows = shared_rows("twitter", "train", limit=60)
    config = {
        "output_dir": str(run_dir),
        "data": {
            "train": str(write_jsonl(tmp_path / "train.jsonl", rows)),
            "description": "Tweets.",
        },
        "model": {"max_length": 32},
        "training": {"rounds": 2, "steps_per_round": 2, "batch_size": 8, "keep_checkpoints": True},
        "assistant": {"initial": "empty", "fixed_prefix": True, "max_prefix_tokens": 8},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    assert _gpta("train", "--config", str(path), "-q").returncode == 0
    newest = max((run_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name[11:]))
    (newest / "gpta_state.json").write_text('{"round": 1, "hist', encoding="utf-8")
    (run_dir / "metrics.json").unlink()  # as if killed after the last round's checkpoint
    resumed = _gpta("train", "--resume", str(run_dir), "-q")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "skipped damaged checkpoint" in resumed.stderr and "Traceback" not in resumed.stderr
    rounds = [e["round"] for e in _lines(run_dir / "history.jsonl") if e["event"] == "round"]
    assert rounds == [0, 1]
    assert (run_dir / "metrics.json").is_file()


def test_a_replacement_killed_before_it_wrote_anything(tmp_path, monkeypatch):
    import gpta.run
    from gpta.errors import GptaUserError
    from gpta.run import prepare_run_dir

    run_dir = _finished_run(tmp_path / "run")
    old = _tree(run_dir)
    prepare_run_dir(run_dir, overwrite=True)  # then SIGKILL: the old run is only moved aside
    assert _tree(run_dir / ".gpta-previous") == old
    with pytest.raises(GptaUserError, match="gpta-previous"):
        _train(tmp_path, run_dir, overwrite=False)
    assert _tree(run_dir / ".gpta-previous") == old
    monkeypatch.setattr(gpta.run, "_execute", _fake_execute())
    assert _train(tmp_path, run_dir) == "finished"
    assert not (run_dir / ".gpta-previous").exists()
