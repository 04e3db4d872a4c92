"""The `cards` profile's table (issue 27): results.jsonl -> Markdown.

Per dataset and level: every method's test accuracy (mean ± std over seeds); the best
no-TA method (frozen-lr, setfit, finetune, names: the highest mean); each TA method's
paired difference from it with a 95 % t-interval over the seeds and wins/ties/losses; how
often the run adopted its cards; TA seconds and tokens. Then, per dataset, a sample of the
card examples of each class and the share of kept examples that a probe on the real rows
alone gives to their intended class. An -ids variant borrows the label-agnostic rows of the
dataset it comes from (the same rows and seeds: its runs would repeat them).
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.profiles import DATASETS, LABEL_AGNOSTIC, NO_TA_BASELINES
from benchmarks.table import _fmt, _level, _level_key, _mean_std, paired, read_results

TA_METHODS = ("cards", "cards-dialogue", "cards-bundled", "cards-ungated", "gpta")


def _groups(rows: list[dict[str, Any]]) -> dict[tuple, dict[str, list[dict[str, Any]]]]:
    groups: dict[tuple, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row.get("status") == "ok" and row.get("test") is not None:
            groups[(row["dataset"], row["level"])][row["method"]].append(row)
    for (dataset, level), methods in list(groups.items()):
        source = DATASETS[dataset].source if dataset in DATASETS else None
        if source and (source, level) in groups:
            for method in LABEL_AGNOSTIC:
                if not methods.get(method) and groups[(source, level)].get(method):
                    methods[method] = groups[(source, level)][method]
    return groups


def _scores(runs: list[dict[str, Any]]) -> list[tuple[int, float]]:
    return [(r["seed"], float(r["test"])) for r in runs]


def cards_table(rows: list[dict[str, Any]], methods: list[str]) -> str:
    """The main table: one line per (dataset, level, method)."""
    groups = _groups(rows)
    lines = [
        "| dataset | rows | method | test accuracy | Δ vs best no-TA [95 % CI] | W/T/L "
        "| cards adopted | TA s / run | TA tokens / run |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key in sorted(groups, key=lambda k: (k[0], _level_key(k[1]))):
        dataset, level = key
        by_method = groups[key]
        present = [m for m in NO_TA_BASELINES if by_method.get(m)]
        best = (
            max(present, key=lambda m: statistics.fmean(s for _, s in _scores(by_method[m])))
            if present
            else None
        )
        for method in methods:
            runs = by_method.get(method)
            if not runs:
                continue
            name = f"**{method}**" if method == best else method
            cmp_cells = ["—", "—"]
            if method in TA_METHODS and best is not None:
                cmp = paired(_scores(runs), _scores(by_method[best]))
                if cmp["n"]:
                    ci = f" [{cmp['ci95'][0]:+.3f}, {cmp['ci95'][1]:+.3f}]" if cmp["ci95"] else ""
                    cmp_cells = [
                        f"{cmp['mean_diff']:+.3f}{ci}",
                        f"{cmp['wins']}/{cmp['ties']}/{cmp['losses']}",
                    ]
            adopted = [r for r in runs if r.get("cards_chosen") is not None]
            adopted_cell = (
                f"{sum(r['cards_chosen'] != 'w=0' for r in adopted)}/{len(adopted)}"
                if adopted
                else "—"
            )
            ta_seconds = [float((r.get("seconds") or {}).get("ta", 0.0)) for r in runs]
            ta_tokens = [
                int(r.get("ta_tokens") or 0) + int(r.get("card_ta_tokens") or 0) for r in runs
            ]
            accuracy = _mean_std([s for _, s in _scores(runs)])
            lines.append(
                f"| {dataset} | {_level(level)} | {name} | {accuracy} "
                f"| {cmp_cells[0]} | {cmp_cells[1]} | {adopted_cell} "
                f"| {_fmt(statistics.fmean(ta_seconds), 1)} | {statistics.fmean(ta_tokens):.0f} |"
            )
    return "\n".join(lines) + "\n"


def samples(rows: list[dict[str, Any]], methods: list[str]) -> str:
    """Per dataset and card method: two kept examples of each class (the first seed's run
    at the lowest level), and the intended-class share over every run."""
    out = []
    seen: set[tuple[str, str]] = set()
    ordered = sorted(
        (r for r in rows if r.get("cards_sample") is not None and r.get("status") == "ok"),
        key=lambda r: (r["dataset"], r["method"], _level_key(r["level"]), r["seed"]),
    )
    for row in ordered:
        key = (row["dataset"], row["method"])
        if key in seen or row["method"] not in methods or row["method"] == "names":
            continue
        seen.add(key)
        shares = [
            r["cards_intended_share"]
            for r in ordered
            if (r["dataset"], r["method"]) == key and r.get("cards_intended_share") is not None
        ]
        share = f"{statistics.fmean(shares):.2f}" if shares else "—"
        out.append(
            f"**{row['dataset']}, {row['method']}** (kept / written examples per class: "
            f"{_kept(row)}; share a real-row probe gives to the intended class, mean over "
            f"runs: {share})\n"
        )
        for label, texts in row["cards_sample"].items():
            shown = " / ".join(f"“{t}”" for t in texts) or "(none kept)"
            out.append(f"- {label}: {shown}")
        out.append("")
    return "\n".join(out) + "\n"


def _kept(row: dict[str, Any]) -> str:
    """Kept / written examples of each class in the run's last card set (its cards.json)."""
    path = Path(row.get("run_dir") or "") / "cards.json"
    if not path.is_file():
        return "—"
    cards = json.loads(path.read_text(encoding="utf-8"))["sets"][-1]["cards"]
    return ", ".join(
        f"{c['label']} {sum(e['dropped'] is None for e in c['examples'])}/{len(c['examples'])}"
        for c in cards
    )


def write(out: Path, methods: list[str], header: str = "") -> Path:
    """``cards.md`` in ``out`` from its results.jsonl."""
    rows = read_results(out / "results.jsonl")
    text = (
        header
        + "\n## Test accuracy (true few-shot)\n\n"
        + cards_table(rows, methods)
        + "\n## Card examples\n\n"
        + samples(rows, methods)
    )
    path = out / "cards.md"
    path.write_text(text, encoding="utf-8")
    return path
