"""``head: lm-verbalizer``: a causal LM says the label; class score = log-prob of its word.

The prefix is an instruction *to the model itself*. Each row becomes one prompt in the
model's own chat template (when its tokenizer has one) or in a plain template::

    chat:   <system prompt of the template, if it adds one>
            <user> {prefix}\\n\\n{text} </user> <assistant>|        (answer starts here)
    plain:  [bos]{prefix}\\n\\nText: {text}\\nAnswer:|             (answer is " word")

and the class score of label ``k`` is the LM's log-probability of the **first token** of
that label's words at the answer position ``|``. No new head: the pretrained LM head is
the classifier, trained end to end with cross-entropy over these scores (equal to the
cross-entropy of the vocabulary distribution renormalised over the label tokens).

Design (see docs/heads.md):

- First token only: one forward pass scores every class, and the answer position is the
  last input token for every row. Labels whose words start with the same token cannot be
  told apart, which is refused with a :class:`GptaUserError` naming ``model.label_words``.
- Left padding, built here (the tokenizer's ``padding_side`` is ignored), with explicit
  ``position_ids`` so that a padded row scores exactly as it does alone; the model then
  projects only the last position onto the vocabulary (``logits_to_keep=1``).
- Only text tokens are truncated (from the right); the template, the prefix and the
  answer position always survive. A template plus prefix longer than ``max_length`` gives
  the text no room (the row is then longer than ``max_length``, never cut elsewhere).
- Special tokens written inside a text or a prefix (``<|im_end|>``) are split into plain
  text, so a row cannot end the turn or open a new one.

Also here: helpers shared with :mod:`gpta.tasks.heads.cloze` (label words, tokenizing,
keeping one position of the backbone's output).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, Self, TypeVar

import torch

from gpta.bundled import resolve_model_path
from gpta.errors import GptaUserError
from gpta.tasks.common import load_auto_model

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedTokenizerBase


HEAD_NAME = "lm-verbalizer"
SCORING = "first-token"
_PREFIX_MARK = "GPTAPREFIXSLOT7F3A"  # stand-ins while rendering the chat template
_TEXT_MARK = "GPTATEXTSLOT7F3A"
_PLAIN_TEXT_LEAD = "Text:"
_PLAIN_ANSWER = "\nAnswer:"
_NUMERIC_RE = re.compile(r"[+-]?\d+(?:[.,]\d+)?")


# --------------------------------------------------------------------------------------------
# Shared helpers (also used by the cloze head)
# --------------------------------------------------------------------------------------------


def resolve_label_words(
    head: str, label_names: Sequence[str], label_words: dict[str, str] | None
) -> dict[str, str]:
    """One word (or phrase) per label: the user's ``model.label_words``, else the label name.

    Numeric labels (``0``..``4``) mean nothing to a language model: without words for them
    this is a :class:`GptaUserError` naming ``model.label_words``.
    """
    given = {str(k): str(v) for k, v in (label_words or {}).items()}
    names = [str(n) for n in label_names]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise GptaUserError(
            f"model.label_words names labels that are not in the data: {unknown} (labels: {names})",
            hint="key model.label_words by the label values as they appear in the data",
        )
    numeric = [n for n in names if n not in given and _NUMERIC_RE.fullmatch(n.strip())]
    if numeric:
        example = ", ".join(f"'{n}': <word>" for n in names[:5])
        raise GptaUserError(
            f"model.head={head} scores each label by a word the language model says, but the "
            f"labels {numeric} are numbers, which carry no meaning for the model",
            hint=f"set model.label_words to a word for each label, e.g. {{{example}}} "
            "(for 1..5-star ratings: terrible, bad, okay, good, great), or leave "
            "model.propose_label_words at auto so that the TA proposes them",
        )
    words: dict[str, str] = {}
    for name in names:
        word = " ".join(given.get(name, name).split())
        if not word:
            raise GptaUserError(
                f"model.label_words: the word for label {name!r} is empty",
                hint="give every label a non-empty word",
            )
        words[name] = word
    return words


def token_ids(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of texts without added special tokens; special tokens written in the text
    (``[MASK]``, ``<|im_end|>``) are split into ordinary text where the tokenizer can."""
    if not texts:
        return []
    try:
        out = tokenizer(list(texts), add_special_tokens=False, split_special_tokens=True)
    except TypeError:  # a tokenizer without split_special_tokens
        out = tokenizer(list(texts), add_special_tokens=False)
    return [list(ids) for ids in out["input_ids"]]


