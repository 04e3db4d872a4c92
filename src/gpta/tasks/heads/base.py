"""How a classification model turns ``prefix + text`` into one score per class.

A head owns the model class it loads, how a row and its prefix become model
inputs, and how one forward pass yields class scores. The classification task
trains with cross-entropy over those scores and evaluates with their argmax, so
every head is trained, screened, sharded and served by the same code.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


class ClassificationHead(Protocol):
    """One way to score classes; see :mod:`gpta.tasks.heads`."""

    name: str
    slot: str | None  # a placeholder every proposal must contain (cloze: the mask), or None

    @property
    def reads(self) -> str:
        """What the network reads and predicts, told to the TA (one sentence)."""
        ...

    @property
    def example(self) -> str:
        """A good instruction for another dataset, told to the TA."""
        ...

    def load_model(
        self, name_or_path: str, label_names: list[str]
    ) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
        """A pretrained model ready to fine-tune for these labels, and its tokenizer."""
        ...

    def load_trained(self, model_dir: str) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
        """A model saved by a run (``model.save_pretrained`` + the tokenizer)."""
        ...

    def encode(
        self,
        tokenizer: PreTrainedTokenizerBase,
        texts: Sequence[str],
        prefixes: Sequence[str],
        max_length: int,
    ) -> MutableMapping[str, torch.Tensor]:
        """Model inputs for a batch (a dict, or the tokenizer's ``BatchEncoding``);
        ``prefixes[i]`` goes with ``texts[i]`` (rows of one batch may carry different
        prefixes). Only text tokens are ever truncated."""
        ...

    def class_logits(
        self, model: torch.nn.Module, inputs: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """``(batch, num_labels)`` class scores from one forward pass (differentiable)."""
        ...

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
        """Before training: start any new weights from the training rows (no prefix), e.g. a
        linear probe (``weights``: each row's weight, None for all 1); returns what was done
        (JSON-able, empty for nothing)."""
        ...

    def manifest(self) -> dict[str, Any]:
        """What a saved model needs to rebuild this head (JSON-able)."""
        ...
