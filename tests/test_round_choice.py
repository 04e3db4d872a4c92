"""Issue 27, point 4: the prefix and the round kept chosen by cross-validation over the user's
own labelled rows (``selection``), not by a handful of dev rows split off them."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from conftest import TWEETS_DESCRIPTION, shared_rows, write_jsonl

from gpta import round_choice
from gpta.config import build_config
from gpta.errors import GptaUserError
from gpta.progress import Progress
from gpta.round_choice import RoundChoice, RunSelection, choose_rounds, chosen_rounds
from gpta.run import dev_source, dev_split_off_labelled, load_data
from gpta.tasks import build_task


def _tweets(per_class: int) -> list[dict]:
    rows, counts = [], Counter()
    for row in shared_rows("twitter", "train", 600):
        if counts[row["label"]] < per_class:
            rows.append(row)
            counts[row["label"]] += 1
    return rows


def _config(tmp_path, rows, *, data=None, **sections):
    train = write_jsonl(tmp_path / "data" / "train.jsonl", rows)
    test = write_jsonl(tmp_path / "data" / "test.jsonl", rows[:6])
    return build_config(
        {
            "output_dir": str(tmp_path / "run"),
            "data": {
                "train": str(train),
                "test": str(test),
                "description": TWEETS_DESCRIPTION,
                **(data or {}),
            },
            "model": {"max_length": 96},
            "assistant": {"cache": False},
            **sections,
            # best_round's default is dev (measured: docs/selection.md); these tests are
            # about auto and cv, so they ask for auto unless they say otherwise
            "selection": {"best_round": "auto", **sections.get("selection", {})},
        }
    )


def test_the_defaults_screen_prefixes_by_auto_and_choose_the_round_on_dev(tmp_path):
    config = build_config({"data": {"train": "t.jsonl", "description": TWEETS_DESCRIPTION}})
    assert (config.selection.prefix, config.selection.best_round) == ("auto", "dev")


def _resolved(config):
    tables = load_data(config)
    selection = RunSelection.resolve(
        config, tables, split_off=dev_split_off_labelled(config, tables)
    )
    return tables, selection


# --- auto ----------------------------------------------------------------------------------


def test_auto_is_cv_when_the_dev_rows_are_split_off_the_only_labelled_rows(tmp_path):
    config = _config(tmp_path, _tweets(8))
    tables, selection = _resolved(config)
    assert (selection.prefix, selection.best_round) == ("cv", "cv")
    assert len(selection.labelled) == len(tables["train"]) + len(tables["dev"]) == 24
    assert selection.where == f"24 labelled rows (train {len(tables['train'])} + dev 4)"
    assert "outside" not in dev_source(config, tables)


def test_auto_is_cv_when_train_size_takes_every_row_left(tmp_path):
    config = _config(tmp_path, _tweets(8), data={"train_size": 1.0})
    _, selection = _resolved(config)
    assert (selection.prefix, selection.best_round) == ("cv", "cv")


def test_auto_is_dev_above_cv_max_rows(tmp_path):
    config = _config(tmp_path, _tweets(8), selection={"cv_max_rows": 23})
    tables, selection = _resolved(config)
    assert len(tables["train"]) + len(tables["dev"]) == 24  # one row above the limit
    assert (selection.prefix, selection.best_round) == ("dev", "dev")
    config = _config(tmp_path, _tweets(8), selection={"cv_max_rows": 24})
    assert _resolved(config)[1].best_round == "cv"


def test_auto_is_dev_when_rows_are_left_outside_the_sample(tmp_path):
    config = _config(tmp_path, _tweets(20), data={"train_size": 12})
    tables, selection = _resolved(config)
    assert tables["train"].unsampled > 0
    assert (selection.prefix, selection.best_round) == ("dev", "dev")
    assert "outside the 12 sampled for training" in dev_source(config, tables)
    assert selection.lines() == ["prefix screening: dev rows", "best round: the best dev score"]


def test_auto_is_dev_with_a_dev_file_and_explicit_modes_stay(tmp_path):
    rows = _tweets(8)
    dev = write_jsonl(tmp_path / "data" / "dev.jsonl", rows[:9])
    config = _config(tmp_path, rows, data={"dev": str(dev)})
    _, selection = _resolved(config)
    assert (selection.prefix, selection.best_round) == ("dev", "dev")
    config = _config(
        tmp_path, rows, data={"dev": str(dev)}, selection={"prefix": "cv", "best_round": "last"}
    )
    _, selection = _resolved(config)
    assert (selection.prefix, selection.best_round) == ("cv", "last")
    assert selection.keeps_last and selection.training_rows(load_data(config)) != []


def test_other_task_families_choose_on_dev(tmp_path):
    config = _config(tmp_path, _tweets(8))
    qa = config.model_copy(update={"task": "qa"})
    _, selection = _resolved(qa)
    assert (selection.prefix, selection.best_round) == ("dev", "dev")
    with pytest.raises(GptaUserError, match=r"selection\.best_round=cv applies to task"):
        build_config({"task": "qa", "selection": {"best_round": "cv"}})


# --- the round chosen ----------------------------------------------------------------------


def test_the_round_with_the_best_out_of_fold_accuracy_wins_and_ties_go_to_the_later():
    assert chosen_rounds([0.5, 0.7, 0.7, 0.6]) == 3
    assert chosen_rounds([0.6, 0.5, 0.6]) == 3
    assert chosen_rounds([0.625] * 5) == 5  # a flat curve keeps the whole schedule
    assert chosen_rounds([0.7, 0.5, 0.6]) == 1
    assert chosen_rounds([0.4]) == 1
    assert chosen_rounds([0.1, 0.2, 0.3]) == 3
    with pytest.raises(ValueError):
        chosen_rounds([])


def test_every_labelled_row_is_held_out_once_and_scored_per_round(tmp_path, monkeypatch):
    config = _config(tmp_path, _tweets(8), training={"rounds": 3})
    tables, selection = _resolved(config)
    task = build_task(config, tables)
    rows = selection.labelled
    # each row's made-up correctness per round: round 2 (index 1) is the best overall
    truth = {r["text"]: [i % 2, 1, (i + 1) % 2] for i, r in enumerate(rows)}
    held_out: list[str] = []

    def fake_fold(config, task, train_rows, held_rows, *, device):
        texts = {r["text"] for r in train_rows}
        assert not texts & {r["text"] for r in held_rows}  # a held-out row never trains
        held_out.extend(r["text"] for r in held_rows)
        return np.array([truth[r["text"]] for r in held_rows], dtype=float).T

    monkeypatch.setattr(round_choice, "_fold_training", fake_fold)
    choice = choose_rounds(config, task, rows, where=selection.where, device="cpu")
    assert sorted(held_out) == sorted(r["text"] for r in rows)  # each row held out once
    expected = np.array([truth[r["text"]] for r in rows], dtype=float).mean(axis=0)
    assert choice.accuracies == pytest.approx(list(expected))
    assert choice.rounds == 2 and choice.folds == selection.k == 4 and choice.rows == 24
    assert choice.line().startswith("best round: 4-fold cross-validation over the 24 labelled")


def test_a_resumed_run_reads_the_choice_from_its_checkpoint(tmp_path, monkeypatch):
    config = _config(tmp_path, _tweets(8))
    _, selection = _resolved(config)
    recorded = RoundChoice(2, [0.5, 0.6, 0.55], 4, 24, 1.0, selection.where).record()

    def refuse(*args, **kwargs):
        raise AssertionError("a resumed run does not cross-validate again")

    monkeypatch.setattr(round_choice, "choose_rounds", refuse)
    resumed = {"selection": {"best_round": recorded}}
    selection.choose_rounds(config, None, [], resumed, Progress(quiet=True), "cpu")
    assert selection.rounds is not None and selection.rounds.rounds == 2
    assert selection.record()["best_round"]["out_of_fold_accuracy"] == [0.5, 0.6, 0.55]


# --- with the tiny model -------------------------------------------------------------------


@pytest.mark.slow
def test_prefix_cross_validation_scores_every_labelled_row_once_with_0_1_rows(tmp_path):
    from gpta.prefix_cv import PrefixCrossValidation

    config = _config(tmp_path, _tweets(4))
    tables, selection = _resolved(config)
    task = build_task(config, tables)
    model, tokenizer = task.load_model(config.model.resolved_name(config.task))
    screener = PrefixCrossValidation(
        task, tokenizer, selection.labelled, folds=4, seed=config.seed, batch_size=8
    )
    flat = sorted(i for fold in screener.folds for i in fold)
    assert flat == list(range(len(selection.labelled))) == list(range(screener.rows))
    prefixes = ["", "Decide whether the tweet is negative, neutral or positive."]
    screened = screener(model, prefixes)
    assert [s.prefix for s in screened] == prefixes
    for screening in screened:
        assert len(screening.rows) == 12 and set(screening.rows) <= {0.0, 1.0}
        assert screening.score == pytest.approx(sum(screening.rows) / 12)
    # the prefix reaches the embeddings: the two prefixes embed the rows differently
    assert not np.allclose(screener.embed(model, prefixes[0]), screener.embed(model, prefixes[1]))


@pytest.mark.slow
def test_best_round_cv_trains_the_final_model_on_every_labelled_row(tmp_path, monkeypatch):
    from gpta import recipe, run

    config = _config(
        tmp_path,
        _tweets(6),
        training={"rounds": 2, "steps_per_round": 1, "batch_size": 8},
        assistant={"cache": False, "initial": "empty", "fixed_prefix": True},
        cards={"folds": 2},
    )
    tables = load_data(config)
    trained: list[list[dict]] = []
    build = recipe.build_trainer

    def spy(**kwargs):
        trained.append(kwargs["rows"])
        return build(**kwargs)

    monkeypatch.setattr(recipe, "build_trainer", spy)
    run.train(config, quiet=True)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    chosen = metrics["selection"]["best_round"]
    assert chosen["mode"] == "cv" and chosen["folds"] == 2 and chosen["rows"] == 18
    assert len(chosen["out_of_fold_accuracy"]) == 2
    assert chosen["chosen_rounds"] == chosen_rounds(chosen["out_of_fold_accuracy"])
    assert metrics["rounds_trained"] == chosen["chosen_rounds"]
    assert metrics["best_round"] == chosen["chosen_rounds"] - 1  # the last round trained
    assert metrics["selection"]["dev_rows_trained_on"] is True
    (final,) = trained  # the fold trainings are not the run's trainer
    texts = sorted(r["text"] for r in final)
    assert texts == sorted(r["text"] for r in [*tables["train"].rows, *tables["dev"].rows])


@pytest.mark.slow
def test_a_cv_run_resumes_with_its_chosen_round_count(tmp_path, monkeypatch):
    import shutil

    from gpta import run

    config = _config(
        tmp_path,
        _tweets(6),
        training={"rounds": 3, "steps_per_round": 1, "batch_size": 8, "keep_checkpoints": True},
        assistant={"cache": False, "initial": "empty", "fixed_prefix": True},
        cards={"folds": 2},
    )

    def fold(config, task, train_rows, held_rows, *, device):  # round 2 of 3 is the best
        return np.array([[0.0] * len(held_rows), [1.0] * len(held_rows), [0.0] * len(held_rows)])

    monkeypatch.setattr(round_choice, "_fold_training", fold)
    run.train(config, quiet=True)
    run_dir = tmp_path / "run"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["selection"]["best_round"]["chosen_rounds"] == 2
    assert metrics["rounds_trained"] == 2 and metrics["best_round"] == 1
    states = sorted((run_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name[11:]))
    assert len(states) == 2  # stopped after the chosen round, not the schedule's third
    state = json.loads((states[-1] / "gpta_state.json").read_text())
    assert state["selection"]["best_round"]["chosen_rounds"] == 2

    # a crash after round 0: resume reads the choice, trains round 1 only, and stops there
    shutil.rmtree(states[-1])
    for name in ("metrics.json", "predictions"):
        target = run_dir / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    def refuse(*args, **kwargs):
        raise AssertionError("a resumed run does not cross-validate again")

    monkeypatch.setattr(round_choice, "_fold_training", refuse)
    run.resume(run_dir, quiet=True)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["rounds_trained"] == 2 and metrics["best_round"] == 1
    assert metrics["selection"]["best_round"]["out_of_fold_accuracy"] == [0.0, 1.0, 0.0]


def test_a_run_checkpointed_before_selection_existed_resumes_on_dev(tmp_path):
    config = _config(tmp_path, _tweets(8))
    tables = load_data(config)
    old = RunSelection.resolve(config, tables, split_off=True, legacy=True)
    assert (old.prefix, old.best_round) == ("dev", "dev")
