"""Several processes (torchrun, gloo on CPU): a real 2-process `gpta train`, the prefix
broadcast and its assertion, and sharded scoring equal to single-process scoring."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TWEETS_DESCRIPTION as DESCRIPTION
from conftest import balanced as _balanced
from conftest import gpta_cli, shared_rows, write_jsonl

from gpta.tasks.classification import ClassificationTask

PREFIXES = [
    "",
    "Classify the sentiment of this tweet.",
    "Is this tweet negative, neutral or positive?",
]


def _env() -> dict[str, str]:
    # one thread per process: two processes share the two cores
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _torchrun(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
    )


def _task(rows: list[dict]) -> ClassificationTask:
    from gpta.data import Table

    table = Table(rows=rows, source="rows", locations=[f"row {i}" for i in range(len(rows))])
    return ClassificationTask.from_tables(
        {"train": table}, text_column="text", label_column="label", max_length=64
    )


# --- the collective helpers, in two real processes ----------------------------------------------
SCRIPT = textwrap.dedent(
    """
    import json, sys, torch
    from gpta.distributed import RankMismatchError, init_ranks, shutdown_ranks
    ranks = init_ranks("cpu")
    out = {"rank": ranks.rank, "world": ranks.world}
    out["broadcast"] = ranks.broadcast({"prefix": "chosen by main"} if ranks.is_main else None)
    out["shard"] = ranks.shard(list(range(7)))
    out["gathered"] = ranks.gather_shards([x * 10 for x in ranks.shard(list(range(7)))], 7)
    ranks.assert_same(out["broadcast"], "the broadcast prefix")
    try:
        ranks.assert_same(f"prefix of rank {ranks.rank}", "the prefix of the next round")
        out["mismatch"] = None
    except RankMismatchError as err:
        out["mismatch"] = str(err)
    with open(sys.argv[1] + f".{ranks.rank}.json", "w") as handle:
        json.dump(out, handle)
    shutdown_ranks()
    """
)


@pytest.mark.slow
def test_broadcast_shard_gather_and_the_prefix_assertion(tmp_path):
    script = tmp_path / "collective.py"
    script.write_text(SCRIPT, encoding="utf-8")
    result = _torchrun(str(script), str(tmp_path / "out"), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    outs = [json.loads((tmp_path / f"out.{r}.json").read_text()) for r in range(2)]
    assert [o["world"] for o in outs] == [2, 2]
    assert all(o["broadcast"] == {"prefix": "chosen by main"} for o in outs)
    assert outs[0]["shard"] == [0, 2, 4, 6] and outs[1]["shard"] == [1, 3, 5]
    assert all(o["gathered"] == [x * 10 for x in range(7)] for o in outs)
    for o in outs:  # every process raises, naming what differs on which rank
        assert o["mismatch"] is not None
        assert "the prefix of the next round" in o["mismatch"]
        assert "prefix of rank 0" in o["mismatch"] and "prefix of rank 1" in o["mismatch"]


# --- sharded scoring == unsharded scoring ---------------------------------------------------------
SCORING_SCRIPT = textwrap.dedent(
    """
    import json, sys, torch
    sys.path.insert(0, sys.argv[2])
    from test_distributed import PREFIXES, _scoring_setup
    from gpta.distributed import init_ranks, shutdown_ranks
    from gpta.synergy import SynergyLoop
    ranks = init_ranks("cpu")
    task, model, tokenizer, rows = _scoring_setup()
    loop = SynergyLoop.__new__(SynergyLoop)  # only its sharded scoring helpers are used
    loop.task, loop.tokenizer, loop.ranks, loop.eval_batch_size = task, tokenizer, ranks, 8
    loop.dev_rows, loop.screen_rows = rows, rows
    loop.screener = None  # selection.prefix dev: the sharded forward passes are under test
    screened = loop._screen_many(model, PREFIXES)
    evaluation = loop._evaluate(model, PREFIXES[1])
    out = {
        "shard_size": len(ranks.shard(rows)),
        "screened": [[s.prefix, s.score, s.loss] for s in screened],
        "eval": [evaluation.score, evaluation.loss, evaluation.predictions],
    }
    with open(sys.argv[1] + f".{ranks.rank}.json", "w") as handle:
        json.dump(out, handle)
    shutdown_ranks()
    """
)


def _scoring_setup():
    rows = _balanced(shared_rows("twitter", "test"), 7)  # 21 rows: uneven shards
    task = _task(rows)
    torch.manual_seed(0)  # the same random classification head in every process
    model, tokenizer = task.load_model("bundled:minilm")
    return task, model, tokenizer, rows


@pytest.mark.slow
def test_sharded_screening_and_evaluation_equal_one_process(tmp_path):
    script = tmp_path / "scoring.py"
    script.write_text(SCORING_SCRIPT, encoding="utf-8")
    result = _torchrun(str(script), str(tmp_path / "out"), str(Path(__file__).parent), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    outs = [json.loads((tmp_path / f"out.{r}.json").read_text()) for r in range(2)]
    assert [o["shard_size"] for o in outs] == [11, 10]
    assert outs[0]["screened"] == outs[1]["screened"] and outs[0]["eval"] == outs[1]["eval"]

    task, model, tokenizer, rows = _scoring_setup()
    single = [task.screen(model, tokenizer, rows, p, batch_size=8) for p in PREFIXES]
    for (prefix, score, loss), expected in zip(outs[0]["screened"], single, strict=True):
        assert prefix == expected.prefix
        assert score == expected.score
        assert loss == pytest.approx(expected.loss, rel=1e-4)
    evaluation = task.evaluate(model, tokenizer, rows, PREFIXES[1], batch_size=8)
    score, loss, predictions = outs[0]["eval"]
    assert score == evaluation.score and predictions == evaluation.predictions
    assert loss == pytest.approx(evaluation.loss, rel=1e-4)


def test_batched_screening_equals_one_pass_per_prefix():
    task, model, tokenizer, rows = _scoring_setup()
    batched = task.screen_many(model, tokenizer, rows, PREFIXES, batch_size=8)
    for result, prefix in zip(batched, PREFIXES, strict=True):
        alone = task.screen(model, tokenizer, rows, prefix, batch_size=8)
        assert result.prefix == prefix and result.score == alone.score
        assert result.loss == pytest.approx(alone.loss, rel=1e-4)
    # the prefixes do change the scores: the batched pass kept each row with its own prefix
    assert len({round(r.loss, 6) for r in batched}) == len(PREFIXES)


# --- a real 2-process `gpta train` ----------------------------------------------------------------
def _config(base: Path, name: str) -> Path:
    train = write_jsonl(base / "train.jsonl", _balanced(shared_rows("twitter", "train"), 8))
    held_out = _balanced(shared_rows("twitter", "test"), 8)
    dev = write_jsonl(base / "dev.jsonl", held_out[:12])
    test = write_jsonl(base / "test.jsonl", held_out[12:])
    config = {
        "output_dir": str(base / name),
        "device": "cpu",
        "data": {
            "train": str(train),
            "dev": str(dev),
            "test": str(test),
            "description": DESCRIPTION,
        },
        "model": {"max_length": 48},
        "training": {
            "epochs_per_round": 1,
            "rounds": 2,
            "batch_size": 4,
            "learning_rate": 1e-4,
            "keep_checkpoints": True,
        },
        "assistant": {
            "warmup_rounds": 0,
            "candidates": 2,
            "screen_size": 8,
            "max_new_tokens": 32,
            "max_prefix_tokens": 16,
            "library": False,
        },
    }
    path = base / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _tree(run_dir: Path) -> set[str]:
    return {
        str(p.relative_to(run_dir))
        for p in run_dir.rglob("*")
        if "checkpoint-" not in str(p) and not p.name.startswith("rng_state")
    }


@pytest.mark.slow
def test_torchrun_two_processes_train_like_one(tmp_path):
    two = _torchrun("-m", "gpta.cli", "train", "--config", str(_config(tmp_path, "ddp")), "-q")
    assert two.returncode == 0, two.stderr[-4000:]
    one = gpta_cli("train", "--config", str(_config(tmp_path, "single")), "-q", env=_env())
    assert one.returncode == 0, one.stderr[-4000:]
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    assert _tree(ddp) == _tree(single)  # the same kind of run directory

    events = [json.loads(line) for line in (ddp / "history.jsonl").open(encoding="utf-8")]
    rounds = [e for e in events if e["event"] == "round"]
    assert [r["round"] for r in rounds] == [0, 1]  # written once, by the main process only
    selects = [e for e in events if e["event"] == "select"]
    assert [s["round"] for s in selects] == [0, 1]
    assert rounds[1]["prefix"] == selects[1]["prefix"]  # trained on the prefix it chose
    metrics = json.loads((ddp / "metrics.json").read_text())
    ledger = (ddp / "exposure.jsonl").read_text(encoding="utf-8").splitlines()
    assert metrics["ta_requests"] >= 2 and len(ledger) >= metrics["ta_requests"]
    test_rows = len((tmp_path / "test.jsonl").read_text().splitlines())
    predictions = (ddp / "predictions" / "test.jsonl").read_text().splitlines()
    assert len(predictions) == test_rows  # the sharded evaluation gathered every row
    # both processes trained: global batch 2 x 4 -> half the optimizer steps of one process
    states = sorted((ddp / "checkpoints").glob("checkpoint-*"))
    steps = sorted(int(p.name.split("-")[1]) for p in states)
    single_steps = sorted(
        int(p.name.split("-")[1]) for p in (single / "checkpoints").glob("checkpoint-*")
    )
    assert steps[-1] * 2 == single_steps[-1]
    assert sorted(p.name for p in states[-1].glob("rng_state*")) == [
        "rng_state_0.pth",
        "rng_state_1.pth",
    ]
    assert (states[-1] / "gpta_state.json").is_file()

    # a crash after round 0: its checkpoint survives, the rest is gone; resume with torchrun
    shutil.rmtree(states[-1])
    for name in ("metrics.json", "predictions"):
        target = ddp / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    resumed = _torchrun("-m", "gpta.cli", "train", "--resume", str(ddp), "-q")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    events = [json.loads(line) for line in (ddp / "history.jsonl").open(encoding="utf-8")]
    assert [e["round"] for e in events if e["event"] == "round"] == [0, 1]
    assert len((ddp / "predictions" / "test.jsonl").read_text().splitlines()) == test_rows
    assert json.loads((ddp / "metrics.json").read_text())["best_round"] in (0, 1)
