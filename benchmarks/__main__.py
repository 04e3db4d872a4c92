"""The GPTA benchmark suite: datasets x training rows x methods x seeds -> tables and plots.

    python -m benchmarks run --profile smoke|cpu|gpu|heads|curves [--datasets twitter yelp] \
        [--methods finetune gpta] [--seeds 0 1 2] [--levels 64 256 full] [--out DIR]
    python -m benchmarks efficiency --profile P --out DIR [--what latency throughput screening]
    python -m benchmarks table --out DIR     # re-make results.md and the plots

Writes into ``--out`` (default ``runs/bench/<profile>``, git-ignored): ``results.jsonl`` (one
line per dataset x level x method x seed, appended as each run ends), ``efficiency.json``,
``environment.json``, ``results.md`` and PNG plots; run folders go under ``runs/``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import os
import platform
import shutil
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from benchmarks import machine
from benchmarks import methods as M
from benchmarks.profiles import (
    ALL_METHODS,
    CARD_METHODS,
    DATASETS,
    PROFILES,
    Profile,
    in_scope,
    prepare_splits,
    setting,
)
from benchmarks.table import read_results, write_markdown
from gpta.config import read_override_value, split_override
from gpta.errors import GptaUserError

SECOND_PASS = ("transfer", "gpta-tuned")


def environment(profile: Profile) -> dict[str, Any]:
    import importlib.metadata as md

    info: dict[str, Any] = {
        "profile": profile.name,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": machine.cpu_model(),
        "cores": machine.cores(),
        "ram_gb": machine.ram_gb(),
        "load_average_start": os.getloadavg(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    for name in ("torch", "transformers", "peft", "accelerate", "gpta"):
        try:
            info[name] = md.version(name)
        except md.PackageNotFoundError:
            info[name] = None
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:  # pragma: no cover
        pass
    return info


def _parse_levels(values: list[str] | None) -> tuple[int | None, ...] | None:
    if not values:
        return None
    return tuple(None if v in ("full", "all") else int(v) for v in values)


def _positive_int(value: str) -> int:
    number = int(value) if value.lstrip("-").isdigit() else 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: give a whole number of 1 or more")
    return number


# what --set may change: every Profile field but its name and the per-dataset overrides
SETTINGS = tuple(k for k in Profile.__dataclass_fields__ if k not in ("name", "overrides"))


def usage_error(message: str) -> SystemExit:
    """A user mistake on the command line: one line on stderr, exit status 2."""
    print(f"benchmarks: error: {message}", file=sys.stderr)
    return SystemExit(2)


def apply_settings(profile: Profile, items: list[str]) -> Profile:
    """``--set KEY=VALUE`` items applied to ``profile``; a value given here beats the
    profile's per-dataset value of the same key (e.g. squad's ``max_length``)."""
    changes: dict[str, Any] = {}
    for item in items:
        try:  # gpta's own KEY=VALUE reader: a value means what it means in a config file
            key, text = split_override(item, example="rounds=2")
            if key not in SETTINGS:
                raise usage_error(
                    f"--set {item}: {key!r} is not a profile setting; known: {', '.join(SETTINGS)}"
                )
            new = read_override_value(key, text)
        except GptaUserError as err:
            raise usage_error(err.message + (f"; fix: {err.hint}" if err.hint else "")) from None
        changes[key] = _typed_setting(profile, key, new, text, item)
        profile = profile.without_override(key)
    return profile.with_(**changes)


def _typed_setting(profile: Profile, key: str, value: Any, text: str, item: str) -> Any:
    """``value`` if it has the type of the profile's own value of ``key`` (a list for a
    tuple, an int for a float, null where the setting may be None), else a usage error.
    A text setting takes the text as written (YAML reads ``no`` as false), and a number
    setting a number YAML leaves as text (``1e-4``: YAML 1.1 floats need a dot)."""
    current = getattr(profile, key)
    declared = str(Profile.__dataclass_fields__[key].type)
    if isinstance(current, tuple) and isinstance(value, list):
        return tuple(value)
    if value is None and "None" in declared:
        return None
    if isinstance(current, str):
        return value if isinstance(value, str) else text
    if "float" in declared and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if current is None or isinstance(value, type(current)):
        return value
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    kinds = {tuple: "a JSON list", bool: "true or false", int: "a whole number", float: "a number"}
    kind = kinds.get(type(current), "text")
    raise usage_error(
        f"--set {item}: {key} takes {kind} (the {profile.name} profile has {current!r})"
    )


def run(args: argparse.Namespace) -> Path:
    profile = PROFILES[args.profile]
    changes: dict[str, Any] = {}
    if args.datasets:
        changes["datasets"] = tuple(args.datasets)
    if args.methods:
        changes["methods"] = tuple(args.methods)
    if args.seeds:  # beats the per-dataset seeds of the profile
        changes["seeds"] = tuple(args.seeds)
        profile = profile.without_override("seeds")
    if args.levels:  # beats the per-dataset levels of the profile
        changes["levels"] = _parse_levels(args.levels)
        profile = profile.without_override("levels")
    if args.no_efficiency:
        changes["efficiency"] = False
    if args.device:
        changes["device"] = args.device
    profile = apply_settings(profile.with_(**changes), args.set or [])
    for name in profile.datasets:
        if name not in DATASETS:
            raise usage_error(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    for name in profile.methods:
        if name not in ALL_METHODS:
            raise usage_error(f"unknown method {name!r}; known: {', '.join(ALL_METHODS)}")
    if profile.setfit_steps not in ("budget", "recipe"):
        raise usage_error(
            f"--set setfit_steps={profile.setfit_steps}: takes 'budget' (the other methods' "
            "optimizer steps) or 'recipe' (setfit's own)"
        )
    if profile.ta_model and profile.ta_model.startswith("fetched:"):
        from gpta.fetched import KNOWN_MODELS

        fetched = profile.ta_model.removeprefix("fetched:")
        if fetched not in KNOWN_MODELS:  # a typo must not fall back to the bundled TA
            raise usage_error(
                f"--set ta_model={profile.ta_model}: no such fetchable model; known: "
                + ", ".join(f"fetched:{n}" for n in sorted(KNOWN_MODELS))
            )
    out = Path(args.out or Path(__file__).resolve().parents[1] / "runs" / "bench" / profile.name)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    if results_path.exists() and not args.append:
        results_path.unlink()
    # nothing the benchmark does may touch the user's prefix library or TA cache
    os.environ.setdefault("GPTA_DATA_DIR", str(out / "gpta-data"))
    env = environment(profile)
    (out / "environment.json").write_text(json.dumps(env, indent=2) + "\n")
    print(f"[bench] profile {profile.name} -> {out}", flush=True)

    splits = {name: prepare_splits(profile, name, out) for name in profile.datasets}
    done = {
        (r["dataset"], r["level"], r["method"], r["seed"])
        for r in (read_results(results_path) if results_path.exists() else [])
    }
    # transfer needs the partner dataset's gpta run, gpta-tuned every other seed's: they go
    # last, in a second pass
    later = [m for m in profile.methods if m in SECOND_PASS]
    ordered = [m for m in profile.methods if m not in SECOND_PASS]
    passes = [ordered] + ([later] if later else [])
    keep_models = {"gpta"}
    started = time.perf_counter()

    def record(row: dict[str, Any]) -> None:
        with results_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        score = row.get("test")
        print(
            f"[bench] {row['dataset']} rows={row['level']} seed={row['seed']} {row['method']}: "
            f"{row['status']} test={score if score is None else round(score, 4)}"
            f" wall={row.get('wall_seconds')}s ({time.perf_counter() - started:.0f}s elapsed)",
            flush=True,
        )
        run_dir = row.get("run_dir")
        if run_dir and row["method"] not in keep_models and not args.keep_models:
            shutil.rmtree(Path(run_dir) / "model", ignore_errors=True)

    workers = args.workers or profile.workers
    env["workers"] = workers
    env["threads_per_worker"] = max(1, (os.cpu_count() or 1) // workers)
    for methods in passes:
        units = work_units(profile, methods, done)
        if workers == 1:
            for unit in units:
                for task in unit:
                    record(run_one(profile, out, splits, *task))
            continue
        # the workers' functions by their importable name: under ``python -m benchmarks`` this
        # file is ``__main__``, which a spawned process cannot import
        entry = importlib.import_module("benchmarks.__main__")
        with entry.worker_pool(workers, env["threads_per_worker"]) as pool:
            futures = [pool.submit(entry.run_unit, profile, out, splits, u) for u in units]
            for future in as_completed(futures):
                for row in future.result():
                    record(row)

    if profile.efficiency:
        efficiency = measure_efficiency(profile, out, splits)
        (out / "efficiency.json").write_text(json.dumps(efficiency, indent=2) + "\n")
    env["load_average_end"] = os.getloadavg()
    env["seconds"] = round(time.perf_counter() - started, 1)
    (out / "environment.json").write_text(json.dumps(env, indent=2) + "\n")
    return finish(out, profile.methods)


def work_units(
    profile: Profile, methods: list[str], done: set[tuple[Any, ...]]
) -> list[list[tuple[Any, ...]]]:
    """The runs of one pass still to do, as units a worker runs in order: one run each,
    except ``gpta-tuned`` runs that share an adapter (same dataset and seed, every level when
    ``tuned_pool`` is "dataset"), which go in one unit so the adapter is tuned once."""
    units: list[list[tuple[Any, ...]]] = []
    shared: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
    for dataset in profile.datasets:
        for level in setting(profile, dataset, "levels"):
            for seed in setting(profile, dataset, "seeds"):
                for method in methods:
                    task = (dataset, level, seed, method)
                    if (dataset, level, method, seed) in done:
                        continue
                    if not in_scope(profile, method, dataset, level, seed):
                        continue
                    if method == "gpta-tuned" and profile.tuned_pool == "dataset":
                        if (dataset, seed) not in shared:
                            shared[(dataset, seed)] = []
                            units.append(shared[(dataset, seed)])
                        shared[(dataset, seed)].append(task)
                    else:
                        units.append([task])
    return units


def worker_pool(workers: int, threads: int) -> ProcessPoolExecutor:
    # spawn, not fork: torch and llama.cpp hold threads and state that fork does not copy
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=init_worker,
        initargs=(threads,),
    )


def init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_unit(
    profile: Profile, out: Path, splits: dict, unit: list[tuple[Any, ...]]
) -> list[dict[str, Any]]:
    """A worker's job: the runs of one unit, in order."""
    return [run_one(profile, out, splits, *task) for task in unit]


