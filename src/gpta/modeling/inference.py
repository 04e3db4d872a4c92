"""Batched forward passes in eval mode: the one code path for dev evaluation, candidate
screening, the final test evaluation and ``gpta predict``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import torch

Row = TypeVar("Row")


def forward_batches(
    model: torch.nn.Module,
    rows: Sequence[Row],
    make_batch: Callable[[Sequence[Row]], Mapping[str, Any]],
    *,
    batch_size: int,
    call_model: bool = True,
) -> Iterator[tuple[Mapping[str, Any], Any]]:
    """Yield ``(batch, outputs)`` per batch of ``rows``; restores the model's mode afterwards.

    ``make_batch`` turns a slice of rows into model inputs; keys the model does not take
    (anything not a tensor) stay in ``batch`` for the caller and are not passed on. With
    ``call_model=False`` the caller runs the model: it gets ``(inputs on the model's
    device, None)``, still in eval mode and without gradients.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.inference_mode():
            for start in range(0, len(rows), batch_size):
                batch = make_batch(rows[start : start + batch_size])
                inputs = {k: v.to(device) for k, v in batch.items() if torch.is_tensor(v)}
                if call_model:
                    yield batch, model(**inputs)
                else:
                    yield inputs, None
    finally:
        model.train(was_training)
