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

Every head implements :class:`gpta.tasks.heads.base.ClassificationHead`. A new head is
named in two places: :data:`gpta.config.HeadName` (what ``model.head`` accepts) and
:data:`HEADS` (how it is built), whose keys a test holds equal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from gpta.tasks.heads.base import ClassificationHead
from gpta.tasks.heads.cloze import ClozeHead
from gpta.tasks.heads.lm_verbalizer import LmVerbalizerHead
from gpta.tasks.heads.sequence import SequenceHead, join_prefix

if TYPE_CHECKING:
    from gpta.config import HeadName


@dataclass(frozen=True)
class HeadSpec:
    """One head of the registry: how it is built for a run's labels, how a saved model's
    manifest rebuilds it, and whether it scores label words (the TA may be asked for them:
    :mod:`gpta.assistant.label_words`)."""

    build: Callable[[Sequence[str], dict[str, str] | None], ClassificationHead]
    from_manifest: Callable[[dict[str, Any]], ClassificationHead]
    scores_label_words: bool


HEADS: dict[HeadName, HeadSpec] = {
    "sequence": HeadSpec(
        build=lambda _names, _words: SequenceHead(),
        from_manifest=lambda _manifest: SequenceHead(),
        scores_label_words=False,
    ),
    "lm-verbalizer": HeadSpec(
        LmVerbalizerHead.build, LmVerbalizerHead.from_manifest, scores_label_words=True
    ),
    "cloze": HeadSpec(ClozeHead.build, ClozeHead.from_manifest, scores_label_words=True),
}
# the heads whose class scores are label words' (the TA may propose the words)
LABEL_WORD_HEADS: tuple[HeadName, ...] = tuple(n for n, s in HEADS.items() if s.scores_label_words)


def _spec(name: str) -> HeadSpec:
    spec = HEADS.get(cast("HeadName", name))
    if spec is None:
        raise ValueError(f"unknown classification head {name!r} (known: {', '.join(HEADS)})")
    return spec


def build_head(
    name: str, *, label_names: list[str], label_words: dict[str, str] | None = None
) -> ClassificationHead:
    """The head named by ``model.head`` for these labels (label words: lm-verbalizer, cloze).

    Raises :class:`gpta.errors.GptaUserError` for label words a head cannot use (numeric
    labels without words); words that do not suit the model's tokenizer are found when the
    model is loaded.
    """
    return _spec(name).build(label_names, label_words)


def head_from_manifest(manifest: dict[str, Any]) -> ClassificationHead:
    """Rebuild the head of a saved model (models saved before heads existed are ``sequence``)."""
    return _spec(manifest.get("head", "sequence")).from_manifest(manifest)


__all__ = [
    "HEADS",
    "LABEL_WORD_HEADS",
    "ClassificationHead",
    "ClozeHead",
    "HeadSpec",
    "LmVerbalizerHead",
    "SequenceHead",
    "build_head",
    "head_from_manifest",
    "join_prefix",
]
