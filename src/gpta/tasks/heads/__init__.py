"""Classification heads: the registry of ways a model scores classes from ``prefix + text``.

- ``sequence``: a new linear head on an encoder (the plain fine-tuning recipe); the prefix
  is one more segment of text the new head must learn to use.
- ``lm-verbalizer``: a decoder-only causal LM (default: the bundled SmolLM2) reads the
  prefix as an instruction in its own chat template, then the text; a class's score is the
  log-probability of the first token of its label word at the answer position.
- ``cloze``: a masked LM (e.g. roberta-base) reads the text and the prefix as a template
  sentence holding the slot ``{mask}``; a class's score is the MLM logit of its
  (one-token) label word at the mask.

Label words (``model.label_words``, default the label names) are what the two LM heads
score; for opaque labels (``0``..``4``) a run has the TA propose them before training
(:mod:`gpta.assistant.label_words`). See docs/heads.md.

Every head implements :class:`gpta.tasks.heads.base.ClassificationHead`.
"""

from __future__ import annotations

from typing import Any

from gpta.tasks.heads.base import ClassificationHead
from gpta.tasks.heads.cloze import ClozeHead
from gpta.tasks.heads.lm_verbalizer import LmVerbalizerHead
from gpta.tasks.heads.sequence import SequenceHead, join_prefix

HEADS = ("sequence", "lm-verbalizer", "cloze")


def build_head(
    name: str, *, label_names: list[str], label_words: dict[str, str] | None = None
) -> ClassificationHead:
    """The head named by ``model.head`` for these labels (label words: lm-verbalizer, cloze).

    Raises :class:`gpta.errors.GptaUserError` for label words a head cannot use (numeric
    labels without words); words that do not suit the model's tokenizer are found when the
    model is loaded.
    """
    if name == "sequence":
        return SequenceHead()
    if name == "lm-verbalizer":
        return LmVerbalizerHead.build(label_names, label_words)
    if name == "cloze":
        return ClozeHead.build(label_names, label_words)
    raise ValueError(f"unknown classification head {name!r} (known: {', '.join(HEADS)})")


def head_from_manifest(manifest: dict[str, Any]) -> ClassificationHead:
    """Rebuild the head of a saved model (models saved before heads existed are ``sequence``)."""
    name = manifest.get("head", "sequence")
    if name == "sequence":
        return SequenceHead()
    if name == "lm-verbalizer":
        return LmVerbalizerHead.from_manifest(manifest)
    if name == "cloze":
        return ClozeHead.from_manifest(manifest)
    raise ValueError(f"unknown classification head {name!r}")


__all__ = [
    "HEADS",
    "ClassificationHead",
    "ClozeHead",
    "LmVerbalizerHead",
    "SequenceHead",
    "build_head",
    "head_from_manifest",
    "join_prefix",
]
