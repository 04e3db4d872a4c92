"""Never worse than plain fine-tuning: the mechanics (docs/never-worse.md).

The model's own pooling read from its folder and a linear-probe start; the default budget;
the warm-up round with no prefix; adoption only on a paired test; the saved model's
prefix-or-empty choice; early stopping; the majority-class baseline; a loop that adopts
nothing trains exactly like plain fine-tuning; background TA requests by backend.
Real bundled models and real data rows; no scores are asserted, only behaviour.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TWEETS_DESCRIPTION as DESCRIPTION
from conftest import balanced as _balanced
from conftest import shared_rows, write_jsonl

from gpta import train
from gpta.assistant.history import RoundRecord
from gpta.bundled import resolve_model_path
from gpta.config import AssistantConfig, TrainingConfig, build_config
from gpta.data import Table
from gpta.downstream.pipeline import GptaPipeline
from gpta.downstream.training import PrefixCollator, preserved_rng, round_budget
from gpta.modeling.pooled import PooledClassifier, Pooling, read_pooling
from gpta.progress import Progress
from gpta.run_metrics import check_majority as _check_majority
from gpta.selection import beats, paired_p_value, significantly_beats
from gpta.tasks.base import Screening
from gpta.tasks.classification import ClassificationTask


@pytest.fixture(scope="module")
def tweets() -> list[dict]:
    return _balanced(shared_rows("twitter", "train"), 8)


@pytest.fixture(scope="module")
def task(tweets) -> ClassificationTask:
    return ClassificationTask.from_tables(
        {"train": Table(source="tweets", rows=tweets)},
        text_column="text",
        label_column="label",
        max_length=64,
    )


# --- the model's own pooling and the linear-probe start -------------------------------------
def test_pooling_is_read_from_the_sentence_transformers_folder(tmp_path):
    assert read_pooling(resolve_model_path("bundled:minilm")) == Pooling("mean", True)
    assert read_pooling(tmp_path) is None  # not a sentence-transformers folder
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            ]
        )
    )
    (tmp_path / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False})
    )
    assert read_pooling(tmp_path) == Pooling("cls", False)


def test_sequence_head_embeds_as_sentence_transformers_does(task, tweets):
    from sentence_transformers import SentenceTransformer

    model, tokenizer = task.load_model("bundled:minilm")
    assert isinstance(model, PooledClassifier)
    texts = [r["text"] for r in tweets[:6]]
    ours = model.embed(**task.encode(tokenizer, texts, "")).detach()
    reference = SentenceTransformer(resolve_model_path("bundled:minilm"), device="cpu").encode(
        texts, convert_to_tensor=True
    )
    torch.testing.assert_close(ours, reference.cpu(), atol=1e-4, rtol=1e-3)


def test_linear_probe_start_predicts_as_logistic_regression(task, tweets):
    from sklearn.linear_model import LogisticRegression

    model, tokenizer = task.load_model("bundled:minilm")
    done = task.prepare_model(model, tokenizer, tweets, batch_size=8)
    assert done == {"head_init": "linear-probe", "pooling": "mean"}
    texts = [r["text"] for r in tweets]
    features = model.embed(**task.encode(tokenizer, texts, "")).detach().numpy()
    expected = LogisticRegression(max_iter=1000).fit(
        features, task._ids([r["label"] for r in tweets])
    )
    logits = task.logits(model, tokenizer, texts, "", batch_size=8)
    assert logits.argmax(-1).tolist() == expected.predict(features).tolist()


def test_pooled_model_saves_and_loads_the_same_scores(task, tweets, tmp_path):
    model, tokenizer = task.load_model("bundled:minilm")
    task.prepare_model(model, tokenizer, tweets, batch_size=8)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, loaded_tokenizer = task.load_trained(str(tmp_path))
    texts = [r["text"] for r in tweets[:5]]
    before = task.logits(model, tokenizer, texts, "a prefix", batch_size=4)
    after = task.logits(loaded, loaded_tokenizer, texts, "a prefix", batch_size=4)
    torch.testing.assert_close(before, after)


# --- the default budget ----------------------------------------------------------------------
def test_default_budget_is_the_larger_of_min_steps_and_min_epochs():
    config = TrainingConfig(batch_size=16, rounds=5, min_steps=100, min_epochs=3)
    small = round_budget(config, 64)  # 3 epochs = 12 steps: the step floor wins
    assert (small.steps_per_round, small.total_steps, small.rows_per_round) == (20, 100, 320)
    large = round_budget(config, 2000)  # 3 epochs = 375 steps
    assert large.steps_per_round == 75 and large.total_steps == 375
    assert small.rule.startswith("default")
    explicit = round_budget(TrainingConfig(rounds=2, steps_per_round=7), 64)
    assert (explicit.total_steps, explicit.rule) == (14, "steps_per_round")
    epochs = round_budget(TrainingConfig(rounds=2, epochs_per_round=2, batch_size=16), 64)
    assert (epochs.epochs_per_round, epochs.rows_per_round, epochs.steps_per_round) == (2, None, 8)


# --- adoption on a paired test -----------------------------------------------------------------
def test_a_candidate_must_beat_the_current_prefix_by_a_paired_test():
    current = Screening("now", 0.5, 1.0, tuple([1.0] * 16 + [0.0] * 16))
    # two rows better out of 32: higher, not significant
    slightly = Screening("new", 0.5625, 1.0, tuple([1.0] * 18 + [0.0] * 14))
    assert beats(slightly, current, 0.0)
    assert not significantly_beats(slightly, current, margin=0.0, alpha=0.05)
    assert significantly_beats(slightly, current, margin=0.0, alpha=1.0)  # the test turned off
    # ten rows better, none worse
    clearly = Screening("new", 0.8125, 1.0, tuple([1.0] * 26 + [0.0] * 6))
    assert significantly_beats(clearly, current, margin=0.0, alpha=0.05)
    assert not significantly_beats(clearly, current, margin=0.4, alpha=0.05)  # margin still binds
    # better on some rows, worse on as many: never
    mixed = Screening("new", 0.5, 0.9, tuple([0.0] * 8 + [1.0] * 24))
    assert not significantly_beats(mixed, current, margin=0.0, alpha=0.05)
    assert paired_p_value([1.0, 1.0], [0.0, 0.0]) == 0.0
    assert paired_p_value([0.0, 0.0], [0.0, 0.0]) == 1.0


# --- the saved model's prefix or none ------------------------------------------------------------
def test_a_round_serves_with_no_prefix_when_that_scores_at_least_as_well():
    base = {"round": 1, "prefix": "Rate the tweet.", "dev_loss": 0.9, "train_loss": 0.5}
    better_empty = RoundRecord(
        dev_score=0.6, dev_metrics={"accuracy": 0.6}, empty_dev_score=0.62, empty_dev_loss=1.0,
        empty_dev_metrics={"accuracy": 0.62}, **base,
    )  # fmt: skip
    assert better_empty.serving_prefix == ""
    assert better_empty.serving_metrics == {"accuracy": 0.62}
    assert better_empty.serving_score == (0.62, -1.0)
    tie = RoundRecord(
        dev_score=0.6, dev_metrics={}, empty_dev_score=0.6, empty_dev_loss=0.9, **base
    )
    assert tie.serving_prefix == ""  # a prefix must earn its place
    worse_empty = RoundRecord(
        dev_score=0.6,
        dev_metrics={"accuracy": 0.6},
        empty_dev_score=0.5,
        empty_dev_loss=1.0,
        **base,
    )
    assert worse_empty.serving_prefix == "Rate the tweet."
    unscored = RoundRecord(dev_score=0.6, dev_metrics={}, **base)  # fixed-prefix runs
    assert unscored.serving_prefix == "Rate the tweet."


# --- prefix mixing and the random state ---------------------------------------------------
def test_collator_mixes_the_empty_prefix_into_a_prefixed_round(task, tweets):
    tokenizer = task.load_model("bundled:minilm")[1]
    collator = PrefixCollator(task, tokenizer, "", seed=1)
    state = collator.rng.getstate()
    plain = collator(tweets)
    assert collator.rng.getstate() == state  # the no-prefix path draws nothing
    assert torch.equal(plain["input_ids"], task.collate(tweets, tokenizer, "")["input_ids"])
    collator.set_prefix("zebra zebra zebra", empty_share=0.5)
    batches = [collator(tweets[:4])["input_ids"] for _ in range(40)]
    with_prefix = [["zebra" in tokenizer.decode(ids) for ids in batch] for batch in batches]
    assert all(len(set(rows)) == 1 for rows in with_prefix)  # one prefix (or none) a batch
    assert 10 < sum(rows[0] for rows in with_prefix) < 30
    collator.set_prefix("zebra zebra zebra", empty_share=0.0)
    assert all("zebra" in tokenizer.decode(ids) for ids in collator(tweets)["input_ids"])


def test_a_round_boundary_leaves_the_training_random_state_alone():
    torch.manual_seed(0), random.seed(0), np.random.seed(0)
    expected = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(0), random.seed(0), np.random.seed(0)
    with preserved_rng():
        torch.manual_seed(123), torch.rand(50), random.random(), np.random.rand(7)
    after = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(after[0], expected[0]) and after[1:] == expected[1:]


def test_background_proposals_default_by_backend():
    assert AssistantConfig(backend="openai").in_background()
    assert not AssistantConfig(backend="local").in_background()
    assert not AssistantConfig(backend="openai", background=False).in_background()
    assert AssistantConfig(backend="local", background=True).in_background()


def test_the_majority_warning_is_plain_and_never_silenced(capsys):
    majority = {"answer": "positive", "metric": "accuracy", "dev": 0.5, "test": 0.4}
    results = {"dev": {"accuracy": 0.5}, "test": {"accuracy": 0.45}}
    assert _check_majority(majority, results, "accuracy", Progress(quiet=True)) is False
    err = capsys.readouterr().err
    assert "does not beat the majority-class baseline" in err and "'positive'" in err
    results["dev"]["accuracy"] = 0.51
    assert _check_majority(majority, results, "accuracy", Progress(quiet=True)) is True
    assert capsys.readouterr().err == ""
    assert _check_majority(None, results, "f1", Progress(quiet=True)) is None


# --- whole runs ------------------------------------------------------------------------------
def _config(tmp_path: Path, tweets: list[dict], name: str, **sections: dict) -> dict:
    held_out = _balanced(shared_rows("twitter", "test"), 8)
    data = {
        "train": str(write_jsonl(tmp_path / "train.jsonl", tweets)),
        "dev": str(write_jsonl(tmp_path / "dev.jsonl", held_out[:12])),
        "test": str(write_jsonl(tmp_path / "test.jsonl", held_out[12:])),
        "description": DESCRIPTION,
    }
    config = {
        "output_dir": str(tmp_path / name),
        "data": data,
        "model": {"max_length": 48},
        "training": {"rounds": 2, "steps_per_round": 2, "batch_size": 8, "learning_rate": 1e-4},
        "assistant": {"screen_size": 8, "max_prefix_tokens": 16, "library": False, "cache": False},
    }
    for key, values in sections.items():
        config[key] = {**config[key], **values}
    return config


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "history.jsonl").open(encoding="utf-8")]


@pytest.mark.slow
def test_a_loop_that_adopts_nothing_trains_exactly_like_plain_fine_tuning(tmp_path, tweets):
    plain = train(
        build_config(
            _config(tmp_path, tweets, "plain", assistant={"initial": "empty", "fixed_prefix": True})
        ),
        quiet=True,
    )
    # the loop: round 0 trains with no prefix; at its end the static instruction challenges
    # the empty prefix and, at this confidence, cannot be adopted on 8 rows
    loop = train(
        build_config(
            _config(
                tmp_path,
                tweets,
                "loop",
                assistant={
                    "initial": "static",
                    "static_prefix": "Is the tweet negative, neutral or positive?",
                    "adopt_confidence": 0.999999,
                },
            )
        ),
        quiet=True,
    )
    events = _events(loop.run_dir)
    selects = [e for e in events if e["event"] == "select"]
    assert selects[0]["reason"] == "warmup" and selects[0]["prefix"] == ""
    screens = [e for e in events if e["event"] == "screen"]
    assert len(screens) == 1 and screens[0]["candidates"][0]["prefix"].startswith("Is the tweet")
    assert selects[1]["prefix"] == ""  # not adopted
    assert [r.dev_score for r in loop.rounds] == [r.dev_score for r in plain.rounds]
    assert [r.train_loss for r in loop.rounds] == [r.train_loss for r in plain.rounds]
    assert loop.test_metrics == plain.test_metrics


@pytest.mark.slow
def test_the_loop_warms_up_screens_and_saves_the_better_of_prefix_and_none(tmp_path, tweets):
    result = train(
        build_config(
            _config(
                tmp_path,
                tweets,
                "run",
                training={"rounds": 3, "patience": 0},
                assistant={"candidates": 2, "max_new_tokens": 32, "adopt_confidence": 0.0},
            )
        ),
        quiet=True,
    )
    run_dir = result.run_dir
    events = _events(run_dir)
    selects = [e for e in events if e["event"] == "select"]
    assert (selects[0]["round"], selects[0]["prefix"], selects[0]["reason"]) == (0, "", "warmup")
    # no TA request before the warm-up round trained: its first proposals are screened at
    # boundary 0, against the empty prefix, with the round-0 (description-only) conversation
    proposals = [e for e in events if e["event"] == "proposal"]
    assert proposals and min(p["round"] for p in proposals) == 1
    first_screen = next(e for e in events if e["event"] == "screen")
    assert first_screen["round"] == 1 and first_screen["current"]["prefix"] == ""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for entry in metrics["rounds"]:  # a prefixed round is also scored with none
        assert (entry["empty_dev_score"] is not None) == bool(entry["prefix"])
    best = next(r for r in result.rounds if r.round == metrics["best_round"])
    assert metrics["prefix"] == best.serving_prefix
    manifest = json.loads((run_dir / "model" / "gpta.json").read_text())
    assert manifest["prefix"] == best.serving_prefix
    assert metrics["dev"]["accuracy"] == pytest.approx(
        best.empty_dev_score if best.serves_empty else best.dev_score
    )
    # the majority-class baseline, from the files themselves
    labels = [r["label"] for r in tweets]
    top = max(sorted(set(labels)), key=labels.count)
    dev_rows = [json.loads(x) for x in (tmp_path / "dev.jsonl").open()]
    majority = metrics["majority_baseline"]
    assert majority["answer"] == top
    assert majority["dev"] == pytest.approx(
        sum(r["label"] == top for r in dev_rows) / len(dev_rows)
    )
    assert metrics["beats_majority"] == (metrics["dev"]["accuracy"] > majority["dev"])
    assert metrics["budget"]["total_steps"] == 6 and metrics["budget"]["rule"] == "steps_per_round"
    pipeline = GptaPipeline(run_dir, device="cpu")
    assert pipeline.prefix == best.serving_prefix


@pytest.mark.slow
def test_early_stopping_ends_the_run_and_keeps_the_best_round(tmp_path, tweets):
    # a learning rate too small to change a weight: the dev score never improves after round 0
    result = train(
        build_config(
            _config(
                tmp_path,
                tweets,
                "run",
                training={"rounds": 6, "patience": 2, "learning_rate": 1e-30},
                assistant={"initial": "empty", "fixed_prefix": True},
            )
        ),
        quiet=True,
    )
    assert [r.round for r in result.rounds] == [0, 1, 2]
    assert result.best_round == 0
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["early_stopped"] is True and metrics["rounds_trained"] == 3
    assert any(e["event"] == "early_stop" for e in _events(result.run_dir))
