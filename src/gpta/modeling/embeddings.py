"""Frozen sentence embeddings of the pretrained downstream model (the selection proxy).

Where the model is a :class:`~gpta.modeling.pooled.PooledClassifier` the embedding is the
one it was trained to produce (its own pooling); for any other Hugging Face model, the
mean of its last hidden states over the non-padding tokens. No prefix is added unless
the caller's ``encode`` adds one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gpta.modeling.inference import forward_batches
from gpta.modeling.pooled import PooledClassifier, Pooling, pool

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def frozen_embeddings(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    max_length: int,
    batch_size: int,
    encode: Callable[[Sequence[str]], dict[str, Any]] | None = None,
) -> np.ndarray:
    """``(len(texts), dim)`` float32 embeddings, in order (the first ``max_length`` tokens).
    ``encode`` turns a batch of texts into the model's inputs instead of the plain tokenizer
    (e.g. a task's encoding with a prefix)."""

    def batch(part: Sequence[str]) -> dict[str, Any]:
        if encode is not None:
            return encode(part)
        return tokenizer(
            list(part), truncation=True, max_length=max_length, padding=True, return_tensors="pt"
        )

    chunks = []
    for inputs, _ in forward_batches(
        model, list(texts), batch, batch_size=batch_size, call_model=False
    ):
        if isinstance(model, PooledClassifier):
            vectors = model.embed(inputs["input_ids"], inputs["attention_mask"])
        else:
            outputs = model(**inputs, output_hidden_states=True)
            states = outputs.hidden_states[-1]
            vectors = pool(states, inputs["attention_mask"], Pooling("mean", normalize=True))
        chunks.append(vectors.float().cpu())
    if not chunks:
        return np.zeros((0, 1), dtype=np.float32)
    return torch.cat(chunks).numpy()
