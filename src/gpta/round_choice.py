"""The number of rounds a run trains, chosen by cross-validation over the user's labelled rows
(``selection.best_round: cv``, classification).

Before the final training, k fold trainings — each on the other folds' labelled rows (plus
any adopted class-card rows), with the run's schedule, no TA and no prefix — evaluate their
held-out fold at every round's end. Every labelled row is thus held out once, and the round
with the highest out-of-fold accuracy over all of them (ties: the later round) is the
number of rounds the final model trains for, on ALL the labelled rows (no dev split). The
fold trainings are the run's own Trainer (:func:`gpta.downstream.training.build_trainer`),
not a second training loop.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpta.selection import fold_count, stratified_folds


def chosen_rounds(accuracies: Sequence[float]) -> int:
    """The number of rounds to train: the round (1-based) with the highest out-of-fold
    accuracy; the later round wins a tie. The run's schedule is the prior: the folds move
    the run off it only when an earlier round scored strictly higher. (At 16 rows a fold
    model can score the same after every round, e.g. the majority class throughout; the
    earlier round would then be the least trained model, which the folds did not prefer.)"""
    if not accuracies:
        raise ValueError("no rounds to choose from")
    best = 0
    for index, value in enumerate(accuracies):
        if value >= accuracies[best]:
            best = index
    return best + 1


@dataclass(frozen=True)
class RoundChoice:
    """What the cross-validation chose, as metrics.json and the checkpoints keep it."""

    rounds: int  # the rounds the final model trains for
    accuracies: list[float]  # out-of-fold accuracy over all labelled rows after each round
    folds: int
    rows: int
    seconds: float
    where: str  # "16 labelled rows (train 13 + dev 3)"

    def line(self) -> str:
        return (
            f"best round: {self.folds}-fold cross-validation over the {self.where}; "
            f"{self.rounds} round{'s' if self.rounds != 1 else ''}; the model then trains on "
            f"all {self.rows} labelled rows"
        )

    def record(self) -> dict[str, Any]:
        return {
            "mode": "cv",
            "folds": self.folds,
            "rows": self.rows,
            "out_of_fold_accuracy": [round(a, 6) for a in self.accuracies],
            "chosen_rounds": self.rounds,
            "seconds": round(self.seconds, 2),
            "line": self.line(),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any], where: str) -> RoundChoice:
        return cls(
            rounds=int(record["chosen_rounds"]),
            accuracies=[float(a) for a in record["out_of_fold_accuracy"]],
            folds=int(record["folds"]),
            rows=int(record["rows"]),
            seconds=float(record["seconds"]),
            where=where,
        )


def out_of_fold_accuracy(
    config: Any,
    task: Any,
    rows: Sequence[dict[str, Any]],
    folds: Sequence[Sequence[int]],
    *,
    extra_rows: Sequence[dict[str, Any]] = (),
    device: str,
) -> np.ndarray:
    """``(rounds, len(rows))`` 0/1: whether each row, held out, was right after each round of
    the fold training that did not see it."""
    correct = np.zeros((config.training.rounds, len(rows)))
    for fold in folds:
        held = sorted(fold)
        if not held:
            continue
        held_set = set(held)
        train_rows = [r for i, r in enumerate(rows) if i not in held_set] + list(extra_rows)
        correct[:, held] = _fold_training(
            config, task, train_rows, [rows[i] for i in held], device=device
        )
    return correct


def _fold_training(
    config: Any,
    task: Any,
    train_rows: Sequence[dict[str, Any]],
    held_rows: Sequence[dict[str, Any]],
    *,
    device: str,
) -> np.ndarray:
    """One fold: a fresh model trained with the run's schedule on ``train_rows`` (the run's
    Trainer, no prefix, no checkpoints); ``(rounds, len(held_rows))`` 0/1 after each round."""
    from transformers import set_seed

    from gpta.downstream.training import build_trainer
    from gpta.modeling.loading import quiet_loading

    training = config.training.model_copy(update={"report_to": ["none"]})
    correct = np.zeros((training.rounds, len(held_rows)))
    set_seed(config.seed)
    with quiet_loading():
        model, tokenizer = task.load_model(config.model.resolved_name(config.task))
    task.prepare_model(model, tokenizer, list(train_rows), batch_size=training.eval_batch_size)

    def on_round_end(round_index: int, trained: Any, _loss: float | None) -> bool:
        outputs = task.outputs(
            trained, tokenizer, list(held_rows), "", batch_size=training.eval_batch_size
        )
        correct[round_index] = task.score(held_rows, outputs).row_scores
        return False

    with tempfile.TemporaryDirectory(prefix="gpta-round-cv-") as scratch:
        trainer, _ = build_trainer(
            model=model,
            tokenizer=tokenizer,
            task=task,
            rows=train_rows,
            config=training,
            rounds=training.rounds,
            seed=config.seed,
            device=device,
            checkpoint_dir=scratch,
            on_round_end=on_round_end,
            prefix="",
            show_progress=False,
        )
        trainer.train()
    return correct


def choose_rounds(
    config: Any,
    task: Any,
    rows: Sequence[dict[str, Any]],
    *,
    where: str,
    extra_rows: Sequence[dict[str, Any]] = (),
    device: str,
) -> RoundChoice:
    """Stratified k-fold cross-validation (``selection.folds``, the run's seed) of the run's
    schedule over ``rows``: the round count with the best out-of-fold accuracy."""
    started = time.perf_counter()
    labels = task._ids([r[task.label_column] for r in rows])
    k = fold_count(labels, config.selection.folds)
    folds = stratified_folds(labels, k, seed=config.seed)
    correct = out_of_fold_accuracy(config, task, rows, folds, extra_rows=extra_rows, device=device)
    accuracies = [float(v) for v in correct.mean(axis=1)]
    return RoundChoice(
        rounds=chosen_rounds(accuracies),
        accuracies=accuracies,
        folds=k,
        rows=len(rows),
        seconds=time.perf_counter() - started,
        where=where,
    )


@dataclass
class RunSelection:
    """Which rows a run chooses with (``selection``), resolved for this run: ``auto`` is
    cross-validation when the dev rows would be split off the user's only labelled rows
    (``split_off``: true few-shot) and those are at most ``selection.cv_max_rows``, else the
    dev rows. Classification only; other task
    families choose on dev."""

    prefix: str  # "dev" | "cv"
    best_round: str  # "dev" | "cv" | "last"
    labelled: list[dict[str, Any]]  # train + dev: the rows cross-validation uses
    where: str  # "16 labelled rows (train 13 + dev 3)"
    k: int  # the folds: selection.folds, cut to the rows of the rarest class
    seed: int
    rounds: RoundChoice | None = None  # best_round cv, once chosen

    @classmethod
    def resolve(
        cls, config: Any, tables: dict[str, Any], *, split_off: bool, legacy: bool = False
    ) -> RunSelection:
        """``legacy``: a run resumed from a checkpoint written before ``selection`` existed
        goes on as it started (dev)."""
        classification = config.task == "classification"
        train, dev = tables["train"], tables["dev"]
        labelled = [*train.rows, *dev.rows]
        few = len(labelled) <= config.selection.cv_max_rows

        def mode(wanted: str) -> str:
            if legacy:
                return "dev"
            if wanted != "auto":
                return wanted
            return "cv" if split_off and classification and few else "dev"

        column = config.data.label_column or "label"
        labels = [str(r.get(column)) for r in labelled] if classification else []
        return cls(
            prefix=mode(config.selection.prefix),
            best_round=mode(config.selection.best_round),
            labelled=labelled,
            where=f"{len(labelled)} labelled rows (train {len(train)} + dev {len(dev)})",
            k=fold_count(labels, config.selection.folds),
            seed=config.seed,
        )

    @property
    def keeps_last(self) -> bool:
        """The run keeps its last round (best_round cv: of the chosen count; or last)."""
        return self.best_round in ("cv", "last")

    def choose_rounds(
        self,
        config: Any,
        task: Any,
        extra_rows: Sequence[dict[str, Any]],
        resumed: dict[str, Any] | None,
        progress: Any,
        device: str,
    ) -> None:
        """best_round cv: the fold trainings (a resumed run reads the choice from its
        checkpoint's state instead)."""
        if self.best_round == "cv":
            record = ((resumed or {}).get("selection") or {}).get("best_round") or {}
            if record.get("mode") == "cv":
                self.rounds = RoundChoice.from_record(record, self.where)
            else:
                progress.info(
                    f"best round: {self.k} fold trainings of {config.training.rounds} rounds "
                    f"over the {self.where} (no TA) ..."
                )
                self.rounds = choose_rounds(
                    config,
                    task,
                    self.labelled,
                    where=self.where,
                    extra_rows=extra_rows,
                    device=device,
                )

    def training_rows(self, tables: dict[str, Any]) -> list[dict[str, Any]]:
        """The rows the final model trains on: every labelled row under best_round cv (no
        dev split), else train."""
        return list(self.labelled) if self.best_round == "cv" else list(tables["train"].rows)

    def screener(self, config: Any, task: Any, tokenizer: Any) -> Any:
        """selection.prefix cv: the loop's screening by cross-validation (else None)."""
        if self.prefix != "cv":
            return None
        from gpta.prefix_cv import PrefixCrossValidation

        return PrefixCrossValidation(
            task,
            tokenizer,
            self.labelled,
            folds=self.k,
            seed=self.seed,
            batch_size=config.training.eval_batch_size,
        )

    def lines(self) -> list[str]:
        """What chooses the prefix and the round kept, as the run prints it."""
        if self.prefix == "cv":
            prefix = f"prefix screening: {self.k}-fold cross-validation over the {self.where}"
        else:
            prefix = "prefix screening: dev rows"
        if self.rounds is not None:
            best = self.rounds.line()
        elif self.best_round == "last":
            best = "best round: the last round"
        else:
            best = "best round: the best dev score"
        return [prefix, best]

    def record(self) -> dict[str, Any]:
        """metrics.json's ``selection`` (and each checkpoint's, for --resume)."""
        prefix: dict[str, Any] = {"mode": self.prefix}
        if self.prefix == "cv":
            prefix.update(folds=self.k, rows=len(self.labelled))
        best = self.rounds.record() if self.rounds is not None else {"mode": self.best_round}
        return {
            "prefix": prefix,
            "best_round": best,
            "dev_rows_trained_on": self.best_round == "cv",
            "lines": self.lines(),
        }
