"""Single-label text classification.

How the prefix joins the text and how classes are scored is the *head*'s job
(:mod:`gpta.tasks.heads`): a new linear head on an encoder (``sequence``, the
plain fine-tuning recipe), label words scored by a causal LM (``lm-verbalizer``)
or at the mask of a masked LM (``cloze``). Every head yields class scores from one
forward pass, so training (cross-entropy over them), evaluation, screening and
prediction are the same code for all. Only text tokens are ever truncated.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_f1_score,
    multiclass_recall,
)

from gpta.data import Table
from gpta.errors import GptaUserError
from gpta.limits import CLASSES
from gpta.modeling.inference import forward_batches
from gpta.progress import warn
from gpta.tasks.base import ROW_WEIGHT, Evaluation, RowScoring, TaskIO, majority_of
from gpta.tasks.common import TextWithAnswer, require_text_and_answer
from gpta.tasks.heads import ClassificationHead, SequenceHead, build_head, head_from_manifest
from gpta.tasks.heads.sequence import join_prefix
from gpta.tasks.labels import LabelIndex, label_key, read_labels

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from gpta.config import GptaConfig
    from gpta.manifest import Manifest

__all__ = ["ClassificationTask", "join_prefix"]


def _check_class_count(labels: Sequence[Any], source: str, column: str) -> None:
    """Refuse more classes than :data:`gpta.limits.CLASSES` before any model is built (10,000
    labels sat for minutes in the linear-probe start, with no progress shown)."""
    limit = CLASSES.value()
    if len(labels) > limit:
        raise CLASSES.error(
            f"{source}: column {column!r}",
            f"{len(labels):,} distinct labels",
            limit,
            fix="check data.label_column (a text or id column gives one label a row)",
        )


@dataclass
class ClassificationTask(TextWithAnswer, RowScoring):
    """Labels, input encoding and metrics for single-label classification."""

    text_column: str
    label_column: str
    labels: list[Any]  # index = class id; values as they appear in the data
    max_length: int
    head: ClassificationHead = field(default_factory=SequenceHead)
    family: str = field(default="classification", init=False)
    primary_metric: str = field(default="accuracy", init=False)
    default_columns: ClassVar[tuple[str, str]] = ("text", "label")

    # --- building and validating -------------------------------------------------------------
    @staticmethod
    def stratify_column_for(config: GptaConfig) -> str | None:
        """Splits and low-resource samples are stratified by the label."""
        return ClassificationTask.columns_for(config).label

    @classmethod
    def from_config(cls, config: GptaConfig, tables: dict[str, Table]) -> ClassificationTask:
        """Build from the run configuration; validates every split."""
        columns = cls.columns_for(config)
        return cls.from_tables(
            tables,
            text_column=columns.text,
            label_column=columns.label,
            max_length=config.model.max_length,
            head=config.model.head,
            label_words=config.model.label_words,
        )

    @classmethod
    def from_tables(
        cls,
        tables: dict[str, Table],
        *,
        text_column: str,
        label_column: str,
        max_length: int,
        head: str = "sequence",
        label_words: dict[str, str] | None = None,
    ) -> ClassificationTask:
        """Validate every split and take the label set from the training split."""
        require_text_and_answer(tables, text_column, label_column, _require_labels_present)
        # every split's spellings: a case clash in dev is refused as in train (docs/meaning.md)
        unique = {id(t): t for t in tables.values()}.values()
        reading = read_labels(
            [(t.source, t.column(label_column), t.locations) for t in unique], column=label_column
        )
        train_keys = {label_key(v) for v in tables["train"].column(label_column)}
        labels = [label for label in reading.labels if label_key(label) in train_keys]
        _check_class_count(labels, tables["train"].source, label_column)
        if len(labels) < 2:
            raise GptaUserError(
                f"{tables['train'].source}: column {label_column!r} has a single class "
                f"({labels[0]!r}); classification needs at least two",
                hint="check data.label_column, or sample more rows (data.train_size)",
            )
        names = [str(label) for label in labels]
        try:
            built = build_head(head, label_names=names, label_words=label_words)
        except ValueError as err:
            raise GptaUserError(f"model.head: {err}") from None
        task = cls(text_column, label_column, labels, max_length, built)
        for name, table in tables.items():
            if name != "train":
                task.label_ids(table)  # raises on a label unseen in training
        message = reading.warning(label_column)
        if message is not None:  # it changes what the run does: printed even with -q
            warn(message)
        return task

    def label_ids(self, table: Table) -> list[int]:
        """Class ids of a table's rows; unknown labels are errors naming the row."""
        index = LabelIndex(self.labels)
        ids = []
        for value, where in zip(table.column(self.label_column), table.locations, strict=True):
            found = index.get(value)
            if found is None:
                raise GptaUserError(
                    f"{table.source}, {where}: label {value!r} in column {self.label_column!r} "
                    f"does not occur in the training data (known: {self.labels})"
                    + _case_note(index, value),
                    hint="fix the label, or add rows with it to the training data",
                )
            ids.append(found)
        return ids

    def check_table(self, table: Table, *, labelled: bool = True) -> None:
        """``gpta eval`` (:meth:`check_rows`): every label must be one the model knows, by
        the rule training used (docs/meaning.md); labels read as a class written otherwise
        are named in a warning."""
        if not labelled:
            return
        _require_labels_present(table, self.label_column)
        self.label_ids(table)
        message = LabelIndex(self.labels).normalised_warning(
            table.column(self.label_column), table.locations, table.source, column=self.label_column
        )
        if message is not None:
            warn(message)

    @property
    def label_names(self) -> list[str]:
        """Labels as strings, for the TA and for predictions."""
        return [str(label) for label in self.labels]

    # --- model inputs --------------------------------------------------------------------------
    def encode(
        self, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], prefix: str | Sequence[str]
    ) -> MutableMapping[str, torch.Tensor]:
        """Model inputs for a batch: one prefix for all rows, or one per row."""
        prefixes = [prefix] * len(texts) if isinstance(prefix, str) else list(prefix)
        return self.head.encode(tokenizer, list(texts), prefixes, self.max_length)

    def collate(
        self,
        rows: Sequence[dict[str, Any]],
        tokenizer: PreTrainedTokenizerBase,
        prefix: str | Sequence[str],
    ) -> MutableMapping[str, Any]:
        """A training batch: inputs with the prefix (or a prefix per row), class ids as
        ``labels``."""
        batch = self.encode(tokenizer, [r[self.text_column] for r in rows], prefix)
        batch["labels"] = torch.tensor(self._ids([r[self.label_column] for r in rows]))
        if any(ROW_WEIGHT in r for r in rows):  # rows the run added (class cards)
            batch["row_weights"] = torch.tensor([float(r.get(ROW_WEIGHT, 1.0)) for r in rows])
        return batch

    def compute_loss(
        self, model: torch.nn.Module, inputs: dict[str, Any]
    ) -> tuple[torch.Tensor, Any]:
        """Training loss of a batch: cross-entropy over the head's class scores."""
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        weights = inputs.pop("row_weights", None)
        logits = self.head.class_logits(model, inputs)
        if weights is None:  # the plain path, unchanged
            return torch.nn.functional.cross_entropy(logits.float(), labels), logits
        # each row's loss times its weight, over the batch size: a real row (weight 1)
        # counts as in the plain run, a card row of weight w counts w times as much
        losses = torch.nn.functional.cross_entropy(logits.float(), labels, reduction="none")
        return (losses * weights.to(losses.device, losses.dtype)).mean(), logits

    def _ids(self, values: Sequence[Any]) -> list[int]:
        index = LabelIndex(self.labels)
        ids = []
        for position, value in enumerate(values, start=1):
            found = index.get(value)
            if found is None:
                raise GptaUserError(
                    f"row {position}: label {value!r} is not one the model knows "
                    f"(known: {self.labels})" + _case_note(index, value),
                    hint="fix the label, or pass the right --label-column",
                )
            ids.append(found)
        return ids

    # --- models ----------------------------------------------------------------------------------
    def prepare_model(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        *,
        batch_size: int,
    ) -> dict[str, Any]:
        """The head's start from the training rows (a linear probe for pooled encoders);
        rows the run added (class cards) count with their loss weight."""
        weights = [float(r.get(ROW_WEIGHT, 1.0)) for r in rows]
        return self.head.prepare(
            model,
            tokenizer,
            [r[self.text_column] for r in rows],
            self._ids([r[self.label_column] for r in rows]),
            max_length=self.max_length,
            batch_size=batch_size,
            **({"weights": weights} if any(w != 1.0 for w in weights) else {}),
        )

    def majority_baseline(
        self, train: Sequence[dict[str, Any]], splits: dict[str, Sequence[dict[str, Any]]]
    ) -> dict[str, Any] | None:
        """Accuracy of always predicting the most frequent training label."""
        ids = {
            name: self._ids([r[self.label_column] for r in rows]) for name, rows in splits.items()
        }
        return majority_of(self._ids([r[self.label_column] for r in train]), ids, self.labels)

    def load_model(self, name_or_path: str) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
        """A pretrained model made ready by the head for these labels."""
        return self.head.load_model(name_or_path, self.label_names)

    def load_trained(self, model_dir: str) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
        """A model saved by a run."""
        return self.head.load_trained(model_dir)

    # --- scoring ---------------------------------------------------------------------------------
    def logits(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        texts: Sequence[str],
        prefix: str | Sequence[str],
        *,
        batch_size: int,
    ) -> torch.Tensor:
        """Class scores for ``texts`` (float32, CPU). A sequence of prefixes (prefix variety,
        ``training.augment_predict: mean``) averages the class probabilities over them."""
        if not isinstance(prefix, str):
            probs = torch.stack(
                [
                    self.logits(model, tokenizer, texts, p, batch_size=batch_size).softmax(-1)
                    for p in prefix
                ]
            )
            return probs.mean(dim=0).log()
        return self._pair_logits(
            model, tokenizer, [(prefix, t) for t in texts], batch_size=batch_size
        )

    def _pair_logits(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        pairs: Sequence[tuple[str, str]],
        *,
        batch_size: int,
    ) -> torch.Tensor:
        """Class scores of ``(prefix, text)`` pairs, in order. Pairs are batched by length so
        that a batch pads little (same results: every row is scored on its own)."""
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        chunks = [
            self.head.class_logits(model, batch).float().cpu()
            for batch, _ in forward_batches(
                model,
                [pairs[i] for i in order],
                lambda part: self.encode(tokenizer, [t for _, t in part], [p for p, _ in part]),
                batch_size=batch_size,
                call_model=False,
            )
        ]
        if not chunks:
            return torch.empty(0, len(self.labels))
        ordered = torch.cat(chunks)
        out = torch.empty_like(ordered)
        out[torch.tensor(order)] = ordered
        return out

    def outputs(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        prefix: str | Sequence[str],
        *,
        batch_size: int,
        screening: bool = False,
    ) -> list[torch.Tensor]:
        """Class scores per row."""
        texts = [r[self.text_column] for r in rows]
        return list(self.logits(model, tokenizer, texts, prefix, batch_size=batch_size))

    def outputs_many(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        prefixes: Sequence[str],
        *,
        batch_size: int,
    ) -> list[list[torch.Tensor]]:
        """Class scores of every row under every prefix, in one length-batched pass."""
        texts = [r[self.text_column] for r in rows]
        pairs = [(p, t) for p in prefixes for t in texts]
        logits = self._pair_logits(model, tokenizer, pairs, batch_size=batch_size)
        n = len(texts)
        return [list(logits[k * n : (k + 1) * n]) for k in range(len(prefixes))]

    def score(self, rows: Sequence[dict[str, Any]], outputs: Sequence[torch.Tensor]) -> Evaluation:
        """Accuracy (primary), macro-F1, per-class recall and mean cross-entropy."""
        references = self._ids([r[self.label_column] for r in rows])
        return Evaluation.from_class_scores(
            outputs, references, names=self.labels, metrics=self.metrics
        )

    def feedback(self, evaluation: Evaluation) -> tuple[str, dict[str, float]]:
        """Per-class recall: aggregate numbers only."""
        return "Share of each label found correctly", evaluation.metrics["recall_per_class"]

    def predict(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        prefix: str | Sequence[str],
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
            reads=self.head.reads,
            labels=self.label_names,
            metric="accuracy",
            screen_metric="accuracy",
            example=self.head.example,
            slot=self.head.slot,
        )

    def manifest(self) -> dict[str, Any]:
        return {
            **self.column_manifest(),
            "labels": self.labels,
            "max_length": self.max_length,
            **self.head.manifest(),
        }

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> ClassificationTask:
        from gpta.manifest import required

        manifest.require("text_column", "label_column", "labels")
        return cls(
            required(manifest.text_column, "text_column"),
            required(manifest.label_column, "label_column"),
            list(required(manifest.labels, "labels")),
            manifest.max_length,
            head_from_manifest(manifest.fields()),
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


def _case_note(index: LabelIndex, value: Any) -> str:
    near = index.near_miss(value)
    return "" if near is None else f"; it differs from {near!r} only in letter case or form"


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