def run_one(
    profile: Profile,
    out: Path,
    splits: dict,
    dataset: str,
    level: int | None,
    seed: int,
    method: str,
) -> dict[str, Any]:
    level_name = "full" if level is None else str(level)
    run_dir = out / "runs" / dataset / level_name / method / f"seed{seed}"
    rounds = setting(profile, dataset, "rounds")
    steps_per_round = setting(profile, dataset, "steps_per_round")
    epochs_per_round = setting(profile, dataset, "epochs_per_round")
    row: dict[str, Any] = {
        "dataset": dataset,
        "task": DATASETS[dataset].task,
        "level": level,
        "method": method,
        "seed": seed,
        "profile": profile.name,
        # a round is epochs_per_round epochs, or steps_per_round batches when that is set;
        # with neither, gpta's default budget rule (the run reports its steps)
        "epochs": rounds * epochs_per_round if epochs_per_round and not steps_per_round else None,
        "optimizer_steps": rounds * steps_per_round if steps_per_round else None,
        "max_length": setting(profile, dataset, "max_length"),
        "dev_rows": splits[dataset]["rows"]["dev"],
        "test_rows": splits[dataset]["rows"]["test"],
    }
    pool = splits[dataset]["rows"]["train_pool"]
    row["train_rows"] = pool if level is None else min(level, pool)
    base = M.base_config(profile, dataset, level, seed, splits[dataset], run_dir)
    base["training"].update(profile.scopes.get(method, {}).get("training", {}))
    if profile.true_few_shot and level is not None:
        base = M.true_few_shot(base, dataset, level, seed, out, method)
        row["train_rows"], row["dev_rows"] = level, 0
    fallback = M.ta_choice(profile)[1]
    if fallback and (method == "ta-once" or method in M.FULL_LOOP) and method != "gpta-bundled":
        row["ta_fallback"] = fallback
    try:
        if method == "prompt-tuning":
            result = M.run_prompt_tuning(base, learning_rate=profile.prompt_tuning_lr)
        elif method == "frozen-lr":
            result = M.run_frozen_lr(base)
        elif method == "setfit":
            result = M.run_setfit(base, steps=profile.setfit_steps)
        elif method == "gpta-tuned":
            result = run_tuned(profile, out, dataset, level, seed, base)
        else:
            partner = DATASETS[dataset].partner
            source = out / "runs" / partner / level_name / "gpta" / f"seed{seed}"
            config = M.method_config(method, base, transfer_from=source, profile=profile)
            result = M.run_gpta_method(config)
            if method == "transfer":
                result["transfer_from"] = str(source)
        row.update(result)
        row["status"] = "ok"
    except M.NotRun as reason:
        row.update(reason.details)
        row.update(status="not_run", reason=str(reason))
    except Exception as err:  # one failed run must not end the study
        row.update(status="error", reason=f"{type(err).__name__}: {err}")
        traceback.print_exc()
    return row


