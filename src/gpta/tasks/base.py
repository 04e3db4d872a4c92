"""The one small interface every task family implements.

A task knows how a prefix joins its input (``collate``), how a model is
scored with a prefix, what aggregate numbers the TA may see (``feedback``), how
outputs decode for users (``predict``), and how to load its model. The synergy
loop, the Trainer rounds and the pipeline only talk to this interface.

Scoring is split in two so that it can be sharded across processes: ``outputs``
runs the model on some rows and returns one picklable output per row; ``score``
(a round's evaluation) and ``screen_score`` (a candidate's screening, forward
passes only where the family allows) turn the outputs of *all* rows into numbers.
:class:`RowScoring` builds ``evaluate``/``screen``/``screen_many`` from them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from gpta.config import GptaConfig
    from gpta.data import Table
    from gpta.manifest import Manifest

# ``(model, inputs) -> (loss, logits)``: a family's own training loss (see ``Task.compute_loss``)
TaskLoss = Callable[[Any, dict[str, Any]], tuple[Any, Any]]
# A training row's loss weight (rows the run adds, such as class-card examples; a row
# without it weighs 1), and where such a row came from
ROW_WEIGHT = "__gpta_weight"
ROW_SOURCE = "__gpta_source"


@dataclass
class Evaluation:
    """A model with one prefix on a set of rows."""

    score: float  # the primary metric (higher is better)
    loss: float | None  # mean loss on the rows, when the family defines one
    metrics: dict[str, Any]  # every metric, including aggregate per-label/per-field numbers
    predictions: list[Any]  # one JSON-able prediction per row
    # the primary metric of each row (1/0 correct, a row's F1, ...), for paired tests
    row_scores: list[float] | None = None

    @classmethod
    def from_class_scores(
        cls,
        outputs: Sequence[Any],
        references: Sequence[int],
        *,
        names: Sequence[Any],
        metrics: Callable[[list[int], Sequence[int]], dict[str, Any]],
    ) -> Evaluation:
        """Argmax over per-row class scores: accuracy (primary), mean cross-entropy, the
        family's metrics, and the predicted names."""
        import torch

        logits = torch.stack(list(outputs)) if outputs else torch.empty(0, len(names))
        loss = float(torch.nn.functional.cross_entropy(logits, torch.tensor(list(references))))
        predicted = logits.argmax(dim=-1).tolist()
        values = metrics(predicted, references)
        correct = [float(p == r) for p, r in zip(predicted, references, strict=True)]
        return cls(values["accuracy"], loss, values, [names[i] for i in predicted], correct)


@dataclass(frozen=True)
class Screening:
    """A candidate prefix's score on the screening subset (forward passes only)."""

    prefix: str
    score: float
    loss: float
    rows: tuple[float, ...] = ()  # the score of each screening row, in row order

    @classmethod
    def from_evaluation(cls, prefix: str, evaluation: Evaluation) -> Screening:
        """Screen by the primary metric of a full evaluation (forward passes, no generation)."""
        return cls(
            prefix, evaluation.score, evaluation.loss or 0.0, tuple(evaluation.row_scores or ())
        )


@dataclass(frozen=True)
class TaskIO:
    """What the TA is told about the task: never anything taken from a row."""

    family: str
    reads: str  # what the network reads, in a sentence
    labels: list[str]  # label names the TA must not give as an answer (may be empty)
    metric: str  # the round's dev metric
    screen_metric: str  # the scale candidates are screened on
    example: str  # an instruction for another dataset of the same family
    slot: str | None = None  # a placeholder every proposal must contain (cloze), or None


def majority_of(
    train_ids: Sequence[int], splits: Mapping[str, Sequence[int]], names: Sequence[Any]
) -> dict[str, Any]:
    """The most frequent class of ``train_ids`` (ties: the lowest id), by its name, and the
    accuracy of always answering it on each split of class ids."""
    from collections import Counter

    counts = Counter(train_ids)
    top = min(counts, key=lambda i: (-counts[i], i))
    return {
        "answer": names[top],
        "metric": "accuracy",
        **{
            name: (sum(i == top for i in ids) / len(ids) if ids else None)
            for name, ids in splits.items()
        },
    }


