"""The held-out judge of benchmarks/dialogue_gradient.py: which TA's proposals beat, tied or
lost to the current prefix, rebuilt from a paired run's history."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not installed

from benchmarks.dialogue_gradient import _calls_from_history, _judge, _merge


def _history(path: Path) -> None:
    current = {"prefix": "Classify the tweet.", "score": 0.5, "loss": 1.0}
    events = [
        # round 0: 2 + 2 proposals, never screened
        *[{"event": "proposal", "round": 0, "raw": t} for t in ("a0", "a1", "b0", "b1")],
        # round 1: the untuned TA's (first half) and the tuned TA's (second half)
        *[
            {"event": "proposal", "round": 1, "raw": t}
            for t in ("Rate the mood.", "negative", "Say the sentiment.", "Classify the tweet.")
        ],
        {
            "event": "screen",
            "round": 1,
            "current": current,
            "candidates": [
                {"prefix": "Rate the mood.", "score": 0.4, "loss": 1.2},
                {"prefix": "Say the sentiment.", "score": 0.75, "loss": 0.9},
            ],
        },
    ]
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


def test_judge_counts_each_ta_from_a_rebuilt_history(tmp_path):
    _history(tmp_path / "history.jsonl")
    calls = _calls_from_history(tmp_path)
    assert calls[1] == {
        "a": ["Rate the mood.", "negative"],
        "b": ["Say the sentiment.", "Classify the tweet."],
    }
    stats = _judge(tmp_path, calls, lambda text: len(text.split()), 24)
    untuned, tuned = stats["a"], stats["b"]
    # "negative" is a label, not a prefix; "Rate the mood." lost
    assert (untuned["valid"], untuned["improved"], untuned["screened"]) == (1, 0, 1)
    assert untuned["delta_score"] == -0.1 and untuned["delta_loss"] == 0.2
    assert untuned["not_worse_rate"] == 0.0
    # the tuned TA beat the current prefix once and repeated it once (valid, not screened)
    assert (tuned["valid"], tuned["improved"], tuned["screened"]) == (2, 1, 1)
    assert tuned["improvement_rate"] == 0.5 and tuned["not_worse_rate"] == 1.0
    merged = _merge([untuned, tuned])
    assert merged["proposals"] == 4 and merged["improved"] == 1
    assert merged["delta_score"] == round((-0.1 + 0.25) / 2, 5)