def run_tuned(
    profile: Profile, out: Path, dataset: str, level: int | None, seed: int, base: dict
) -> dict[str, Any]:
    """gpta-tuned: tune (or reuse) the TA adapter on the other seeds' gpta dialogues, then run
    the full loop with it. Too few examples: not_run (``tuned_fallback=skip``) or the full
    loop with the untuned TA, marked ``fallback`` (``tuned_fallback=untuned``)."""
    if profile.tuned_fallback not in ("skip", "untuned"):
        raise usage_error(f"tuned_fallback must be skip or untuned, not {profile.tuned_fallback!r}")
    tuning = M.tuned_adapter(profile, out, dataset, level, seed, base)
    how = "reused" if tuning["reused"] else f"{tuning['seconds']}s"
    print(
        f"[bench] gpta-tuned {dataset} seed={seed}: {tuning['examples']} examples from "
        f"{len(tuning['sources'])} runs of other seeds; adapter {tuning['adapter']} ({how})",
        flush=True,
    )
    if tuning["adapter"] is None:
        reason = (
            f"{tuning['examples']} dialogue-gradient examples in the gpta runs of the other "
            f"seeds ({len(tuning['sources'])} runs, pool={tuning['pool']}); tuning needs "
            f"{tuning['needed']} (tuned_min_examples): no adapter"
        )
        if profile.tuned_fallback == "skip":
            raise M.NotRun(reason, {"tuning": tuning})
        config = M.method_config("gpta", base, profile=profile)
        result = M.run_gpta_method(config)
        result.update(tuning=tuning, fallback=f"untuned TA: {reason}")
        return result
    config = M.method_config(
        "gpta-tuned",
        base,
        profile=profile,
        adapter=tuning["adapter"],
        store_examples=Path(tuning["examples_file"]),
    )
    result = M.run_gpta_method(config)
    result["tuning"] = tuning
    return result


