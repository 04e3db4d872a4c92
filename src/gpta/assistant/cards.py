"""Class cards: what the TA writes about each class from the description alone.

A card is a class's name (the user's label name wins where it is a word; for an opaque id
the TA's name is shown), a one-sentence definition, and example inputs varied by
attributes the TA names (length, register, subtopic). Cards are asked one class per
request (small TAs keep one class's examples on topic), in structured output
(:data:`CARD_SCHEMA`), and read back leniently where a backend has no structured output.

Every example then passes the filters of :func:`filter_examples` (each drop is recorded
with its reason): empty or meta-talk, naming its class outright, not the shape of an input
(its length far outside the real rows' lengths, measured locally: no row is sent), an
exact or near copy of another example. The ``names`` control (:func:`names_cards`) is the
label names templated into rows, no TA: it separates what the TA knows from the
label-name trick (SetFit's templated examples).

Nothing here sends anything: :mod:`gpta.assistant.card_choice` asks through the privacy
channel and chooses by cross-validation on the user's rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, ValidationError

from gpta.chat.base import Message
from gpta.chat.structured import json_spans
from gpta.tasks.base import ROW_SOURCE, ROW_WEIGHT

if TYPE_CHECKING:
    from gpta.chat.structured import OutputSchema

SCHEMA_NAME = "gpta_class_card"
NAME_TEMPLATES = ("{name}", "This text is {name}.", "It is {name}.")
_WORDS = re.compile(r"[^\W_]+", re.UNICODE)
_META = re.compile(
    r"(\bexamples?\b|\blabel(?:l?ed)?\b|\bclass(?:es)?\b\s*[:=]|^\s*(?:here (?:is|are)|sure)\b"
    r"|\bjson\b|\{|\})",
    re.IGNORECASE,
)


# No length bounds in the schema: llama.cpp's grammar converter unrolls maxLength/maxItems
# into nested optionals and refuses them; lengths are checked by the filters instead.
class _Example(BaseModel):
    subtopic: str
    length: Literal["short", "long"]
    tone: Literal["formal", "casual"]
    text: str


class CardAnswer(BaseModel):
    """One class's card as the TA writes it."""

    name: str
    definition: str
    examples: list[_Example] = Field(min_length=1)


CARD_SCHEMA = CardAnswer.model_json_schema()


@dataclass
class CardExample:
    """One example input, its attributes, and whether it was kept (with the reason if not)."""

    text: str
    attributes: dict[str, str] = field(default_factory=dict)
    dropped: str | None = None  # None: kept; else the filter that dropped it
    round: int = 0  # 0: from the description; r: written after feedback round r


@dataclass
class ClassCard:
    """A class: its label value as in the data, its name, definition and examples."""

    label: str
    name: str
    definition: str = ""
    examples: list[CardExample] = field(default_factory=list)

    @property
    def kept(self) -> list[CardExample]:
        return [e for e in self.examples if e.dropped is None]

    def record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CardSet:
    """The cards of every class, and where they came from (``names`` or ``ta``)."""

    source: str
    cards: list[ClassCard]

    def examples(self) -> list[tuple[int, str]]:
        """(class index, text) of every kept example, class by class."""
        return [(i, e.text) for i, card in enumerate(self.cards) for e in card.kept]

    def names(self) -> dict[str, str]:
        """Each class's name (label value -> name; empty where the TA gave none)."""
        return {card.label: card.name for card in self.cards}

    def counts(self) -> dict[str, int]:
        """Kept examples per class (the closing table's count)."""
        return {card.label: len(card.kept) for card in self.cards}

    def record(self) -> dict[str, Any]:
        return {"source": self.source, "cards": [c.record() for c in self.cards]}


# --------------------------------------------------------------------------------------------
# The requests
# --------------------------------------------------------------------------------------------

