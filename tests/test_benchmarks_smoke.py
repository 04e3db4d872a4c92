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
    # plain fine-tuning never asks the TA; the full loop does at every boundary (2 rounds: one,
    # at the end of the warm-up round)
    assert finetune["ta_tokens"] == 0 and finetune["seconds"]["ta"] == 0
    assert finetune["prefixes"] == ["", ""]
    assert gpta["ta_requests"] >= 1 and gpta["ta_tokens"] > 0 and gpta["seconds"]["ta"] > 0

    table = (out / "results.md").read_text()
    assert "| twitter (accuracy) | 32 | finetune |" in table
    assert "| twitter (accuracy) | 32 | gpta |" in table
    assert "GPTA wall / finetune wall" in table
    assert "training throughput ours / plain Trainer" in table
    efficiency = json.loads((out / "efficiency.json").read_text())
    assert efficiency["throughput"]["ratio"] > 0
    assert efficiency["throughput"]["steps"]["ours"] == efficiency["throughput"]["steps"]["plain"]
    # issue 9's figure: every task has screen_many, so it is measured
    (screening,) = efficiency["screening"]
    assert screening["candidates"] == 4 and screening["machine"]
    assert "error" not in screening, screening["error"]
    assert screening["rows"] == 32 and screening["agree"] and screening["speedup"] > 0
    assert "screening K=4 candidates" in table
    assert "sequential screen x K / one screen_many" in table
    assert "32 dev rows" in table and "results agree" in table  # the measured row
    assert (out / "curves_twitter_32.png").stat().st_size > 0
    assert (out / "epochs_twitter_32.png").stat().st_size > 0
    assert (out / "rows_twitter.png").stat().st_size > 0
    env = json.loads((out / "environment.json").read_text())
    assert env["profile"] == "smoke" and env["cores"] >= 1


@pytest.mark.slow
def test_workers_run_side_by_side_and_write_every_row_once(tmp_path):
    out = tmp_path / "bench"
    argv = ["run", "--profile", "smoke", "--out", str(out), "--workers", "2"]
    argv += ["--methods", "finetune", "--seeds", "0", "1", "--no-efficiency"]
    assert main(argv) == 0

    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted((r["method"], r["seed"]) for r in rows) == [("finetune", 0), ("finetune", 1)]
    assert all(r["status"] == "ok" and 0.0 <= r["test"] <= 1.0 for r in rows)
    # two seeds draw two training samples: the runs are the real, separate runs
    assert rows[0]["run_dir"] != rows[1]["run_dir"]
    env = json.loads((out / "environment.json").read_text())
    assert env["workers"] == 2 and env["threads_per_worker"] >= 1
    assert "| twitter (accuracy) | 32 | finetune |" in (out / "results.md").read_text()


def test_the_machine_description_names_the_cpu_its_cores_and_memory():
    import os

    from benchmarks import machine

    cpu = machine.cpu_model()
    assert cpu and machine.cores() == os.cpu_count() and machine.ram_gb() > 0
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file() and "model name" in cpuinfo.read_text():
        assert cpu in cpuinfo.read_text()  # the name, not platform's "x86_64"
    assert machine.describe("cpu").startswith(f"CPU {cpu}, {os.cpu_count()} cores (torch threads")


