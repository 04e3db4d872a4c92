"""The teaching assistant's conversations: the first request and the dialogue gradient.

Both are built for small models: a system prompt that asks for a JSON answer
(:mod:`gpta.assistant.schema`), worked examples of good answers for tasks of ours that
are unrelated to any user's data (:data:`WORKED_EXAMPLES`, earlier turns of the
conversation: small models copy turns better than they follow rules), then this task:
family, the unit of input (:func:`input_unit`, from the description), the label names,
the description and what the model does; in the dialogue gradient the scored prefixes,
sorted so that the best comes last (as OPRO does).

Under the default exposure policy (``none``) these messages hold the dataset
description, the label names, the metric and aggregate scores. Never a row. Under
``privacy.exposure: exemplars`` the header also lists the allowed exemplars: redacted
text and label only (their row ids stay on this machine, in the ledger).

A brief with a ``slot`` (the cloze head's ``{mask}``) asks for a *template sentence* that
holds the slot where the answer word goes, instead of an instruction; the parser then
repairs a proposal without the slot (see :mod:`gpta.assistant.parsing`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gpta.chat.base import Message

if TYPE_CHECKING:
    from gpta.privacy.exemplar import Exemplar

SYSTEM = (
    "You write instructions for a small language model. Your instruction is placed in front "
    "of every input it reads, while it is trained and when it is used. A good instruction is "
    'one or two plain sentences, written to that model as a task ("Read the ... and ..."), '
    "that say what to look for in the input and how to answer. Never give an answer or a "
    "label, never ask for data, never talk about yourself, the dataset or the model. "
    'Answer with JSON only: {"instruction": "..."}'
)
# With a slot (cloze): a sentence after the input whose slot the model fills with a word.
SYSTEM_SLOT = (
    "You write a template sentence for a small language model. Your sentence is placed after "
    "every input it reads, while it is trained and when it is used, and the model fills the "
    "slot {slot} in it with the one word that gives the answer. A good sentence is one plain "
    "sentence about the input that contains {slot} exactly once, where the answer word goes. "
    "Never give an answer, never ask for data, never talk about yourself, the dataset or the "
    'model. Answer with JSON only: {{"instruction": "..."}}'
)


@dataclass(frozen=True)
class WorkedExample:
    """A task of ours, unrelated to any user's data, and a good answer for it."""

    family: str
    unit: str
    labels: tuple[str, ...]
    description: str
    instruction: str


# Written for this project: no user's data, no benchmark's. They show the answer's form
# (JSON), its length and its stance (a task for the model, not talk about it).
WORKED_EXAMPLES = (
    WorkedExample(
        "text classification",
        "one e-mail",
        ("ham", "spam"),
        "E-mails from a company inbox, each marked by the IT team as spam (unwanted "
        "advertising or scams) or ham (ordinary mail).",
        "Read the e-mail and decide whether it is unwanted advertising or a scam, or an "
        "ordinary message from a colleague or customer.",
    ),
    WorkedExample(
        "extractive question answering",
        "a question, then a recipe",
        (),
        "Questions about cooking recipes; each answer is a span of the recipe.",
        "Find the shortest words in the recipe that answer the question: an ingredient, an "
        "amount, a time or a step.",
    ),
    WorkedExample(
        "text classification",
        "one maintenance request",
        ("low", "normal", "urgent"),
        "Requests tenants sent to the caretaker of an apartment building, labelled by how "
        "soon they had to be fixed.",
        "Read the request and judge how soon it must be fixed: urgent when people or the "
        "building are at risk, low when it can wait for weeks.",
    ),
)
WORKED_SLOT_EXAMPLES = (
    WorkedExample(
        "text classification",
        "one e-mail",
        ("ham", "spam"),
        "E-mails from a company inbox, each marked by the IT team as spam or ham.",
        "In short, this e-mail is {slot}.",
    ),
    WorkedExample(
        "text classification",
        "one maintenance request",
        ("low", "normal", "urgent"),
        "Requests tenants sent to the caretaker of an apartment building, labelled by how "
        "soon they had to be fixed.",
        "The caretaker should treat this request as {slot}.",
    ),
)

# Nouns a description names its inputs by; the first one it uses is "the unit of input".
_UNITS = (
    "tweet", "review", "e-mail", "email", "message", "post", "comment", "headline",
    "article", "document", "story", "report", "sentence", "question", "passage",
    "paragraph", "dialogue", "conversation", "transcript", "ticket", "abstract", "query",
    "utterance", "claim", "tweet", "note", "letter", "essay", "answer",
)  # fmt: skip
_UNIT_RE = re.compile(r"\b(" + "|".join(_UNITS) + r")s?\b", re.IGNORECASE)


def input_unit(brief: TaskBrief) -> str:
    """What one input is, from the description (``one tweet``) or the family."""
    family = brief.family.casefold()
    if "question answering" in family:
        return "a question, then a passage"
    if "multiple choice" in family:
        return "a passage, a question and its options"
    found = _UNIT_RE.search(brief.description)
    if found is not None:
        return f"one {found.group(1).casefold()}"
    return "one document" if "summar" in family else "one text"


def grounding_words(brief: TaskBrief) -> list[str]:
    """Words an on-task instruction names (the unit of input's nouns and the labels)."""
    unit = input_unit(brief).replace("one ", "").replace("a ", "")
    words = [w for w in re.findall(r"[\w-]+", unit) if w not in ("then", "its", "and")]
    return words + list(brief.label_names)


