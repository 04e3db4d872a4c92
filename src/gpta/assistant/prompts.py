"""The teaching assistant's conversations: the first request and the dialogue gradient.

Under the default exposure policy (``none``) these messages hold the dataset
description, the label names, the metric and aggregate scores. Never a row.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpta.llm.base import Message

SYSTEM = (
    "You write instructions for a small neural network. Your instruction is placed in front of "
    "every input the network reads, while it is trained and when it is used. A good instruction "
    "is one plain sentence that says what to look for in the input. Reply with the instruction "
    "only: no quotes, no explanation, no answer, no label.\n"
    "Example for a news topic classifier: Decide which topic the news article is mainly about: "
    "world, sports, business or science."
)


@dataclass(frozen=True)
class TaskBrief:
    """What the TA may know about the task: nothing that comes from a row."""

    family: str  # "classification"
    description: str
    label_names: list[str]
    metric: str
    max_words: int


@dataclass(frozen=True)
class ScoredPrefix:
    """A prefix and the score it earned (aggregate, on dev rows)."""

    prefix: str
    score: float


def _header(brief: TaskBrief) -> str:
    labels = ", ".join(brief.label_names)
    return (
        f"Task: text {brief.family}. The network reads your instruction followed by one input "
        f"text and must predict one label.\n"
        f"Labels: {labels}\n"
        f"Score: {brief.metric} on held-out data (higher is better)\n"
        f"Data: {brief.description}"
    )


def _show(prefix: str) -> str:
    return f'"{prefix}"' if prefix else "(no instruction)"


def initial_messages(brief: TaskBrief) -> list[Message]:
    """Round 0: the TA proposes from the description alone."""
    user = (
        f"{_header(brief)}\n\n"
        f"Write one instruction of at most {brief.max_words} words for this network."
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def feedback_messages(
    brief: TaskBrief,
    *,
    tried: list[ScoredPrefix],
    current: ScoredPrefix,
    previous_score: float | None,
    per_label: dict[str, float],
) -> list[Message]:
    """The dialogue gradient: scored prefixes (best last), the change, per-label numbers."""
    lines = [_header(brief), "", f"Instructions tried so far and their {brief.metric} (best last):"]
    for item in sorted(tried, key=lambda s: s.score):
        lines.append(f"- {_show(item.prefix)}: {item.score:.3f}")
    change = ""
    if previous_score is not None:
        delta = current.score - previous_score
        change = f" ({'up' if delta >= 0 else 'down'} {abs(delta):.3f} since the last round)"
    lines.append(
        f"Current instruction: {_show(current.prefix)}, {brief.metric} {current.score:.3f}{change}."
    )
    if per_label:
        recall = ", ".join(f"{name} {value:.2f}" for name, value in per_label.items())
        lines.append(f"Share of each label found correctly: {recall}.")
    lines += [
        "",
        f"Write one new instruction of at most {brief.max_words} words that should score higher "
        "than every instruction above. Focus on what the weaker labels need.",
    ]
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]
