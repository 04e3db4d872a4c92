"""The benchmark suite's smoke profile: the only part of benchmarks/ that CI runs.

It runs the real thing at toy size (twitter, 32 rows, 1 seed, finetune + gpta, 2 rounds, the
bundled encoder and TA) and checks what an invocation must write, not the scores.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not installed

from benchmarks.__main__ import main

# It reads ../shared/data (or $GPTA_BENCH_DATA): the benchmark samples must be there.


@pytest.mark.slow
def test_smoke_profile_writes_results_table_and_plots(tmp_path):
    out = tmp_path / "bench"
    assert main(["run", "--profile", "smoke", "--out", str(out)]) == 0

    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["dataset"], r["level"], r["method"], r["seed"]) for r in rows] == [
        ("twitter", 32, "finetune", 0),
        ("twitter", 32, "gpta", 0),
    ]
    for row in rows:
        assert row["status"] == "ok", row.get("reason")
        assert row["metric"] == "accuracy"
        assert 0.0 <= row["test"] <= 1.0
        assert len(row["dev_curve"]) == 2  # one dev score per round
        assert set(row["seconds"]) == {"train", "eval", "ta", "screen"}
        assert row["wall_seconds"] > 0 and row["peak_rss_mb"] > 0
        assert row["train_rows"] == 32 and row["test_rows"] == 24
    finetune, gpta = rows
    # plain fine-tuning never asks the TA; the full loop does, every round
    assert finetune["ta_tokens"] == 0 and finetune["seconds"]["ta"] == 0
    assert finetune["prefixes"] == ["", ""]
    assert gpta["ta_requests"] >= 2 and gpta["ta_tokens"] > 0 and gpta["seconds"]["ta"] > 0

    table = (out / "results.md").read_text()
    assert "| twitter (accuracy) | 32 | finetune |" in table
    assert "| twitter (accuracy) | 32 | gpta |" in table
    assert "GPTA wall / finetune wall" in table
    assert "training throughput ours / plain Trainer" in table
    efficiency = json.loads((out / "efficiency.json").read_text())
    assert efficiency["throughput"]["ratio"] > 0
    assert efficiency["throughput"]["steps"]["ours"] == efficiency["throughput"]["steps"]["plain"]
    assert (out / "curves_twitter_32.png").stat().st_size > 0
    assert (out / "rows_twitter.png").stat().st_size > 0
    env = json.loads((out / "environment.json").read_text())
    assert env["profile"] == "smoke" and env["cores"] >= 1


def test_table_reports_paired_difference_and_not_run_methods(tmp_path):
    from benchmarks.table import write_markdown

    rows = []
    for seed, (base, ours) in enumerate([(0.50, 0.60), (0.40, 0.55), (0.45, 0.50)]):
        for method, score in (("finetune", base), ("gpta", ours)):
            rows.append(
                {
                    "dataset": "yelp",
                    "level": 64,
                    "method": method,
                    "seed": seed,
                    "status": "ok",
                    "metric": "accuracy",
                    "test": score,
                    "wall_seconds": 10.0 if method == "finetune" else 12.0,
                    "seconds": {"train": 8.0, "eval": 1.0, "ta": 1.5, "screen": 0.5},
                    "ta_tokens": 100,
                    "peak_rss_mb": 900.0,
                }
            )
    rows.append(
        {
            "dataset": "yelp",
            "level": 64,
            "method": "gpta-tuned",
            "seed": 0,
            "status": "not_run",
            "reason": "no adapter",
        }
    )
    (tmp_path / "results.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    text = write_markdown(tmp_path, ["finetune", "gpta", "gpta-tuned"], "# t\n").read_text()
    line = next(x for x in text.splitlines() if x.startswith("| yelp (accuracy) | 64 | gpta |"))
    assert "0.550 ± 0.050" in line and "+0.100" in line and "3/0/0" in line
    assert "| GPTA wall / finetune wall (equal epochs) | 1.20" in text
    assert "| yelp | gpta-tuned | no adapter |" in text


def test_baseline_prefix_options_are_validated():
    from gpta.config import build_config
    from gpta.errors import GptaUserError

    config = build_config(
        {"assistant": {"initial": "static", "static_prefix": "Rate it:", "fixed_prefix": True}}
    )
    assert config.assistant.static_prefix == "Rate it:" and config.assistant.fixed_prefix
    with pytest.raises(GptaUserError, match="static_prefix"):
        build_config({"assistant": {"initial": "static"}})
