"""Inference with the saved prefix and no LLM: ``load_pipeline`` and ``gpta predict``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from gpta.distributed import Ranks
from gpta.downstream.artifact import find_model_dir, read_manifest
from gpta.errors import GptaUserError
from gpta.manifest import Manifest
from gpta.modeling.device import resolve_device
from gpta.run_files import MANIFEST
from gpta.tasks import task_from_manifest
from gpta.tasks.base import Evaluation

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from gpta.tasks.classification import ClassificationTask


class GptaPipeline:
    """A fine-tuned model, its task and the fixed prefix it was trained with.

    Call it with rows (dicts with the training column names) or, for tasks that read one
    text (classification, summarization), with plain strings.
    """

    def __init__(self, model_dir: str | Path, *, device: str = "auto", batch_size: int = 32):
        self.model_dir = find_model_dir(model_dir)
        self.manifest = read_manifest(self.model_dir)
        self.prefix: str = self.manifest.prefix
        # prefix variety with `augment_predict: mean`: class probabilities averaged over these
        self.prefixes: list[str] | None = self.manifest.predict_prefixes
        where = self.model_dir / MANIFEST
        try:
            self.task = task_from_manifest(self.manifest)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            missing = isinstance(err, KeyError)
            problem = f"no field {err}" if missing else f"a malformed field ({err})"
            raise GptaUserError(
                f"{where} has {problem}",
                hint="this file is written by `gpta train`; restore the one it wrote, or train "
                "the run again",
            ) from None
        try:
            self.model, self.tokenizer = self.task.load_trained(str(self.model_dir))
        except OSError as err:
            raise GptaUserError(
                f"the model in {self.model_dir} could not be loaded ({err})",
                hint="its weights or tokenizer files are missing or damaged; train the run again",
            ) from None
        _check_prefix_room(self.prefixes or [self.prefix], self.tokenizer, self.manifest, where)
        self.model.to(resolve_device(device)).eval()
        self.batch_size = batch_size

    def _varied(self) -> ClassificationTask:
        """The task of a model saved with ``predict_prefixes`` (``augment_predict: mean``):
        classification, the one family whose ``predict``/``outputs`` take a list of prefixes."""
        return cast("ClassificationTask", self.task)

    def rows(self, inputs: str | Sequence[str | dict[str, Any]]) -> list[dict[str, Any]]:
        """Normalise strings to rows keyed by the task's input column."""
        if isinstance(inputs, str):
            inputs = [inputs]
        column = self.manifest.text_column or "text"
        return [item if isinstance(item, dict) else {column: item} for item in inputs]

    def __call__(self, inputs: str | Sequence[str | dict[str, Any]]) -> list[Any]:
        """Predictions, one per input: see each task's ``predict``."""
        if self.prefixes:  # averaged over several prefixes: saved by classification only
            return self._varied().predict(
                self.model,
                self.tokenizer,
                self.rows(inputs),
                self.prefixes,
                batch_size=self.batch_size,
            )
        return self.task.predict(
            self.model, self.tokenizer, self.rows(inputs), self.prefix, batch_size=self.batch_size
        )

    def evaluate(self, rows: Sequence[dict[str, Any]], *, ranks: Ranks | None = None) -> Evaluation:
        """Metrics on labelled rows, computed exactly as during training; with ``ranks``
        (several processes) each scores its shard of the rows."""
        rows, ranks = list(rows), ranks or Ranks()
        if self.prefixes:
            outputs = self._varied().outputs(
                self.model,
                self.tokenizer,
                ranks.shard(rows),
                self.prefixes,
                batch_size=self.batch_size,
            )
        else:
            outputs = self.task.outputs(
                self.model,
                self.tokenizer,
                ranks.shard(rows),
                self.prefix,
                batch_size=self.batch_size,
            )
        return self.task.score(rows, ranks.gather_shards(outputs, len(rows)))


def _check_prefix_room(
    prefixes: Sequence[str], tokenizer: PreTrainedTokenizerBase, manifest: Manifest, where: Path
) -> None:
    """Refuse a saved prefix that fills the model's whole input (``max_length`` tokens): the
    row's own text would be cut away and every prediction would be the same. Training never
    writes one; a hand-edited gpta.json can."""
    limit = manifest.max_length
    for prefix in prefixes:
        used = len(tokenizer(prefix)["input_ids"]) if prefix else 0
        if used >= limit:
            raise GptaUserError(
                f"{where}: the prefix takes {used:,} of the model's {limit:,} input tokens "
                "(max_length), so no token of a row's text would be read and every "
                "prediction would be the same",
                hint="restore the prefix the run wrote (its metrics.json holds it), or train "
                "again with a shorter one (assistant.max_prefix_tokens)",
            )


def load_pipeline(path: str | Path, *, device: str = "auto") -> GptaPipeline:
    """Load a run directory or model directory for inference (no LLM is loaded)."""
    return GptaPipeline(path, device=device)
