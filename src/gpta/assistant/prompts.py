"""The teaching assistant's conversations: the first request and the dialogue gradient.

Under the default exposure policy (``none``) these messages hold the dataset
description, the label names, the metric and aggregate scores. Never a row. Under
``privacy.exposure: exemplars`` the header also lists the allowed exemplars: redacted
text and label only (their row ids stay on this machine, in the ledger).

A brief with a ``slot`` (the cloze head's ``{mask}``) asks for a *template sentence* that
holds the slot where the answer word goes, instead of an instruction; the parser then
repairs a proposal without the slot (see :mod:`gpta.assistant.parsing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gpta.llm.base import Message

if TYPE_CHECKING:
    from gpta.privacy.policy import Exemplar

SYSTEM = (
    "You write instructions for a small neural network. Your instruction is placed in front of "
    "every input the network reads, while it is trained and when it is used. A good instruction "
    "is one plain sentence that says what to look for in the input. Reply with the instruction "
    "only: no quotes, no explanation, no answer, no label."
)
# With a slot (cloze): a sentence after the input whose slot the network fills with a word.
SYSTEM_SLOT = (
    "You write a template sentence for a small neural network. Your sentence is placed after "
    "every input the network reads, while it is trained and when it is used, and the network "
    "fills the slot {slot} in it with the one word that gives the answer. A good sentence is "
    "one plain sentence that contains {slot} exactly once, where the answer word goes. Reply "
    "with the sentence only: no quotes, no explanation, no answer, no label."
)


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


def _header(brief: TaskBrief) -> str:
    lines = [f"Task: {brief.family}. {brief.reads}"]
    if brief.label_names:
        lines.append(f"Labels: {', '.join(brief.label_names)}")
    lines.append(f"Score: {brief.metric} on held-out data (higher is better)")
    lines.append(f"Data: {brief.description}")
    if brief.exemplars:
        lines.append("Examples from the training data (personal details replaced by placeholders):")
        for exemplar in brief.exemplars:
            label = f"({exemplar.label}) " if exemplar.label is not None else ""
            lines.append(f"- {label}{exemplar.text}")
    return "\n".join(lines)


def _system(brief: TaskBrief) -> str:
    system = SYSTEM if brief.slot is None else SYSTEM_SLOT.format(slot=brief.slot)
    if not brief.example:
        return system
    return f"{system}\nExample for another dataset: {brief.example}"


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
    """Round 0: the TA proposes from the description alone."""
    if brief.slot is None:
        ask = f"Write one instruction of at most {brief.max_words} words for this network."
    else:
        ask = f"Write one template sentence {_ask(brief)} for this network."
    user = f"{_header(brief)}\n\n{ask}"
    return [{"role": "system", "content": _system(brief)}, {"role": "user", "content": user}]


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
        {"role": "user", "content": "\n".join(lines)},
    ]