@dataclass(frozen=True)
class TaskBrief:
    """What the TA may know about the task: no row, unless the policy allows exemplars."""

    family: str  # e.g. "text classification"
    reads: str  # what the network reads and must produce, in a sentence
    description: str
    label_names: list[str]  # may be empty (QA, summarization)
    metric: str
    max_words: int
    screen_metric: str = "score"  # the scale of the scores in the list of tried prefixes
    example: str = ""  # an instruction for another dataset of the same family
    exemplars: tuple[Exemplar, ...] = ()  # redacted rows the privacy policy allows (default none)
    slot: str | None = None  # a placeholder every proposal must hold (cloze: "{mask}"), or None


@dataclass(frozen=True)
class ScoredPrefix:
    """A prefix and the score it earned (aggregate, on dev rows)."""

    prefix: str
    score: float


def _task_lines(family: str, unit: str, labels: Sequence[str], description: str) -> list[str]:
    lines = [f"Task: {family}.", f"Input: {unit}."]
    if labels:
        lines.append(f"Labels: {', '.join(labels)}.")
    lines.append(f"Data: {description}")
    return lines


def _header(brief: TaskBrief) -> str:
    """This task, in the worked examples' form (they have no exemplars)."""
    lines = _task_lines(brief.family, input_unit(brief), brief.label_names, brief.description)
    if brief.exemplars:
        lines.append("Examples from the training data (personal details replaced by placeholders):")
        for exemplar in brief.exemplars:
            label = f"({exemplar.label}) " if exemplar.label is not None else ""
            lines.append(f"- {label}{exemplar.text}")
    return "\n".join(lines)


def _system(brief: TaskBrief) -> str:
    """The rules, what the model of this run does with the answer, and the task family's
    own example (another dataset)."""
    system = SYSTEM if brief.slot is None else SYSTEM_SLOT.format(slot=brief.slot)
    system += f"\nThe model of this task: {brief.reads}"
    if not brief.example:
        return system
    return f"{system}\nExample for another dataset: {brief.example}"


def answer_json(instruction: str) -> str:
    """An answer in the TA's JSON form (the worked examples, dialogue-gradient targets)."""
    return json.dumps({"instruction": instruction}, ensure_ascii=False)


def _worked(brief: TaskBrief) -> list[Message]:
    """The worked examples as earlier turns of the conversation (small models copy turns)."""
    examples = WORKED_EXAMPLES if brief.slot is None else WORKED_SLOT_EXAMPLES
    turns: list[Message] = []
    for example in examples:
        ask = _ask_line(brief.slot, brief.max_words)
        user = "\n".join(
            _task_lines(example.family, example.unit, example.labels, example.description)
        )
        answer = example.instruction.format(slot=brief.slot) if brief.slot else example.instruction
        turns.append({"role": "user", "content": f"{user}\n\n{ask}"})
        turns.append({"role": "assistant", "content": answer_json(answer)})
    return turns


def _ask_line(slot: str | None, max_words: int) -> str:
    if slot is None:
        return f"Write one instruction of at most {max_words} words."
    return (
        f"Write one template sentence of at most {max_words} words, with {slot} where the "
        "answer word goes."
    )


def _noun(brief: TaskBrief) -> str:
    """What the TA writes: an instruction, or a template sentence (with a slot)."""
    return "instruction" if brief.slot is None else "sentence"


def _ask(brief: TaskBrief) -> str:
    """The length limit, and where the slot goes when there is one."""
    ask = f"of at most {brief.max_words} words"
    if brief.slot is not None:
        ask += f", with {brief.slot} where the answer word goes,"
    return ask


def _show(prefix: str, brief: TaskBrief | None = None) -> str:
    if prefix:
        return f'"{prefix}"'
    return "(no instruction)" if brief is None or brief.slot is None else "(no sentence)"


def initial_messages(brief: TaskBrief) -> list[Message]:
    """Round 0: the worked examples, then this task; the TA proposes from the description."""
    user = f"{_header(brief)}\n\n{_ask_line(brief.slot, brief.max_words)}"
    return [
        {"role": "system", "content": _system(brief)},
        *_worked(brief),
        {"role": "user", "content": user},
    ]


def feedback_messages(
    brief: TaskBrief,
    *,
    tried: list[ScoredPrefix],
    current: ScoredPrefix,
    previous_score: float | None,
    feedback_title: str = "",
    feedback: dict[str, float] | None = None,
) -> list[Message]:
    """The dialogue gradient: scored prefixes (best last), the change, per-label numbers."""
    lines = [
        _header(brief),
        f"Score: {brief.metric} on held-out data (higher is better).",
        "",
        f"{_noun(brief).capitalize()}s tried so far and their {brief.screen_metric} on a dev "
        "sample (best last):",
    ]
    for item in sorted(tried, key=lambda s: s.score):
        lines.append(f"- {_show(item.prefix, brief)}: {item.score:.3f}")
    change = ""
    if previous_score is not None:
        delta = current.score - previous_score
        change = f" ({'up' if delta >= 0 else 'down'} {abs(delta):.3f} since the last round)"
    lines.append(
        f"Current {_noun(brief)}: {_show(current.prefix, brief)}, {brief.metric} "
        f"{current.score:.3f}{change}."
    )
    if feedback:
        numbers = ", ".join(f"{name} {value:.2f}" for name, value in feedback.items())
        lines.append(f"{feedback_title}: {numbers}.")
    noun = _noun(brief)
    lines += [
        "",
        f"Write one new {'template ' if brief.slot is not None else ''}{noun} {_ask(brief)} "
        f"that should score higher than every {noun} above.",
    ]
    return [
        {"role": "system", "content": _system(brief)},
        *_worked(brief),
        {"role": "user", "content": "\n".join(lines)},
    ]
