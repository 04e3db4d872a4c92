"""Prefix screening by cross-validation over the user's labelled rows (``selection.prefix:
cv``, classification).

At a round boundary each candidate prefix (and the current one) is scored on EVERY labelled
row the run has (train + dev), not on a handful of dev rows: the model in training embeds
``prefix + text`` for each row (frozen, forward passes only, the task's own encoding of a
prefix), and logistic regression on those embeddings is cross-validated over stratified
folds (:func:`gpta.selection.proxy_scores`, the proxy the card step uses). Each row's
out-of-fold correctness (0/1) is the paired score; :func:`gpta.selection.adopt` decides as
for any material. The folds are fixed for the run, so every candidate is paired row by row
with the current prefix.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from gpta.selection import ExtraRows, fold_count, proxy_scores, stratified_folds
from gpta.tasks.base import Screening

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase


class PrefixCrossValidation:
    """``screener(model, prefixes) -> [Screening]``: what the synergy loop calls instead of
    screening on dev rows (every process computes the same, on all rows)."""

    def __init__(
        self,
        task: Any,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        *,
        folds: int,
        seed: int,
        batch_size: int,
    ) -> None:
        self.task = task
        self.tokenizer = tokenizer
        self.texts = [r[task.text_column] for r in rows]
        self.labels = task._ids([r[task.label_column] for r in rows])
        self.k = fold_count(self.labels, folds)
        self.folds = stratified_folds(self.labels, self.k, seed=seed)
        self.num_classes = len(task.labels)
        self.batch_size = batch_size

    @property
    def rows(self) -> int:
        return len(self.labels)

    def embed(self, model: torch.nn.Module, prefix: str) -> np.ndarray:
        """The embeddings the model gives to ``prefix + text`` for every row (the task's
        encoding of the prefix, the model's own pooling)."""
        from gpta.modeling.embeddings import frozen_embeddings

        return frozen_embeddings(
            model,
            self.tokenizer,
            self.texts,
            max_length=self.task.max_length,
            batch_size=self.batch_size,
            encode=lambda part: self.task.encode(self.tokenizer, list(part), prefix),
        )

    def __call__(self, model: torch.nn.Module, prefixes: Sequence[str]) -> list[Screening]:
        out = []
        for prefix in prefixes:
            features = self.embed(model, prefix)
            result = proxy_scores(
                features,
                self.labels,
                self.folds,
                ExtraRows.none(features.shape[1]),
                num_classes=self.num_classes,
                name=prefix,
            )
            # the paired rows are the 0/1 out-of-fold correctness of each labelled row
            correct = tuple(float(v) for v in result.correct)
            out.append(dataclasses.replace(result.screening(), rows=correct))
        return out