_SYSTEM = (
    "You write example inputs for the training data of a small text classifier. You never "
    "see the real data, only its description. For the class you are asked about, give a "
    "short name, a one-sentence definition, and example inputs exactly as they would appear "
    "in the dataset: never mention the class, the label or the word 'example' in a text. "
    "Reply with one JSON object only."
)
# A worked example for an unrelated task, written for this project (never from user data).
_WORKED_REQUEST = (
    "Dataset: Support emails to a software company, each labelled with how soon it must be "
    "answered: 0 = within a week, 1 = the same day, 2 = within the hour.\n"
    "Classes: 0, 1, 2.\n"
    "Write the card of class 2 with 2 examples."
)
_WORKED_ANSWER = json.dumps(
    {
        "name": "urgent",
        "definition": "The customer cannot work at all and needs help at once.",
        "examples": [
            {
                "subtopic": "outage",
                "length": "short",
                "tone": "casual",
                "text": "Nobody on our team can log in since 9am, we're completely stuck!!",
            },
            {
                "subtopic": "data loss",
                "length": "long",
                "tone": "formal",
                "text": "Dear support, after this morning's update our database no longer "
                "opens and the nightly backup is missing. Our shop is offline. Please "
                "call me as soon as possible.",
            },
        ],
    }
)


def _class_list(labels: Sequence[str]) -> str:
    return ", ".join(str(label) for label in labels)


def card_messages(
    description: str, labels: Sequence[str], label: str, *, examples: int
) -> list[Message]:
    """The conversation asking for one class's card from the description alone: the system
    prompt, a worked example for an unrelated task (written by us), the request."""
    return [
        {"role": "system", "content": _SYSTEM},
        {"role": "user", "content": _WORKED_REQUEST},
        {"role": "assistant", "content": _WORKED_ANSWER},
        {
            "role": "user",
            "content": (
                f"Dataset: {description.strip()}\n"
                f"Classes: {_class_list(labels)}.\n"
                f"Write the card of class {label} with {examples} examples. Vary them: about "
                "half short (one sentence) and half long (three or four sentences), about "
                "half formal and half casual, each about a different subtopic that you name."
            ),
        },
    ]


def feedback_messages(
    description: str,
    labels: Sequence[str],
    label: str,
    feedback: dict[str, Any],
    *,
    examples: int,
    confused_with: Sequence[str] = (),
) -> list[Message]:
    """The dialogue gradient for cards: aggregate numbers only (per-class recall over the
    cross-validated rows, the most confused class pairs with counts; never a row, never an
    example text), asking for new examples of a weak class."""
    recall = ", ".join(
        f"{name}: {value:.0%}"
        for name, value in feedback["recall_per_class"].items()
        if value is not None
    )
    pairs = "; ".join(
        f"{p['true']} taken for {p['predicted']} ({p['count']} times)"
        for p in feedback["confused_pairs"]
    )
    boundary = (
        f" Make each one clearly class {label} and not class {', '.join(confused_with)}, "
        "the classes it is mistaken for."
        if confused_with
        else ""
    )
    request = (
        f"Dataset: {description.strip()}\n"
        f"Classes: {_class_list(labels)}.\n"
        f"A classifier trained on the real rows and your earlier examples was cross-validated "
        f"on {feedback['rows']} real rows (aggregate numbers only). Share of each class found: "
        f"{recall}. Most confused: {pairs or 'none'}.\n"
        f"Write the card of class {label} again with {examples} new examples, different from "
        f"typical ones: other subtopics, both lengths, formal and casual.{boundary}"
    )
    return [
        {"role": "system", "content": _SYSTEM},
        {"role": "user", "content": _WORKED_REQUEST},
        {"role": "assistant", "content": _WORKED_ANSWER},
        {"role": "user", "content": request},
    ]


def output_schema() -> OutputSchema:
    """The card schema as the backends take it (a grammar for local models,
    ``response_format`` for servers)."""
    from gpta.chat.structured import OutputSchema

    return OutputSchema.from_model(SCHEMA_NAME, CardAnswer)


# --------------------------------------------------------------------------------------------
# Reading an answer
# --------------------------------------------------------------------------------------------


def parse_card(text: str) -> CardAnswer | None:
    """The card in one answer: the JSON object of :data:`CARD_SCHEMA` (structured output),
    or the first balanced ``{...}`` span that validates (free text); None if none does.
    Examples given as plain strings are accepted (attributes then unknown)."""
    for span in [text.strip(), *json_spans(text)]:
        try:
            data = json.loads(span)
        except (json.JSONDecodeError, TypeError):
            continue
        if not isinstance(data, dict):
            continue
        examples = data.get("examples")
        if isinstance(examples, list):
            data["examples"] = [
                {"subtopic": "", "length": "short", "tone": "casual", "text": e}
                if isinstance(e, str)
                else e
                for e in examples
            ]
        data.setdefault("definition", "")
        try:
            return CardAnswer.model_validate(data)
        except ValidationError:
            continue
    return None


