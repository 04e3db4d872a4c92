"""Choosing among teaching materials from the user's own labelled rows (true few-shot).

Every choice a run makes between a candidate and the current material (a prefix, a word
set, a class-card set and its weight) goes through one rule, :func:`adopt`: the best
challenger replaces the current material only when it scores higher by more than a margin
AND a one-sided paired t-test over the same rows says so at the run's confidence
(Bonferroni over the challengers, so k tries do not buy a false adoption). The current
material wins every tie.

For materials that change what the model *trains on* (class cards), forward passes of the
model in training cannot screen a candidate: the model has not learnt from it. Those are
screened by stratified k-fold cross-validation over the labelled rows the run has
(:func:`stratified_folds`), with a cheap proxy learner in each fold — logistic regression
on the frozen embeddings of the downstream model (:func:`proxy_scores`, seconds) — so every
real row is a paired screening row and no row outside the user's data is used (Perez et
al. 2021, "True Few-Shot Learning with Language Models").
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpta.tasks.base import Screening


def adopt(
    current: Screening,
    challengers: Sequence[Screening],
    *,
    margin: float,
    confidence: float,
) -> Screening | None:
    """The challenger that replaces ``current``, or None (``current`` stays).

    The best challenger (by score, then lower loss) must beat ``current`` by more than
    ``margin`` and, with ``confidence`` > 0, pass a one-sided paired t-test on the same rows
    at level ``(1 - confidence) / len(challengers)`` (``selection.margin`` and
    ``selection.adopt_confidence`` in a run)."""
    best = best_of(challengers)
    if best is None:
        return None
    alpha = (1 - confidence) / max(1, len(challengers)) if confidence else 1.0
    return best if significantly_beats(best, current, margin=margin, alpha=alpha) else None


def beats(challenger: Screening, current: Screening, margin: float) -> bool:
    """Higher score by more than ``margin``; on an exact tie, a clearly lower loss wins (the
    rule without the paired test)."""
    if challenger.score > current.score + margin:
        return True
    return (
        margin == 0 and challenger.score == current.score and challenger.loss < current.loss * 0.98
    )


def significantly_beats(
    challenger: Screening, current: Screening, *, margin: float, alpha: float
) -> bool:
    """Better than ``current`` by more than ``margin`` AND by a one-sided paired t-test on
    the same rows at level ``alpha`` (per-row scores; without them, :func:`beats` alone).

    The screening sample is small (tens of rows): a plain "higher score" there adopts
    noise about half the time. ``alpha >= 1`` turns the test off."""
    if not challenger.score > current.score + margin:
        return False
    if alpha >= 1 or not challenger.rows or len(challenger.rows) != len(current.rows):
        return beats(challenger, current, margin)
    return paired_p_value(challenger.rows, current.rows) < alpha


def paired_p_value(better: Sequence[float], than: Sequence[float]) -> float:
    """One-sided p-value of a paired t-test that ``better`` scores higher than ``than``, row by
    row (scipy). Equal differences on every row (no variance): 0 if they are all positive,
    else 1."""
    from scipy.stats import ttest_rel

    differences = [a - b for a, b in zip(better, than, strict=True)]
    if len(set(differences)) <= 1:
        return 0.0 if differences and differences[0] > 0 else 1.0
    return float(ttest_rel(list(better), list(than), alternative="greater").pvalue)


def best_of(screenings: Sequence[Screening]) -> Screening | None:
    """The highest score; a lower loss breaks ties; the earliest wins exact ties."""
    best: Screening | None = None
    for screening in screenings:
        if best is None or (screening.score, -screening.loss) > (best.score, -best.loss):
            best = screening
    return best


def stratified_folds(labels: Sequence[Any], k: int, *, seed: int) -> list[list[int]]:
    """``k`` disjoint folds of row indices covering every row, each class spread over the
    folds as evenly as its count allows (seeded). ``k`` is cut to the number of rows."""
    k = max(1, min(k, len(labels)))
    by_class: dict[Any, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_class[label].append(index)
    rng = random.Random(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    start = 0
    for label in sorted(by_class, key=str):
        members = by_class[label]
        rng.shuffle(members)
        for offset, index in enumerate(members):  # round-robin, continuing across classes
            folds[(start + offset) % k].append(index)
        start = (start + len(members)) % k
    return [sorted(fold) for fold in folds]


def fold_count(labels: Sequence[Any], wanted: int) -> int:
    """The folds cross-validation uses: ``wanted``, at most the rows of the rarest class
    (so that every class has a row to train on in every fold), at least 2."""
    rarest = min(Counter(labels).values()) if labels else 0
    return max(2, min(wanted, rarest, len(labels)))


@dataclass(frozen=True)
class ExtraRows:
    """Rows a candidate adds to every fold's training: embeddings, class ids, and one loss
    weight per row (the candidate's ``w``)."""

    features: np.ndarray  # (n, dim)
    labels: np.ndarray  # (n,)
    weights: np.ndarray  # (n,)

    @classmethod
    def none(cls, dim: int) -> ExtraRows:
        return cls(np.zeros((0, dim), dtype=np.float32), np.zeros(0, dtype=int), np.zeros(0))


@dataclass(frozen=True)
class CrossValidated:
    """A candidate's out-of-fold predictions on every real row."""

    name: str
    predicted: np.ndarray  # (rows,) class ids
    probabilities: np.ndarray  # (rows, classes)
    correct: np.ndarray  # (rows,) 1.0 / 0.0
    true_log_prob: np.ndarray  # (rows,) out-of-fold log-probability of the true class

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean()) if len(self.correct) else 0.0

    @property
    def loss(self) -> float:
        """Mean cross-entropy of the true class (the tie-breaker)."""
        return float(-self.true_log_prob.mean()) if len(self.true_log_prob) else 0.0

    def screening(self) -> Screening:
        """As :func:`adopt` reads it: the paired per-row score is the row's 0/1 correctness,
        the metric the user reads and the same per-row score the prefix gate tests; the
        mean log-loss breaks ties (see docs/cards.md, "the paired score")."""
        return Screening(self.name, self.accuracy, self.loss, tuple(float(v) for v in self.correct))


