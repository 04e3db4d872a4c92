"""The teaching assistant's conversations: the first request and the dialogue gradient.

Under the default exposure policy (``none``) these messages hold the dataset
description, the label names, the metric and aggregate scores. Never a row. Under
``privacy.exposure: exemplars`` the header also lists the allowed exemplars: redacted
text and label only (their row ids stay on this machine, in the ledger).
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
    if not brief.example:
        return SYSTEM
    return f"{SYSTEM}\nExample for another dataset: {brief.example}"


def _show(prefix: str) -> str:
    return f'"{prefix}"' if prefix else "(no instruction)"


def initial_messages(brief: TaskBrief) -> list[Message]:
    """Round 0: the TA proposes from the description alone."""
    user = (
        f"{_header(brief)}\n\n"
        f"Write one instruction of at most {brief.max_words} words for this network."
    )
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
        f"Instructions tried so far and their {brief.screen_metric} on a dev sample (best last):",
    ]
    for item in sorted(tried, key=lambda s: s.score):
        lines.append(f"- {_show(item.prefix)}: {item.score:.3f}")
    change = ""
    if previous_score is not None:
        delta = current.score - previous_score
        change = f" ({'up' if delta >= 0 else 'down'} {abs(delta):.3f} since the last round)"
    lines.append(
        f"Current instruction: {_show(current.prefix)}, {brief.metric} {current.score:.3f}{change}."
    )
    if feedback:
        numbers = ", ".join(f"{name} {value:.2f}" for name, value in feedback.items())
        lines.append(f"{feedback_title}: {numbers}.")
    lines += [
        "",
        f"Write one new instruction of at most {brief.max_words} words that should score higher "
        "than every instruction above.",
    ]
    return [
        {"role": "system", "content": _system(brief)},
        {"role": "user", "content": "\n".join(lines)},
    ]
