"""``head: sequence``: a new classification head on a pretrained encoder.

Where the model folder is a sentence-transformers model (``modules.json`` with a Pooling
module, as the bundled all-MiniLM-L6-v2), the head reads the embedding the model was
trained to produce: its own pooling (mean of the token states, normalised), with the
linear layer started as a logistic-regression probe on the frozen embeddings of the
training rows (:mod:`gpta.modeling.pooled`). Elsewhere it is the plain Hugging Face
recipe (``AutoModelForSequenceClassification``). The prefix joins the text as one
segment, ``prefix + " " + text``, truncated on the right; with the empty prefix the
input is exactly the plain fine-tuning input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from gpta.bundled import resolve_model_path
from gpta.modeling.loading import load_pretrained
from gpta.modeling.pooled import PooledClassifier, is_pooled_folder, read_pooling

if TYPE_CHECKING:
    from transformers import BatchEncoding, PreTrainedTokenizerBase

PREFIX_SEPARATOR = " "


def join_prefix(prefix: str, text: str) -> str:
    """The model input for one row: the prefix, a separator, the text."""
    return f"{prefix}{PREFIX_SEPARATOR}{text}" if prefix else text


@dataclass
class SequenceHead:
    """A randomly initialised linear head over the encoder's pooled output."""

    name: str = field(default="sequence", init=False)
    reads: str = field(
        default="The network reads your instruction followed by one input text and must "
        "predict one label.",
        init=False,
    )
    example: str = field(
        default="Decide which topic the news article is mainly about: world, sports, "
        "business or science.",
        init=False,
    )
    slot: str | None = field(default=None, init=False)

    def load_model(
        self, name_or_path: str, label_names: list[str]
    ) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
        from transformers import AutoModel, AutoModelForSequenceClassification

        pooling = read_pooling(_local_folder(name_or_path))
        if pooling is not None:
            encoder, tokenizer = load_pretrained(AutoModel, name_or_path)
            return PooledClassifier(encoder, pooling, label_names), tokenizer
        return load_pretrained(
            AutoModelForSequenceClassification,
            name_or_path,
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={n: i for i, n in enumerate(label_names)},
            ignore_mismatched_sizes=True,
        )

    def load_trained(self, model_dir: str) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if is_pooled_folder(model_dir):
            return PooledClassifier.from_pretrained(model_dir), AutoTokenizer.from_pretrained(
                model_dir
            )
        return load_pretrained(AutoModelForSequenceClassification, model_dir)

    def prepare(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        texts: Sequence[str],
        label_ids: Sequence[int],
        *,
        max_length: int,
        batch_size: int,
        weights: Sequence[float] | None = None,
    ) -> dict[str, Any]:
        """Start the linear layer as a probe on the frozen embeddings of ``texts`` (no
        prefix), where the model has its own pooling; returns what was done, for the log."""
        if not isinstance(model, PooledClassifier) or not texts:
            return {}
        batches = [
            self.encode(
                tokenizer,
                texts[i : i + batch_size],
                [""] * len(texts[i : i + batch_size]),
                max_length,
            )
            for i in range(0, len(texts), batch_size)
        ]
        model.fit_probe(batches, label_ids, weights=weights)
        return {"head_init": "linear-probe", "pooling": model.pooling.mode}

    def encode(
        self,
        tokenizer: PreTrainedTokenizerBase,
        texts: Sequence[str],
        prefixes: Sequence[str],
        max_length: int,
    ) -> BatchEncoding[torch.Tensor]:
        batch: BatchEncoding[torch.Tensor] = tokenizer(
            [join_prefix(p, t) for p, t in zip(prefixes, texts, strict=True)],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )
        return batch

    def class_logits(
        self, model: torch.nn.Module, inputs: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        logits: torch.Tensor = model(**inputs).logits
        return logits

    def manifest(self) -> dict[str, Any]:
        return {"head": self.name}


def _local_folder(name_or_path: str) -> Path:
    """The folder a model name loads from: bundled, local, or the Hugging Face cache."""
    path = Path(resolve_model_path(name_or_path))
    if path.is_dir():
        return path
    try:  # a hub id already in the cache (nothing is downloaded: offline or not)
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name_or_path, local_files_only=True))
    except Exception:  # not cached, not a repo id: the plain recipe applies
        return path
