"""The whole classification path with the real bundled models on real tweets:
`gpta train` (2 rounds, real local TA) -> run directory -> `gpta predict` / `gpta eval`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import TWEETS_DESCRIPTION as DESCRIPTION
from conftest import balanced as _balanced
from conftest import gpta_cli as _gpta
from conftest import shared_rows, write_jsonl

from gpta import load_config, load_pipeline

pytestmark = pytest.mark.slow  # one real 2-round run through the CLI


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("e2e")
    train = write_jsonl(base / "train.jsonl", _balanced(shared_rows("twitter", "train"), 16))
    held_out = _balanced(shared_rows("twitter", "test"), 16)
    dev = write_jsonl(base / "dev.jsonl", held_out[:24])
    test = write_jsonl(base / "test.jsonl", held_out[24:])
    config = {
        "output_dir": str(base / "run"),
        "data": {
            "train": str(train),
            "dev": str(dev),
            "test": str(test),
            "description": DESCRIPTION,
        },
        "model": {"max_length": 64},
        "training": {"rounds": 2, "epochs_per_round": 1, "batch_size": 8, "learning_rate": 1e-4},
        "assistant": {
            # the paper's order: round 0 trains with the TA's first proposal (the default
            # warm-up round is tested in test_never_worse.py), any screened win adopted
            "warmup_rounds": 0,
            "adopt_confidence": 0.0,
            "candidates": 3,
            "screen_size": 16,
            "max_new_tokens": 40,
            "max_prefix_tokens": 24,
        },
    }
    config_path = base / "run.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = _gpta("train", "--config", str(config_path))
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = base / "run"
    return {
        "dir": run_dir,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "test": test,
        "train": train,
        "config": config_path,
    }


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "history.jsonl").open(encoding="utf-8")]


def test_train_prints_table_and_run_dir(run):
    assert str(run["dir"]) in run["stdout"]
    assert "dev accuracy" in run["stdout"]
    assert "TA" in run["stderr"] and "(2 of 2) done" in run["stderr"]  # progress was shown


def test_history_records_rounds_proposals_and_screening(run):
    events = _events(run["dir"])
    rounds = [e for e in events if e["event"] == "round"]
    assert [r["round"] for r in rounds] == [0, 1]
    for r in rounds:
        assert 0.0 <= r["dev_score"] <= 1.0 and r["train_loss"] > 0
    proposals = [e for e in events if e["event"] == "proposal"]
    assert {p["round"] for p in proposals} == {0, 1}
    assert len([p for p in proposals if p["round"] == 0]) == 3
    for p in proposals:
        assert p["valid"] == (p["prefix"] is not None)
        assert p["valid"] or p["reason"]
    screen = [e for e in events if e["event"] == "screen"]
    assert len(screen) == 1 and screen[0]["round"] == 1
    current = screen[0]["current"]
    assert current["prefix"] == rounds[0]["prefix"]
    screened_prefixes = {c["prefix"] for c in screen[0]["candidates"]}
    # the empty prefix is always a legal candidate: a challenger unless it is the current one
    assert current["prefix"] not in screened_prefixes
    assert ("" in screened_prefixes) == (current["prefix"] != "")
    selects = [e for e in events if e["event"] == "select"]
    assert [s["round"] for s in selects] == [0, 1]
    # round 1 trained with the prefix chosen for it
    assert rounds[1]["prefix"] == selects[1]["prefix"]
    # keep-unless-better: round 1 keeps the current prefix, or takes a screened candidate
    # that scored at least as well
    scores = {c["prefix"]: c["score"] for c in [current, *screen[0]["candidates"]]}
    assert selects[1]["prefix"] in scores
    assert scores[selects[1]["prefix"]] >= current["score"]


def test_manifest_and_metrics(run):
    run_dir = run["dir"]
    manifest = json.loads((run_dir / "model" / "gpta.json").read_text(encoding="utf-8"))
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    rounds = [e for e in _events(run_dir) if e["event"] == "round"]

    def serving(r: dict) -> tuple[tuple[float, float], str]:
        """(score, -loss) and prefix of the round's model as saved: its prefix or none."""
        own = (r["dev_score"], -r["dev_loss"])
        if r.get("empty_dev_score") is not None:
            empty = (r["empty_dev_score"], -r["empty_dev_loss"])
            if empty >= own:
                return empty, ""
        return own, r["prefix"]

    best = max(rounds, key=lambda r: serving(r)[0])
    assert manifest["task"] == "classification"
    assert manifest["labels"] == ["negative", "neutral", "positive"]
    assert manifest["best_round"] == best["round"] == metrics["best_round"]
    assert manifest["prefix"] == serving(best)[1] == metrics["prefix"]
    assert manifest["metrics"]["test"]["accuracy"] == metrics["test"]["accuracy"]
    # the saved model, reloaded, scores dev exactly as during training
    assert metrics["dev"]["accuracy"] == pytest.approx(serving(best)[0][0])
    assert {"torch", "transformers", "gpta"} <= set(manifest["versions"])
    assert (run_dir / "model" / "config.json").is_file()
    assert (run_dir / "model" / "tokenizer.json").is_file()
    assert load_config(run_dir / "config.yaml").training.rounds == 2


def test_ledger_holds_every_request_and_no_training_row(run):
    run_dir = run["dir"]
    records = [json.loads(line) for line in (run_dir / "exposure.jsonl").open(encoding="utf-8")]
    requests = [r for r in records if r["event"] == "request"]
    responses = {r["id"] for r in records if r["event"] == "response"}
    assert len(requests) == 2  # round 0 and round 1
    assert {r["id"] for r in requests} == responses
    train_texts = [json.loads(line)["text"] for line in run["train"].open(encoding="utf-8")]
    for request in requests:
        assert request["row_ids"] == []
        sent = " ".join(m["content"] for m in request["messages"])
        assert DESCRIPTION in sent
        assert not any(text in sent for text in train_texts)


def test_predict_equals_training_time_evaluation(run):
    run_dir = run["dir"]
    expected = [
        json.loads(line)["prediction"]
        for line in (run_dir / "predictions" / "test.jsonl").open(encoding="utf-8")
    ]
    result = _gpta("predict", "--model", str(run_dir), "--input", str(run["test"]))
    assert result.returncode == 0, result.stderr
    got = [json.loads(line)["label"] for line in result.stdout.splitlines()]
    assert got == expected

    texts = [json.loads(line)["text"] for line in run["test"].open(encoding="utf-8")]
    pipeline = load_pipeline(run_dir)
    assert [p["label"] for p in pipeline(texts)] == expected
    for p in pipeline(texts[:3]):
        assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)

    result = _gpta("eval", "--model", str(run_dir / "model"), "--data", str(run["test"]))
    assert result.returncode == 0, result.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert json.loads(result.stdout)["accuracy"] == pytest.approx(metrics["test"]["accuracy"])


def test_predict_from_stdin_text_lines(run):
    result = _gpta(
        "predict",
        "--model",
        str(run["dir"]),
        "--input",
        "-",
        stdin="what a great day\nworst flight ever\n",
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["row"] for r in rows] == ["line 1", "line 2"]
    assert all(r["label"] in {"negative", "neutral", "positive"} for r in rows)


def test_existing_run_dir_is_not_overwritten(run):
    result = _gpta("train", "--config", str(run["config"]))
    assert result.returncode == 2
    assert "already holds a run" in result.stderr and "--overwrite" in result.stderr
    assert "Traceback" not in result.stderr