@pytest.mark.parametrize("bad", ["0", "-1", "two"])
def test_workers_must_be_a_positive_whole_number(bad, capsys):
    with pytest.raises(SystemExit) as raised:
        main(["run", "--profile", "smoke", "--workers", bad, "--out", "unused"])
    assert raised.value.code == 2
    assert "--workers" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("item", "said"),
    [
        ("setfit_steps=foo", "takes 'budget'"),
        ("ta_model=fetched:qwen-typo", "no such fetchable model; known: fetched:qwen2.5-coder"),
    ],
)
def test_study_settings_are_checked_before_anything_runs(item, said, capsys, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as raised:
        main(["run", "--profile", "study", "--set", item, "--out", str(out)])
    assert raised.value.code == 2
    assert said in capsys.readouterr().err
    assert not out.exists()  # nothing written


def test_work_units_keep_a_tuned_adapter_to_one_worker():
    from benchmarks.__main__ import work_units
    from benchmarks.profiles import PROFILES

    profile = PROFILES["cpu"].with_(
        datasets=("twitter", "squad"), levels=(64, 256), seeds=(0, 1), overrides={}
    )
    done = {("twitter", 64, "transfer", 0)}
    units = work_units(profile, ["transfer", "gpta-tuned"], done)
    tuned = [u for u in units if u[0][3] == "gpta-tuned"]
    # one unit per (dataset, seed): its levels share the adapter and run in order
    assert sorted((u[0][0], u[0][2]) for u in tuned) == [
        ("squad", 0),
        ("squad", 1),
        ("twitter", 0),
        ("twitter", 1),
    ]
    assert all([t[1] for t in u] == [64, 256] for u in tuned)
    transfer = [u for u in units if u[0][3] == "transfer"]
    assert all(len(u) == 1 for u in transfer) and len(transfer) == 2 * 2 * 2 - 1
    # per-level pools tune one adapter per level: no grouping
    per_level = work_units(profile.with_(tuned_pool="level"), ["gpta-tuned"], set())
    assert all(len(u) == 1 for u in per_level) and len(per_level) == 8


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


def test_gpta_bench_runs_the_benchmark_module_from_any_directory(tmp_path, monkeypatch):
    """`gpta bench table --out DIR` re-makes the table of DIR, with DIR relative to the
    user's directory (not the checkout's), and its exit status passes through."""
    import subprocess

    rows = [
        {
            "dataset": "twitter",
            "level": 32,
            "method": method,
            "seed": 0,
            "status": "ok",
            "metric": "accuracy",
            "test": score,
            "wall_seconds": 1.0,
            "seconds": {"train": 1.0, "eval": 0.1, "ta": 0.0, "screen": 0.0},
            "ta_tokens": 0,
        }
        for method, score in (("finetune", 0.25), ("gpta", 0.5))
    ]
    (tmp_path / "inv").mkdir()
    (tmp_path / "inv" / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    gpta = str(Path(sys.executable).with_name("gpta"))
    done = subprocess.run(
        [gpta, "bench", "table", "--out", "inv", "--methods", "finetune", "gpta"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    table = (tmp_path / "inv" / "results.md").read_text()
    assert "| twitter (accuracy) | 32 | gpta | 0.500" in table
    bad = subprocess.run(
        [gpta, "bench", "run", "--profile", "nope"], cwd=tmp_path, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "invalid choice: 'nope'" in bad.stderr


def test_gpta_bench_without_a_checkout_says_so(tmp_path, monkeypatch):
    import gpta.cli.bench as bench
    from gpta.cli import main

    monkeypatch.setattr(bench, "_benchmarks_root", lambda: None)
    with pytest.raises(SystemExit) as raised:
        main(["bench", "run", "--profile", "smoke"])
    assert raised.value.code == 2


def test_baseline_prefix_options_are_validated():
    from gpta.config import build_config
    from gpta.errors import GptaUserError

    config = build_config(
        {"assistant": {"initial": "static", "static_prefix": "Rate it:", "fixed_prefix": True}}
    )
    assert config.assistant.static_prefix == "Rate it:" and config.assistant.fixed_prefix
    with pytest.raises(GptaUserError, match="static_prefix"):
        build_config({"assistant": {"initial": "static"}})


# --- issue 10 methods, the best no-prefix baseline, gpta-tuned's wiring (no model runs) ---------
def test_issue10_methods_make_valid_configs(tmp_path):
    from benchmarks import methods as M
    from benchmarks.profiles import ALL_METHODS, DATASETS, PROFILES
    from gpta.config import build_config

    heads = PROFILES["heads"]
    assert set(heads.methods) <= set(ALL_METHODS)
    paths = {"train": "train.jsonl", "dev": "dev.jsonl", "test": "test.jsonl"}
    for dataset in ("yelp", "twitter"):
        base = M.base_config(heads, dataset, 64, 0, paths, tmp_path / "finetune" / "seed0")
        configs = {
            m: build_config(M.method_config(m, base, profile=heads), source=m)
            for m in heads.methods
        }
        words = DATASETS[dataset].label_words
        for method, config in configs.items():
            lm = method.endswith("-lm")
            assert config.model.head == ("lm-verbalizer" if lm else "sequence"), method
            assert config.model.resolved_name("classification") == (
                "bundled:smollm2" if lm else "bundled:minilm"
            )
            assert config.model.label_words == (words if lm else None)
            assert config.training.augment_prefixes == (3 if "augment" in method else 0)
            # equal training steps for every method
            assert (config.training.rounds, config.training.steps_per_round) == (3, 6)
            assert config.training.mixed_precision == "bf16"  # every method alike
            assert config.assistant.max_prefix_tokens == 24
            assert config.training.batch_size == 8
        for no_prefix in ("finetune", "finetune-lm"):
            assistant = configs[no_prefix].assistant
            assert assistant.initial == "empty" and assistant.fixed_prefix
        static = configs["static-lm"].assistant
        assert static.initial == "static" and static.fixed_prefix
        assert static.static_prefix == DATASETS[dataset].static_prefix
        for loop in ("gpta-lm", "gpta-augment", "gpta-augment-lm"):
            assistant = configs[loop].assistant
            assert not assistant.fixed_prefix and assistant.initial == "first"
    background = build_config(M.method_config("gpta-background", base, profile=heads))
    assert background.assistant.background and not configs["gpta-lm"].assistant.background
    # yelp's integer labels need words; every label has one
    assert set(DATASETS["yelp"].label_words) == {"0", "1", "2", "3", "4"}
    # classification-only methods refuse the other task families instead of running wrong
    squad = M.base_config(PROFILES["gpu"], "squad", 64, 0, paths, tmp_path / "q" / "seed0")
    with pytest.raises(M.NotRun, match="classification"):
        M.method_config("gpta-augment", squad, profile=PROFILES["gpu"])
    gpu = build_config(M.base_config(PROFILES["gpu"], "yelp", 64, 0, paths, tmp_path / "g"))
    assert gpu.training.mixed_precision == "bf16"
    curves = PROFILES["curves"]
    assert (curves.rounds, curves.epochs_per_round, curves.steps_per_round) == (20, 1, None)


def _row(dataset, method, seed, score, **extra):
    return {
        "dataset": dataset,
        "level": 64,
        "method": method,
        "seed": seed,
        "status": "ok",
        "metric": "accuracy",
        "test": score,
        "wall_seconds": 10.0,
        "seconds": {"train": 8.0, "eval": 1.0, "ta": 0.5, "screen": 0.5},
        "ta_tokens": 0,
        "peak_rss_mb": 900.0,
        "dev_curve": [0.1] * 8,
        "dev_loss_curve": [1.0] * 8,
        "train_loss_curve": [1.0] * 8,
        **extra,
    }


def test_table_pairs_against_the_best_no_prefix_baseline(tmp_path):
    from benchmarks.table import best_no_prefix, write_markdown

    scores = {  # finetune-lm has the higher mean: it is the bar
        "finetune": [0.30, 0.32, 0.28],
        "finetune-lm": [0.50, 0.40, 0.45],
        "gpta-augment-lm": [0.55, 0.45, 0.45],
    }
    rows = [
        _row("yelp", method, seed, score)
        for method, values in scores.items()
        for seed, score in enumerate(values)
    ]
    rows.append(_row("yelp", "gpta-tuned", 0, 0.31, fallback="untuned TA: 1 example"))
    rows.append(
        {
            "dataset": "yelp",
            "level": 64,
            "method": "gpta-tuned",
            "seed": 1,
            "status": "not_run",
            "reason": "2 dialogue-gradient examples ...",
            "tuning": {"examples": 2, "needed": 4, "sources": ["a", "b"], "adapter": None},
        }
    )
    (tmp_path / "results.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    by_method = {m: list(enumerate(v)) for m, v in scores.items()}
    assert best_no_prefix(by_method)[0] == "finetune-lm"
    assert best_no_prefix({"finetune": [(0, 0.5)], "finetune-lm": [(0, 0.5)]})[0] == "finetune"
    order = ["finetune", "finetune-lm", "gpta-augment-lm", "gpta-tuned"]
    text = write_markdown(tmp_path, order, "# t\n").read_text()
    line = next(x for x in text.splitlines() if x.startswith("| yelp (accuracy) | 64 | gpta-aug"))
    cells = [c.strip() for c in line.strip("|").split("|")]

    # vs finetune: +0.183 (3 wins); vs finetune-lm: +0.033, 2 wins 1 tie; each with the 95 %
    # t interval of the paired differences around it
    def mean_and_interval(cell: str) -> tuple[str, float, float]:
        mean, interval = cell.split(" [")
        low, high = (float(x) for x in interval.rstrip("]").split(", "))
        assert low < float(mean) < high
        return mean, low, high

    assert (mean_and_interval(cells[4])[0], cells[5]) == ("+0.183", "3/0/0")
    assert cells[7] == "finetune-lm" and cells[9] == "2/1/0"
    assert mean_and_interval(cells[8])[0] == "+0.033"
    baseline = next(
        x for x in text.splitlines() if x.startswith("| yelp (accuracy) | 64 | finetune-lm")
    )
    assert baseline.rstrip().endswith("| finetune-lm |  |  |  |")
    # an untuned fallback is its own row, never counted as gpta-tuned
    assert "| yelp (accuracy) | 64 | gpta-tuned (untuned fallback) |" in text
    assert "| yelp (accuracy) | 64 | gpta-tuned |" not in text
    assert "| yelp | 64 | 1 | not_run | 2 (4) | 2 | — |" in text
    assert "## Learning curves" in text and "best dev epoch" in text


def test_gpta_tuned_learns_only_from_other_seeds(tmp_path, monkeypatch):
    """Which runs feed seed s's TA adapter, the too-few case, and the tuned config; the LoRA
    tuning itself is replaced by a stub (gpta.assistant.tuning has its own tests)."""
    import benchmarks.__main__ as bench
    import gpta.assistant.dialogue as dialogue
    import gpta.assistant.tuning as tuning
    from benchmarks import methods as M
    from benchmarks.profiles import PROFILES
    from gpta.config import build_config

    out = tmp_path / "bench"
    for level in ("64", "256"):
        for seed in (0, 1, 2):
            run = out / "runs" / "twitter" / level / "gpta" / f"seed{seed}"
            run.mkdir(parents=True)
            for name in ("metrics.json", "history.jsonl", "exposure.jsonl"):
                (run / name).write_text("{}\n")
    unfinished = out / "runs" / "twitter" / "64" / "gpta" / "seed3"
    unfinished.mkdir()
    (unfinished / "history.jsonl").write_text("")

    def names(paths):
        return sorted(str(p.relative_to(out / "runs" / "twitter")) for p in paths)

    assert names(M.tuned_sources(out, "twitter", 64, 1)) == [
        "256/gpta/seed0",
        "256/gpta/seed2",
        "64/gpta/seed0",
        "64/gpta/seed2",
    ]
    assert names(M.tuned_sources(out, "twitter", 64, 1, "level")) == [
        "64/gpta/seed0",
        "64/gpta/seed2",
    ]

    def fake_examples(run_dir, key=None):  # one example per source run
        return [
            dialogue.DialogueExample(
                messages=[{"role": "user", "content": "scores ..."}],
                target=f"prefix from {Path(run_dir).parent.parent.name}/{Path(run_dir).name}",
                task_key="k",
                run=str(Path(run_dir).resolve()),
                round=1,
                current_prefix="",
                current_score=0.5,
                target_score=0.6,
            )
        ]

    tuned = []

    def fake_tune(examples, *, base_model, out_dir, settings, seed, device):
        tuned.append(sorted(e.target for e in examples))
        Path(out_dir).mkdir(parents=True)
        (Path(out_dir) / "adapter_config.json").write_text("{}")
        return tuning.TuneResult(str(out_dir), base_model, len(examples), 3, 2.0, 1.0)

    monkeypatch.setattr(dialogue, "examples_from_run", fake_examples)
    monkeypatch.setattr(tuning, "tune_lora", fake_tune)
    profile = PROFILES["smoke"]
    paths = {"train": "t.jsonl", "dev": "d.jsonl", "test": "x.jsonl"}
    run_dir = out / "runs" / "twitter" / "64" / "gpta-tuned" / "seed1"
    base = M.base_config(profile, "twitter", 64, 1, paths, run_dir)

    info = M.tuned_adapter(profile, out, "twitter", 64, 1, base)
    assert info["examples"] == 4 and info["adapter"] and not info["reused"]
    assert tuned == [
        [
            "prefix from 256/seed0",
            "prefix from 256/seed2",
            "prefix from 64/seed0",
            "prefix from 64/seed2",
        ]
    ]
    again = M.tuned_adapter(profile, out, "twitter", 256, 1, base)  # the other level: reused
    assert again["adapter"] == info["adapter"] and again["reused"] and len(tuned) == 1

    config = M.method_config(
        "gpta-tuned",
        base,
        profile=profile,
        adapter=info["adapter"],
        store_examples=Path(info["examples_file"]),
    )
    parsed = build_config(config)
    assert parsed.assistant.adapter == info["adapter"] and not parsed.assistant.fixed_prefix
    store = Path(parsed.assistant.dialogue_store)
    assert len((store / "examples.jsonl").read_text().splitlines()) == 4
    assert store.parent == run_dir.parent  # its own store, not a gpta run's

    # too few examples: not run, with the count recorded (tuned_fallback=skip)
    strict = profile.with_(tuned_min_examples=5)
    with pytest.raises(M.NotRun, match="4 dialogue-gradient examples") as caught:
        bench.run_tuned(strict, out, "twitter", 64, 1, base)
    assert caught.value.details["tuning"]["adapter"] is None
    assert caught.value.details["tuning"]["needed"] == 5


def test_macro_f1_table_reads_the_test_metrics():
    from benchmarks.table import main_table

    rows = [
        _row("twitter", method, seed, 0.5, test_metrics={"accuracy": 0.5, "macro_f1": f1})
        for method, seed, f1 in [
            ("finetune", 0, 0.30),
            ("finetune", 1, 0.40),
            ("gpta", 0, 0.35),
            ("gpta", 1, 0.50),
        ]
    ]
    table = main_table(rows, ["finetune", "gpta"], metric="macro_f1")
    assert "twitter (macro_f1)" in table
    assert "0.350 ± 0.071" in table  # finetune's mean ± std over the seeds
    assert "+0.075" in table  # gpta's paired difference (0.05 and 0.10)
    assert (
        main_table([_row("twitter", "gpta", 0, 0.5)], ["gpta"], metric="macro_f1").count("\n") == 1
    )  # rows without the metric are left out: header and rule only


def test_gpu_profile_makes_a_valid_config_for_every_dataset_and_method(tmp_path):
    """The gpu profile cannot run here (no CUDA); every config it would train is still
    validated: six datasets x every method, classification-only methods refused elsewhere."""
    from benchmarks import methods as M
    from benchmarks.profiles import CLASSIFICATION_ONLY, DATASETS, PROFILES, setting
    from gpta.config import build_config

    gpu = PROFILES["gpu"]
    paths = {"train": "train.jsonl", "dev": "dev.jsonl", "test": "test.jsonl"}
    assert set(gpu.datasets) == {name for name, d in DATASETS.items() if d.source is None}
    (tmp_path / "p" / "model").mkdir(parents=True)  # a finished partner run, for transfer
    for dataset in gpu.datasets:
        base = M.base_config(gpu, dataset, 64, 0, paths, tmp_path / dataset)
        for method in gpu.methods:
            if method in ("prompt-tuning", "gpta-tuned", "frozen-lr", "setfit"):
                continue  # their own builders: prompt_tuning / tuned_adapter / run_*
            if method in CLASSIFICATION_ONLY and DATASETS[dataset].task != "classification":
                with pytest.raises(M.NotRun):
                    M.method_config(method, base, profile=gpu)
                continue
            config = build_config(
                M.method_config(method, base, transfer_from=tmp_path / "p", profile=gpu),
                source=f"{dataset}/{method}",
            )
            assert config.task == DATASETS[dataset].task
            assert config.device == "cuda" and config.training.mixed_precision == "bf16"
            assert config.model.max_length == setting(gpu, dataset, "max_length")


@pytest.mark.slow
@pytest.mark.parametrize(("steps_per_round", "expected_steps"), [(3, 2 * 3), (None, 2 * 2)])
def test_prompt_tuning_trains_as_many_steps_as_the_other_methods(
    tmp_path, steps_per_round, expected_steps
):
    """The outside anchor gets the budget of every GPTA-side method: rounds x steps_per_round
    batches when the profile counts steps (2 x 3 here), rounds x epochs otherwise (2 epochs
    of 32 rows at batch 16 = 4); one dev score per round; the profile's precision."""
    from benchmarks import methods as M
    from benchmarks.profiles import PROFILES, prepare_splits

    profile = PROFILES["smoke"].with_(
        steps_per_round=steps_per_round, batch_size=16, mixed_precision="bf16"
    )
    splits = prepare_splits(profile, "twitter", tmp_path)
    base = M.base_config(profile, "twitter", 32, 0, splits, tmp_path / "run")
    result = M.run_prompt_tuning(base, learning_rate=1e-2)
    assert result["optimizer_steps"] == expected_steps
    assert len(result["dev_curve"]) == profile.rounds == 2
    assert result["mixed_precision"] == "bf16"
    assert 0.0 <= result["test"] <= 1.0


def test_set_beats_the_per_dataset_value_of_any_setting():
    from benchmarks.__main__ import apply_settings
    from benchmarks.methods import base_config
    from benchmarks.profiles import PROFILES, setting

    cpu = PROFILES["cpu-v1"]  # the profile with a per-dataset step count
    paths = {"train": "t", "dev": "d", "test": "e"}
    # squad's own step count reaches its training config; twitter keeps the profile's
    squad = base_config(cpu, "squad", 64, 0, paths, Path("x"))["training"]
    twitter = base_config(cpu, "twitter", 64, 0, paths, Path("x"))["training"]
    assert squad["steps_per_round"] == setting(cpu, "squad", "steps_per_round")
    assert twitter["steps_per_round"] == cpu.steps_per_round != squad["steps_per_round"]
    changed = apply_settings(cpu, ["steps_per_round=5", "batch_size=4"])
    assert setting(changed, "squad", "steps_per_round") == 5
    assert setting(changed, "squad", "max_length") == 256  # untouched overrides stay
    assert base_config(changed, "squad", 64, 0, paths, Path("x"))["training"]["batch_size"] == 4


@pytest.mark.parametrize("item", ["nonsense=1", "overrides={}", "name=x"])
def test_set_of_an_unknown_setting_exits_2_and_lists_the_known_ones(item, capsys):
    with pytest.raises(SystemExit) as raised:
        main(["run", "--profile", "smoke", "--set", item, "--out", "unused"])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert item in err and "steps_per_round" in err


@pytest.mark.parametrize(
    ("item", "expected"),
    [("batch_size=abc", "batch_size takes a whole number"), ("seeds=3", "seeds takes a JSON list")],
)
def test_set_of_a_wrongly_typed_value_exits_2(item, expected, capsys):
    with pytest.raises(SystemExit) as raised:
        main(["run", "--profile", "smoke", "--set", item, "--out", "unused"])
    assert raised.value.code == 2
    assert expected in capsys.readouterr().err


def test_set_converts_json_values_to_the_setting_types():
    from benchmarks.__main__ import apply_settings
    from benchmarks.profiles import PROFILES

    changed = apply_settings(
        PROFILES["cpu"], ["seeds=[4, 5]", "learning_rate=1", "steps_per_round=null"]
    )
    assert changed.seeds == (4, 5)
    assert changed.learning_rate == 1.0 and isinstance(changed.learning_rate, float)
    assert changed.steps_per_round is None


# --- issue 19: the study profile's datasets, methods and cuts (no model runs but setfit's) ------
def test_ids_variant_is_the_same_sample_with_the_labels_rewritten(tmp_path):
    """twitter-ids holds twitter's rows with ids for labels, and each seed draws the same
    training rows: the label-agnostic baselines the table borrows are its own runs."""
    from benchmarks import methods as M
    from benchmarks.profiles import DATASETS, PROFILES, prepare_splits
    from gpta.config import build_config
    from gpta.run import load_data

    study = PROFILES["study"]
    mapping = DATASETS["twitter-ids"].label_map
    assert sorted(mapping) == ["negative", "neutral", "positive"]
    samples = {}
    for name in ("twitter", "twitter-ids"):
        paths = prepare_splits(study, name, tmp_path)
        config = build_config(M.base_config(study, name, 32, 3, paths, tmp_path / name / "run"))
        samples[name] = load_data(config)
    for split in ("train", "dev", "test"):
        plain, ids = samples["twitter"][split].rows, samples["twitter-ids"][split].rows
        assert [r["text"] for r in plain] == [r["text"] for r in ids]
        assert [mapping[r["label"]] for r in plain] == [r["label"] for r in ids]
    assert len(samples["twitter"]["train"].rows) == 32
    # the descriptions differ (the table finds a dataset by its description)
    descriptions = [d.description for d in DATASETS.values()]
    assert len(set(descriptions)) == len(descriptions)


def test_study_scopes_cut_where_the_profile_says(tmp_path):
    from benchmarks.__main__ import work_units
    from benchmarks.profiles import PROFILES

    study = PROFILES["study"]
    units = [u for unit in work_units(study, list(study.methods), set()) for u in unit]
    where: dict[str, set] = {}
    for dataset, level, seed, method in units:
        where.setdefault(method, set()).add((dataset, level))
        assert seed in range(5)
    assert where["setfit"] == {(d, 64) for d in ("twitter", "yelp")}
    assert where["gpta"] == where["gpta-bundled"] == {("twitter", 64), ("yelp", 64)}
    assert where["finetune-lm"] == {("twitter", 64), ("twitter-ids", 64)}
    assert where["gpta-lm-words"] == where["gpta-lm"] == {("twitter-ids", 64)}
    assert len(units) == 5 * (2 * 2 * 3 + 2 + 2 * 2 + 2 + 3)  # 5 seeds of every cell


def test_study_method_configs(tmp_path, monkeypatch):
    """The TA methods get the stronger TA when it is fetched and fall back to the bundled one,
    saying so, when it is not; gpta-bundled always has the bundled one; gpta-lm-words leaves
    the label words to the TA and runs on ids only; the LM scope trains its own budget."""
    from benchmarks import methods as M
    from benchmarks.profiles import PROFILES
    from gpta.config import build_config

    study = PROFILES["study"]
    paths = {"train": "train.jsonl", "dev": "dev.jsonl", "test": "test.jsonl"}
    monkeypatch.setenv("GPTA_CACHE_DIR", str(tmp_path / "empty-cache"))
    chosen, fallback = M.ta_choice(study)
    assert chosen == {} and "qwen2.5-coder-1.5b is not fetched" in fallback
    models = tmp_path / "cache" / "models"
    models.mkdir(parents=True)
    with (models / "qwen2.5-coder-1.5b.gguf").open("wb") as handle:  # sparse, of the right size
        handle.truncate(1_117_320_768)
    monkeypatch.setenv("GPTA_CACHE_DIR", str(tmp_path / "cache"))
    chosen, fallback = M.ta_choice(study)
    assert fallback is None
    assert chosen["backend"] == "llamacpp" and chosen["model"] == "fetched:qwen2.5-coder-1.5b"

    base = M.base_config(study, "twitter-ids", 64, 0, paths, tmp_path / "r" / "seed0")
    gpta = build_config(M.method_config("gpta-lm", base, profile=study)).assistant
    assert (gpta.backend, gpta.model) == ("llamacpp", "fetched:qwen2.5-coder-1.5b")
    bundled = build_config(M.method_config("gpta-bundled", base, profile=study)).assistant
    assert (bundled.backend, bundled.model) == ("local", "bundled:smollm2")
    words = build_config(M.method_config("gpta-lm-words", base, profile=study)).model
    assert words.label_words is None and words.propose_label_words == "always"
    ids = build_config(M.method_config("finetune-lm", base, profile=study)).model
    assert ids.label_words == {"0": "0", "1": "1", "2": "2"}  # the ids themselves
    named = M.base_config(study, "twitter", 64, 0, paths, tmp_path / "t" / "seed0")
    with pytest.raises(M.NotRun, match="labels are words already"):
        M.method_config("gpta-lm-words", named, profile=study)
    assert study.scopes["gpta-lm"]["training"] == {"batch_size": 8, "min_steps": 40}


@pytest.mark.slow
def test_setfit_trains_the_budget_of_the_other_methods(tmp_path, monkeypatch):
    """setfit runs on the same sample and stops after the gpta-side methods' optimizer steps."""
    from setfit import SetFitModel

    from benchmarks import methods as M
    from benchmarks.profiles import PROFILES, prepare_splits

    profile = PROFILES["smoke"].with_(dev_rows=8, test_rows=8, min_steps=3, min_epochs=0.1)
    paths = prepare_splits(profile, "twitter", tmp_path)
    base = M.base_config(profile, "twitter", 12, 0, paths, tmp_path / "setfit" / "seed0")
    base["training"]["epochs_per_round"] = None
    base["training"]["rounds"] = 1
    limits = []
    predict = SetFitModel.predict

    def recording_predict(self, *args, **kwargs):
        limits.append(self.model_body.max_seq_length)
        return predict(self, *args, **kwargs)

    monkeypatch.setattr(SetFitModel, "predict", recording_predict)
    row = M.run_setfit(base)
    assert set(limits) == {profile.max_length}  # the tokens every other method reads
    assert row["optimizer_steps"] == 3 and row["setfit_steps"] == "budget"
    assert 0.0 <= row["test"] <= 1.0 and row["prefix"] == ""
    assert row["test_metrics"]["accuracy"] == row["test"]
    with pytest.raises(M.NotRun, match="classification"):
        squad = prepare_splits(profile.with_(dev_rows=8), "squad", tmp_path)
        M.run_setfit(M.base_config(profile, "squad", 8, 0, squad, tmp_path / "q" / "seed0"))


@pytest.mark.slow
def test_frozen_lr_fits_the_sample_and_scores_both_splits(tmp_path, monkeypatch):
    """The frozen-embedding anchor: logistic regression on the encoder's own embeddings of the
    training sample, scored on dev and test, with the majority baseline; classification only.
    It reads the same first ``max_length`` tokens as every other method."""
    from sentence_transformers import SentenceTransformer

    from benchmarks import methods as M
    from benchmarks.profiles import PROFILES, prepare_splits

    limits = []
    encode = SentenceTransformer.encode

    def recording_encode(self, *args, **kwargs):
        limits.append(self.max_seq_length)
        return encode(self, *args, **kwargs)

    monkeypatch.setattr(SentenceTransformer, "encode", recording_encode)
    profile = PROFILES["smoke"].with_(dev_rows=8, test_rows=8)
    paths = prepare_splits(profile, "twitter", tmp_path)
    base = M.base_config(profile, "twitter", 12, 0, paths, tmp_path / "lr" / "seed0")
    row = M.run_frozen_lr(base)
    assert limits and set(limits) == {profile.max_length}
    assert 0.0 <= row["test"] <= 1.0 and 0.0 <= row["dev"] <= 1.0
    assert row["test_metrics"]["accuracy"] == row["test"] and row["prefix"] == ""
    assert 0.0 <= row["majority"] <= 1.0 and row["model"] == "bundled:minilm"
    assert row["ta_tokens"] == 0 and row["seconds"]["ta"] == 0.0
    squad = prepare_splits(profile, "squad", tmp_path)
    with pytest.raises(M.NotRun, match="classification"):
        M.run_frozen_lr(M.base_config(profile, "squad", 8, 0, squad, tmp_path / "q" / "seed0"))


def test_table_borrows_label_agnostic_baselines_and_prints_the_words():
    from benchmarks.table import main_table, prefix_table

    rows = [
        _row("twitter", "finetune", 0, 0.50),
        _row("twitter", "finetune", 1, 0.60),
        _row("twitter", "setfit", 0, 0.55),
        _row("twitter", "setfit", 1, 0.70),
        _row(
            "twitter-ids",
            "gpta-lm-words",
            0,
            0.65,
            ta_requests=2,
            ta_tokens=900,
            prefix="Read the tweet.",
            label_words={"0": "negative", "1": "neutral"},
            label_words_source="ta",
        ),
        _row(
            "twitter-ids",
            "gpta-lm-words",
            1,
            0.75,
            ta_requests=2,
            ta_tokens=900,
            prefix="",
            label_words=None,
            label_words_source=None,
        ),
    ]
    order = ["finetune", "setfit", "gpta-lm-words"]
    line = next(x for x in main_table(rows, order).splitlines() if x.startswith("| twitter-ids"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    # vs twitter's finetune (+0.15, +0.15) and its best no-prefix baseline, setfit (+0.10, +0.05)
    assert cells[4].startswith("+0.150") and cells[5] == "2/0/0"
    assert cells[7] == "setfit" and cells[8].startswith("+0.075")
    words = prefix_table(rows, order)
    assert "| twitter-ids | 64 | gpta-lm-words | 0 | 0.650 |" in words
    assert "0: negative, 1: neutral (ta)" in words and "Read the tweet." in words
    assert "| (none) | — |" in words


def test_the_cards_table_compares_with_the_best_no_ta_method_and_borrows_for_ids():
    from benchmarks.cards_table import cards_table

    def row(dataset, method, seed, test, **extra):
        return {
            "dataset": dataset,
            "level": 16,
            "method": method,
            "seed": seed,
            "status": "ok",
            "test": test,
            "seconds": {"ta": 2.0},
            **extra,
        }

    rows = [
        *(row("twitter", "finetune", s, t) for s, t in enumerate([0.40, 0.50, 0.60])),
        *(row("twitter", "setfit", s, t) for s, t in enumerate([0.50, 0.55, 0.60])),
        *(
            row("twitter", "cards", s, t, cards_chosen=c)
            for s, (t, c) in enumerate([(0.60, "ta w=1"), (0.55, "w=0"), (0.70, "ta w=1")])
        ),
        row("twitter-ids", "cards", 0, 0.30, cards_chosen="w=0"),
    ]
    text = cards_table(rows, ["finetune", "setfit", "cards"])
    lines = {tuple(c.strip() for c in line.split("|")[1:4]): line for line in text.splitlines()}
    assert "**setfit**" in lines[("twitter", "16", "**setfit**")]  # the best no-TA mean
    cards = lines[("twitter", "16", "cards")]
    assert "+0.067" in cards and "2/1/0" in cards and "2/3" in cards
    # the ids variant borrows twitter's label-agnostic rows: its cards row is compared
    ids = lines[("twitter-ids", "16", "cards")]
    assert "-0.200" in ids and "0/0/1" in ids


def test_card_count_takes_the_first_examples_of_each_class_in_order():
    from benchmarks.card_count import first_per_class

    examples = [(0, "a0"), (0, "a1"), (1, "b0"), (0, "a2"), (1, "b1"), (2, "c0")]
    assert first_per_class(examples, 0) == []
    assert first_per_class(examples, 1) == [(0, "a0"), (1, "b0"), (2, "c0")]
    assert first_per_class(examples, 2) == [(0, "a0"), (0, "a1"), (1, "b0"), (1, "b1"), (2, "c0")]
    assert first_per_class(examples, 9) == examples
