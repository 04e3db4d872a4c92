"""The report's figures (matplotlib, Agg backend: no display needed).

Every function takes one run or several (overlaid, one colour per run), writes one PNG and
returns its path, or returns None when no run has the data the figure needs.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from gpta.report.data import RunData

DPI = 110
COLORS = matplotlib.color_sequences["tab10"]


def prefix_ids(run: RunData) -> dict[str, str]:
    """P1, P2, ... for the distinct prefixes a run trained with, in order of first use."""
    ids: dict[str, str] = {}
    for row in run.rounds:
        if row.prefix not in ids:
            ids[row.prefix] = f"P{len(ids) + 1}"
    return ids


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _integer_rounds(ax, rounds: Sequence[int]) -> None:
    if rounds:
        ax.set_xticks(sorted(set(rounds)))
        ax.set_xlim(min(rounds) - 0.5, max(rounds) + 0.5)
    ax.set_xlabel("round")
    ax.grid(alpha=0.3)


def dev_score(runs: Sequence[RunData], path: Path) -> Path | None:
    """Dev score per round; a single run labels each point with the prefix it trained with."""
    if not any(r.dev_score is not None for run in runs for r in run.rounds):
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    xs_all: list[int] = []
    for i, run in enumerate(runs):
        rows = [r for r in run.rounds if r.dev_score is not None]
        xs = [r.round for r in rows]
        xs_all += xs
        ys = [r.dev_score for r in rows if r.dev_score is not None]  # (all of them)
        color = COLORS[i % len(COLORS)]
        ax.plot(xs, ys, marker="o", color=color, label=run.name if len(runs) > 1 else None)
        best = [(r.round, r.dev_score) for r in rows if r.best and r.dev_score is not None]
        if best:
            ax.plot(
                [best[0][0]],
                [best[0][1]],
                marker="*",
                markersize=16,
                color=color,
                linestyle="none",
            )
        if len(runs) == 1:
            ids = prefix_ids(run)
            for r in rows:
                label = ids[r.prefix] + ("" if r.prefix else " (none)")
                ax.annotate(
                    label,
                    (r.round, r.dev_score),
                    textcoords="offset points",
                    xytext=(0, 8),
                    ha="center",
                    fontsize=9,
                )
    _integer_rounds(ax, xs_all)
    metric = runs[0].metric
    ax.set_ylabel(f"dev {metric}")
    title = f"Dev {metric} per round (★ saved model"
    ax.set_title(title + ("; Pn = prefix used, see the table)" if len(runs) == 1 else ")"))
    ax.margins(y=0.15)
    if len(runs) > 1:
        ax.legend(fontsize=8)
    return _save(fig, path)


def losses(runs: Sequence[RunData], path: Path) -> Path | None:
    """Train and dev loss per round: the gap between them is the overfitting picture."""
    if not any(
        r.train_loss is not None or r.dev_loss is not None for run in runs for r in run.rounds
    ):
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    xs_all: list[int] = []
    for i, run in enumerate(runs):
        color = COLORS[i % len(COLORS)]
        name = f"{run.name}: " if len(runs) > 1 else ""
        for attr, style, label in (("train_loss", "-", "train"), ("dev_loss", "--", "dev")):
            rows = [r for r in run.rounds if getattr(r, attr) is not None]
            if rows:
                xs = [r.round for r in rows]
                xs_all += xs
                ax.plot(
                    xs,
                    [getattr(r, attr) for r in rows],
                    linestyle=style,
                    marker="o",
                    color=color,
                    label=f"{name}{label} loss",
                )
    _integer_rounds(ax, xs_all)
    ax.set_ylabel("loss")
    ax.set_title("Train and dev loss per round")
    ax.legend(fontsize=8)
    return _save(fig, path)


def improvement(runs: Sequence[RunData], path: Path) -> Path | None:
    """The TA's improvement rate per round: the share of its proposals that beat the prefix."""
    if not any(row.rate is not None for run in runs for row in run.improvement):
        return None
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / len(runs)
    xs_all: list[int] = []
    for i, run in enumerate(runs):
        rows = [row for row in run.improvement if row.rate is not None]
        xs = [row.round for row in rows]
        xs_all += xs
        offset = (i - (len(runs) - 1) / 2) * width
        bars = ax.bar(
            [x + offset for x in xs],
            [row.rate for row in rows if row.rate is not None],  # (all of them)
            width=width,
            color=COLORS[i % len(COLORS)],
            label=run.name if len(runs) > 1 else None,
        )
        for bar, row in zip(bars, rows, strict=True):
            ax.annotate(
                f"{row.improved}/{row.proposals}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                textcoords="offset points",
                xytext=(0, 3),
                ha="center",
                fontsize=8,
            )
    _integer_rounds(ax, xs_all)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("improvement rate")
    ax.set_title("TA improvement rate per round (improving / all proposals)")
    if len(runs) > 1:
        ax.legend(fontsize=8)
    return _save(fig, path)


