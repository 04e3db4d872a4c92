"""Single-label text classification.

The prefix joins the text as one segment, ``prefix + " " + text``, and the
sequence is truncated on the right. Because the prefix comes first and is
capped well below ``max_length``, truncation only ever removes text tokens.
With the empty prefix the input is exactly the plain fine-tuning input.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_f1_score,
    multiclass_recall,
)

from gpta.data import Table, require_columns, require_text
from gpta.errors import GptaUserError

PREFIX_SEPARATOR = " "


def join_prefix(prefix: str, text: str) -> str:
    """The model input for one row: the prefix, a separator, the text."""
    return f"{prefix}{PREFIX_SEPARATOR}{text}" if prefix else text


@dataclass
class ClassificationTask:
    """Labels, input encoding and metrics for single-label classification."""

    text_column: str
    label_column: str
    labels: list[Any]  # index = class id; values as they appear in the data
    max_length: int
    family: str = field(default="classification", init=False)
    primary_metric: str = field(default="accuracy", init=False)

    # --- building and validating -------------------------------------------------------------
    @classmethod
    def from_tables(
        cls, tables: dict[str, Table], *, text_column: str, label_column: str, max_length: int
    ) -> ClassificationTask:
        """Validate every split and take the label set from the training split."""
        for table in tables.values():
            require_columns(table, [text_column], option="data.text_column")
            require_columns(table, [label_column], option="data.label_column")
            require_text(table, text_column)
            _require_labels_present(table, label_column)
        labels = _sorted_labels(tables["train"].column(label_column))
        if len(labels) < 2:
            raise GptaUserError(
                f"{tables['train'].source}: column {label_column!r} has a single class "
                f"({labels[0]!r}); classification needs at least two",
                hint="check data.label_column, or sample more rows (data.train_size)",
            )
        task = cls(text_column, label_column, labels, max_length)
        for name, table in tables.items():
            if name != "train":
                task.label_ids(table)  # raises on a label unseen in training
        return task

    def label_ids(self, table: Table) -> list[int]:
        """Class ids of a table's rows; unknown labels are errors naming the row."""
        index = {label: i for i, label in enumerate(self.labels)}
        ids = []
        for value, where in zip(table.column(self.label_column), table.locations, strict=True):
            key = _label_key(value)
            if key not in index:
                raise GptaUserError(
                    f"{table.source}, {where}: label {value!r} in column {self.label_column!r} "
                    f"does not occur in the training data (known: {self.labels})",
                    hint="fix the label, or add rows with it to the training data",
                )
            ids.append(index[key])
        return ids

    @property
    def label_names(self) -> list[str]:
        """Labels as strings, for the TA and for predictions."""
        return [str(label) for label in self.labels]

    # --- model inputs --------------------------------------------------------------------------
    def encode(self, tokenizer: Any, texts: Sequence[str], prefix: str) -> dict[str, torch.Tensor]:
        """Tokenize ``prefix + text`` for a batch; only text tokens are ever truncated."""
        return tokenizer(
            [join_prefix(prefix, text) for text in texts],
            truncation=True,
            max_length=self.max_length,
            padding=True,
            return_tensors="pt",
        )

    # --- metrics ---------------------------------------------------------------------------------
    def metrics(self, predictions: Sequence[int], references: Sequence[int]) -> dict[str, Any]:
        """Accuracy (primary), macro-F1 and per-class recall."""
        preds = torch.as_tensor(list(predictions))
        refs = torch.as_tensor(list(references))
        k = len(self.labels)
        recall = multiclass_recall(preds, refs, num_classes=k, average=None)
        return {
            "accuracy": float(multiclass_accuracy(preds, refs, num_classes=k, average="micro")),
            "macro_f1": float(multiclass_f1_score(preds, refs, num_classes=k, average="macro")),
            "recall_per_class": {
                name: round(float(r), 4) for name, r in zip(self.label_names, recall, strict=True)
            },
            "support_per_class": {
                self.label_names[i]: n for i, n in sorted(Counter(refs.tolist()).items())
            },
        }


def _label_key(value: Any) -> Any:
    """Labels compare by value: 1, 1.0 and numpy ints are the same class; strings stay strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _sorted_labels(values: Sequence[Any]) -> list[Any]:
    keys = {_label_key(v) for v in values}
    if all(isinstance(k, int) for k in keys):
        return sorted(keys)
    return sorted(keys, key=str)


def _require_labels_present(table: Table, column: str) -> None:
    for value, where in zip(table.column(column), table.locations, strict=True):
        if (
            value is None
            or (isinstance(value, str) and not value.strip())
            or (isinstance(value, float) and value != value)
        ):
            raise GptaUserError(
                f"{table.source}, {where}: empty label in column {column!r}",
                hint="give every row a label, or remove the row",
            )
        if isinstance(value, list | dict):
            raise GptaUserError(
                f"{table.source}, {where}: label in column {column!r} is a "
                f"{type(value).__name__}; single-label classification needs one value per row"
            )