EFFICIENCY_PARTS = ("latency", "throughput", "screening")


def measure_efficiency(
    profile: Profile, out: Path, splits: dict, what: tuple[str, ...] = EFFICIENCY_PARTS
) -> dict[str, Any]:
    from benchmarks import efficiency as E

    results_path = out / "results.jsonl"
    rows = read_results(results_path) if results_path.is_file() else []
    result: dict[str, Any] = {}
    if "screening" in what:
        result["screening"] = measure_screening(profile, out)
    if "latency" not in what:
        rows = []
    # latency: the first gpta run whose saved prefix is not empty (classification first)
    # (its saved prefix; else the first non-empty prefix the run trained with, on its model)
    candidates = sorted(
        (
            r
            for r in rows
            if r.get("status") == "ok" and r["method"] == "gpta" and any(r.get("prefixes") or [])
        ),
        key=lambda r: (not r.get("prefix"), r["task"] != "classification", r["dataset"], r["seed"]),
    )
    if "latency" not in what:
        pass
    elif candidates:
        chosen = candidates[0]
        prefix = chosen["prefix"] or next(p for p in chosen["prefixes"] if p)
        try:
            from benchmarks.profiles import read_jsonl

            test_rows = read_jsonl(Path(splits[chosen["dataset"]]["test"]))
            result["latency"] = E.latency(
                chosen["run_dir"], test_rows, device=profile.device, prefix=prefix
            )
            result["latency"]["dataset"] = chosen["dataset"]
            result["latency"]["saved_prefix"] = bool(chosen["prefix"])
        except Exception as err:
            result["latency"] = {"error": f"{type(err).__name__}: {err}"}
            traceback.print_exc()
    else:
        result["latency"] = {"error": "no gpta run with a non-empty saved prefix"}
    # throughput: the first classification dataset
    dataset = next((d for d in profile.datasets if DATASETS[d].task == "classification"), None)
    if "throughput" not in what:
        pass
    elif dataset is None:
        result["throughput"] = {"error": "no classification dataset in this invocation"}
    else:
        base = M.base_config(
            profile,
            dataset,
            profile.efficiency_rows,
            profile.seeds[0],
            splits[dataset],
            out / "runs" / "_throughput",
        )
        try:
            result["throughput"] = E.throughput(base)
            result["throughput"]["dataset"] = dataset
        except Exception as err:
            result["throughput"] = {"error": f"{type(err).__name__}: {err}"}
            traceback.print_exc()
    print(f"[bench] efficiency: {json.dumps(result)[:400]}", flush=True)
    return result