def screened(runs: Sequence[RunData], path: Path) -> Path | None:
    """A strip plot of the candidates' screened scores per round, with the current prefix."""
    if not any(run.screens for run in runs):
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    jitter = random.Random(0)
    xs_all: list[int] = []
    width = 0.8 / len(runs)
    seen_labels: set[str] = set()
    for i, run in enumerate(runs):
        color = COLORS[i % len(COLORS)]
        offset = (i - (len(runs) - 1) / 2) * width
        name = f"{run.name}: " if len(runs) > 1 else ""
        for kind, marker, face, label in (
            ("candidate", "o", color, "candidate"),
            ("empty", "s", "none", "empty prefix"),
            ("current", "D", "black", "current prefix"),
        ):
            points = [p for p in run.screens if p.kind == kind]
            if not points:
                continue
            spread = 0.0 if kind == "current" else width * 0.35
            xs = [p.round + offset + jitter.uniform(-spread, spread) for p in points]
            xs_all += [p.round for p in points]
            text = f"{name}{label}"
            ax.scatter(
                xs,
                [p.score for p in points],
                marker=marker,
                facecolors=face,
                edgecolors=color if kind != "current" else "black",
                alpha=0.8,
                s=36,
                label=None if text in seen_labels else text,
                zorder=3,
            )
            seen_labels.add(text)
    _integer_rounds(ax, xs_all)
    ax.set_xlabel("round the candidates were screened for")
    ax.set_ylabel(f"screened {runs[0].metric}")
    ax.set_title("Candidates' screened scores per round")
    ax.legend(fontsize=8)
    return _save(fig, path)


def tokens(runs: Sequence[RunData], path: Path) -> Path | None:
    """TA tokens: per request for one run, per run (prompt/completion) for several."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    if len(runs) == 1:
        requests = runs[0].exposure.per_request
        if not any(r["prompt_tokens"] or r["completion_tokens"] for r in requests):
            plt.close(fig)
            return None
        xs = list(range(1, len(requests) + 1))
        prompt = [r["prompt_tokens"] for r in requests]
        completion = [r["completion_tokens"] for r in requests]
        ax.bar(xs, prompt, label="prompt", color=COLORS[0])
        ax.bar(xs, completion, bottom=prompt, label="completion", color=COLORS[1])
        ax.set_xticks(xs)
        ax.set_xlabel("TA request")
        total = sum(prompt) + sum(completion)
        cost = _cost(runs[0])
        money = f", ${cost:.4f}" if cost is not None else ""
        ax.set_title(f"TA tokens per request (total {total:,}{money})")
    else:
        names = [run.name for run in runs]
        prompt = [int(run.tokens.get("ta_prompt_tokens", 0)) for run in runs]
        completion = [int(run.tokens.get("ta_completion_tokens", 0)) for run in runs]
        if not any(prompt) and not any(completion):
            plt.close(fig)
            return None
        xs = list(range(len(runs)))
        ax.bar(xs, prompt, label="prompt", color=COLORS[0])
        ax.bar(xs, completion, bottom=prompt, label="completion", color=COLORS[1])
        ax.set_xticks(xs, names, rotation=15, fontsize=8)
        ax.set_title("TA tokens per run")
    ax.set_ylabel("tokens")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _cost(run: RunData) -> float | None:
    costs = [v for k, v in run.tokens.items() if "cost" in k and "max" not in k]
    return costs[0] if costs else None


def exposure(runs: Sequence[RunData], path: Path) -> Path | None:
    """Characters sent to the TA per request (the exposure ledger), rows marked."""
    if not any(run.exposure.per_request for run in runs):
        return None
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for i, run in enumerate(runs):
        requests = run.exposure.per_request
        xs = list(range(1, len(requests) + 1))
        color = COLORS[i % len(COLORS)]
        ax.plot(
            xs,
            [r["chars"] for r in requests],
            marker="o",
            color=color,
            label=run.name if len(runs) > 1 else "characters sent",
        )
        with_rows = [(x, r) for x, r in zip(xs, requests, strict=True) if r["rows"]]
        if with_rows:
            ax.scatter(
                [x for x, _ in with_rows],
                [r["chars"] for _, r in with_rows],
                marker="x",
                s=80,
                color="red",
                zorder=4,
                label=f"{run.name if len(runs) > 1 else ''} carries data rows".strip(),
            )
    longest = max(len(run.exposure.per_request) for run in runs)
    ax.set_xticks(range(1, longest + 1))
    ax.set_xlim(0.5, longest + 0.5)
    ax.set_xlabel("TA request")
    ax.set_ylabel("characters")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.set_title("What left the machine: characters per TA request")
    ax.legend(fontsize=8)
    return _save(fig, path)


FIGURES = {
    "dev_score": (dev_score, "Dev score per round"),
    "loss": (losses, "Train and dev loss per round"),
    "improvement": (improvement, "TA improvement rate per round"),
    "screened": (screened, "Screened scores of the candidates"),
    "tokens": (tokens, "TA tokens and cost"),
    "exposure": (exposure, "Exposure"),
}


def render_all(runs: Sequence[RunData], out_dir: Path) -> dict[str, Path | None]:
    """Every figure as ``out_dir/<name>.png``; None for a figure without data."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path | None] = {}
    for name, (func, _title) in FIGURES.items():
        target = out_dir / f"{name}.png"
        result = func(runs, target)
        if result is None and target.exists():
            target.unlink()  # a stale figure from an earlier report must not linger
        written[name] = result
    return written
