"""``head: sequence``: a new classification head on a pretrained encoder.

The plain Hugging Face recipe (``AutoModelForSequenceClassification``); the prefix
joins the text as one segment, ``prefix + " " + text``, truncated on the right.
With the empty prefix the input is exactly the plain fine-tuning input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from gpta.downstream.model import load_pretrained

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

    def load_model(self, name_or_path: str, label_names: list[str]) -> tuple[Any, Any]:
        from transformers import AutoModelForSequenceClassification

        return load_pretrained(
            AutoModelForSequenceClassification,
            name_or_path,
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={n: i for i, n in enumerate(label_names)},
            ignore_mismatched_sizes=True,
        )

    def load_trained(self, model_dir: str) -> tuple[Any, Any]:
        from transformers import AutoModelForSequenceClassification

        return load_pretrained(AutoModelForSequenceClassification, model_dir)

    def encode(
        self, tokenizer: Any, texts: Sequence[str], prefixes: Sequence[str], max_length: int
    ) -> dict[str, torch.Tensor]:
        return tokenizer(
            [join_prefix(p, t) for p, t in zip(prefixes, texts, strict=True)],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )

    def class_logits(self, model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(**inputs).logits

    def manifest(self) -> dict[str, Any]:
        return {"head": self.name}