def measure_screening(profile: Profile, out: Path) -> list[dict[str, Any]]:
    """Issue 9: K candidates on ``screening_rows`` dev rows, ``screen`` x K vs one
    ``screen_many``, on the first classification dataset (else the first dataset); with the
    lm-verbalizer head too when the invocation has an -lm method. The dev rows are drawn as
    the profile's dev split is (``random.Random(0)``) but ``screening_rows`` of them, whatever
    the profile's ``dev_rows``."""
    from benchmarks import efficiency as E

    dataset = next(
        (d for d in profile.datasets if DATASETS[d].task == "classification"),
        profile.datasets[0] if profile.datasets else None,
    )
    if dataset is None:
        return [{"error": "no dataset in this invocation"}]
    sized = profile.with_(dev_rows=profile.screening_rows, test_rows=8, overrides={})
    paths = prepare_splits(sized, dataset, out / "_screening")
    base = M.base_config(profile, dataset, 64, profile.seeds[0], paths, out / "_screening" / "run")
    methods = ["finetune"]
    if any(m in M.LM_METHODS for m in profile.methods) and DATASETS[dataset].task == (
        "classification"
    ):
        methods.append("finetune-lm")
    prefixes = E.candidate_prefixes(DATASETS[dataset].static_prefix, profile.screening_candidates)
    figures = []
    for method in methods:
        config = M.method_config(method, base, profile=profile)
        try:
            figure = E.screening(config, prefixes, rows=profile.screening_rows)
        except Exception as err:
            figure = {"head": config["model"].get("head", "sequence"), "error": repr(err)}
            traceback.print_exc()
        figure["dataset"] = dataset
        figures.append(figure)
        print(f"[bench] screening: {json.dumps(figure)[:300]}", flush=True)
    return figures


def efficiency_only(args: argparse.Namespace) -> None:
    """The efficiency ratios alone, on the runs an earlier ``run`` left in ``--out``."""
    profile = PROFILES[args.profile]
    if args.datasets:
        profile = profile.with_(datasets=tuple(args.datasets))
    profile = apply_settings(profile, args.set or [])
    out = Path(args.out)
    os.environ.setdefault("GPTA_DATA_DIR", str(out / "gpta-data"))
    splits = {name: prepare_splits(profile, name, out) for name in profile.datasets}
    what = tuple(args.what or EFFICIENCY_PARTS)
    path = out / "efficiency.json"
    efficiency = json.loads(path.read_text()) if path.is_file() else {}
    load_start = os.getloadavg()
    efficiency.update(measure_efficiency(profile, out, splits, what))
    efficiency["load_average"] = [load_start, os.getloadavg()]
    path.write_text(json.dumps(efficiency, indent=2) + "\n")
    if (out / "results.jsonl").is_file():
        finish(out, profile.methods)


