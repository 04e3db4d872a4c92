"""Training options on the real bundled encoder: prefix variety as augmentation
(``training.augment_prefixes`` / ``augment_predict``) and mixed precision."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TWEETS_DESCRIPTION as DESCRIPTION
from conftest import balanced as _balanced
from conftest import shared_rows, write_jsonl

from gpta import train
from gpta.assistant import History
from gpta.config import build_config
from gpta.data import Table
from gpta.downstream.pipeline import GptaPipeline
from gpta.downstream.training import PrefixCollator, build_trainer
from gpta.synergy import SynergyLoop
from gpta.tasks.classification import ClassificationTask


@pytest.fixture(scope="module")
def tweets() -> list[dict]:
    return _balanced(shared_rows("twitter", "train"), 8)


@pytest.fixture(scope="module")
def task_and_model(tweets):
    task = ClassificationTask.from_tables(
        {"train": Table(source="tweets", rows=tweets)},
        text_column="text",
        label_column="label",
        max_length=48,
    )
    model, tokenizer = task.load_model("bundled:minilm")
    return task, model, tokenizer


def test_collator_draws_each_row_prefix_from_the_pool(task_and_model, tweets):
    task, _, tokenizer = task_and_model
    collator = PrefixCollator(task, tokenizer, "current prefix", seed=3)
    plain = collator(tweets[:4])["input_ids"]
    assert all("current prefix" in tokenizer.decode(ids) for ids in plain)

    pool = ["rate the tweet", "what does the author feel", ""]
    collator.set_prefix("rate the tweet", pool)
    seen = set()
    for _ in range(10):
        for ids, row in zip(collator(tweets[:8])["input_ids"], tweets[:8], strict=True):
            text = tokenizer.decode(ids, skip_special_tokens=True)
            drawn = [p for p in pool[:2] if text.startswith(p)]
            seen.add(drawn[0] if drawn else "")
            row_start = tokenizer.decode(tokenizer(row["text"])["input_ids"][1:6])
            assert row_start in text  # each row keeps its own text after its drawn prefix
    assert seen == set(pool)  # every pool member, the empty prefix included, gets drawn
    collator.set_prefix("only this")  # augmentation off again: one prefix for every row
    assert all("only this" in tokenizer.decode(ids) for ids in collator(tweets[:4])["input_ids"])


def test_pool_is_top_m_screened_plus_current_and_empty(tmp_path):
    loop = SynergyLoop.__new__(SynergyLoop)
    loop.history = History(tmp_path / "history.jsonl")
    for prefix, score in [("a", 0.5), ("b", 0.7), ("c", 0.6), ("d", 0.1)]:
        loop.history.note_screened(prefix, score)
    loop.augment, loop.prefix = 2, "b"
    assert loop._pool() == ["b", "c", ""]
    loop.prefix = "d"  # the current prefix always trains, even when it screened low
    assert loop._pool() == ["d", "b", ""]
    loop.augment = 0
    assert loop._pool() == []


def test_mean_over_prefixes_averages_class_probabilities(task_and_model, tweets):
    task, model, tokenizer = task_and_model
    texts = [r["text"] for r in tweets[:6]]
    prefixes = ["rate the tweet", "what does the author feel"]
    mean = task.logits(model, tokenizer, texts, prefixes, batch_size=4).exp()
    each = [task.logits(model, tokenizer, texts, p, batch_size=4).softmax(-1) for p in prefixes]
    assert torch.allclose(mean, (each[0] + each[1]) / 2, atol=1e-5)


@pytest.mark.slow
def test_augmented_run_saves_its_prefixes_and_predicts_with_their_mean(tmp_path, tweets):
    held_out = _balanced(shared_rows("twitter", "test"), 8)
    config = build_config(
        {
            "output_dir": str(tmp_path / "run"),
            "data": {
                "train": str(write_jsonl(tmp_path / "train.jsonl", tweets)),
                "dev": str(write_jsonl(tmp_path / "dev.jsonl", held_out[:12])),
                "test": str(write_jsonl(tmp_path / "test.jsonl", held_out[12:])),
                "description": DESCRIPTION,
            },
            "model": {"max_length": 48},
            "training": {
                "epochs_per_round": 1,
                "rounds": 2,
                "batch_size": 8,
                "learning_rate": 1e-4,
                "augment_prefixes": 3,
                "augment_predict": "mean",
            },
            "assistant": {
                "warmup_rounds": 0,  # the TA's first prefix trains from round 0: a pool to save
                "candidates": 3,
                "screen_size": 8,
                "max_new_tokens": 32,
                "max_prefix_tokens": 16,
                "library": False,
            },
        }
    )
    result = train(config, quiet=True)
    manifest = json.loads((result.run_dir / "model" / "gpta.json").read_text())
    prefixes = manifest["predict_prefixes"]
    assert prefixes and "" not in prefixes and len(prefixes) <= 3
    assert manifest["prefix"] in prefixes  # the best round's prefix trained in its pool
    events = [json.loads(x) for x in (result.run_dir / "history.jsonl").open(encoding="utf-8")]
    known = {e["prefix"] for e in events if e["event"] in ("select", "round")}
    known |= {c["prefix"] for e in events if e["event"] == "screen" for c in e["candidates"]}
    assert set(prefixes) <= known

    pipeline = GptaPipeline(result.run_dir, device="cpu")
    assert pipeline.prefixes == prefixes
    rows = [json.loads(x) for x in (tmp_path / "test.jsonl").open(encoding="utf-8")]
    evaluation = pipeline.evaluate(rows)
    assert evaluation.metrics["accuracy"] == result.test_metrics["accuracy"]
    texts = [r["text"] for r in rows]
    task, model, tokenizer = pipeline.task, pipeline.model, pipeline.tokenizer
    each = [task.logits(model, tokenizer, texts, p, batch_size=8).softmax(-1) for p in prefixes]
    expected = torch.stack(each).mean(0).argmax(-1).tolist()
    assert evaluation.predictions == [task.labels[i] for i in expected]


@pytest.mark.slow
def test_bf16_mixed_precision_reaches_the_trainer_and_trains(task_and_model, tweets, tmp_path):
    task, model, tokenizer = task_and_model
    config = build_config(
        {"training": {"mixed_precision": "bf16", "batch_size": 8, "epochs_per_round": 1}}
    ).training
    losses: list[float | None] = []
    trainer, _ = build_trainer(
        model=model,
        tokenizer=tokenizer,
        task=task,
        rows=tweets,
        config=config,
        rounds=1,
        seed=0,
        device="cpu",
        checkpoint_dir=str(tmp_path / "ckpt"),
        prefix="",
        show_progress=False,
        on_round_end=lambda _r, _m, loss: losses.append(loss),
    )
    assert trainer.accelerator.mixed_precision == "bf16"
    trainer.train()
    assert len(losses) == 1 and losses[0] is not None and losses[0] == losses[0]  # not NaN


@pytest.mark.slow
def test_background_ta_answers_while_the_next_round_trains(tmp_path, tweets):
    held_out = _balanced(shared_rows("twitter", "test"), 8)
    config = build_config(
        {
            "output_dir": str(tmp_path / "run"),
            "data": {
                "train": str(write_jsonl(tmp_path / "train.jsonl", tweets)),
                "dev": str(write_jsonl(tmp_path / "dev.jsonl", held_out[:12])),
                "test": str(write_jsonl(tmp_path / "test.jsonl", held_out[12:])),
                "description": DESCRIPTION,
            },
            "model": {"max_length": 48},
            "training": {
                "epochs_per_round": 1,
                "rounds": 4,
                "batch_size": 8,
                "learning_rate": 1e-4,
            },
            "assistant": {
                "background": True,
                "cache": False,
                "candidates": 2,
                "screen_size": 8,
                "max_new_tokens": 32,
                "max_prefix_tokens": 16,
                "library": False,
            },
        }
    )
    result = train(config, quiet=True)
    run_dir = result.run_dir
    events = [json.loads(x) for x in (run_dir / "history.jsonl").open(encoding="utf-8")]
    # the description-only request is answered during the warm-up round (asked "after round
    # -1") and screened at boundary 0; boundaries 1 and 2 screen what boundaries 0 and 1 asked
    background = [e for e in events if e["event"] == "ta_background"]
    assert [(e["round"], e["asked_after_round"]) for e in background] == [(1, -1), (2, 0), (3, 1)]
    for round_index in (1, 2, 3):
        assert any(e["event"] == "proposal" and e["round"] == round_index for e in events)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["ta_requests"] == 3  # every one in the background: none waited for first
    # request k leaves after round k's prefix was selected and before the boundary that
    # ends round k (which selects the prefix of round k+1) screens it. Only the causal order
    # is asserted: whether the thread sends before the main thread finishes logging its own
    # boundary is thread timing (history times are also rounded to a millisecond)
    ledger = [json.loads(x) for x in (run_dir / "exposure.jsonl").open(encoding="utf-8")]
    sent = sorted(e["time"] for e in ledger if e.get("event") == "request")
    selected = {e["round"]: e["time"] for e in events if e["event"] == "select"}
    assert len(sent) == 3
    assert selected[0] - 0.001 <= sent[0] < selected[1] + 0.001  # during the warm-up round
    assert sent[1] < selected[2] + 0.001 and selected[1] - 0.001 <= sent[2] < selected[3] + 0.001
    assert [r.round for r in result.rounds] == [0, 1, 2, 3]