# --------------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------------


def words(text: str) -> list[str]:
    """The lower-cased words of a text (letters and digits)."""
    return [w.lower() for w in _WORDS.findall(text)]


def _names_class(text: str, names: Sequence[str]) -> bool:
    """Whether ``text`` says one of ``names`` outright (a name of at least three letters,
    as a whole word or phrase; ids such as ``0`` are never matched)."""
    tokens = " ".join(words(text))
    for name in names:
        name_words = words(name)
        if not name_words or not any(len(w) >= 3 and w.isalpha() for w in name_words):
            continue
        if re.search(rf"(?<!\w){re.escape(' '.join(name_words))}(?!\w)", tokens):
            return True
    return False


def length_bounds(real_texts: Sequence[str]) -> tuple[int, int]:
    """The word counts an example must fall within to look like an input: from half the
    shortest real row (at least 2 words) to twice the longest (measured locally)."""
    counts = [len(words(t)) for t in real_texts] or [1, 200]
    return max(2, min(counts) // 2), max(8, 2 * max(counts))


def _near_copy(a: set[str], b: set[str]) -> bool:
    return bool(a and b) and len(a & b) / len(a | b) >= 0.8


def filter_examples(
    cards: Sequence[ClassCard], *, bounds: tuple[int, int], names_per_class: Sequence[Sequence[str]]
) -> None:
    """Mark each example kept or dropped (``dropped``: ``empty``, ``meta``, ``names_class``,
    ``length``, ``duplicate``, ``copy``), in place. ``names_per_class[i]``: the names card
    ``i`` must not say (its label name and its card name). Duplicates and near copies
    (word-set Jaccard >= 0.8) are found across all classes; the first one stays."""
    kept_sets: list[tuple[str, set[str]]] = []
    low, high = bounds
    for card, names in zip(cards, names_per_class, strict=True):
        for example in card.examples:
            if example.dropped is not None:
                continue
            text = " ".join(example.text.split())
            example.text = text
            tokens = words(text)
            if not tokens:
                example.dropped = "empty"
            elif _META.search(text):
                example.dropped = "meta"
            elif _names_class(text, names):
                example.dropped = "names_class"
            elif not low <= len(tokens) <= high:
                example.dropped = "length"
            else:
                key, token_set = " ".join(tokens), set(tokens)
                if any(key == other for other, _ in kept_sets):
                    example.dropped = "duplicate"
                elif any(_near_copy(token_set, other) for _, other in kept_sets):
                    example.dropped = "copy"
                else:
                    kept_sets.append((key, token_set))


def card_from_answer(
    label: str, name: str, answer: CardAnswer | None, *, round: int = 0
) -> ClassCard:
    """A card from a parsed answer (none: a card with no examples). ``name`` is the
    user's label name when it is a word, else the TA's name (or the label)."""
    if answer is None:
        return ClassCard(label, name)
    return ClassCard(
        label,
        name or answer.name.strip() or label,
        answer.definition.strip(),
        [
            CardExample(
                e.text,
                {"subtopic": e.subtopic.strip(), "length": e.length, "tone": e.tone},
                round=round,
            )
            for e in answer.examples
        ],
    )


def names_cards(labels: Sequence[str]) -> CardSet:
    """The no-TA control: each label name (or id) in :data:`NAME_TEMPLATES`."""
    return CardSet(
        "names",
        [
            ClassCard(
                str(label),
                str(label),
                examples=[
                    CardExample(t.format(name=label), {"template": t}) for t in NAME_TEMPLATES
                ],
            )
            for label in labels
        ],
    )


def card_rows(
    cards: CardSet,
    *,
    labels: Sequence[Any],
    text_column: str,
    label_column: str,
    weight: float,
) -> list[dict[str, Any]]:
    """The kept examples as training rows, each with its loss weight and source."""
    return [
        {text_column: text, label_column: labels[i], ROW_WEIGHT: weight, ROW_SOURCE: cards.source}
        for i, text in cards.examples()
    ]
