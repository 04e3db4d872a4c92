"""Plots of a results.jsonl (matplotlib, Agg):

- ``curves_<dataset>_<rows>.png``: the paper's Fig. 3 style — dev score per round (epoch)
  per method, mean over seeds with the min-max band;
- ``epochs_<dataset>_<rows>.png``: learning curves, three panels — train loss, dev loss and
  dev score per round (epoch) per method, mean over seeds with the min-max band (the
  ``curves`` profile: 20 rounds of 1 epoch);
- ``rows_<dataset>.png``: test score against training rows per method (mean ± std).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.table import method_label


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
            groups[(r["dataset"], r["level"])][method_label(r)].append(r["dev_curve"])
            metric[r["dataset"]] = r["metric"]
    written = []
    for (dataset, level), by_method in groups.items():
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for method in [*methods, *sorted(m for m in by_method if m not in methods)]:
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
            groups[r["dataset"]][method_label(r)][r["level"]].append(r["test"])
            metric[r["dataset"]] = r["metric"]
            actual[(r["dataset"], r["level"])] = r.get("train_rows") or 0
    written = []
    for dataset, by_method in groups.items():
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for method in [*methods, *sorted(m for m in by_method if m not in methods)]:
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


EPOCH_PANELS = (
    ("train_loss_curve", "train loss"),
    ("dev_loss_curve", "dev loss"),
    ("dev_curve", "dev {metric}"),
)


def epoch_curves(rows: list[dict[str, Any]], out: Path, methods: list[str]) -> list[Path]:
    """Train loss, dev loss and dev score per round, per method (mean, min-max band)."""
    plt = _plt()
    groups: dict[tuple, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    metric = {}
    for r in rows:
        if r.get("status") == "ok" and r.get("dev_curve"):
            groups[(r["dataset"], r["level"])][method_label(r)].append(r)
            metric[r["dataset"]] = r["metric"]
    written = []
    for (dataset, level), by_method in groups.items():
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        order = [*methods, *sorted(m for m in by_method if m not in methods)]
        for ax, (key, title) in zip(axes, EPOCH_PANELS, strict=True):
            for method in order:
                curves = [
                    [v for v in (r.get(key) or []) if v is not None]
                    for r in by_method.get(method, [])
                ]
                curves = [c for c in curves if c]
                if not curves:
                    continue
                length = min(len(c) for c in curves)
                xs = list(range(1, length + 1))
                mean = [statistics.fmean(c[i] for c in curves) for i in range(length)]
                lo = [min(c[i] for c in curves) for i in range(length)]
                hi = [max(c[i] for c in curves) for i in range(length)]
                (line,) = ax.plot(xs, mean, marker=".", label=method)
                ax.fill_between(xs, lo, hi, alpha=0.15, color=line.get_color())
            ax.set_title(title.format(metric=metric[dataset]))
            ax.set_xlabel("round (epoch)")
            ax.xaxis.get_major_locator().set_params(integer=True)
        axes[0].legend(fontsize=7)
        rows_label = "full" if level is None else level
        fig.suptitle(f"{dataset}, {rows_label} training rows")
        fig.tight_layout()
        path = out / f"epochs_{dataset}_{rows_label}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