def proxy_scores(
    features: np.ndarray,
    labels: Sequence[int],
    folds: Sequence[Sequence[int]],
    extra: ExtraRows,
    *,
    num_classes: int,
    name: str,
    keep_extra: Any = None,
    c: float = 1.0,
) -> CrossValidated:
    """Out-of-fold predictions of logistic regression on frozen embeddings, trained in each
    fold on the other folds' real rows (weight 1) plus ``extra`` (its own weights).

    ``keep_extra(fold_probe, extra) -> mask`` may drop extra rows per fold using a probe fit
    on that fold's real training rows alone (the ZeroGen/SuperGen filter, applied inside the
    fold so that a held-out row never decides which extra rows stay)."""
    from sklearn.linear_model import LogisticRegression

    labels_arr = np.asarray(labels, dtype=int)
    rows = len(labels_arr)
    probabilities = np.zeros((rows, num_classes), dtype=np.float64)
    for fold in folds:
        held = np.asarray(fold, dtype=int)
        if not len(held):
            continue
        train = np.setdiff1d(np.arange(rows), held)
        x, y = features[train], labels_arr[train]
        w = np.ones(len(train))
        mask = np.ones(len(extra.labels), dtype=bool)
        if keep_extra is not None and len(extra.labels):
            base = LogisticRegression(C=c, max_iter=1000).fit(x, y)
            mask = keep_extra(base, extra)
        chosen = mask & (extra.weights > 0)
        if chosen.any():
            x = np.concatenate([x, extra.features[chosen]])
            y = np.concatenate([y, extra.labels[chosen]])
            w = np.concatenate([w, extra.weights[chosen]])
        probe = LogisticRegression(C=c, max_iter=1000).fit(x, y, sample_weight=w)
        fold_probs = np.full((len(held), num_classes), 1e-9)
        fold_probs[:, probe.classes_] = probe.predict_proba(features[held])
        probabilities[held] = fold_probs
    predicted = probabilities.argmax(axis=1)
    correct = (predicted == labels_arr).astype(float)
    true = np.log(np.clip(probabilities[np.arange(rows), labels_arr], 1e-9, 1.0))
    return CrossValidated(name, predicted, probabilities, correct, true)


def per_class_feedback(
    result: CrossValidated, labels: Sequence[int], names: Sequence[str], *, pairs: int = 3
) -> dict[str, Any]:
    """Aggregate numbers only, for the TA: the recall of each class over the cross-validated
    rows, and the most confused (true, predicted) class pairs with their counts."""
    labels_arr = np.asarray(labels, dtype=int)
    recall = {}
    for index, name in enumerate(names):
        members = labels_arr == index
        recall[str(name)] = (
            round(float(result.correct[members].mean()), 3) if members.any() else None
        )
    confused = Counter(
        (int(t), int(p)) for t, p in zip(labels_arr, result.predicted, strict=True) if t != p
    )
    top = [
        {"true": str(names[t]), "predicted": str(names[p]), "count": n}
        for (t, p), n in sorted(confused.items(), key=lambda item: (-item[1], item[0]))[:pairs]
    ]
    return {"recall_per_class": recall, "confused_pairs": top, "rows": len(labels_arr)}
