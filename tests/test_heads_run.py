"""`gpta train` with the instruction-reading heads, end to end with the real local TA:
lm-verbalizer on the bundled SmolLM2, cloze on a tiny masked LM the test builds."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import TWEETS_DESCRIPTION as DESCRIPTION
from conftest import balanced as _balanced
from conftest import gpta_cli, shared_rows, write_jsonl

from gpta.bundled import resolve_model_path
from gpta.downstream.pipeline import GptaPipeline

pytestmark = pytest.mark.slow  # real gpta train runs through the CLI


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("heads-data")
    held_out = _balanced(shared_rows("twitter", "test"), 8)
    return {
        "train": write_jsonl(base / "train.jsonl", _balanced(shared_rows("twitter", "train"), 4)),
        "dev": write_jsonl(base / "dev.jsonl", held_out[:9]),
        "test": write_jsonl(base / "test.jsonl", held_out[9:18]),
    }


def _train(data: dict[str, Path], out: Path, *args: str) -> subprocess.CompletedProcess:
    return gpta_cli(
        "train",
        "--train", str(data["train"]), "--dev", str(data["dev"]), "--test", str(data["test"]),
        "--description", DESCRIPTION, "--output-dir", str(out),
        "--rounds", "2", "--epochs-per-round", "1", "--batch-size", "6", "--max-length", "96",
        "--max-prefix-tokens", "24", "--candidates", "2", "--screen-size", "6",
        "--set", "assistant.max_new_tokens=32", "--set", "assistant.library=false",
        "--set", "assistant.warmup_rounds=0", "-q",
        *args,
    )  # fmt: skip


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "history.jsonl").open(encoding="utf-8")]


def test_lm_verbalizer_run_trains_saves_and_predicts_as_evaluated(data, tmp_path):
    result = _train(data, tmp_path / "run", "--head", "lm-verbalizer", "--learning-rate", "3e-5")
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "run"
    manifest = json.loads((run_dir / "model" / "gpta.json").read_text())
    assert manifest["head"] == "lm-verbalizer" and manifest["base_model"] == "bundled:smollm2"
    assert manifest["template"] == "chat"
    rounds = [e for e in _events(run_dir) if e["event"] == "round"]
    assert len(rounds) == 2 and all(r["train_loss"] == r["train_loss"] for r in rounds)

    pipeline = GptaPipeline(run_dir, device="cpu")
    rows = [json.loads(x) for x in data["test"].open(encoding="utf-8")]
    predicted = [p["label"] for p in pipeline(rows)]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    accuracy = sum(p == r["label"] for p, r in zip(predicted, rows, strict=True)) / len(rows)
    assert accuracy == pytest.approx(metrics["test"]["accuracy"], abs=1e-6)
    # the saved weights are the fine-tuned ones, not the bundled model's
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(resolve_model_path("bundled:smollm2"))
    tuned = pipeline.model.get_input_embeddings().weight
    assert not torch.equal(tuned, base.get_input_embeddings().weight)


def test_cloze_run_asks_the_ta_for_a_template_with_the_mask_slot(data, tmp_path):
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("bundled:minilm"))
    torch.manual_seed(0)
    mlm = BertForMaskedLM(
        BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=256,
        )
    )
    model_dir = tmp_path / "tiny-mlm"
    mlm.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)

    result = _train(
        data, tmp_path / "run", "--head", "cloze", "--model", str(model_dir),
        "--learning-rate", "1e-3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "run"
    events = _events(run_dir)
    ledger = (run_dir / "exposure.jsonl").read_text(encoding="utf-8")
    assert "{mask}" in ledger  # the TA was asked for a sentence holding the slot
    accepted = [e["prefix"] for e in events if e["event"] == "proposal" and e["prefix"]]
    assert accepted and all(p.count("{mask}") == 1 for p in accepted)
    manifest = json.loads((run_dir / "model" / "gpta.json").read_text())
    assert manifest["head"] == "cloze" and manifest["slot"] == "{mask}"
    assert GptaPipeline(run_dir, device="cpu")(["what a great day"])[0]["label"] in (
        "negative",
        "neutral",
        "positive",
    )
