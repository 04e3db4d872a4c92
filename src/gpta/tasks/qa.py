"""Extractive question answering (SQuAD format).

Rows hold ``context`` (the passage), ``question`` and ``answers``:
``{"text": [...], "answer_start": [...]}``, parallel lists of reference answers and their
0-based character offsets in the context (an ``id`` or any other field is ignored).

The prefix joins the **question** segment: the model reads the pair
``(prefix + " " + question, context)``. Only the context is ever truncated: a long context
is cut into overlapping windows (``truncation="only_second"`` with
``return_overflowing_tokens``), each window repeating the prefixed question. Offsets come
from the tokenizer's offset mapping of the context segment, so they are character offsets
into the context whatever the prefix is; the prefix only moves token indices.

Training labels the first reference answer's start and end tokens in every window that
holds it whole, and the first (CLS) token in windows that do not. Decoding takes, per window,
the ``N_BEST`` most likely start and end tokens of the context, keeps spans with
start <= end and at most ``MAX_ANSWER_TOKENS`` tokens, scores a span by
``P(start) * P(end)`` (softmax over the window's context tokens) and answers with the best
span over all windows of the row.

Metrics: exact match and F1 with SQuAD's normalisation, from ``torchmetrics``' SQuAD
metric, reported as fractions in [0, 1] (torchmetrics gives percent). F1 is the primary
score.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torchmetrics.functional.text import squad

from gpta.data import QA_CONTEXT_CHARS, Table, require_columns, require_text
from gpta.errors import GptaUserError
from gpta.modeling.inference import forward_batches
from gpta.tasks.base import Columns, Evaluation, LongCells, RowScoring, TaskIO
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

N_BEST = 20  # start and end candidates per window
MAX_ANSWER_TOKENS = 30  # longest answer span, in tokens
MIN_CONTEXT_TOKENS = 16  # a window must keep at least this many context tokens
QUESTION_WORDS = ("what", "which", "who", "when", "where", "why", "how")
_WORD_ALIASES = {"whom": "who", "whose": "who"}
_WORDS = re.compile(r"\b(what|which|who|whom|whose|when|where|why|how)\b", re.IGNORECASE)


@dataclass
class Features:
    """The windows of a list of rows: model inputs, the row each came from, context offsets."""

    inputs: dict[str, list[list[int]]]  # model input name -> one list per window
    row: list[int]  # window -> index of its row
    offsets: list[list[tuple[int, int] | None]]  # window -> per token, context offsets or None
    start_positions: list[int] = field(default_factory=list)  # training labels, when labelled
    end_positions: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.row)

    def tensors(self, indices: Sequence[int], *, labels: bool) -> dict[str, torch.Tensor]:
        batch = {
            name: torch.tensor([values[i] for i in indices]) for name, values in self.inputs.items()
        }
        if labels:
            batch["start_positions"] = torch.tensor([self.start_positions[i] for i in indices])
            batch["end_positions"] = torch.tensor([self.end_positions[i] for i in indices])
        return batch


@dataclass
class QATask(QuestionOnPassage, AutoModelLoading, RowScoring):
    """Windows, span labels, decoding and SQuAD metrics for extractive QA."""

    context_column: str
    question_column: str
    answers_column: str
    max_length: int
    doc_stride: int
    family: str = field(default="qa", init=False)
    primary_metric: str = field(default="f1", init=False)
    default_columns: ClassVar[tuple[str, str]] = ("context", "answers")
    # a pretrained encoder gets a fresh span (start/end) head
    auto_class: ClassVar[str] = "AutoModelForQuestionAnswering"

    @property
    def text_column(self) -> str:
        """The context column (the manifest's ``text_column``)."""
        return self.context_column

    @property
    def label_column(self) -> str:
        """The answers column (the manifest's ``label_column``)."""
        return self.answers_column

    # --- building and validating -------------------------------------------------------------
    @staticmethod
    def long_cells(columns: Columns, max_chars: int, *, labelled: bool) -> LongCells:
        """Cut nothing: every window of a context is read, so a context past
        :data:`gpta.data.QA_CONTEXT_CHARS` is refused, as is a long question (the answers are
        checked by :meth:`check_table`)."""
        return [], {
            columns.text: (QA_CONTEXT_CHARS, "a QA context"),
            columns.question: (max_chars, "a question"),
        }

    @classmethod
    def from_config(cls, config: GptaConfig, tables: dict[str, Table]) -> QATask:
        """Build from the run configuration; validates every split (answers, offsets, lengths)."""
        columns = cls.columns_for(config)
        require_distinct_columns(
            {
                "data.text_column": columns.text,
                "data.question_column": columns.question,
                "data.label_column": columns.label,
            }
        )
        task = cls(
            context_column=columns.text,
            question_column=columns.question,
            answers_column=columns.label,
            max_length=config.model.max_length,
            doc_stride=config.model.doc_stride,
        )
        task.check_splits(config, tables)
        return task

    def check_table(self, table: Table, *, labelled: bool = True) -> None:
        """Columns, types and answers of every row (answers only when ``labelled``)."""
        require_columns(table, [self.context_column], option="data.text_column")
        require_columns(table, [self.question_column], option="data.question_column")
        require_text(table, self.context_column)
        require_text(table, self.question_column)
        if labelled:
            require_columns(table, [self.answers_column], option="data.label_column")
            for row, where in zip(table.rows, table.locations, strict=True):
                self._check_answers(row, f"{table.source}, {where}")

    def _check_answers(self, row: dict[str, Any], where: str) -> None:
        column = self.answers_column
        answers = row[column]
        shape = '{"text": ["..."], "answer_start": [N]}'
        if not isinstance(answers, dict) or not {"text", "answer_start"} <= set(answers):
            raise GptaUserError(
                f"{where}: column {column!r} must be a mapping {shape} (got {_kind(answers)})",
                hint="give every row its reference answers and their character offsets",
            )
        texts, starts = answers["text"], answers["answer_start"]
        if not isinstance(texts, list | tuple) or not isinstance(starts, list | tuple):
            raise GptaUserError(
                f"{where}: {column}.text and {column}.answer_start must be lists "
                f"(got {_kind(texts)} and {_kind(starts)})",
                hint=f"write the answers as {shape}",
            )
        if not texts or len(texts) != len(starts):
            raise GptaUserError(
                f"{where}: {column} has {len(texts)} answer texts and {len(starts)} "
                "answer_start offsets; give at least one answer and one offset per answer",
                hint=f"write the answers as {shape}",
            )
        context = row[self.context_column]
        for number, (text, start) in enumerate(zip(texts, starts, strict=True), start=1):
            if not isinstance(text, str) or not text.strip():
                raise GptaUserError(
                    f"{where}: answer {number} in {column!r} is empty or not a string",
                    hint="give the answer text as it appears in the context",
                )
            if isinstance(start, float) and start.is_integer():
                start = int(start)
            if isinstance(start, bool) or not isinstance(start, int):
                raise GptaUserError(
                    f"{where}: answer_start {number} in {column!r} is not an integer "
                    f"(got {start!r})",
                    hint="answer_start is the 0-based character offset of the answer in the "
                    "context",
                )
            found = context[start : start + len(text)] if 0 <= start <= len(context) else None
            if found != text:
                seen = f"the context there reads {found!r}" if found else "it is outside the text"
                at = context.find(text)
                where_really = (
                    f"; the text occurs at offset {at}"
                    if at >= 0
                    else ("; the text does not occur in the context")
                )
                raise GptaUserError(
                    f"{where}: answer_start {start} does not match the context for answer "
                    f"{text!r}: {seen}{where_really}",
                    hint="answer_start is the 0-based character offset of the answer in the "
                    "context (context[start:start+len(text)] must equal the text)",
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
        """Every question with a prefix of ``prefix_tokens`` tokens leaves room for context."""
        special = tokenizer.num_special_tokens_to_add(pair=True)
        for row, where in zip(rows, locations, strict=True):
            question = row[self.question_column].strip()
            length = len(tokenizer(question, add_special_tokens=False)["input_ids"])
            room = self.max_length - special - length - prefix_tokens - 1
            if room < MIN_CONTEXT_TOKENS:
                raise GptaUserError(
                    f"{source}, {where}: the question is {length} tokens; with a prefix of up "
                    f"to {prefix_tokens} tokens and model.max_length {self.max_length} only "
                    f"{max(room, 0)} tokens are left for the context (at least "
                    f"{MIN_CONTEXT_TOKENS} are needed)",
                    hint=f"{PREFIX_ROOM_HINT}, or shorten the question",
                )

    # --- model inputs --------------------------------------------------------------------------
    def features(
        self,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        prefix: str,
        *,
        labelled: bool,
        locations: Sequence[str] | None = None,
    ) -> Features:
        """Windows of every row, each ``max_length`` tokens (padded): ``(prefix question, part
        of the context)``; with span labels of the first answer when ``labelled``."""
        if not getattr(tokenizer, "is_fast", False):
            raise GptaUserError(
                "extractive QA needs a fast (Rust) tokenizer for character offsets",
                hint="use a model that ships a tokenizer.json (fast tokenizer)",
            )
        names = [n for n in tokenizer.model_input_names if n != "offset_mapping"]
        special = tokenizer.num_special_tokens_to_add(pair=True)
        feats = Features(inputs={n: [] for n in names}, row=[], offsets=[])
        for index, row in enumerate(rows):
            first = join_prefix(prefix, row[self.question_column].strip())
            context = row[self.context_column]
            length = len(tokenizer(first, add_special_tokens=False)["input_ids"])
            room = self.max_length - special - length
            if room < MIN_CONTEXT_TOKENS:
                where = locations[index] if locations is not None else f"input row {index + 1}"
                raise GptaUserError(
                    f"{where}: the question with the prefix is {length} tokens; with "
                    f"model.max_length {self.max_length} only {max(room, 0)} tokens are left "
                    f"for the context (at least {MIN_CONTEXT_TOKENS} are needed)",
                    hint="shorten the question (the model's max_length is fixed at training)",
                )
            encoded = tokenizer(
                first,
                context,
                truncation="only_second",
                max_length=self.max_length,
                stride=min(self.doc_stride, room // 2),
                return_overflowing_tokens=True,
                return_offsets_mapping=True,
                padding="max_length",
            )
            for window in range(len(encoded["input_ids"])):
                sequence_ids = encoded.sequence_ids(window)
                offsets = [
                    tuple(o) if s == 1 else None
                    for o, s in zip(encoded["offset_mapping"][window], sequence_ids, strict=True)
                ]
                for name in names:
                    feats.inputs[name].append(encoded[name][window])
                feats.row.append(index)
                feats.offsets.append(offsets)
                if labelled:
                    answers = row[self.answers_column]
                    start_char = int(answers["answer_start"][0])
                    end_char = start_char + len(answers["text"][0])
                    cls_index = _cls_index(tokenizer, encoded["input_ids"][window])
                    start, end = span_label(offsets, start_char, end_char, cls_index)
                    feats.start_positions.append(start)
                    feats.end_positions.append(end)
        return feats

    def collate(
        self, rows: Sequence[dict[str, Any]], tokenizer: PreTrainedTokenizerBase, prefix: str
    ) -> dict[str, Any]:
        """A training batch: every window of the rows, with start/end positions."""
        feats = self.features(tokenizer, rows, prefix, labelled=True)
        return feats.tensors(range(len(feats)), labels=True)

    # --- scoring ---------------------------------------------------------------------------------
    def answer(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        prefix: str,
        *,
        batch_size: int,
        labelled: bool,
    ) -> tuple[list[dict[str, Any]], list[tuple[float, int]] | None]:
        """Per row the best span over its windows (``answer``, ``score``, ``start``, ``end``),
        and with ``labelled`` per row the sum of its windows' start/end cross-entropy and the
        number of windows."""
        feats = self.features(tokenizer, rows, prefix, labelled=labelled)
        starts, ends = [], []
        for _, out in forward_batches(
            model,
            list(range(len(feats))),
            lambda part: feats.tensors(part, labels=False),
            batch_size=batch_size,
        ):
            starts.append(out.start_logits.float().cpu())
            ends.append(out.end_logits.float().cpu())
        width = self.max_length
        start_logits = torch.cat(starts) if starts else torch.empty(0, width)
        end_logits = torch.cat(ends) if ends else torch.empty(0, width)
        losses = None
        if labelled:
            losses = [(0.0, 0) for _ in rows]
            if len(feats):
                ce = torch.nn.functional.cross_entropy
                per_window = (
                    ce(start_logits, torch.tensor(feats.start_positions), reduction="none")
                    + ce(end_logits, torch.tensor(feats.end_positions), reduction="none")
                ) / 2
                for row_index, value in zip(feats.row, per_window.tolist(), strict=True):
                    total, count = losses[row_index]
                    losses[row_index] = (total + value, count + 1)
        return decode(rows, self.context_column, feats, start_logits, end_logits), losses

    def outputs(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        prefix: str,
        *,
        batch_size: int,
        screening: bool = False,
    ) -> list[tuple[str, float, int]]:
        """Per row: the predicted answer, its windows' summed loss, its window count."""
        answers, losses = self.answer(
            model, tokenizer, rows, prefix, batch_size=batch_size, labelled=True
        )
        assert losses is not None
        return [(a["answer"], total, n) for a, (total, n) in zip(answers, losses, strict=True)]

    def score(
        self, rows: Sequence[dict[str, Any]], outputs: Sequence[tuple[str, float, int]]
    ) -> Evaluation:
        """F1 (primary) and exact match, F1 by question word, mean start/end cross-entropy
        per window."""
        predictions = [answer for answer, _, _ in outputs]
        windows = sum(n for _, _, n in outputs)
        loss = sum(total for _, total, _ in outputs) / windows if windows else None
        row_f1: list[float] = []
        metrics = self.metrics(predictions, rows, row_f1=row_f1)
        return Evaluation(
            score=metrics["f1"],
            loss=loss,
            metrics=metrics,
            predictions=predictions,
            row_scores=row_f1,
        )

    def feedback(self, evaluation: Evaluation) -> tuple[str, dict[str, float]]:
        """F1 by question word: aggregate numbers only."""
        return "F1 by question word", evaluation.metrics["f1_by_question_word"]

    def predict(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        prefix: str,
        *,
        batch_size: int,
    ) -> list[dict[str, Any]]:
        """Per row: the answer text, its probability, and its character offsets in the context."""
        answers, _ = self.answer(
            model, tokenizer, rows, prefix, batch_size=batch_size, labelled=False
        )
        return answers

    # --- metrics ---------------------------------------------------------------------------------
    def metrics(
        self,
        predictions: Sequence[str],
        rows: Sequence[dict[str, Any]],
        *,
        row_f1: list[float] | None = None,
    ) -> dict[str, Any]:
        """Exact match and F1 (SQuAD normalisation, torchmetrics) as fractions, F1 by question
        word and the number of questions of each word; each row's F1 is appended to
        ``row_f1`` when given."""
        preds = [{"prediction_text": p, "id": str(i)} for i, p in enumerate(predictions)]
        targets: list[dict[str, str | dict[str, list[str] | list[int]]]] = [  # torchmetrics' form
            {
                "answers": {
                    "text": list(row[self.answers_column]["text"]),
                    "answer_start": [int(s) for s in row[self.answers_column]["answer_start"]],
                },
                "id": str(i),
            }
            for i, row in enumerate(rows)
        ]
        if not preds:
            return {"f1": 0.0, "exact_match": 0.0, "f1_by_question_word": {}, "questions": {}}
        overall = squad(preds, targets)
        by_word: dict[str, list[float]] = defaultdict(list)
        for pred, target, row in zip(preds, targets, rows, strict=True):
            f1 = float(squad(pred, target)["f1"]) / 100
            by_word[question_word(row[self.question_column])].append(f1)
            if row_f1 is not None:
                row_f1.append(f1)
        order = [*QUESTION_WORDS, "other"]
        words = [w for w in order if w in by_word]
        return {
            "f1": float(overall["f1"]) / 100,
            "exact_match": float(overall["exact_match"]) / 100,
            "f1_by_question_word": {w: round(sum(by_word[w]) / len(by_word[w]), 4) for w in words},
            "questions": {w: len(by_word[w]) for w in words},
        }

    # --- what the TA and the saved model know ---------------------------------------------------
    def io(self) -> TaskIO:
        return TaskIO(
            family="extractive question answering (reading comprehension)",
            reads="The network reads your instruction followed by a question, then a passage, "
            "and must mark the exact words of the passage that answer the question.",
            labels=[],
            metric="F1 (word overlap between the marked answer and the reference answer, 0 to 1)",
            screen_metric="F1",
            example="Find the shortest phrase in the news story that names the person, date, "
            "place or number the question asks about.",
        )

    def manifest(self) -> dict[str, Any]:
        return {
            "text_column": self.context_column,
            "label_column": self.answers_column,
            "question_column": self.question_column,
            "input_columns": [self.context_column, self.question_column],
            "max_length": self.max_length,
            "doc_stride": self.doc_stride,
        }

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> QATask:
        from gpta.manifest import required

        manifest.require("text_column", "question_column", "label_column", "doc_stride")
        return cls(
            context_column=required(manifest.text_column, "text_column"),
            question_column=required(manifest.question_column, "question_column"),
            answers_column=required(manifest.label_column, "label_column"),
            max_length=manifest.max_length,
            doc_stride=required(manifest.doc_stride, "doc_stride"),
        )


# --- spans ---------------------------------------------------------------------------------------
def span_label(
    offsets: Sequence[tuple[int, int] | None], start_char: int, end_char: int, cls_index: int = 0
) -> tuple[int, int]:
    """Start and end token of the answer ``[start_char, end_char)`` in one window, or
    ``(cls_index, cls_index)`` when the window does not hold the whole answer."""
    context = [i for i, o in enumerate(offsets) if o is not None]
    if not context:
        return cls_index, cls_index
    first, last = context[0], context[-1]
    if _span(offsets, first)[0] > start_char or _span(offsets, last)[1] < end_char:
        return cls_index, cls_index
    start = first
    while start <= last and _span(offsets, start)[0] <= start_char:
        start += 1
    end = last
    while end >= first and _span(offsets, end)[1] >= end_char:
        end -= 1
    return start - 1, end + 1


def _span(offsets: Sequence[tuple[int, int] | None], token: int) -> tuple[int, int]:
    """The character offsets of a context token (the context's tokens are contiguous in a
    window; only the question's and the special tokens have none)."""
    span = offsets[token]
    assert span is not None, f"token {token} is not in the context"
    return span


def decode(
    rows: Sequence[dict[str, Any]],
    context_column: str,
    feats: Features,
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    *,
    n_best: int = N_BEST,
    max_answer_tokens: int = MAX_ANSWER_TOKENS,
) -> list[dict[str, Any]]:
    """The best valid span of every row over its windows (see the module docstring)."""
    best: list[dict[str, Any]] = [{"answer": "", "score": 0.0, "start": 0, "end": 0} for _ in rows]
    best_log: list[float] = [float("-inf")] * len(rows)
    for window, row_index in enumerate(feats.row):
        offsets = feats.offsets[window]
        mask = torch.tensor([o is not None for o in offsets])
        if not bool(mask.any()):
            continue
        k = min(n_best, int(mask.sum()))
        log_start = start_logits[window].masked_fill(~mask, float("-inf")).log_softmax(-1)
        log_end = end_logits[window].masked_fill(~mask, float("-inf")).log_softmax(-1)
        top_start = log_start.topk(k)
        top_end = log_end.topk(k)
        scores = top_start.values[:, None] + top_end.values[None, :]
        s_idx = top_start.indices[:, None]
        e_idx = top_end.indices[None, :]
        valid = (e_idx >= s_idx) & (e_idx - s_idx < max_answer_tokens)
        scores = scores.masked_fill(~valid, float("-inf"))
        flat = int(scores.argmax())
        value = float(scores.view(-1)[flat])
        if value == float("-inf") or value <= best_log[row_index]:
            continue
        start_token = int(top_start.indices[flat // k])
        end_token = int(top_end.indices[flat % k])
        start_char = _span(offsets, start_token)[0]  # both tokens are in the context (the mask)
        end_char = _span(offsets, end_token)[1]
        context = rows[row_index][context_column]
        best_log[row_index] = value
        best[row_index] = {
            "answer": context[start_char:end_char],
            "score": float(torch.tensor(value).exp()),
            "start": start_char,
            "end": end_char,
        }
    return best


def question_word(question: str) -> str:
    """The question's wh-word (``who`` for whom/whose), or ``other``."""
    match = _WORDS.search(question)
    if match is None:
        return "other"
    word = match.group(1).lower()
    return _WORD_ALIASES.get(word, word)


def _cls_index(tokenizer: PreTrainedTokenizerBase, input_ids: Sequence[int]) -> int:
    cls_id = getattr(tokenizer, "cls_token_id", None)
    if cls_id is not None and cls_id in input_ids:
        return list(input_ids).index(cls_id)
    return 0


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return type(value).__name__