def special_frame(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer adds before and after one sequence (e.g. ``[CLS]``
    and ``[SEP]``), found by comparing a tokenization with and without them."""
    bare = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    full = list(tokenizer("a")["input_ids"])
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare) :]
    return [], []


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DDP/DataParallel/``torch.compile`` wrappers (for inspection and
    hooks only: the wrapper is what gets called)."""
    while True:
        inner = getattr(model, "module", None)
        if not isinstance(inner, torch.nn.Module):
            inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


_ACCEPTS: dict[tuple[type, str], bool] = {}


def accepts(model: torch.nn.Module, argument: str) -> bool:
    """Whether the (unwrapped) model's ``forward`` takes ``argument``."""
    inner = unwrap(model)
    key = (type(inner), argument)
    if key not in _ACCEPTS:
        try:
            _ACCEPTS[key] = argument in inspect.signature(inner.forward).parameters
        except (TypeError, ValueError):
            _ACCEPTS[key] = False
    return _ACCEPTS[key]


@contextmanager
def keep_positions(model: torch.nn.Module, positions: torch.Tensor) -> Iterator[bool]:
    """While active, the backbone (``model.base_model``) hands only ``positions[i]`` of row
    ``i`` to the model's LM head, so logits come out as ``(batch, 1, vocab)`` and the
    vocabulary projection runs once per row. Yields False (nothing hooked: take the full
    logits) for a model without a separate backbone.

    The model is still called as a whole (through any DDP wrapper), so gradients sync.
    """
    inner = unwrap(model)
    backbone = getattr(inner, "base_model", inner)
    if backbone is inner or not isinstance(backbone, torch.nn.Module):
        yield False
        return

    def hook(_module: Any, _args: Any, output: Any) -> Any:
        hidden = output[0]
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        picked = hidden[rows, positions.to(hidden.device)].unsqueeze(1)
        if isinstance(output, tuple):
            return (picked, *output[1:])
        output[next(iter(output.keys()))] = picked
        return output

    handle = backbone.register_forward_hook(hook)
    try:
        yield True
    finally:
        handle.remove()


def pad_rows(
    rows: Sequence[list[int]], pad_id: int, *, left: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` of rows padded to the longest, on either side."""
    width = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if not row:
            continue
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span] = torch.tensor(row, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def pad_id_of(tokenizer: PreTrainedTokenizerBase) -> int:
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    return int(pad)


def words_listed(words: Sequence[str]) -> str:
    """``a, b or c``."""
    quoted = [str(w) for w in words]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


class LabelWordLoading:
    """``load_model`` and ``load_trained`` of a head whose classifier is a pretrained LM head
    scoring label words (``auto_class``: causal or masked). A pretrained checkpoint is first
    checked to be that kind of LM (``check_checkpoint``); then it, or a model saved by a run,
    loads the same way and the head binds its tokenizer (``bind``). The head holds
    ``label_names``."""

    auto_class: ClassVar[str]
    label_names: list[str]
    label_words_source: str | None  # where the label words came from (the run's TA), or None

    def check_checkpoint(self, name_or_path: str) -> None:
        """Refuse a checkpoint that is not an LM of ``auto_class`` (the head's own)."""
        raise NotImplementedError

    def bind(self, tokenizer: PreTrainedTokenizerBase) -> None:
        """Check the label words against ``tokenizer`` and keep their token ids (the head's
        own; :class:`gpta.errors.GptaUserError` for words it cannot score)."""
        raise NotImplementedError

    def load_model(
        self, name_or_path: str, label_names: list[str]
    ) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
        """A pretrained LM ready to fine-tune for these labels, and its tokenizer."""
        if [str(n) for n in label_names] != self.label_names:
            raise ValueError(f"head built for labels {self.label_names}, asked for {label_names}")
        self.check_checkpoint(name_or_path)
        return self._load(name_or_path)

    def load_trained(self, model_dir: str) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
        """A model saved by a run."""
        return self._load(model_dir)

    def _load(self, name_or_path: str) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
        model, tokenizer = load_auto_model(self.auto_class, name_or_path)
        self.bind(tokenizer)
        return model, tokenizer


class Frame(Protocol):
    """The token ids a head puts around a text for one prefix (the head's own ``_Frame``)."""

    text_lead: str  # prepended to the text before tokenizing


FrameT = TypeVar("FrameT", bound=Frame)
_FRAMES_KEPT = 256  # prefixes whose frames a head keeps (a round screens a few dozen)


@dataclass
class LabelWordHead(LabelWordLoading, Generic[FrameT]):
    """What the two label-word heads (lm-verbalizer, cloze) share: their fields, how they
    are built for labels or rebuilt from a saved manifest, the frames kept per prefix and
    each row's text ids in its frame, nothing to start before training, and the manifest.
    A head sets ``name`` and ``slot`` (fields with defaults), its own ``template`` default,
    ``_build_frame`` and ``scoring_fields``."""

    label_names: list[str]
    label_words: dict[str, str]
    template: str | None = None
    # where the words came from when the TA was asked (gpta.assistant.label_words): "ta",
    # "names", "user+ta", ...; None: given or the label names, nothing asked
    label_words_source: str | None = None
    name: str = field(default="", init=False)
    _frames: dict[str, FrameT] = field(default_factory=dict, init=False, repr=False, compare=False)

    # ``cls.name`` and ``cls.template`` below are the subclass's field defaults (a dataclass
    # keeps a field's default as the class attribute)
    @classmethod
    def build(cls, label_names: Sequence[str], label_words: dict[str, str] | None = None) -> Self:
        """The head for these labels, with ``model.label_words`` or the label names."""
        names = [str(n) for n in label_names]
        return cls(names, resolve_label_words(cls.name, names, label_words))

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> Self:
        """The head of a saved model."""
        return cls(
            [str(n) for n in manifest["label_names"]],
            dict(manifest["label_words"]),
            template=manifest.get("template", cls.template),
            label_words_source=manifest.get("label_words_source"),
        )

    @property
    def words(self) -> list[str]:
        """The label words, in label order."""
        return [self.label_words[n] for n in self.label_names]

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
        """Nothing to start: the label words' scores are the head."""
        return {}

    def _build_frame(self, tokenizer: PreTrainedTokenizerBase, prefix: str) -> FrameT:
        """The frame of one prefix (the head's own; its tokenizer is bound)."""
        raise NotImplementedError

    def _frame(self, tokenizer: PreTrainedTokenizerBase, prefix: str) -> FrameT:
        frame = self._frames.get(prefix)
        if frame is None:
            frame = self._build_frame(tokenizer, prefix)
            if len(self._frames) >= _FRAMES_KEPT:
                self._frames.clear()
            self._frames[prefix] = frame
        return frame

    def framed_texts(
        self, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], prefixes: Sequence[str]
    ) -> list[tuple[FrameT, list[int]]]:
        """Each row's frame (for its prefix) and its text's token ids, the frame's lead
        included; binds ``tokenizer`` first."""
        self.bind(tokenizer)
        if len(texts) != len(prefixes):
            raise ValueError(f"{len(texts)} texts but {len(prefixes)} prefixes")
        frames = [self._frame(tokenizer, p) for p in prefixes]
        text_ids = token_ids(
            tokenizer, [f.text_lead + t for f, t in zip(frames, texts, strict=True)]
        )
        return list(zip(frames, text_ids, strict=True))

    def scoring_fields(self) -> dict[str, Any]:
        """The manifest fields of the head's own way of scoring (the head's own)."""
        raise NotImplementedError

    def manifest(self) -> dict[str, Any]:
        """What a saved model needs to rebuild this head."""
        return {
            "head": self.name,
            "label_names": list(self.label_names),
            "label_words": dict(self.label_words),
            **self.scoring_fields(),
            "template": self.template,
            **({"label_words_source": self.label_words_source} if self.label_words_source else {}),
        }


def _model_type(name_or_path: str) -> PretrainedConfig | None:
    """The checkpoint's config, or None when it cannot be read (load_pretrained reports)."""
    from transformers import AutoConfig

    try:
        config: PretrainedConfig = AutoConfig.from_pretrained(resolve_model_path(name_or_path))
    except (OSError, ValueError, KeyError):
        return None
    return config


# --------------------------------------------------------------------------------------------
# The head
# --------------------------------------------------------------------------------------------


@dataclass
class _Frame:
    """Token ids around the text for one prefix: ``before + text + after``."""

    before: list[int]
    after: list[int]
    text_lead: str  # prepended to the text before tokenizing (" " in the plain template)


@dataclass
class LmVerbalizerHead(LabelWordHead[_Frame]):
    """Scores each label by the causal LM's log-probability of its word's first token."""

    template: str | None = None  # "chat" or "plain"; None: chat when the tokenizer has one
    name: str = field(default=HEAD_NAME, init=False)
    slot: str | None = field(default=None, init=False)
    _tokenizer: PreTrainedTokenizerBase | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _label_ids: list[int] = field(default_factory=list, init=False, repr=False, compare=False)
    _parts: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    auto_class: ClassVar[str] = "AutoModelForCausalLM"

    # --- what the TA is told -----------------------------------------------------------------
    @property
    def reads(self) -> str:
        return (
            "The network is a small language model: it reads your instruction and then "
            f"one input text, and must answer with one word: {words_listed(self.words)}. "
            "Write the instruction to that model."
        )

    @property
    def example(self) -> str:
        return (
            "Read the news article and answer with its topic in one word: world, sports, "
            "business or science."
        )

    # --- models ------------------------------------------------------------------------------
    def check_checkpoint(self, name_or_path: str) -> None:
        """Refuse a checkpoint that is not a decoder-only causal LM."""
        _require_causal_lm(name_or_path)

    def bind(self, tokenizer: PreTrainedTokenizerBase) -> None:
        """Work out the template pieces and the label tokens for this tokenizer (once)."""
        if self._tokenizer is tokenizer:
            return
        template = self.template
        if template is None:
            template = "chat" if tokenizer.chat_template else "plain"
        if template == "chat":
            parts = _chat_parts(tokenizer)
            if parts is None:
                raise GptaUserError(
                    "model.head=lm-verbalizer: the tokenizer's chat template could not be "
                    "rendered with one user turn and a generation prompt",
                    hint="use a chat model whose template takes a lone user turn, or a base "
                    "model without a chat template (the plain template is used then)",
                )
            answer_lead = ""
        elif template == "plain":
            lead, _ = special_frame(tokenizer)
            parts = {
                "with_prefix": ("", "\n\n" + _PLAIN_TEXT_LEAD, _PLAIN_ANSWER),
                "no_prefix": (_PLAIN_TEXT_LEAD, _PLAIN_ANSWER),
                "lead_ids": lead,
                "text_lead": " ",
            }
            answer_lead = " "
        else:
            raise ValueError(f"unknown lm-verbalizer template {template!r}")
        label_ids = self._first_tokens(tokenizer, answer_lead)
        self.template = template
        self._parts = parts
        self._label_ids = label_ids
        self._frames = {}
        self._tokenizer = tokenizer

    def _first_tokens(self, tokenizer: PreTrainedTokenizerBase, answer_lead: str) -> list[int]:
        tokenized = token_ids(tokenizer, [answer_lead + w for w in self.words])
        firsts: list[int] = []
        for name, word, ids in zip(self.label_names, self.words, tokenized, strict=True):
            if not ids:
                raise GptaUserError(
                    f"model.label_words: the word {word!r} of label {name!r} has no tokens",
                    hint="give every label a real word",
                )
            firsts.append(ids[0])
        by_token: dict[int, str] = {}
        for name, first in zip(self.label_names, firsts, strict=True):
            if first in by_token:
                other = by_token[first]
                piece = tokenizer.convert_ids_to_tokens(first)
                raise GptaUserError(
                    f"model.head=lm-verbalizer scores the first token of each label's words, "
                    f"and labels {other!r} ({self.label_words[other]!r}) and {name!r} "
                    f"({self.label_words[name]!r}) both start with the token {piece!r} for "
                    "this model's tokenizer",
                    hint="set model.label_words so that every label's word starts differently "
                    "(e.g. a single common word per label)",
                )
            by_token[first] = name
        return firsts

    # --- inputs -----------------------------------------------------------------------------
    def _build_frame(self, tokenizer: PreTrainedTokenizerBase, prefix: str) -> _Frame:
        parts = self._parts
        lead = list(parts.get("lead_ids", []))
        if prefix:
            t0, t1, t2 = parts["with_prefix"]
            ids_t0, ids_t1, ids_t2 = _template_ids(tokenizer, [t0, t1, t2])
            (ids_prefix,) = token_ids(tokenizer, [prefix])
            before = lead + ids_t0 + ids_prefix + ids_t1
        else:
            t0, t2 = parts["no_prefix"]
            ids_t0, ids_t2 = _template_ids(tokenizer, [t0, t2])
            before = lead + ids_t0
        return _Frame(before=before, after=ids_t2, text_lead=parts.get("text_lead", ""))

    def encode(
        self,
        tokenizer: PreTrainedTokenizerBase,
        texts: Sequence[str],
        prefixes: Sequence[str],
        max_length: int,
    ) -> dict[str, torch.Tensor]:
        rows = []
        for frame, ids in self.framed_texts(tokenizer, texts, prefixes):
            room = max(max_length - len(frame.before) - len(frame.after), 0)
            rows.append(frame.before + ids[:room] + frame.after)
        input_ids, attention_mask = pad_rows(rows, pad_id_of(tokenizer), left=True)
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
        }

    # --- scores -----------------------------------------------------------------------------
    def class_logits(
        self, model: torch.nn.Module, inputs: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        if not self._label_ids:
            raise RuntimeError("lm-verbalizer head: encode() or load_model() must come first")
        kwargs: dict[str, Any] = {
            "input_ids": inputs["input_ids"],
            "attention_mask": inputs["attention_mask"],
        }
        if "position_ids" in inputs and accepts(model, "position_ids"):
            kwargs["position_ids"] = inputs["position_ids"]
        if accepts(model, "use_cache"):
            kwargs["use_cache"] = False
        last: torch.Tensor
        if accepts(model, "logits_to_keep"):
            last = model(**kwargs, logits_to_keep=1).logits[:, -1, :]
        else:  # older models: keep the last position of the backbone's output
            width = inputs["input_ids"].shape[1]
            positions = torch.full((inputs["input_ids"].shape[0],), width - 1)
            with keep_positions(model, positions):
                last = model(**kwargs).logits[:, -1, :]
        ids = torch.tensor(self._label_ids, device=last.device)
        return last.float().log_softmax(dim=-1)[:, ids]

    def scoring_fields(self) -> dict[str, Any]:
        """How the head scores: the first token of each label's words."""
        return {"scoring": SCORING}


def _template_ids(tokenizer: PreTrainedTokenizerBase, pieces: Sequence[str]) -> list[list[int]]:
    """Template text keeps its special tokens (``<|im_start|>``): plain tokenization."""
    return [list(tokenizer(p, add_special_tokens=False)["input_ids"]) if p else [] for p in pieces]


def _chat_parts(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any] | None:
    """The chat template around a user turn ``{prefix}\\n\\n{text}`` (or ``{text}``), up to
    the generation prompt, split at stand-in marks."""

    def render(content: str) -> str | None:
        try:
            out = tokenizer.apply_chat_template(
                [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
            )
        except Exception:  # a template that needs other roles or arguments
            return None
        return out if isinstance(out, str) else None

    with_prefix = render(f"{_PREFIX_MARK}\n\n{_TEXT_MARK}")
    no_prefix = render(_TEXT_MARK)
    if with_prefix is None or no_prefix is None:
        return None
    if with_prefix.count(_PREFIX_MARK) != 1 or with_prefix.count(_TEXT_MARK) != 1:
        return None
    if no_prefix.count(_TEXT_MARK) != 1:
        return None
    t0, rest = with_prefix.split(_PREFIX_MARK)
    t1, t2 = rest.split(_TEXT_MARK)
    n0, n2 = no_prefix.split(_TEXT_MARK)
    return {"with_prefix": (t0, t1, t2), "no_prefix": (n0, n2), "text_lead": ""}


def _require_causal_lm(name_or_path: str) -> None:
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    config = _model_type(name_or_path)
    if config is None:
        return
    kind = config.model_type
    if (
        config.is_encoder_decoder
        or kind in MODEL_FOR_MASKED_LM_MAPPING_NAMES
        or kind not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    ):
        raise GptaUserError(
            f"model.head=lm-verbalizer needs a decoder-only causal language model, and "
            f"{name_or_path!r} is a {kind or 'model of unknown type'}",
            hint="use model.head: cloze for a masked-LM encoder (e.g. roberta-base), "
            "model.head: sequence for any encoder, or leave model.name_or_path unset "
            "for the bundled SmolLM2",
        )
