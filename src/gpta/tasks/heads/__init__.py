"""Classification heads: the registry of ways a model scores classes from ``prefix + text``.

- ``sequence``: a new linear head on an encoder (the plain fine-tuning recipe);

Every head implements :class:`gpta.tasks.heads.base.ClassificationHead`.
"""

from __future__ import annotations

from typing import Any

from gpta.tasks.heads.base import ClassificationHead
from gpta.tasks.heads.sequence import SequenceHead, join_prefix


def build_head(
    name: str, *, label_names: list[str], label_words: dict[str, str] | None = None
) -> ClassificationHead:
    """The head named by ``model.head`` for these labels."""
    if name == "sequence":
        return SequenceHead()
    raise ValueError(f"unknown classification head {name!r}")


def head_from_manifest(manifest: dict[str, Any]) -> ClassificationHead:
    """Rebuild the head of a saved model (models saved before heads existed are ``sequence``)."""
    name = manifest.get("head", "sequence")
    if name == "sequence":
        return SequenceHead()
    raise ValueError(f"unknown classification head {name!r}")


__all__ = ["ClassificationHead", "SequenceHead", "build_head", "head_from_manifest", "join_prefix"]
