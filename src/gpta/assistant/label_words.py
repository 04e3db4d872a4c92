"""Label words from the description: the TA names one word per class for the LM heads.

The ``lm-verbalizer`` and ``cloze`` heads score a *word* per label. When the label names
mean nothing to a language model (``0``..``4``, ``LABEL_3``, ``ENTY``: see
:func:`is_opaque_label`) and the user gave no words for them, the TA is asked once, before
training, for a word per label from the dataset description alone (no row is sent; the
request goes through the privacy channel and is in ``exposure.jsonl``). Each of its K
answers is parsed (a JSON object ``{label: word}``), checked (every label, one word each,
distinct; the head's own tokenizer checks: distinct first tokens for lm-verbalizer, one
token for cloze) and *screened* like a prefix: the zero-shot score of the pretrained model
with those words on the dev screening rows. The label names, when usable, are screened too
and kept unless a proposal beats them (:func:`gpta.assistant.material.choose`, the rule
of every material, here with ``selection.margin`` alone: no paired test, as before).

With class cards (``cards.source: ta``) the class names of the TA's cards are offered
first, as one candidate checked and screened like a proposal, in place of the request;
the TA is asked for words only when they cannot be used (:func:`choose_label_words`).

User-given ``model.label_words`` always win: a label with a given word keeps it, and when
every label that needs a word has one, the TA is not asked. A failing TA call never ends
the run by itself: the label names are used when they are usable; only when they are not
(numeric labels, or names the head's tokenizer cannot tell apart) and no proposal is valid
does the run stop, with an error naming ``model.label_words``.

Every proposal and its screened score go to ``history.jsonl`` (event ``label_words``);
the chosen words become ``model.label_words`` of the saved ``config.yaml`` (so a resumed
run uses them) and are in ``model/gpta.json`` with ``label_words_source``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from pydantic import RootModel, ValidationError

from gpta.assistant.material import Kind, Material, choose
from gpta.chat.base import Message
from gpta.chat.structured import json_spans
from gpta.errors import GptaUserError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from gpta.chat.structured import OutputSchema
    from gpta.config import GptaConfig
    from gpta.data import Table
    from gpta.distributed import Ranks
    from gpta.progress import Progress
    from gpta.tasks.base import Screening, Task
    from gpta.tasks.classification import ClassificationTask

LM_HEADS = ("lm-verbalizer", "cloze")
EVENT = "label_words"
SCHEMA_NAME = "gpta_label_words"
_PIECES = re.compile(r"[\s_\-./:|]+")
_WORD = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)?")
_NUMERIC = re.compile(r"[+-]?\d+(?:[.,]\d+)?")


# --------------------------------------------------------------------------------------------
# The opacity rule
# --------------------------------------------------------------------------------------------


def is_opaque_label(name: str) -> bool:
    """Whether a label name is no word a language model could say for the class.

    The name is split at spaces and ``_ - . / : |``; it is *opaque* when it has no piece or
    more than three, or when any piece holds a digit or symbol (``0``, ``4``, ``LABEL_1``,
    ``B-PER`` no: ``B`` is short), is shorter than three letters (``A``, ``cr``), or is an
    upper-case code of at most four letters (``NEG``, ``ENTY``, ``LOC``). ``positive``,
    ``sci.space``, ``World`` and ``NEGATIVE`` are words.
    """
    pieces = [p for p in _PIECES.split(str(name).strip()) if p]
    if not pieces or len(pieces) > 3:
        return True
    for piece in pieces:
        if not piece.isalpha() or len(piece) < 3:
            return True
        if piece.isupper() and len(piece) <= 4:
            return True
    return False


def labels_needing_words(
    label_names: Sequence[str], label_words: dict[str, str] | None, mode: str
) -> list[str]:
    """The labels the TA is asked to name: none under ``never``; under ``always`` every
    label without a given word; under ``auto`` the same, but only when one of them is
    opaque (otherwise the names are the words, as before)."""
    given = {str(k) for k in (label_words or {})}
    missing = [str(n) for n in label_names if str(n) not in given]
    if mode == "never" or not missing:
        return []
    if mode == "always":
        return missing
    return missing if any(is_opaque_label(n) for n in missing) else []


def _label_names(config: GptaConfig, tables: dict[str, Table]) -> list[str] | None:
    from gpta.tasks.labels import label_values

    column = config.data.label_column or "label"
    train = tables.get("train")
    if train is None or not train.rows or column not in train.rows[0]:
        return None  # build_task reports the missing column
    try:
        return [str(label) for label in label_values(train.column(column))]
    except (TypeError, KeyError):
        return None


def _pending(config: GptaConfig, tables: dict[str, Table]) -> list[str]:
    if config.task != "classification" or config.model.head not in LM_HEADS:
        return []
    names = _label_names(config, tables)
    if names is None:
        return []
    return labels_needing_words(names, config.model.label_words, config.model.propose_label_words)


def for_validation(config: GptaConfig, tables: dict[str, Table]) -> GptaConfig:
    """The configuration to build (and so validate) the task with before the run directory
    exists: when the TA will propose words, a copy whose missing words are the label names
    (placeholders; :func:`choose_label_words` replaces them), else ``config`` itself."""
    pending = _pending(config, tables)
    if not pending:
        return config
    placeholder = copy.deepcopy(config)
    placeholder.model.label_words = {**{n: n for n in pending}, **(config.model.label_words or {})}
    return placeholder


# --------------------------------------------------------------------------------------------
# The request and its answers
# --------------------------------------------------------------------------------------------

_SYSTEM = (
    "You choose label words for a text classifier. A small language model will read each "
    "text and answer with one of your words, so every label needs one common English word "
    "(letters only, never a number) that says what the label means, a different word for "
    "each label. Reply with one JSON object only, mapping each label to its word."
)
# Worked examples for unrelated tasks, written for this project (never from the user's data):
# one where the description names the classes, one where it only gives a scale.
_EXAMPLES = (
    (
        "News articles, each labelled with its topic: 0 = world news, 1 = sports, "
        "2 = business and economy, 3 = science and technology.",
        ["0", "1", "2", "3"],
        '{"0": "world", "1": "sports", "2": "business", "3": "science"}',
    ),
    (
        "Support emails, each labelled with how soon it must be answered: 0 = within a week, "
        "1 = the same day, 2 = within the hour.",
        ["0", "1", "2"],
        '{"0": "later", "1": "today", "2": "urgent"}',
    ),
)


def _request(description: str, labels: Sequence[str]) -> str:
    skeleton = ", ".join(f'{json.dumps(str(label))}: "?"' for label in labels)
    return (
        f"Dataset: {description.strip()}\n"
        f"Fill in one English word for each label, a different word each: {{{skeleton}}}"
    )


def label_word_messages(description: str, labels: Sequence[str]) -> list[Message]:
    """The conversation asking for one word per label: the system prompt, two worked
    examples for unrelated tasks (written by us), then the description and the labels.
    Nothing from a data row."""
    messages: list[Message] = [{"role": "system", "content": _SYSTEM}]
    for example, example_labels, answer in _EXAMPLES:
        messages.append({"role": "user", "content": _request(example, example_labels)})
        messages.append({"role": "assistant", "content": answer})
    messages.append({"role": "user", "content": _request(description, labels)})
    return messages


def label_words_schema(labels: Sequence[str]) -> dict[str, Any]:
    """The JSON schema of an answer (for backends with structured output)."""
    # the length cap is in the pattern: grammar compilers ignore maxLength next to a pattern
    word = {"type": "string", "pattern": r"^[A-Za-z]{1,20}(['-][A-Za-z]{1,20})?$"}
    return {
        "type": "object",
        "properties": {str(label): word for label in labels},
        "required": [str(label) for label in labels],
        "additionalProperties": False,
    }


def _structured(config: GptaConfig) -> bool:
    """Whether to ask for the answer under :func:`label_words_schema` (``assistant.
    structured_output``)."""
    return config.assistant.structured_output


def _output_schema(labels: Sequence[str]) -> OutputSchema | None:
    """The schema as the backends take it (a grammar for local models, ``response_format``
    for servers: :mod:`gpta.chat.structured`); ``None`` without that module."""
    try:
        from gpta.chat.structured import OutputSchema
    except ImportError:
        return None
    return OutputSchema(SCHEMA_NAME, label_words_schema(labels))


class _Answer(RootModel[dict[str, str | int | float]]):
    """An answer: a JSON object of label -> word."""


class _ListAnswer(RootModel[list[str]]):
    """An answer given as a list of words in label order."""


_PAIR = re.compile(r"""^\s*["']?([^"':=\n]+?)["']?\s*(?::|=|->|=>|-)\s*["']?([^"',\n}]+)""")


def parse_label_words(text: str, labels: Sequence[str]) -> tuple[dict[str, str] | None, str]:
    """Words per label from one answer, and how they were read.

    Tries, in order: a JSON object ``{label: word}`` (validated with pydantic); a JSON
    list of as many words as labels, in label order; ``label: word`` lines. Returns
    ``(None, reason)`` when none of these reads, else ``(words, "json" | "list" | "lines")``
    (keys are label names; other keys are dropped; words are not checked here).
    """
    names = [str(label) for label in labels]
    for span in json_spans(text):
        try:
            if span.startswith("{"):
                obj = _Answer.model_validate_json(span).root
                words = {str(k).strip(): str(v).strip() for k, v in obj.items()}
                words = {k: v for k, v in words.items() if k in names}
                if words:
                    return words, "json"
            else:
                items = _ListAnswer.model_validate_json(span).root
                if len(items) == len(names):
                    return dict(zip(names, (w.strip() for w in items), strict=True)), "list"
        except ValidationError:
            continue
    words = {}
    for line in text.splitlines():
        match = _PAIR.match(line)
        if match and match.group(1).strip() in names:
            words.setdefault(match.group(1).strip(), match.group(2).strip())
    if words:
        return words, "lines"
    return None, "not_json"


def clean_word(word: str) -> str:
    """A proposed word without surrounding spaces, quotes and a final full stop."""
    return str(word).strip().strip("\"'.").strip()


def check_words(
    words: dict[str, str] | None, needed: Sequence[str], given: dict[str, str] | None = None
) -> str | None:
    """Why a proposal cannot be used (``None``: it can): ``not_json`` (unreadable),
    ``missing`` (a needed label has no word), ``not_a_word`` (digits, several words,
    punctuation), ``duplicate`` (two labels, one word, case ignored; the user's ``given``
    words count too)."""
    if words is None:
        return "not_json"
    if any(not words.get(label) for label in needed):
        return "missing"
    chosen = [clean_word(words[label]) for label in needed]
    if any(not _WORD.fullmatch(w) or len(w) > 24 for w in chosen):
        return "not_a_word"
    lowered = [w.lower() for w in chosen]
    lowered += [str(w).lower() for k, w in (given or {}).items() if k not in needed]
    if len(set(lowered)) != len(lowered):
        return "duplicate"
    return None


# --------------------------------------------------------------------------------------------
# Candidates, screening, the choice
# --------------------------------------------------------------------------------------------


@dataclass
class WordCandidate(Material):
    """One word set: the label names, the card names, or a TA proposal; its checks and
    screened score."""

    kind: ClassVar[Kind] = "label_words"

    source: str  # "names", "cards" or "ta"
    words: dict[str, str] | None
    raw: str | None = None
    parsed_as: str | None = None
    reason: str | None = None  # why it cannot be used; None: valid
    detail: str | None = None  # the head's message for reason "tokens"
    result: Screening | None = None
    chosen: bool = False
    index: int = 0  # the TA's answer it was read from (source "ta")

    @property
    def name(self) -> str:
        """``names``, ``cards``, or ``ta <n>`` for the TA's n-th answer (from 1)."""
        return f"ta {self.index}" if self.source == "ta" else self.source

    @property
    def content(self) -> dict[str, str] | None:
        return self.words

    @property
    def screening(self) -> Screening | None:
        return self.result

    @property
    def screen_score(self) -> float | None:
        return None if self.result is None else round(float(self.result.score), 6)

    @property
    def screen_loss(self) -> float | None:
        return None if self.result is None else round(float(self.result.loss), 6)

    def details(self) -> dict[str, Any]:
        """What history.jsonl's event ``label_words`` keeps of each candidate."""
        return {
            "source": self.source,
            "raw": self.raw,
            "parsed_as": self.parsed_as,
            "words": self.words,
            "valid": self.reason is None,
            "reason": self.reason,
            "detail": self.detail,
            "screen_score": self.screen_score,
            "screen_loss": self.screen_loss,
            "chosen": self.chosen,
        }


@dataclass
class LabelWordChoice:
    """What :func:`choose_label_words` decided."""

    words: dict[str, str]  # every label's word
    source: str  # "ta", "names", "user"
    candidates: list[WordCandidate] = field(default_factory=list)
    error: str | None = None  # the TA call's error, if it failed


def screen_prefix(head: str, words: Sequence[str]) -> str:
    """The prefix word sets are screened with: for lm-verbalizer a plain instruction listing
    the words (with no instruction a chat model's answer position says nothing about the
    labels); for cloze none (the head's default template ``It was {mask}.``)."""
    if head != "lm-verbalizer":
        return ""
    from gpta.tasks.heads.lm_verbalizer import words_listed

    return f"Answer with one word: {words_listed(list(words))}."


def _head_check(
    task: ClassificationTask, words: dict[str, str], tokenizer: PreTrainedTokenizerBase
) -> tuple[ClassificationTask | None, str | None]:
    """A copy of ``task`` whose head scores ``words``, bound to ``tokenizer``; or the head's
    refusal (shared first tokens, several tokens for cloze, ...)."""
    from gpta.tasks.heads import build_head
    from gpta.tasks.heads.lm_verbalizer import LabelWordLoading

    head = build_head(task.head.name, label_names=task.label_names, label_words=words)
    assert isinstance(head, LabelWordLoading)  # only the label-word heads score words
    try:
        head.bind(tokenizer)
    except GptaUserError as err:
        return None, err.message
    return dataclasses.replace(task, head=head), None


def _load_pretrained(head: str, model_name: str) -> tuple[Any, Any]:
    from gpta.modeling.loading import load_pretrained

    if head == "lm-verbalizer":
        from transformers import AutoModelForCausalLM

        from gpta.tasks.heads.lm_verbalizer import _require_causal_lm

        _require_causal_lm(model_name)
        return load_pretrained(AutoModelForCausalLM, model_name)
    from transformers import AutoModelForMaskedLM

    from gpta.tasks.heads.cloze import _require_masked_lm

    _require_masked_lm(model_name)
    return load_pretrained(AutoModelForMaskedLM, model_name)


def _ask(
    config: GptaConfig,
    tables: dict[str, Table],
    task: ClassificationTask,
    run_dir: Path,
    description: str,
    progress: Progress,
) -> tuple[list[str], dict[str, Any]]:
    """One request through the privacy channel; returns the answers and what the call did.
    Never raises for a TA failure (it is reported in the returned dict)."""
    from gpta.assistant.oneshot import OneShot

    channel = OneShot(config, tables, run_dir, description, task=task, progress=progress)
    schema = _output_schema(task.label_names) if _structured(config) else None
    return channel.send(
        label_word_messages(description, task.label_names),
        seed=config.seed,
        max_new_tokens=8 * len(task.label_names) + 16,
        schema=schema,
    )


class _Outcome(NamedTuple):
    """What the main process decided, sent to every process: the words and their source, or
    the refusal's message and hint."""

    words: dict[str, str]
    source: str
    error: tuple[str, str | None] | None = None


def choose_label_words(
    config: GptaConfig,
    tables: dict[str, Table],
    task: Task,
    *,
    run_dir: str | Path,
    description: str,
    ranks: Ranks | None = None,
    quiet: bool = False,
    offered: dict[str, str] | None = None,
) -> Task:
    """Before training: the task to train, with the TA's screened label words when the
    labels need them (else ``task`` unchanged). Sets ``config.model.label_words`` to the
    chosen words so that the saved configuration (and a resumed run) uses them.

    ``offered``: a word per label the TA already wrote, the class names of its cards
    (:attr:`gpta.assistant.card_choice.CardChoice.names`). They are one candidate (source
    ``cards``), checked and screened like a proposal, in place of a separate request; the
    TA is asked for words as before only when they cannot be used (a label without a name,
    not a word, a duplicate, the label names again, refused by the head's tokenizer).

    Under several processes the main one asks and screens; the others receive its choice.
    """
    from gpta.distributed import Ranks as _Ranks

    ranks = ranks or _Ranks()
    pending = _pending(config, tables)
    if not pending:
        return task
    from gpta.tasks.classification import ClassificationTask as _Classification

    assert isinstance(task, _Classification)  # label words are pending for classification only

    def ask() -> _Outcome:
        try:
            choice = _choose(
                config,
                tables,
                task,
                Path(run_dir),
                description,
                pending,
                quiet=quiet,
                offered=offered,
            )
        except GptaUserError as err:
            return _Outcome({}, "", (err.message, err.hint))
        return _Outcome(choice.words, choice.source)

    outcome = ranks.broadcast(ask() if ranks.is_main else None)
    if outcome.error is not None:
        message, hint = outcome.error
        raise GptaUserError(message, hint=hint)
    words, source = outcome.words, outcome.source
    config.model.label_words = dict(words)
    from gpta.tasks import build_task
    from gpta.tasks.heads.lm_verbalizer import LabelWordLoading

    chosen = build_task(config, tables)
    # label words are pending only for a classification task with a label-word head
    assert isinstance(chosen, _Classification) and isinstance(chosen.head, LabelWordLoading)
    chosen.head.label_words_source = source
    return chosen


def _candidate(
    source: str,
    words: dict[str, str] | None,
    names: Sequence[str],
    pending: Sequence[str],
    given: dict[str, str],
    **read: Any,
) -> WordCandidate:
    """A proposed word set, checked (:func:`check_words`); the user's words kept over it."""
    candidate = WordCandidate(source, None, **read)
    candidate.reason = check_words(words, pending, given)
    if candidate.reason is None and words is not None:
        candidate.words = {n: given.get(n) or clean_word(words[n]) for n in names}
    elif words is not None:
        candidate.words = words
    return candidate


def _proposals(
    texts: Sequence[str], names: Sequence[str], pending: Sequence[str], given: dict[str, str]
) -> list[WordCandidate]:
    """The TA's answers, each parsed and checked."""
    out = []
    for index, text in enumerate(texts, start=1):
        words, parsed_as = parse_label_words(text, names)
        out.append(
            _candidate(
                "ta", words, names, pending, given, raw=text, parsed_as=parsed_as, index=index
            )
        )
    return out


def _screen_words(
    candidates: Sequence[WordCandidate],
    task: ClassificationTask,
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[dict[str, Any]],
    *,
    batch_size: int,
    seen: set[tuple[str, ...]],
) -> None:
    """Screen every valid candidate not screened yet: a repeat of a word set in ``seen`` is
    refused (``repeated``), a set the head's tokenizer refuses too (``tokens``)."""
    names = list(task.label_names)
    for candidate in candidates:
        if candidate.reason is not None or candidate.words is None or candidate.result is not None:
            continue
        key = tuple(candidate.words[n].lower() for n in names)
        if key in seen:
            candidate.reason = "repeated"
            continue
        seen.add(key)
        checked, refusal = _head_check(task, candidate.words, tokenizer)
        if checked is None:
            candidate.reason, candidate.detail = "tokens", refusal
            continue
        prefix = screen_prefix(task.head.name, [candidate.words[n] for n in names])
        candidate.result = checked.screen(model, tokenizer, rows, prefix, batch_size=batch_size)


def _choose(
    config: GptaConfig,
    tables: dict[str, Table],
    task: ClassificationTask,
    run_dir: Path,
    description: str,
    pending: list[str],
    *,
    quiet: bool,
    offered: dict[str, str] | None,
) -> LabelWordChoice:
    from gpta.assistant.history import History
    from gpta.progress import Progress

    progress = Progress(quiet=quiet)
    history = History(run_dir / "history.jsonl")
    head_name = config.model.head
    names = list(task.label_names)
    given = {str(k): str(v) for k, v in (config.model.label_words or {}).items()}
    needs = (
        f"label words: the labels {pending} need words ({head_name}, "
        f"model.propose_label_words={config.model.propose_label_words})"
    )

    def ask() -> tuple[list[WordCandidate], dict[str, Any]]:
        progress.info(f"{needs}; asking the TA")
        texts, call = _ask(config, tables, task, run_dir, description, progress)
        if not call["ok"]:
            progress.info(f"[yellow]label words: the TA call failed:[/] {call['error']}")
        return _proposals(texts, names, pending, given), call

    candidates: list[WordCandidate] = []
    names_usable = not any(_NUMERIC.fullmatch(n.strip()) for n in names if n not in given)
    names_candidate = None
    if names_usable:
        names_candidate = WordCandidate("names", {n: given.get(n, n) for n in names})
        candidates.append(names_candidate)
    cards = None
    if offered:
        progress.info(f"{needs}; offering the names of the TA's class cards")
        cards = _candidate(
            "cards", {str(k): str(v) for k, v in offered.items()}, names, pending, given
        )
        candidates.append(cards)
    call: dict[str, Any] | None = None
    if cards is None or cards.reason is not None:
        proposals, call = ask()
        candidates.extend(proposals)

    model_name = config.model.resolved_name(config.task)
    model, tokenizer = _load_pretrained(head_name, model_name)
    model.eval()
    dev = tables["dev"]
    indices = sorted(
        random.Random(config.seed).sample(
            range(len(dev)), min(config.selection.screen_size, len(dev))
        )
    )
    rows = [dev.rows[i] for i in indices]
    seen: set[tuple[str, ...]] = set()
    batch_size = config.training.eval_batch_size
    _screen_words(candidates, task, model, tokenizer, rows, batch_size=batch_size, seen=seen)
    if call is None and cards is not None and cards.result is None:
        # the card names passed the checks but not the head's tokenizer: ask as before
        proposals, call = ask()
        candidates.extend(proposals)
        _screen_words(proposals, task, model, tokenizer, rows, batch_size=batch_size, seen=seen)

    # the label names (when usable) are the current words: kept unless a proposal beats them
    # by the margin (no paired test: the label-word step's rule before the shared one)
    challengers = [c for c in candidates if c is not names_candidate]
    best = choose(names_candidate, challengers, config.selection, paired_test=False)
    if best is None and names_candidate is not None and names_candidate.result is not None:
        best = names_candidate
    del model
    if best is not None:
        best.chosen = True
    source = None if best is None else best.source
    if source is not None and given:
        source = f"user+{source}"
    history.log(
        EVENT,
        labels=names,
        needed=pending,
        mode=config.model.propose_label_words,
        given=given,
        call=call,
        screen_rows=len(rows),
        screen_metric="accuracy",
        screen_prefix=screen_prefix(head_name, ["<word>"] * len(names)),
        candidates=[c.record() for c in candidates],
        chosen=None if best is None else best.words,
        source=source,
    )
    what = {"names": "label names", "cards": "card names", "ta": "proposal"}
    for candidate in candidates:
        if candidate.reason is None:
            progress.info(
                f"  {what[candidate.source]} {candidate.words} -> screen accuracy "
                f"{candidate.screen_score:.3f}"
            )
        else:
            shown = _short(candidate.raw) if candidate.source == "ta" else candidate.words
            progress.info(f"  {what[candidate.source]} rejected ({candidate.reason}): {shown}")
    if best is None or source is None:
        example = ", ".join(f"'{n}': <word>" for n in names[:5])
        raise GptaUserError(
            f"model.head={head_name} needs a word per label, the labels {pending} are "
            "not words a language model can say, and the TA proposed no usable words "
            f"({_summary(candidates, call)})",
            hint=f"set model.label_words, e.g. {{{example}}}, and run again",
        )
    words = dict(best.words or {})
    progress.info(
        f"label words: {words} ({source}; screen accuracy {best.screen_score:.3f} on "
        f"{len(rows)} dev rows)"
    )
    return LabelWordChoice(words, source, candidates, call["error"] if call else None)


def _short(text: str | None, width: int = 80) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _summary(candidates: list[WordCandidate], call: dict[str, Any] | None) -> str:
    if call is None:
        return "the card names were not usable and the TA was not asked"
    if not call["ok"]:
        return f"the TA call failed: {call['error']}"
    reasons = [c.reason for c in candidates if c.source == "ta"]
    if not reasons:
        return "the TA answered nothing"
    counts = {r: reasons.count(r) for r in dict.fromkeys(reasons)}
    return "rejected: " + ", ".join(f"{n} {r}" for r, n in counts.items())
