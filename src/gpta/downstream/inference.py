"""Batched forward passes with a fixed prefix: the one code path for dev evaluation,
candidate screening, the final test evaluation and ``gpta predict``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from gpta.tasks.classification import ClassificationTask


@dataclass
class ClassifierOutput:
    """Per-row logits, and the mean cross-entropy when labels were given."""

    logits: torch.Tensor  # (rows, classes), float32 on CPU
    loss: float | None

    @property
    def predictions(self) -> list[int]:
        return self.logits.argmax(dim=-1).tolist()

    @property
    def probabilities(self) -> torch.Tensor:
        return self.logits.softmax(dim=-1)


@torch.inference_mode()
def run_classifier(
    model: Any,
    tokenizer: Any,
    task: ClassificationTask,
    texts: Sequence[str],
    prefix: str,
    *,
    batch_size: int = 64,
    labels: Sequence[int] | None = None,
) -> ClassifierOutput:
    """Score ``texts`` with ``prefix``; restores the model's train/eval mode afterwards."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    chunks = []
    try:
        for start in range(0, len(texts), batch_size):
            batch = task.encode(tokenizer, texts[start : start + batch_size], prefix)
            batch = {k: v.to(device) for k, v in batch.items()}
            chunks.append(model(**batch).logits.float().cpu())
    finally:
        model.train(was_training)
    logits = torch.cat(chunks) if chunks else torch.empty(0, len(task.labels))
    loss = None
    if labels is not None and len(labels):
        loss = float(torch.nn.functional.cross_entropy(logits, torch.as_tensor(list(labels))))
    return ClassifierOutput(logits=logits, loss=loss)
