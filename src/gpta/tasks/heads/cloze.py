"""``head: cloze``: a masked LM fills a slot in a template; class score = logit of its word.

The LM-BFF / PET recipe. The prefix (the TA's proposal) is a *template sentence* that
holds the slot ``{mask}`` once; it follows the text, and the slot becomes the model's
mask token::

    prefix with the slot:   [CLS] {text} {prefix before slot} [MASK]{prefix after slot} [SEP]
    prefix without it:      [CLS] {prefix} {text} It was [MASK]. [SEP]
    empty prefix:           [CLS] {text} It was [MASK]. [SEP]

The class score of label ``k`` is the MLM logit, at the mask, of label ``k``'s word (one
token of the vocabulary, the word as it follows a space: ``Ġgreat`` for RoBERTa). The
pretrained MLM head is the classifier, fine-tuned end to end with cross-entropy over these
scores; only the mask position is projected onto the vocabulary.

Needs a checkpoint *with* its masked-LM head (``roberta-base``, ``bert-base-uncased``,
``distilroberta-base``, ...). The bundled MiniLM is a sentence encoder whose MLM head was
dropped: it is refused, as is any checkpoint whose config names no masked-LM architecture.

Exactly one mask per row: a mask token written in a text or a prefix (``[MASK]``) is
split into plain text (or, where a tokenizer cannot, replaced by the unknown token). Only
text tokens are truncated (from the right), so the template and the mask always survive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from gpta.errors import GptaUserError
from gpta.tasks.heads.lm_verbalizer import (
    LabelWordHead,
    _model_type,
    keep_positions,
    pad_id_of,
    pad_rows,
    special_frame,
    token_ids,
    words_listed,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


HEAD_NAME = "cloze"
SLOT = "{mask}"
DEFAULT_TEMPLATE = "It was {mask}."  # after the text when the prefix has no slot


@dataclass
class _Frame:
    before: list[int]  # after [CLS], before the text (a slot-less prefix)
    tail: list[int]  # after the text, the mask included (the template)
    text_lead: str  # " " when something precedes the text


@dataclass
class ClozeHead(LabelWordHead[_Frame]):
    """Scores each label by the masked LM's logit of its (one-token) word at the mask."""

    template: str = DEFAULT_TEMPLATE
    name: str = field(default=HEAD_NAME, init=False)
    slot: str | None = field(default=SLOT, init=False)
    _tokenizer: PreTrainedTokenizerBase | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _label_ids: list[int] = field(default_factory=list, init=False, repr=False, compare=False)
    _mask_id: int = field(default=-1, init=False, repr=False, compare=False)
    _specials: tuple[list[int], list[int]] = field(
        default=([], []), init=False, repr=False, compare=False
    )
    auto_class: ClassVar[str] = "AutoModelForMaskedLM"

    def __post_init__(self) -> None:
        if self.template.count(SLOT) != 1:
            raise ValueError(f"the cloze template must hold {SLOT} exactly once: {self.template!r}")

    # --- what the TA is told -----------------------------------------------------------------
    @property
    def reads(self) -> str:
        return (
            "The network is a masked language model: it reads one input text followed by your "
            f"sentence, and fills the slot {SLOT} in your sentence with one word, "
            f"{words_listed(self.words)}, which gives the label."
        )

    @property
    def example(self) -> str:
        return "All in all, this news article is about {mask}."

    # --- models ------------------------------------------------------------------------------
    def check_checkpoint(self, name_or_path: str) -> None:
        """Refuse a checkpoint that is not a masked LM or was saved without its MLM head."""
        _require_masked_lm(name_or_path)

    def bind(self, tokenizer: PreTrainedTokenizerBase) -> None:
        """Find the mask token, the label words' token ids and the special tokens (once)."""
        if self._tokenizer is tokenizer:
            return
        mask_id = tokenizer.mask_token_id
        if mask_id is None:
            raise GptaUserError(
                "model.head=cloze needs a tokenizer with a mask token, and this model's has none",
                hint="pass a masked-LM checkpoint (e.g. roberta-base) as model.name_or_path",
            )
        self._label_ids = self._word_ids(tokenizer)
        self._mask_id = int(mask_id)
        self._specials = special_frame(tokenizer)
        self._frames = {}
        self._tokenizer = tokenizer

    def _word_ids(self, tokenizer: PreTrainedTokenizerBase) -> list[int]:
        spaced = token_ids(tokenizer, [" " + w for w in self.words])
        bare = token_ids(tokenizer, self.words)
        ids: list[int] = []
        for name, word, a, b in zip(self.label_names, self.words, spaced, bare, strict=True):
            if len(a) == 1:
                ids.append(a[0])
            elif len(b) == 1:
                ids.append(b[0])
            else:
                pieces = tokenizer.convert_ids_to_tokens(a)
                raise GptaUserError(
                    f"model.head=cloze: the word {word!r} of label {name!r} is {len(a)} tokens "
                    f"{pieces} in this model's vocabulary; the mask holds exactly one token",
                    hint="set model.label_words to single-token words (common short words such "
                    "as great, bad, sports)",
                )
        seen: dict[int, str] = {}
        for name, token in zip(self.label_names, ids, strict=True):
            if token in seen:
                raise GptaUserError(
                    f"model.head=cloze: labels {seen[token]!r} and {name!r} have the same word "
                    f"token {tokenizer.convert_ids_to_tokens(token)!r}",
                    hint="set model.label_words to a different word for each label",
                )
            seen[token] = name
        return ids

    # --- inputs -----------------------------------------------------------------------------
    def _clean(self, tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> list[int]:
        """No stray mask token: only the template's slot is a mask."""
        if self._mask_id not in ids:
            return ids
        unk = tokenizer.unk_token_id
        return (
            [t for t in ids if t != self._mask_id]
            if unk is None
            else [unk if t == self._mask_id else t for t in ids]
        )

    def _build_frame(self, tokenizer: PreTrainedTokenizerBase, prefix: str) -> _Frame:
        count = prefix.count(SLOT)
        if count > 1:
            raise GptaUserError(
                f"a cloze prefix holds the slot {SLOT} at most once: {prefix!r}",
                hint=f"keep one {SLOT} where the answer word goes",
            )
        before_text, template = ("", prefix) if count == 1 else (prefix.strip(), self.template)
        head, tail = template.split(SLOT)
        head = head.strip()  # the mask stands for a word with its leading space
        pieces = [before_text, f" {head}" if head else "", tail]
        tokenized = token_ids(tokenizer, [p for p in pieces if p])
        before, t_head, t_tail = [
            self._clean(tokenizer, tokenized.pop(0)) if p else [] for p in pieces
        ]
        return _Frame(
            before=before, tail=[*t_head, self._mask_id, *t_tail], text_lead=" " if before else ""
        )

    def encode(
        self,
        tokenizer: PreTrainedTokenizerBase,
        texts: Sequence[str],
        prefixes: Sequence[str],
        max_length: int,
    ) -> dict[str, torch.Tensor]:
        framed = self.framed_texts(tokenizer, texts, prefixes)
        lead, trail = self._specials
        rows = []
        for frame, ids in framed:
            fixed = len(lead) + len(frame.before) + len(frame.tail) + len(trail)
            room = max(max_length - fixed, 0)
            rows.append(
                lead + frame.before + self._clean(tokenizer, ids)[:room] + frame.tail + trail
            )
        input_ids, attention_mask = pad_rows(rows, pad_id_of(tokenizer), left=False)
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    # --- scores -----------------------------------------------------------------------------
    def class_logits(
        self, model: torch.nn.Module, inputs: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        if not self._label_ids:
            raise RuntimeError("cloze head: encode() or load_model() must come first")
        input_ids = inputs["input_ids"]
        positions = (input_ids == self._mask_id).int().argmax(dim=-1)
        kwargs = {"input_ids": input_ids, "attention_mask": inputs["attention_mask"]}
        with keep_positions(model, positions) as kept:
            logits: torch.Tensor = model(**kwargs).logits
        if kept:
            at_mask = logits[:, 0, :]
        else:  # no separate backbone: the full logits, read at the mask
            rows = torch.arange(logits.shape[0], device=logits.device)
            at_mask = logits[rows, positions.to(logits.device)]
        ids = torch.tensor(self._label_ids, device=at_mask.device)
        return at_mask[:, ids].float()

    def scoring_fields(self) -> dict[str, Any]:
        """How the head scores: the slot the template holds."""
        return {"slot": SLOT}


_MLM_ARCHITECTURE_MARKS = ("MaskedLM", "WithLMHead", "LMHeadModel")


def _require_masked_lm(name_or_path: str) -> None:
    """Refuse a checkpoint that is not a masked LM or was saved without its MLM head."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    config = _model_type(name_or_path)
    if config is None:
        return
    kind = config.model_type
    if kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES or config.is_encoder_decoder:
        raise GptaUserError(
            f"model.head=cloze needs a masked language model (BERT/RoBERTa-class), and "
            f"{name_or_path!r} is a {kind or 'model of unknown type'}",
            hint="pass a masked-LM checkpoint such as roberta-base; for a causal LM use "
            "model.head: lm-verbalizer",
        )
    architectures = list(config.architectures or [])
    with_head = [
        a
        for a in architectures
        if any(mark in a for mark in _MLM_ARCHITECTURE_MARKS)
        or (a.endswith("ForPreTraining") and not a.startswith("Electra"))
    ]
    if architectures and not with_head:
        raise GptaUserError(
            f"model.head=cloze needs a checkpoint with its masked-LM head, and "
            f"{name_or_path!r} was saved as {architectures[0]} (no MLM head: it would start "
            "from random weights)",
            hint="pass a masked-LM checkpoint such as roberta-base or bert-base-uncased as "
            "model.name_or_path (the bundled MiniLM is a sentence encoder without one)",
        )
