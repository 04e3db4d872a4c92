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
from conftest import shared_rows, write_jsonl

ROUNDS = 3


def _gpta(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gpta.cli", *args], capture_output=True, text=True, timeout=900
    )


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
        "training": {"rounds": ROUNDS, "batch_size": 8, "learning_rate": 1e-4},
        # no response cache: the killed run must really send its TA requests (the kill point
        # is a request in flight), and sampling with the same seed gives the same proposals
        "assistant": {
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
