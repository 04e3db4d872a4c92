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
from typing import TYPE_CHECKING, Any

import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_f1_score,
    multiclass_recall,
)

from gpta.data import Table, require_columns, require_text
from gpta.downstream.inference import forward_batches
from gpta.downstream.model import load_pretrained
from gpta.errors import GptaUserError
from gpta.tasks.base import Evaluation, Screening, TaskIO

if TYPE_CHECKING:
    from gpta.config import GptaConfig

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
    @staticmethod
    def stratify_column_for(config: GptaConfig) -> str | None:
        """Splits and low-resource samples are stratified by the label."""
        return config.data.label_column or "label"

    @classmethod
    def from_config(cls, config: GptaConfig, tables: dict[str, Table]) -> ClassificationTask:
        """Build from the run configuration; validates every split."""
        return cls.from_tables(
            tables,
            text_column=config.data.text_column or "text",
            label_column=config.data.label_column or "label",
            max_length=config.model.max_length,
        )

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

    def collate(
        self, rows: Sequence[dict[str, Any]], tokenizer: Any, prefix: str
    ) -> dict[str, Any]:
        """A training batch: inputs with the prefix, and class ids as ``labels``."""
        batch = self.encode(tokenizer, [r[self.text_column] for r in rows], prefix)
        batch["labels"] = torch.tensor(self._ids([r[self.label_column] for r in rows]))
        return batch

    def _ids(self, values: Sequence[Any]) -> list[int]:
        index = {label: i for i, label in enumerate(self.labels)}
        ids = []
        for position, value in enumerate(values, start=1):
            key = _label_key(value)
            if key not in index:
                raise GptaUserError(
                    f"row {position}: label {value!r} is not one the model knows "
                    f"(known: {self.labels})",
                    hint="fix the label, or pass the right --label-column",
                )
            ids.append(index[key])
        return ids

    # --- models ----------------------------------------------------------------------------------
    def load_model(self, name_or_path: str) -> tuple[Any, Any]:
        """A pretrained encoder with a fresh classification head for these labels."""
        from transformers import AutoModelForSequenceClassification

        names = self.label_names
        return load_pretrained(
            AutoModelForSequenceClassification,
            name_or_path,
            num_labels=len(names),
            id2label=dict(enumerate(names)),
            label2id={n: i for i, n in enumerate(names)},
            ignore_mismatched_sizes=True,
        )

    def load_trained(self, model_dir: str) -> tuple[Any, Any]:
        """A model saved by a run."""
        from transformers import AutoModelForSequenceClassification

        return load_pretrained(AutoModelForSequenceClassification, model_dir)

    # --- scoring ---------------------------------------------------------------------------------
    def logits(
        self, model: Any, tokenizer: Any, texts: Sequence[str], prefix: str, *, batch_size: int
    ) -> torch.Tensor:
        """Class logits for ``texts`` with ``prefix`` (float32, CPU)."""
        chunks = [
            out.logits.float().cpu()
            for _, out in forward_batches(
                model,
                list(texts),
                lambda part: self.encode(tokenizer, part, prefix),
                batch_size=batch_size,
            )
        ]
        return torch.cat(chunks) if chunks else torch.empty(0, len(self.labels))

    def evaluate(
        self,
        model: Any,
        tokenizer: Any,
        rows: Sequence[dict[str, Any]],
        prefix: str,
        *,
        batch_size: int,
    ) -> Evaluation:
        """Accuracy (primary), macro-F1, per-class recall and mean cross-entropy."""
        logits = self.logits(
            model, tokenizer, [r[self.text_column] for r in rows], prefix, batch_size=batch_size
        )
        references = self._ids([r[self.label_column] for r in rows])
        loss = float(torch.nn.functional.cross_entropy(logits, torch.tensor(references)))
        predicted = logits.argmax(dim=-1).tolist()
        metrics = self.metrics(predicted, references)
        return Evaluation(
            score=metrics["accuracy"],
            loss=loss,
            metrics=metrics,
            predictions=[self.labels[i] for i in predicted],
        )

    def screen(
        self,
        model: Any,
        tokenizer: Any,
        rows: Sequence[dict[str, Any]],
        prefix: str,
        *,
        batch_size: int,
    ) -> Screening:
        """Accuracy on the screening rows; loss breaks exact ties."""
        evaluation = self.evaluate(model, tokenizer, rows, prefix, batch_size=batch_size)
        return Screening.from_evaluation(prefix, evaluation)

    def feedback(self, evaluation: Evaluation) -> tuple[str, dict[str, float]]:
        """Per-class recall: aggregate numbers only."""
        return "Share of each label found correctly", evaluation.metrics["recall_per_class"]

    def predict(
        self,
        model: Any,
        tokenizer: Any,
        rows: Sequence[dict[str, Any]],
        prefix: str,
        *,
        batch_size: int,
    ) -> list[dict[str, Any]]:
        """Per row: the label, its probability, and every class's probability."""
        probs = self.logits(
            model, tokenizer, [r[self.text_column] for r in rows], prefix, batch_size=batch_size
        ).softmax(dim=-1)
        names = self.label_names
        out = []
        for row in probs.tolist():
            best = max(range(len(row)), key=row.__getitem__)
            out.append(
                {
                    "label": self.labels[best],
                    "score": row[best],
                    "probabilities": dict(zip(names, row, strict=True)),
                }
            )
        return out

    # --- what the TA and the saved model know ---------------------------------------------------
    def io(self) -> TaskIO:
        return TaskIO(
            family="text classification",
            reads="The network reads your instruction followed by one input text and must "
            "predict one label.",
            labels=self.label_names,
            metric="accuracy",
            screen_metric="accuracy",
            example="Decide which topic the news article is mainly about: world, sports, "
            "business or science.",
        )

    def stratify_column(self) -> str | None:
        return self.label_column

    def manifest(self) -> dict[str, Any]:
        return {
            "text_column": self.text_column,
            "label_column": self.label_column,
            "input_columns": [self.text_column],
            "labels": self.labels,
            "max_length": self.max_length,
        }

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> ClassificationTask:
        return cls(
            manifest["text_column"],
            manifest["label_column"],
            manifest["labels"],
            manifest["max_length"],
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
