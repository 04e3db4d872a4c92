"""Multiple-choice reading comprehension (RACE format).

Rows hold ``article`` (the passage), ``question``, ``options`` (a list of option texts) and
``answer``: the letter of the correct option (``"A"`` is ``options[0]``; lower case is
accepted) or its 0-based integer index (``0`` is ``options[0]``). Every row of every split
must have the same number of options as the first training row (the model scores them
together).

Each option makes one pair ``(article, prefix + " " + question + " " + option)``. When the
question has a blank (a run of ``_``, as in RACE's cloze questions), the first blank is filled
with the option instead of appending it (as the ``run_swag`` example does for SWAG endings).
The pair is truncated with ``truncation="only_first"``: only the article is ever cut, never
the prefix, the question or the option; a row whose question and option (with the longest
prefix allowed) leave the article too little room is an error naming the row.

The model is ``AutoModelForMultipleChoice`` (one score per option, softmax over the options);
the metric is accuracy, the loss cross-entropy, the TA's feedback the accuracy per correct
answer letter.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_recall

from gpta.data import Table, require_columns, require_text
from gpta.errors import GptaUserError
from gpta.modeling.inference import forward_batches
from gpta.tasks.base import Columns, Evaluation, LongCells, RowScoring, TaskIO, majority_of
from gpta.tasks.common import (
    PREFIX_ROOM_HINT,
    AutoModelLoading,
    QuestionOnPassage,
    require_distinct_columns,
)
from gpta.tasks.heads.sequence import join_prefix

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from gpta.config import GptaConfig
    from gpta.manifest import Manifest

MIN_ARTICLE_TOKENS = 16  # every pair keeps at least this many article tokens
_BLANK = re.compile(r"\s*_+\s*")


def option_segment(question: str, option: str) -> str:
    """The question with the option: the first blank filled in, else the option appended."""
    question, option = question.strip(), option.strip()
    if _BLANK.search(question):
        return _BLANK.sub(f" {option} ", question, count=1).strip()
    return f"{question} {option}" if question else option


def letters(count: int) -> list[str]:
    """``A``, ``B``, ... for ``count`` options."""
    return list(string.ascii_uppercase[:count])


@dataclass
class MultipleChoiceTask(QuestionOnPassage, AutoModelLoading, RowScoring):
    """Option pairs, the answer letter, accuracy."""

    article_column: str
    question_column: str
    options_column: str
    answer_column: str
    num_choices: int
    max_length: int
    family: str = field(default="multiple_choice", init=False)
    primary_metric: str = field(default="accuracy", init=False)
    default_columns: ClassVar[tuple[str, str]] = ("article", "answer")
    # a pretrained encoder gets a fresh multiple-choice head (one score per option)
    auto_class: ClassVar[str] = "AutoModelForMultipleChoice"

    @property
    def text_column(self) -> str:
        """The article column (the manifest's ``text_column``)."""
        return self.article_column

    @property
    def label_column(self) -> str:
        """The answer column (the manifest's ``label_column``)."""
        return self.answer_column

    # --- building and validating -------------------------------------------------------------
    @staticmethod
    def long_cells(columns: Columns, max_chars: int, *, labelled: bool) -> LongCells:
        """Cut the article; refuse a long question, options or answer."""
        refuse = {
            columns.question: (max_chars, "a question"),
            columns.options: (max_chars, "the options of a row"),
        }
        if labelled:
            refuse[columns.label] = (max_chars, "a label")
        return [columns.text], refuse

    @classmethod
    def from_config(cls, config: GptaConfig, tables: dict[str, Table]) -> MultipleChoiceTask:
        """Build from the run configuration; validates every split."""
        train = tables["train"]
        columns = cls.columns_for(config)
        options_column = columns.options
        require_distinct_columns(
            {
                "data.text_column": columns.text,
                "data.question_column": columns.question,
                "data.options_column": options_column,
                "data.label_column": columns.label,
            }
        )
        require_columns(train, [options_column], option="data.options_column")
        first = train.rows[0][options_column]
        if not isinstance(first, list | tuple) or len(first) < 2:
            raise GptaUserError(
                f"{train.source}, {train.locations[0]}: column {options_column!r} must be a "
                f"list of at least two option texts (got {first!r})",
                hint='write the options as a JSON list, e.g. ["first", "second", ...]',
            )
        if len(first) > len(string.ascii_uppercase):
            raise GptaUserError(
                f"{train.source}, {train.locations[0]}: {len(first)} options; at most 26 "
                "(answer letters A-Z) are supported"
            )
        task = cls(
            article_column=columns.text,
            question_column=columns.question,
            options_column=options_column,
            answer_column=columns.label,
            num_choices=len(first),
            max_length=config.model.max_length,
        )
        task.check_splits(config, tables)
        return task

    @property
    def letters(self) -> list[str]:
        return letters(self.num_choices)

    def check_table(self, table: Table, *, labelled: bool = True) -> None:
        """Columns, options and (when ``labelled``) the answer of every row."""
        require_columns(table, [self.article_column], option="data.text_column")
        require_columns(table, [self.question_column], option="data.question_column")
        require_columns(table, [self.options_column], option="data.options_column")
        require_text(table, self.article_column)
        if labelled:
            require_columns(table, [self.answer_column], option="data.label_column")
        for row, where in zip(table.rows, table.locations, strict=True):
            at = f"{table.source}, {where}"
            if not isinstance(row[self.question_column], str):
                raise GptaUserError(
                    f"{at}: column {self.question_column!r} is not a string "
                    f"(got {type(row[self.question_column]).__name__})",
                    hint="give every row its question as text",
                )
            self._check_options(row[self.options_column], at)
            if labelled:
                self.answer_index(row[self.answer_column], at)

    def _check_options(self, options: Any, at: str) -> None:
        column = self.options_column
        if not isinstance(options, list | tuple):
            raise GptaUserError(
                f"{at}: column {column!r} must be a list of {self.num_choices} option texts "
                f"(got {type(options).__name__})",
                hint="write the options as a JSON list",
            )
        if len(options) != self.num_choices:
            raise GptaUserError(
                f"{at}: {len(options)} options in column {column!r}, but the training data "
                f"has {self.num_choices} per question",
                hint="give every question the same number of options",
            )
        for letter, option in zip(self.letters, options, strict=True):
            if not isinstance(option, str) or not option.strip():
                raise GptaUserError(
                    f"{at}: option {letter} in column {column!r} is empty or not a string",
                    hint="give every option its text",
                )

    def answer_index(self, value: Any, at: str) -> int:
        """The option index of an answer: a letter (A = first option) or a 0-based integer."""
        valid = f"{self.letters[0]}-{self.letters[-1]}"
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            if 0 <= value < self.num_choices:
                return value
            raise GptaUserError(
                f"{at}: answer {value} in column {self.answer_column!r} is outside the "
                f"{self.num_choices} options (an integer answer is a 0-based index: "
                f"0-{self.num_choices - 1})",
                hint=f"give the answer as a letter {valid} or a 0-based option index",
            )
        if isinstance(value, str) and value.strip().upper() in self.letters:
            return self.letters.index(value.strip().upper())
        raise GptaUserError(
            f"{at}: answer {value!r} in column {self.answer_column!r} is not one of the "
            f"{self.num_choices} options ({valid})",
            hint=f"give the answer as a letter {valid} or a 0-based option index",
        )

    def check_fits(
        self,
        rows: Sequence[dict[str, Any]],
        locations: Sequence[str],
        source: str,
        tokenizer: PreTrainedTokenizerBase,
        *,
        prefix_tokens: int,
    ) -> None:
        """Question + option + a prefix of ``prefix_tokens`` tokens leave the article room."""
        special = tokenizer.num_special_tokens_to_add(pair=True)
        for row, where in zip(rows, locations, strict=True):
            for letter, option in zip(self.letters, row[self.options_column], strict=True):
                segment = option_segment(row[self.question_column], option)
                length = len(tokenizer(segment, add_special_tokens=False)["input_ids"])
                room = self.max_length - special - length - prefix_tokens - 1
                if room < MIN_ARTICLE_TOKENS:
                    raise GptaUserError(
                        f"{source}, {where}: question with option {letter} is {length} tokens; "
                        f"with a prefix of up to {prefix_tokens} tokens and model.max_length "
                        f"{self.max_length} only {max(room, 0)} tokens are left for the "
                        f"article (at least {MIN_ARTICLE_TOKENS} are needed)",
                        hint=f"{PREFIX_ROOM_HINT}, or shorten the question or option",
                    )

    # --- model inputs --------------------------------------------------------------------------
    def encode(
        self, tokenizer: PreTrainedTokenizerBase, rows: Sequence[dict[str, Any]], prefix: str
    ) -> dict[str, torch.Tensor]:
        """``(batch, num_choices, max_length)`` inputs; only the article is truncated."""
        articles, segments = [], []
        special = tokenizer.num_special_tokens_to_add(pair=True)
        for index, row in enumerate(rows):
            for letter, option in zip(self.letters, row[self.options_column], strict=True):
                segment = join_prefix(prefix, option_segment(row[self.question_column], option))
                length = len(tokenizer(segment, add_special_tokens=False)["input_ids"])
                if self.max_length - special - length < MIN_ARTICLE_TOKENS:
                    raise GptaUserError(
                        f"input row {index + 1}: the prefix, question and option {letter} are "
                        f"{length} tokens; model.max_length {self.max_length} leaves the "
                        f"article fewer than {MIN_ARTICLE_TOKENS}",
                        hint="shorten the question or option (max_length is fixed at training)",
                    )
                articles.append(row[self.article_column])
                segments.append(segment)
        encoded = tokenizer(
            articles,
            segments,
            truncation="only_first",
            max_length=self.max_length,
            padding="max_length",
            return_tensors="pt",
        )
        shape = (len(rows), self.num_choices, -1)
        return {k: v.view(shape) for k, v in encoded.items()}

    def collate(
        self, rows: Sequence[dict[str, Any]], tokenizer: PreTrainedTokenizerBase, prefix: str
    ) -> dict[str, Any]:
        """A training batch: option pairs with the prefix, and option indices as ``labels``."""
        batch = self.encode(tokenizer, rows, prefix)
        batch["labels"] = torch.tensor(self._indices(rows))
        return batch

    def _indices(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        return [
            self.answer_index(row[self.answer_column], f"input row {i}")
            for i, row in enumerate(rows, start=1)
        ]

    # --- scoring ---------------------------------------------------------------------------------
    def logits(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        prefix: str,
        *,
        batch_size: int,
    ) -> torch.Tensor:
        """Option scores ``(rows, num_choices)`` (float32, CPU)."""
        chunks = [
            out.logits.float().cpu()
            for _, out in forward_batches(
                model,
                list(rows),
                lambda part: self.encode(tokenizer, part, prefix),
                batch_size=batch_size,
            )
        ]
        return torch.cat(chunks) if chunks else torch.empty(0, self.num_choices)

    def outputs(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        prefix: str,
        *,
        batch_size: int,
        screening: bool = False,
    ) -> list[torch.Tensor]:
        """Option scores per row."""
        return list(self.logits(model, tokenizer, rows, prefix, batch_size=batch_size))

    def score(self, rows: Sequence[dict[str, Any]], outputs: Sequence[torch.Tensor]) -> Evaluation:
        """Accuracy (primary), accuracy per correct answer letter, mean cross-entropy."""
        return Evaluation.from_class_scores(
            outputs, self._indices(rows), names=self.letters, metrics=self.metrics
        )

    def majority_baseline(
        self, train: Sequence[dict[str, Any]], splits: dict[str, Sequence[dict[str, Any]]]
    ) -> dict[str, Any] | None:
        """Accuracy of always answering the most frequent training answer letter."""
        ids = {name: self._indices(list(rows)) for name, rows in splits.items()}
        return majority_of(self._indices(list(train)), ids, self.letters)

    def feedback(self, evaluation: Evaluation) -> tuple[str, dict[str, float]]:
        """Accuracy per correct answer letter: aggregate numbers only."""
        return "Accuracy by correct answer letter", evaluation.metrics["accuracy_per_answer"]

    def predict(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        prefix: str,
        *,
        batch_size: int,
    ) -> list[dict[str, Any]]:
        """Per row: the answer letter, its probability, and every option's probability."""
        probs = self.logits(model, tokenizer, rows, prefix, batch_size=batch_size).softmax(-1)
        out = []
        for row in probs.tolist():
            best = max(range(len(row)), key=row.__getitem__)
            out.append(
                {
                    "answer": self.letters[best],
                    "score": row[best],
                    "probabilities": dict(zip(self.letters, row, strict=True)),
                }
            )
        return out

    # --- metrics ---------------------------------------------------------------------------------
    def metrics(self, predictions: Sequence[int], references: Sequence[int]) -> dict[str, Any]:
        """Accuracy and, per correct answer letter, the share answered correctly."""
        preds = torch.as_tensor(list(predictions), dtype=torch.long)
        refs = torch.as_tensor(list(references), dtype=torch.long)
        k = self.num_choices
        if len(refs) == 0:
            return {"accuracy": 0.0, "accuracy_per_answer": {}, "support_per_answer": {}}
        recall = multiclass_recall(preds, refs, num_classes=k, average=None)
        support = Counter(refs.tolist())
        return {
            "accuracy": float(multiclass_accuracy(preds, refs, num_classes=k, average="micro")),
            "accuracy_per_answer": {
                self.letters[i]: round(float(recall[i]), 4) for i in sorted(support)
            },
            "support_per_answer": {self.letters[i]: support[i] for i in sorted(support)},
        }

    # --- what the TA and the saved model know ---------------------------------------------------
    def io(self) -> TaskIO:
        return TaskIO(
            family="multiple-choice reading comprehension",
            reads=f"For each of {self.num_choices} answer options the network reads a passage, "
            "then your instruction followed by the question and that option, and it must "
            "pick the option the passage supports.",
            labels=[],
            metric="accuracy (share of questions answered with the correct option)",
            screen_metric="accuracy",
            example="Read the story closely and choose the option that the story states or "
            "clearly implies, not the one that only sounds plausible.",
        )

    def manifest(self) -> dict[str, Any]:
        return {
            "text_column": self.article_column,
            "label_column": self.answer_column,
            "question_column": self.question_column,
            "options_column": self.options_column,
            "input_columns": [self.article_column, self.question_column, self.options_column],
            "num_choices": self.num_choices,
            "max_length": self.max_length,
        }

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> MultipleChoiceTask:
        from gpta.manifest import required

        manifest.require(
            "text_column", "question_column", "options_column", "label_column", "num_choices"
        )
        return cls(
            article_column=required(manifest.text_column, "text_column"),
            question_column=required(manifest.question_column, "question_column"),
            options_column=required(manifest.options_column, "options_column"),
            answer_column=required(manifest.label_column, "label_column"),
            num_choices=required(manifest.num_choices, "num_choices"),
            max_length=manifest.max_length,
        )
