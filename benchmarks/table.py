"""results.jsonl -> a Markdown table: mean ± std over seeds, and the paired difference from
``finetune`` with a paired t-test across seeds (scipy.stats.ttest_rel); when another no-prefix
method ran too (``frozen-lr``, ``setfit``, ``finetune-lm``), also from the best no-prefix
baseline (the one with the higher mean test score at that dataset and level: the harder bar
for a prefix method). An -ids variant (``Dataset.source``) is compared with the
label-agnostic baselines of the dataset it comes from when it has none of its own.

With n seeds a paired t-test has n - 1 degrees of freedom: only a large, consistent difference
reaches p < 0.05, and a small p is weak evidence. The table also gives wins/ties/losses
per seed, which says the same thing without the test's normality assumption.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.profiles import DATASETS, LABEL_AGNOSTIC, NO_PREFIX_BASELINES


def read_results(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _fmt(value: float | None, digits: int = 3) -> str:
    return (
        "—"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{value:.{digits}f}")
    )


def _mean_std(values: list[float]) -> str:
    if not values:
        return "—"
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.3f} ± {std:.3f}"


def paired(method: list[tuple[int, float]], base: list[tuple[int, float]]) -> dict[str, Any]:
    """Paired differences over the seeds both have; t-test when there are at least 2."""
    by_seed = dict(base)
    pairs = [(score, by_seed[seed]) for seed, score in method if seed in by_seed]
    if not pairs:
        return {"n": 0}
    diffs = [a - b for a, b in pairs]
    out: dict[str, Any] = {
        "n": len(diffs),
        "mean_diff": statistics.fmean(diffs),
        "wins": sum(d > 0 for d in diffs),
        "ties": sum(d == 0 for d in diffs),
        "losses": sum(d < 0 for d in diffs),
        "p": None,
        "ci95": None,
    }
    if len(diffs) >= 2 and any(d != diffs[0] for d in diffs):
        from scipy.stats import t, ttest_rel

        out["p"] = float(ttest_rel([a for a, _ in pairs], [b for _, b in pairs]).pvalue)
        half = t.ppf(0.975, len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
        out["ci95"] = (out["mean_diff"] - half, out["mean_diff"] + half)
    return out


def method_label(row: dict[str, Any]) -> str:
    """The method as the tables show it: a gpta-tuned run that fell back to the untuned TA
    (too few examples to tune on) is kept apart from the tuned ones."""
    if row.get("method") == "gpta-tuned" and row.get("fallback"):
        return "gpta-tuned (untuned fallback)"
    return row["method"]


def best_no_prefix(
    by_method: dict[str, list[tuple[int, float]]],
) -> tuple[str | None, list[tuple[int, float]]]:
    """The no-prefix baseline with the higher mean test score (``finetune`` wins a tie)."""
    present = [m for m in NO_PREFIX_BASELINES if by_method.get(m)]
    if not present:
        return None, []
    best = max(
        present, key=lambda m: (statistics.fmean(s for _, s in by_method[m]), m == present[0])
    )
    return best, by_method[best]


def _cmp_cells(method: list[tuple[int, float]], base: list[tuple[int, float]]) -> list[str]:
    cmp = paired(method, base)
    if cmp["n"] == 0:
        return ["—", "—", "—"]
    ci = f" [{cmp['ci95'][0]:+.3f}, {cmp['ci95'][1]:+.3f}]" if cmp["ci95"] else ""
    return [
        f"{cmp['mean_diff']:+.3f}{ci}",
        f"{cmp['wins']}/{cmp['ties']}/{cmp['losses']}",
        _fmt(cmp["p"], 2),
    ]


def _level(value: Any) -> str:
    return "full" if value is None else str(value)


def _level_key(value: Any) -> float:
    return math.inf if value is None else float(value)


def main_table(
    rows: list[dict[str, Any]], methods_order: list[str], *, metric: str | None = None
) -> str:
    """Test scores per dataset x level x method with the paired comparisons; ``metric`` picks
    another test metric than the primary one (rows without it are left out)."""
    ok = [r for r in rows if r.get("status") == "ok"]
    if metric is not None:
        ok = [r for r in ok if metric in (r.get("test_metrics") or {})]
    groups: dict[tuple, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    metric_of: dict[str, str] = {}
    for r in ok:
        value = r["test"] if metric is None else r["test_metrics"][metric]
        groups[(r["dataset"], r["level"])][method_label(r)].append((r["seed"], value))
        metric_of[r["dataset"]] = r["metric"] if metric is None else metric
    order = _with_labels(methods_order, {m for g in groups.values() for m in g})
    borrowed = _borrowed_baselines(groups)
    two_baselines = any(
        m in g for g in groups.values() for m in NO_PREFIX_BASELINES if m != "finetune"
    )
    header = (
        "| dataset | train rows | method | test (mean ± std) | Δ vs finetune [95% CI] | W/T/L "
        "| p (paired t) |"
    )
    rule = "| --- | ---: | --- | --- | ---: | :---: | ---: |"
    if two_baselines:
        header += " best no-prefix | Δ vs best no-prefix | W/T/L | p (paired t) |"
        rule += " --- | ---: | :---: | ---: |"
    lines = [header, rule]
    for dataset, level in sorted(groups, key=lambda k: (k[0], _level_key(k[1]))):
        by_method = groups[(dataset, level)]
        pool = {**borrowed.get((dataset, level), {}), **by_method}
        base = pool.get("finetune", [])
        best, best_scores = best_no_prefix(pool)
        for method in order:
            if method not in by_method:
                continue
            scores = [s for _, s in by_method[method]]
            cells = ["", "", ""] if method == "finetune" else _cmp_cells(by_method[method], base)
            if two_baselines:
                cells.append(best or "—")
                if method == best or best is None:
                    cells += ["", "", ""]
                else:
                    cells += _cmp_cells(by_method[method], best_scores)
            lines.append(
                f"| {dataset} ({metric_of[dataset]}) | {_level(level)} | {method} | "
                f"{_mean_std(scores)} | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines)


def _borrowed_baselines(
    groups: dict[tuple, dict[str, list[tuple[int, float]]]],
) -> dict[tuple, dict[str, list[tuple[int, float]]]]:
    """For an -ids variant without its own label-agnostic baselines, those of the dataset
    it comes from at the same level (the same rows and seeds: the runs would repeat)."""
    out: dict[tuple, dict[str, list[tuple[int, float]]]] = {}
    for dataset, level in groups:
        spec = DATASETS.get(dataset)
        source = spec.source if spec else None
        if source is None or (source, level) not in groups:
            continue
        out[(dataset, level)] = {
            m: scores for m, scores in groups[(source, level)].items() if m in LABEL_AGNOSTIC
        }
    return out


def _with_labels(methods_order: list[str], present: set[str]) -> list[str]:
    """The method order, a fallback label right after its method, unknown labels last."""
    order: list[str] = []
    for method in methods_order:
        order.append(method)
        order.extend(sorted(p for p in present if p != method and p.startswith(method + " (")))
    order.extend(sorted(p for p in present if p not in order))
    return order


def cost_table(rows: list[dict[str, Any]], methods_order: list[str]) -> str:
    """Mean wall seconds split, TA tokens and peak memory per dataset x level x method."""
    ok = [r for r in rows if r.get("status") == "ok"]
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in ok:
        groups[(r["dataset"], r["level"], method_label(r))].append(r)
    methods_order = _with_labels(methods_order, {k[2] for k in groups})
    lines = [
        "| dataset | rows | method | wall s | train s | TA s | screen s | eval s | TA tokens "
        "| wall / finetune | peak RSS MB |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    keys = sorted(
        groups,
        key=lambda k: (
            k[0],
            _level_key(k[1]),
            methods_order.index(k[2]) if k[2] in methods_order else 99,
        ),
    )
    for dataset, level, method in keys:
        runs = groups[(dataset, level, method)]
        base = {r["seed"]: r for r in groups.get((dataset, level, "finetune"), [])}

        def mean(f, runs=runs):
            return statistics.fmean(f(r) for r in runs)

        ratios = [
            r["wall_seconds"] / base[r["seed"]]["wall_seconds"]
            for r in runs
            if r["seed"] in base and base[r["seed"]]["wall_seconds"]
        ]
        ratio = f"{statistics.fmean(ratios):.2f}" if ratios else "—"
        rss = max((r.get("peak_rss_mb") or 0) for r in runs)
        lines.append(
            f"| {dataset} | {_level(level)} | {method} | {mean(lambda r: r['wall_seconds']):.1f} "
            f"| {mean(lambda r: r['seconds']['train']):.1f} "
            f"| {mean(lambda r: r['seconds']['ta']):.1f} "
            f"| {mean(lambda r: r['seconds']['screen']):.1f} "
            f"| {mean(lambda r: r['seconds']['eval']):.1f} "
            f"| {mean(lambda r: r['ta_tokens']):.0f} | {ratio} | {rss:.0f} |"
        )
    return "\n".join(lines)


def efficiency_summary(rows: list[dict[str, Any]], efficiency: dict[str, Any]) -> str:
    ok = [r for r in rows if r.get("status") == "ok"]
    lines = ["| figure | value | target | how |", "| --- | ---: | --- | --- |"]
    by_key = {(r["dataset"], r["level"], r["seed"], r["method"]): r for r in ok}
    ratios, shares, within = [], [], []
    for (dataset, level, seed, method), r in by_key.items():
        if method != "gpta":
            continue
        sec = r["seconds"]
        if sec["train"] + sec["eval"] > 0:
            within.append(sum(sec.values()) / (sec["train"] + sec["eval"]))
        base = by_key.get((dataset, level, seed, "finetune"))
        if base and base["wall_seconds"]:
            ratios.append(r["wall_seconds"] / base["wall_seconds"])
        if r["wall_seconds"]:
            shares.append(r["seconds"]["ta"] / r["wall_seconds"])
    if ratios:
        lines.append(
            f"| GPTA wall / finetune wall (equal epochs) | {statistics.fmean(ratios):.2f} "
            f"(min {min(ratios):.2f}, max {max(ratios):.2f}, n={len(ratios)}) | <= 1.25 | "
            "paired runs of this invocation; TA runs synchronously at round ends |"
        )
    if within:
        lines.append(
            f"| GPTA loop seconds / its training + eval seconds (same run) "
            f"| {statistics.fmean(within):.2f} (min {min(within):.2f}, max {max(within):.2f}) "
            "| <= 1.25 | (train+eval+TA+screen)/(train+eval) inside each gpta run: robust to "
            "load changing between runs |"
        )
    if shares:
        lines.append(
            f"| TA share of GPTA wall time | {100 * statistics.fmean(shares):.0f}% "
            f"(max {100 * max(shares):.0f}%) | — | metrics.json ta_seconds / wall |"
        )
    lat = efficiency.get("latency")
    if lat and "ratio" in lat:
        lines.append(
            f"| inference latency with prefix / without | {lat['ratio']:.2f} "
            f"({lat['ms_per_row_with']:.2f} vs {lat['ms_per_row_without']:.2f} ms/row, "
            f"+{lat['prefix_tokens']} prefix tokens, {lat['rows']} rows) | only the prefix's "
            'tokens, no LLM | load_pipeline, saved prefix vs "", medians |'
        )
    thr = efficiency.get("throughput")
    if thr and "ratio" in thr:
        lines.append(
            f"| training throughput ours / plain Trainer | {thr['ratio']:.2f} "
            f"({thr['ours_steps_per_s']:.2f} vs {thr['plain_steps_per_s']:.2f} steps/s, "
            f"batch {thr['batch_size']}, {thr['rows']} rows) | >= 0.95 | "
            "empty prefix, same model/args, warm-up then A-B/B-A medians |"
        )
    for key in ("latency", "throughput"):
        if efficiency.get(key, {}).get("error"):
            lines.append(f"| {key} | not measured: {efficiency[key]['error']} | | |")
    for fig in efficiency.get("screening") or []:
        what = (
            f"screening K={fig.get('candidates', '?')} candidates, {fig.get('head') or 'model'} "
            f"({fig.get('dataset', '?')}): sequential screen x K / one screen_many"
        )
        if fig.get("speedup") is not None:
            lines.append(
                f"| {what} | {fig['speedup']:.2f} ({fig['sequential_median_s']:.3f} s vs "
                f"{fig['batched_median_s']:.3f} s, {fig['rows']} dev rows, batch "
                f"{fig['batch_size']}; results {'agree' if fig['agree'] else 'DIFFER'}) | > 1 | "
                f"{fig['machine']}; warm-up then A-B/B-A medians |"
            )
        else:
            lines.append(f"| {what} | not measured: {fig.get('error', '?')} | | |")
    return "\n".join(lines)


def curves_table(rows: list[dict[str, Any]], methods_order: list[str], *, min_rounds: int = 6):
    """Learning curves in numbers (runs of at least ``min_rounds`` rounds): mean over seeds of
    train loss / dev loss / dev score at a few epochs, and the epoch of the best dev score."""
    ok = [
        r for r in rows if r.get("status") == "ok" and len(r.get("dev_curve") or []) >= min_rounds
    ]
    if not ok:
        return ""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in ok:
        groups[(r["dataset"], r["level"], method_label(r))].append(r)
    length = min(len(r["dev_curve"]) for r in ok)
    marks = sorted({1, *range(5, length + 1, 5), length})
    order = _with_labels(methods_order, {k[2] for k in groups})
    lines = [
        "| dataset | rows | method | "
        + " | ".join(f"epoch {m}: train / dev loss / dev" for m in marks)
        + " | best dev epoch |",
        "| --- | ---: | --- | " + " | ".join("---" for _ in marks) + " | ---: |",
    ]

    def at(runs: list[dict[str, Any]], key: str, i: int) -> str:
        values = [r[key][i] for r in runs if r.get(key) and r[key][i] is not None]
        return _fmt(statistics.fmean(values), 3) if values else "—"

    for key in sorted(
        groups,
        key=lambda k: (k[0], _level_key(k[1]), order.index(k[2]) if k[2] in order else 99),
    ):
        runs = groups[key]
        cells = [
            f"{at(runs, 'train_loss_curve', m - 1)} / {at(runs, 'dev_loss_curve', m - 1)} / "
            f"{at(runs, 'dev_curve', m - 1)}"
            for m in marks
        ]
        mean_dev = [statistics.fmean(r["dev_curve"][i] for r in runs) for i in range(length)]
        best = 1 + max(range(length), key=mean_dev.__getitem__)
        lines.append(
            f"| {key[0]} | {_level(key[1])} | {key[2]} | " + " | ".join(cells) + f" | {best} |"
        )
    return "\n".join(lines)


def tuned_table(rows: list[dict[str, Any]]) -> str:
    """gpta-tuned: per run, what its TA adapter was tuned on (or why there was none)."""
    tuned = [r for r in rows if r.get("method") == "gpta-tuned"]
    if not tuned:
        return ""
    lines = [
        "| dataset | rows | seed | status | examples (needed) | source runs | adapter "
        "| tune s | TA loss before → after |",
        "| --- | ---: | ---: | --- | ---: | ---: | --- | ---: | --- |",
    ]
    for r in sorted(tuned, key=lambda r: (r["dataset"], _level_key(r["level"]), r["seed"])):
        t = r.get("tuning") or {}
        status = r.get("status", "?") + (" (untuned fallback)" if r.get("fallback") else "")
        adapter = "—"
        if t.get("adapter"):
            adapter = Path(t["adapter"]).name + (" (reused)" if t.get("reused") else "")
        losses = (
            f"{t['loss_before']:.3f} → {t['loss_after']:.3f}"
            if t.get("loss_before") is not None and t.get("loss_after") is not None
            else "—"
        )
        lines.append(
            f"| {r['dataset']} | {_level(r['level'])} | {r['seed']} | {status} "
            f"| {t.get('examples', '—')} ({t.get('needed', '—')}) | {len(t.get('sources') or [])} "
            f"| {adapter} | {t.get('seconds', 0.0):.1f} | {losses} |"
        )
    return "\n".join(lines)


def predicts_one_class(row: dict[str, Any]) -> bool | None:
    """Whether a classification run's saved model gave every test row the same label (one
    class found with recall 1, every other with 0); None for other tasks."""
    recall = (row.get("test_metrics") or {}).get("recall_per_class")
    if not recall:
        return None
    found = [value for value in recall.values() if value > 0]
    return len(found) == 1 and found[0] == 1.0


def floor_table(rows: list[dict[str, Any]], methods_order: list[str]) -> str:
    """Per dataset and level: the majority-class test accuracy (always the most frequent
    training label) and, per method, the runs whose model predicts one class on test."""
    ok = [r for r in rows if r.get("status") == "ok" and predicts_one_class(r) is not None]
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in ok:
        groups[(r["dataset"], r["level"])].append(r)
    if not groups:
        return ""
    lines = [
        "| dataset | train rows | majority-class test accuracy (mean) | one-class runs |",
        "| --- | ---: | ---: | --- |",
    ]
    for dataset, level in sorted(groups, key=lambda k: (k[0], _level_key(k[1]))):
        runs = groups[(dataset, level)]
        majority = [r["majority"] for r in runs if r.get("majority") is not None]
        counts = []
        for method in _with_labels(methods_order, {method_label(r) for r in runs}):
            mine = [r for r in runs if method_label(r) == method]
            if mine:
                counts.append(
                    f"{method} {sum(bool(predicts_one_class(r)) for r in mine)}/{len(mine)}"
                )
        lines.append(
            f"| {dataset} | {_level(level)} | "
            f"{_fmt(statistics.fmean(majority)) if majority else '—'} | {', '.join(counts)} |"
        )
    return "\n".join(lines)


def prefix_table(rows: list[dict[str, Any]], methods_order: list[str]) -> str:
    """Every run that chose a prefix or label words with the TA: what its saved model serves
    with, and the TA's requests and tokens."""
    chosen = [
        r
        for r in rows
        if r.get("status") == "ok" and (r.get("ta_requests") or r.get("label_words_source"))
    ]
    if not chosen:
        return ""
    order = {m: i for i, m in enumerate(methods_order)}
    chosen.sort(
        key=lambda r: (r["dataset"], _level_key(r["level"]), order.get(r["method"], 99), r["seed"])
    )
    lines = [
        "| dataset | rows | method | seed | test | TA s | TA tokens | prefix served "
        "| label words |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in chosen:
        prefix = (r.get("prefix") or "(none)").replace("|", "\\|").replace("\n", " ")
        words = r.get("label_words")
        shown = ", ".join(f"{k}: {v}" for k, v in words.items()) if isinstance(words, dict) else "—"
        if r.get("label_words_source"):
            shown += f" ({r['label_words_source']})"
        lines.append(
            f"| {r['dataset']} | {_level(r['level'])} | {method_label(r)} | {r['seed']} "
            f"| {_fmt(r.get('test'))} | {r['seconds']['ta']:.1f} | {r.get('ta_tokens', 0)} "
            f"| {prefix} | {shown} |"
        )
    return "\n".join(lines)


def not_run_table(rows: list[dict[str, Any]]) -> str:
    missing: dict[tuple[str, str], str] = {}
    for r in rows:
        if r.get("status") != "ok":
            missing.setdefault((r["dataset"], r["method"]), r.get("reason", "?"))
    if not missing:
        return ""
    lines = ["| dataset | method | why not run |", "| --- | --- | --- |"]
    for (dataset, method), reason in sorted(missing.items()):
        lines.append(f"| {dataset} | {method} | {reason} |")
    return "\n".join(lines)


def write_markdown(out: Path, methods_order: list[str], header: str) -> Path:
    rows = read_results(out / "results.jsonl")
    eff_path = out / "efficiency.json"
    efficiency = json.loads(eff_path.read_text()) if eff_path.is_file() else {}
    parts = [
        header,
        "## Test score (best round's saved model)\n",
        main_table(rows, methods_order),
        "\nΔ: mean paired difference from `finetune` over the seeds, with its 95 % t "
        "interval; W/T/L: seeds where the method beat / tied / lost to `finetune`; p: paired "
        "t-test across seeds (n - 1 degrees of freedom for n seeds: 2 with 3 seeds, 4 with 5;"
        " weak evidence either way). Best no-prefix (shown when another no-prefix method "
        "ran): of `frozen-lr`, `setfit`, `finetune` and `finetune-lm`, the one with the "
        "higher mean test score at that dataset and level, and the same paired figures "
        "against it. An -ids variant without its own `frozen-lr`, `setfit` or `finetune` runs"
        " is compared with those of the dataset it comes from (same rows and seeds; these "
        "methods never read label names).\n",
    ]
    floor = floor_table(rows, methods_order)
    if floor:
        parts += ["## Against the majority class (classification; same runs)\n", floor, ""]
    macro_f1 = main_table(rows, methods_order, metric="macro_f1")
    if macro_f1.count("\n") > 1:  # classification rows: macro-F1 too
        parts += ["## Test macro-F1 (classification; same runs)\n", macro_f1, ""]
    parts += [
        "## Cost per run (means over seeds)\n",
        cost_table(rows, methods_order),
        "\n## Efficiency ratios (this invocation)\n",
        efficiency_summary(rows, efficiency),
    ]
    curves = curves_table(rows, methods_order)
    if curves:
        parts += [
            "\n## Learning curves (means over seeds; plots: epochs_<dataset>_<rows>.png)\n",
            curves,
        ]
    tuned = tuned_table(rows)
    if tuned:
        parts += [
            "\n## gpta-tuned: the TA adapters\n",
            tuned,
            "\nEach seed's adapter is LoRA-tuned on the dialogue-gradient examples of this "
            "invocation's `gpta` runs of the same dataset with the OTHER seeds (screened on dev "
            "rows; the test split is in no conversation).",
        ]
    winners = prefix_table(rows, methods_order)
    if winners:
        parts += [
            "\n## The prefixes and label words the runs served with\n",
            winners,
        ]
    skipped = not_run_table(rows)
    if skipped:
        parts += ["\n## Not run\n", skipped]
    path = out / "results.md"
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path
