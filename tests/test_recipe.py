"""The recipe's prefix-selection policy takes its settings from the config sections and the
run's selection, as the loose constructor arguments it replaced did (issue 30)."""

from __future__ import annotations

import random

import pytest

from gpta.config import build_config
from gpta.progress import Progress
from gpta.round_choice import RunSelection
from gpta.synergy import SynergyLoop

DEV = [{"text": f"row {i}", "label": "ab"[i % 2]} for i in range(10)]


def _loop(config: dict, best_round: str = "dev") -> SynergyLoop:
    selection = RunSelection(
        prefix="dev", best_round=best_round, labelled=[], where="", k=2, seed=3
    )
    return SynergyLoop(
        build_config(config),
        task=None,  # type: ignore[arg-type]  # the constructor only keeps it
        tokenizer=None,  # type: ignore[arg-type]
        dev_rows=DEV,
        side=None,
        selection=selection,
        progress=Progress(quiet=True),
    )


def test_the_policy_reads_the_training_and_selection_sections():
    training = {"rounds": 5, "patience": 2, "empty_prefix_share": 0.25, "eval_batch_size": 7}
    loop = _loop({"seed": 3, "selection": {"screen_size": 4}, "training": training})
    assert (loop.rounds, loop.patience, loop.empty_share, loop.eval_batch_size) == (5, 2, 0.25, 7)
    assert loop.compare_empty and not loop.keep_last and loop.screener is None
    expected = sorted(random.Random(3).sample(range(len(DEV)), 4))  # seeded, screen_size rows
    assert loop.screen_rows == [DEV[i] for i in expected]
    with pytest.raises(RuntimeError, match="main process"):  # no TA side on this process
        _ = loop.history


def test_keeping_the_last_round_turns_early_stopping_off():
    loop = _loop({"training": {"patience": 2}}, best_round="last")
    assert loop.keep_last and loop.patience == 0


def test_a_fixed_prefix_trains_and_serves_as_given():
    loop = _loop({"assistant": {"fixed_prefix": True}, "training": {"empty_prefix_share": 0.5}})
    assert loop.empty_share == 0.0 and not loop.compare_empty
