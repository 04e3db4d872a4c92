"""Does the card step's proxy rank candidates as cross-validated fine-tuning does? (issue 27)

For a finished `cards` run (its few-shot training file and its cards.json), every candidate
(w = 0, the names control at w = 1, the TA's cards at w = 1) is scored twice on the same
stratified folds of the run's labelled rows: by the proxy the run used (logistic regression
on frozen embeddings: :func:`gpta.selection.proxy_scores`) and by fine-tuning gpta's own
recipe on the other folds (card rows at their weight, one round so that no held-out row
chooses a round) and predicting the held-out fold. Prints, per run, each candidate's two
cross-validated accuracies and whether each pair of candidates is ordered the same way.

    python -m benchmarks.proxy_agreement RUN_DIR [RUN_DIR ...] --out DIR
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _write(path: Path, rows: list[dict[str, Any]]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return str(path)


def _label(run_dir: Path) -> str:
    """A folder name unique to the run (runs/<dataset>/<level>/<method>/seed<k>): two runs'
    folds must never share a folder, or the second would reuse the first's finished folds."""
    return "-".join(run_dir.resolve().parts[-4:])


@dataclass
class FinishedRun:
    """A finished `cards` run as its card step saw it: its config, task, labelled rows (train
    + dev) and their class ids, the folds it used, the TA's first card set (kept examples),
    and the proxy's embedder with the rows' features."""

    config: Any
    task: Any
    rows: list[dict[str, Any]]
    labels: list[int]
    folds: list[list[int]]
    ta: Any  # CardSet
    embed: Any  # texts -> features
    features: np.ndarray


def load_run(run_dir: Path) -> FinishedRun:
    """Rebuild what the run's card step had, from its folder (config.yaml, cards.json)."""
    from gpta.assistant.card_choice import _Embedder
    from gpta.assistant.cards import CardExample, CardSet, ClassCard
    from gpta.config import load_config
    from gpta.run import load_data
    from gpta.selection import fold_count, stratified_folds
    from gpta.tasks import build_task

    config = load_config(run_dir / "config.yaml")
    tables = load_data(config)
    task = build_task(config, tables)
    rows = list(tables["train"].rows) + list(tables["dev"].rows)  # the card step's rows
    labels = task._ids([r[task.label_column] for r in rows])
    folds = stratified_folds(labels, fold_count(labels, config.selection.folds), seed=config.seed)
    record = json.loads((run_dir / "cards.json").read_text(encoding="utf-8"))
    ta = CardSet(
        "ta",
        [
            ClassCard(
                c["label"],
                c["name"],
                examples=[CardExample(e["text"]) for e in c["examples"] if not e["dropped"]],
            )
            for c in record["sets"][0]["cards"]
        ],
    )
    embed = _Embedder(task, config.model.resolved_name(config.task), config)
    features = embed([r[task.text_column] for r in rows])
    return FinishedRun(config, task, rows, labels, folds, ta, embed, features)


def measure(run_dir: Path, out: Path) -> dict[str, Any]:
    """Both scores of every candidate of one cards run."""
    from gpta.assistant.cards import card_rows, names_cards
    from gpta.config import build_config
    from gpta.run import train
    from gpta.selection import ExtraRows, proxy_scores

    run = load_run(run_dir)
    config, task, rows, labels, folds, ta = (
        run.config,
        run.task,
        run.rows,
        run.labels,
        run.folds,
        run.ta,
    )
    embed, features = run.embed, run.features
    candidates = {"w=0": None, "names w=1": names_cards(task.label_names), "ta w=1": ta}
    result: dict[str, Any] = {"run": str(run_dir), "rows": len(rows), "folds": len(folds)}
    for name, cards in candidates.items():
        extra = ExtraRows.none(features.shape[1])
        added: list[dict[str, Any]] = []
        if cards is not None and cards.examples():
            examples = cards.examples()
            extra = ExtraRows(
                embed([t for _, t in examples]),
                np.asarray([i for i, _ in examples]),
                np.ones(len(examples)),
            )
            added = card_rows(
                cards,
                labels=task.labels,
                text_column=task.text_column,
                label_column=task.label_column,
                weight=1.0,
            )
        proxy = proxy_scores(
            features, labels, folds, extra, num_classes=len(task.labels), name=name
        )
        correct = np.zeros(len(rows))
        for k, fold in enumerate(folds):
            held = set(fold)
            base = out / _label(run_dir) / name.replace(" ", "_").replace("=", "") / f"fold{k}"
            fold_train = [r for i, r in enumerate(rows) if i not in held] + added
            fold_test = [rows[i] for i in fold]
            data = dict(config.data.model_dump())
            data.update(
                train=_write(base / "train.jsonl", fold_train),
                dev=_write(base / "dev.jsonl", fold_test),
                test=_write(base / "test.jsonl", fold_test),
                train_size=None,
            )
            fold_config = build_config(
                {
                    **config.model_dump(mode="json"),
                    "output_dir": str(base / "run"),
                    "data": data,
                    "cards": {"source": "none"},
                    "training": {**config.training.model_dump(mode="json"), "rounds": 1},
                    "assistant": {
                        **config.assistant.model_dump(mode="json"),
                        "initial": "empty",
                        "fixed_prefix": True,
                        "library": False,
                    },
                }
            )
            if not (base / "run" / "metrics.json").is_file():  # a finished fold is reused
                train(fold_config, overwrite=True, quiet=True)
            lines = (base / "run" / "predictions" / "test.jsonl").read_text().splitlines()
            predicted = [json.loads(line)["prediction"] for line in lines]
            predicted = [p["label"] if isinstance(p, dict) else p for p in predicted]
            for i, p in zip(fold, predicted, strict=True):
                correct[i] = float(str(p) == str(rows[i][task.label_column]))
        result[name] = {"proxy": round(proxy.accuracy, 4), "finetune": round(correct.mean(), 4)}
    names = list(candidates)
    agree = []
    for a, b in itertools.combinations(names, 2):
        dp = result[a]["proxy"] - result[b]["proxy"]
        df = result[a]["finetune"] - result[b]["finetune"]
        same = bool(np.sign(dp) == np.sign(df))
        agree.append({"pair": f"{a} vs {b}", "proxy": dp, "finetune": df, "same": same})
    result["pairs"] = agree
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    results = [measure(run, args.out) for run in args.runs]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "agreement.json").write_text(json.dumps(results, indent=2) + "\n")
    for r in results:
        print(r["run"], f"{r['rows']} rows, {r['folds']} folds")
        for name in ("w=0", "names w=1", "ta w=1"):
            scores = r[name]
            print(f"  {name:10s} proxy {scores['proxy']:.3f}  fine-tuning {scores['finetune']:.3f}")
        for pair in r["pairs"]:
            print(
                f"  {pair['pair']}: proxy {pair['proxy']:+.3f}, fine-tuning "
                f"{pair['finetune']:+.3f}, same order: {pair['same']}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
