"""How many card examples per class? The proxy's answer on finished `cards` runs (issue 27).

For each finished run (its few-shot rows, its folds, the TA's first card set from cards.json),
the card step's proxy — logistic regression on frozen embeddings, cross-validated on the
run's own labelled rows — is scored with the first m kept examples of every class at w = 1,
for m = 0 (no cards) … the most the TA wrote. Nothing is generated and no test row is read:
this is the evidence a run has when it chooses, summed over runs. Prints, per dataset and
level, the mean cross-validated accuracy at each m, and writes ``card_count.json``.

    python -m benchmarks.card_count RUN_DIR [RUN_DIR ...] --out DIR
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.proxy_agreement import load_run


def first_per_class(examples: list[tuple[int, str]], m: int) -> list[tuple[int, str]]:
    """The first ``m`` examples of each class, in the card set's order."""
    taken: dict[int, int] = defaultdict(int)
    out = []
    for label, text in examples:
        if taken[label] < m:
            taken[label] += 1
            out.append((label, text))
    return out


def measure(run_dir: Path) -> dict[str, Any]:
    """The proxy's cross-validated accuracy of one run at every examples-per-class count."""
    from gpta.selection import ExtraRows, proxy_scores

    run = load_run(run_dir)
    examples = run.ta.examples()
    most = max((n for n in run.ta.counts().values()), default=0)
    embedded = run.embed([t for _, t in examples]) if examples else None
    index = {pair: i for i, pair in enumerate(examples)}
    accuracy: dict[int, float] = {}
    for m in range(most + 1):
        chosen = first_per_class(examples, m)
        extra = ExtraRows.none(run.features.shape[1])
        if chosen and embedded is not None:
            rows = [index[pair] for pair in chosen]
            extra = ExtraRows(
                embedded[rows], np.asarray([i for i, _ in chosen]), np.ones(len(chosen))
            )
        result = proxy_scores(
            run.features,
            run.labels,
            run.folds,
            extra,
            num_classes=len(run.task.labels),
            name=f"m={m}",
        )
        accuracy[m] = round(result.accuracy, 4)
    parts = run_dir.resolve().parts
    return {"run": str(run_dir), "dataset": parts[-4], "level": int(parts[-3]), "cv": accuracy}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    results = [measure(run) for run in args.runs]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "card_count.json").write_text(json.dumps(results, indent=2) + "\n")
    cells: dict[tuple[str, int], list[dict[int, float]]] = defaultdict(list)
    for r in results:
        cells[(r["dataset"], r["level"])].append(r["cv"])
    for (dataset, level), runs in sorted(cells.items()):
        counts = sorted(set.intersection(*(set(c) for c in runs)))
        means = "  ".join(f"m={m}: {statistics.fmean(c[m] for c in runs):.3f}" for m in counts)
        print(f"{dataset} {level} rows ({len(runs)} runs)  {means}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