class RowScoring:
    """``evaluate``, ``screen`` and ``screen_many`` from ``outputs``/``score``/``screen_score``.

    A family implements ``outputs(model, tokenizer, rows, prefix, *, batch_size, screening)``
    and ``score(rows, outputs)``; it may override ``screen_score`` (default: the primary
    metric of ``score``) and ``outputs_many`` (default: one pass per prefix).

    Also the documented defaults of the :class:`Task` members a family may leave out: no
    row checks beyond the columns (``check_rows``), the model's own loss (``compute_loss``),
    no new weights to start (``prepare_model``) and no majority answer (``majority_baseline``).
    """

    # None: the Trainer uses the model's own loss; a family with its own defines a method
    compute_loss: TaskLoss | None = None

    def check_rows(
        self,
        rows: Sequence[dict[str, Any]],
        locations: Sequence[str],
        source: str,
        *,
        labelled: bool,
    ) -> None:
        """Validate rows given to ``gpta predict`` / ``gpta eval`` beyond their columns, naming
        the bad row (default: nothing more to check; QA and multiple choice check answers,
        options and shapes)."""

    def prepare_model(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        *,
        batch_size: int,
    ) -> dict[str, Any]:
        """Before the first round: start new weights from the training rows (default:
        nothing); returns what was done."""
        return {}

    def majority_baseline(
        self, train: Sequence[dict[str, Any]], splits: dict[str, Sequence[dict[str, Any]]]
    ) -> dict[str, Any] | None:
        """The primary metric of always answering the most frequent training answer, on each
        split (None where the family has no such answer: QA, summarization)."""
        return None

    def outputs(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        prefix: str,
        *,
        batch_size: int,
        screening: bool = False,
    ) -> list[Any]:
        raise NotImplementedError

    def score(self, rows: Sequence[dict[str, Any]], outputs: Sequence[Any]) -> Evaluation:
        raise NotImplementedError

    def screen_score(
        self, prefix: str, rows: Sequence[dict[str, Any]], outputs: Sequence[Any]
    ) -> Screening:
        """Screen by the primary metric; loss breaks exact ties."""
        return Screening.from_evaluation(prefix, self.score(rows, outputs))

    def outputs_many(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        prefixes: Sequence[str],
        *,
        batch_size: int,
    ) -> list[list[Any]]:
        """Screening outputs of ``rows`` under each prefix (one list per prefix)."""
        return [
            self.outputs(model, tokenizer, rows, p, batch_size=batch_size, screening=True)
            for p in prefixes
        ]

    def evaluate(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        prefix: str,
        *,
        batch_size: int,
    ) -> Evaluation:
        """A model with one prefix on ``rows``: every metric, and one prediction per row."""
        rows = list(rows)
        return self.score(rows, self.outputs(model, tokenizer, rows, prefix, batch_size=batch_size))

    def screen(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        prefix: str,
        *,
        batch_size: int,
    ) -> Screening:
        """One candidate prefix on the screening rows."""
        rows = list(rows)
        outputs = self.outputs(
            model, tokenizer, rows, prefix, batch_size=batch_size, screening=True
        )
        return self.screen_score(prefix, rows, outputs)

    def screen_many(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        prefixes: Sequence[str],
        *,
        batch_size: int,
    ) -> list[Screening]:
        """Several candidate prefixes on the screening rows, batched where the family can."""
        rows = list(rows)
        outputs = self.outputs_many(model, tokenizer, rows, prefixes, batch_size=batch_size)
        return [self.screen_score(p, rows, o) for p, o in zip(prefixes, outputs, strict=True)]


class Task(Protocol):
    """A task family: every member the synergy loop, the Trainer rounds, the pipeline and the
    CLI use. The registry :data:`gpta.tasks.TASKS` maps each ``task:`` of the config to the
    class implementing it (all of them build on :class:`RowScoring`, which gives the
    documented defaults)."""

    family: str
    primary_metric: str

    # Read-only: QA and multiple choice derive the two columns from their own, and
    # classification's loss is a method.
    @property
    def text_column(self) -> str:
        """The column of the text the prefix joins (QA: the context, multiple choice: the
        article), by the name the saved manifest gives it."""
        ...

    @property
    def label_column(self) -> str:
        """The column of the reference answer, by the name the saved manifest gives it."""
        ...

    @property
    def compute_loss(self) -> TaskLoss | None:
        """The family's own training loss, or None for the model's (only classification has
        one)."""
        ...

    @classmethod
    def from_config(cls, config: GptaConfig, tables: dict[str, Table]) -> Task:
        """Build from the run configuration; validates every split."""
        ...

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> Task:
        """Rebuild the task a saved model was trained for (``KeyError`` naming a field the
        family needs and the file lacks)."""
        ...

    @staticmethod
    def stratify_column_for(config: GptaConfig) -> str | None:
        """The column splits and low-resource samples are stratified by, or None."""
        ...

    def check_rows(
        self,
        rows: Sequence[dict[str, Any]],
        locations: Sequence[str],
        source: str,
        *,
        labelled: bool,
    ) -> None:
        """Validate rows given to ``gpta predict`` / ``gpta eval``, naming the bad row."""
        ...

    def exemplar_columns(self) -> tuple[str, str | None]:
        """The column whose text ``privacy.exposure: exemplars`` shows the TA, and the column
        of the label shown with it (None: none)."""
        ...

    def io(self) -> TaskIO: ...

    def load_model(self, name_or_path: str) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]: ...

    def load_trained(self, model_dir: str) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]: ...

    def collate(
        self, rows: Sequence[dict[str, Any]], tokenizer: PreTrainedTokenizerBase, prefix: str
    ) -> MutableMapping[str, Any]: ...

    def prepare_model(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        *,
        batch_size: int,
    ) -> dict[str, Any]: ...

    def majority_baseline(
        self, train: Sequence[dict[str, Any]], splits: dict[str, Sequence[dict[str, Any]]]
    ) -> dict[str, Any] | None: ...

    def outputs(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        prefix: str,
        *,
        batch_size: int,
        screening: bool = False,
    ) -> list[Any]: ...

    def outputs_many(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        prefixes: Sequence[str],
        *,
        batch_size: int,
    ) -> list[list[Any]]: ...

    def score(self, rows: Sequence[dict[str, Any]], outputs: Sequence[Any]) -> Evaluation: ...

    def screen_score(
        self, prefix: str, rows: Sequence[dict[str, Any]], outputs: Sequence[Any]
    ) -> Screening: ...

    def evaluate(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        prefix: str,
        *,
        batch_size: int,
    ) -> Evaluation: ...

    def screen(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        prefix: str,
        *,
        batch_size: int,
    ) -> Screening: ...

    def screen_many(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        prefixes: Sequence[str],
        *,
        batch_size: int,
    ) -> list[Screening]: ...

    def feedback(self, evaluation: Evaluation) -> tuple[str, dict[str, float]]: ...

    def predict(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[dict[str, Any]],
        prefix: str,
        *,
        batch_size: int,
    ) -> list[Any]: ...

    def stratify_column(self) -> str | None: ...

    def manifest(self) -> dict[str, Any]: ...
