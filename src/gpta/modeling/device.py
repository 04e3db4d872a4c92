"""Pick the device for the downstream model."""

from __future__ import annotations

import torch


def resolve_device(choice: str = "auto") -> str:
    """``auto`` picks CUDA, then MPS, then CPU."""
    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"
