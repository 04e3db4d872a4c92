"""Plots of a results.jsonl (matplotlib, Agg):

- ``curves_<dataset>_<rows>.png``: the paper's Fig. 3 style — dev score per round (epoch)
  per method, mean over seeds with the min-max band;
- ``rows_<dataset>.png``: test score against training rows per method (mean ± std).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curves(rows: list[dict[str, Any]], out: Path, methods: list[str]) -> list[Path]:
    plt = _plt()
    groups: dict[tuple, dict[str, list[list[float]]]] = defaultdict(lambda: defaultdict(list))
    metric = {}
    for r in rows:
        if r.get("status") == "ok" and r.get("dev_curve"):
            groups[(r["dataset"], r["level"])][r["method"]].append(r["dev_curve"])
            metric[r["dataset"]] = r["metric"]
    written = []
    for (dataset, level), by_method in groups.items():
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for method in methods:
            curves = by_method.get(method)
            if not curves:
                continue
            length = min(len(c) for c in curves)
            xs = list(range(1, length + 1))
            mean = [statistics.fmean(c[i] for c in curves) for i in range(length)]
            lo = [min(c[i] for c in curves) for i in range(length)]
            hi = [max(c[i] for c in curves) for i in range(length)]
            (line,) = ax.plot(xs, mean, marker="o", label=method)
            ax.fill_between(xs, lo, hi, alpha=0.15, color=line.get_color())
        rows_label = "full" if level is None else level
        ax.set_title(f"{dataset}, {rows_label} training rows")
        ax.set_xlabel("round (epoch)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(f"dev {metric[dataset]}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"curves_{dataset}_{rows_label}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def score_vs_rows(rows: list[dict[str, Any]], out: Path, methods: list[str]) -> list[Path]:
    plt = _plt()
    groups: dict[str, dict[str, dict[Any, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    metric = {}
    actual: dict[tuple, int] = {}
    for r in rows:
        if r.get("status") == "ok":
            groups[r["dataset"]][r["method"]][r["level"]].append(r["test"])
            metric[r["dataset"]] = r["metric"]
            actual[(r["dataset"], r["level"])] = r.get("train_rows") or 0
    written = []
    for dataset, by_method in groups.items():
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for method in methods:
            levels = by_method.get(method)
            if not levels:
                continue
            keys = sorted(levels, key=lambda v: math.inf if v is None else v)
            xs = [actual[(dataset, k)] if k is None else k for k in keys]
            means = [statistics.fmean(levels[k]) for k in keys]
            stds = [statistics.stdev(levels[k]) if len(levels[k]) > 1 else 0.0 for k in keys]
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=method)
        ax.set_xscale("log")
        ax.set_title(dataset)
        ax.set_xlabel("training rows")
        ax.set_ylabel(f"test {metric[dataset]}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"rows_{dataset}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