def finish(out: Path, methods: tuple[str, ...] | list[str]) -> Path:
    from benchmarks.plots import epoch_curves, learning_curves, score_vs_rows

    env_path = out / "environment.json"
    env = json.loads(env_path.read_text()) if env_path.is_file() else {}
    header = (
        f"# GPTA benchmark — profile `{env.get('profile', '?')}`\n\n"
        f"Machine: {env.get('cpu', '?')}, {env.get('cores', '?')} cores, "
        f"{env.get('ram_gb', '?')} GB RAM{', GPU ' + env['gpu'] if env.get('gpu') else ''}; "
        f"load average at start {env.get('load_average_start')}, at end "
        f"{env.get('load_average_end')}. Python {env.get('python')}, torch {env.get('torch')}, "
        f"transformers {env.get('transformers')}, peft {env.get('peft')}. "
        f"Started {env.get('started')}; {env.get('seconds', '?')} seconds in all.\n"
    )
    order = [m for m in ALL_METHODS if m in methods] or list(ALL_METHODS)
    path = write_markdown(out, order, header)
    if any(m in CARD_METHODS for m in order):
        from benchmarks.cards_table import write as write_cards

        print(f"[bench] wrote {write_cards(out, order, header)}", flush=True)
    rows = read_results(out / "results.jsonl")
    learning_curves(rows, out, order)
    epoch_curves(rows, out, order)
    score_vs_rows(rows, out, order)
    print(f"[bench] wrote {path}", flush=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run a profile")
    p_run.add_argument("--profile", choices=sorted(PROFILES), default="smoke")
    p_run.add_argument("--datasets", nargs="+", choices=sorted(DATASETS))
    p_run.add_argument("--methods", nargs="+", choices=ALL_METHODS)
    p_run.add_argument("--seeds", nargs="+", type=int)
    p_run.add_argument("--levels", nargs="+", help="training rows per level, or 'full'")
    p_run.add_argument("--device", choices=("cpu", "cuda", "auto"))
    p_run.add_argument("--out", help="output folder (default runs/bench/<profile>)")
    p_run.add_argument(
        "--append", action="store_true", help="keep results.jsonl and skip runs it already holds"
    )
    p_run.add_argument(
        "--keep-models",
        action="store_true",
        help="keep every run's saved model (default: gpta runs only)",
    )
    p_run.add_argument("--no-efficiency", action="store_true")
    p_run.add_argument(
        "--workers",
        type=_positive_int,
        help="runs side by side in worker processes, each with cores/workers torch threads "
        "(default: the profile's, 2 for cpu, else 1)",
    )
    p_run.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a profile setting, e.g. --set rounds=2 --set dev_rows=48",
    )
    p_eff = sub.add_parser(
        "efficiency", help="(re-)measure latency and throughput on an invocation's runs"
    )
    p_eff.add_argument("--out", required=True)
    p_eff.add_argument("--profile", choices=sorted(PROFILES), default="smoke")
    p_eff.add_argument("--datasets", nargs="+", choices=sorted(DATASETS))
    p_eff.add_argument("--set", action="append", metavar="KEY=VALUE")
    p_eff.add_argument(
        "--what",
        nargs="+",
        choices=EFFICIENCY_PARTS,
        help="measure only these (default: all); the others already in efficiency.json stay",
    )
    p_table = sub.add_parser("table", help="re-make results.md and plots from results.jsonl")
    p_table.add_argument("--out", required=True)
    p_table.add_argument("--methods", nargs="+", default=list(ALL_METHODS))
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args)
    elif args.command == "efficiency":
        efficiency_only(args)
    else:
        finish(Path(args.out), args.methods)
    return 0


if __name__ == "__main__":
    sys.exit(main())
