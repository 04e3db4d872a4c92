"""Turn a teaching assistant's answer into a clean, safe prefix (or a reasoned rejection).

An answer is read first as the JSON object of :mod:`gpta.assistant.schema`
(``{"instruction": "..."}``: ``source`` ``json``, or ``json_partial`` for one cut off by the
token limit, kept up to its last whole sentence); an answer that is not JSON goes to the
free-text fallback (:mod:`gpta.assistant.freetext`: chat tokens, markdown, lead-ins, quotes
and reasoning peeled off; ``source`` ``free_text``). Then :func:`parse_proposal` caps the
length and rejects proposals that are unusable:

* ``unfinished`` -- a JSON answer cut off before one whole sentence;
* ``empty`` -- nothing plausible is left after cleaning;
* ``template_junk`` -- template or code residue such as ``{text}``, ``{{``, ``<|`` or a fence;
* ``names_label`` -- the proposal gives away an answer ("The tweet is positive.",
  "Sentiment: negative", "Classify it as positive.") instead of instructing; listing the labels
  ("... as negative, neutral or positive"), asking about one ("Is it positive?") or defining
  them ("0 = 1 star, 1 = 2 stars", "1 means neutral": opaque labels need it) is fine;
* ``meta_talk`` -- talk about the job instead of an instruction (writing instructions, asking
  for data, the TA speaking of itself, the model or dataset as the subject):
  :func:`gpta.assistant.ontask.meta_talk`;
* ``too_short`` -- fewer than two words;
* ``repetitive`` -- degenerate text where one word makes up half or more of six or more words
  ("word word word word ..."), as a runaway completion cut at the cap produces;
* ``too_long`` -- not even the first word fits under the token cap;
* ``duplicate`` -- same as a previous prefix or an earlier one in the batch, compared with
  :func:`normalize_prefix`;
* ``slot`` -- (only with ``slot=``) the slot placeholder appears more than once.

With ``slot="{mask}"`` (the cloze head: the proposal is a template sentence whose slot the
model fills with a label word) the usual ways a TA writes a blank -- ``[MASK]``, ``<mask>``,
``{{mask}}``, ``___`` -- become the slot, and a ``Sentence:``/``Template:`` lead-in is
dropped. A proposal *without* the slot is repaired, not rejected: :data:`SLOT_REPAIR`
(``It was {mask}.``, the cloze head's own default template) is appended, or the slot is
put after a trailing colon (``Sentiment:`` -> ``Sentiment: {mask}.``); the token cap leaves
room for it and :attr:`ParsedProposal.repaired` is set. A tiny TA often forgets the slot,
and its instruction still helps in front of the default template, so a rejection would
only waste the proposal. The slot is not template junk, and is ignored by the other checks.

A reason is a short machine-friendly code, optionally followed by ``": "`` and a detail, e.g.
``"names_label: 'positive'"``; :attr:`ParsedProposal.code` gives the code alone.

Only the standard library is used.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from gpta.assistant.freetext import clean_completion, strip_quotes
from gpta.assistant.ontask import meta_talk
from gpta.assistant.schema import at_cap, read_answer

if TYPE_CHECKING:
    from gpta.chat.structured import OutputSchema

__all__ = [
    "SLOT_REPAIR",
    "ParsedProposal",
    "default_count_tokens",
    "normalize_prefix",
    "parse_proposal",
    "parse_proposals",
]

#: Appended to a proposal that lacks the slot (``{slot}`` is replaced by the slot itself).
SLOT_REPAIR = "It was {slot}."


@dataclass(frozen=True)
class ParsedProposal:
    """The outcome of parsing one TA completion.

    Attributes:
        raw: the completion exactly as returned by the TA.
        prefix: the cleaned prefix, or ``None`` when the proposal was rejected.
        reason: why it was rejected (``"code"`` or ``"code: detail"``), ``None`` when accepted.
        truncated: ``True`` when the prefix was cut down to the token cap.
        repaired: ``True`` when the slot was missing and :data:`SLOT_REPAIR` was added.
        source: how the text was read: ``json`` (an answer valid under the schema),
            ``json_partial`` (a JSON answer cut off or with extra parts: its instruction as
            far as it goes) or ``free_text`` (no JSON: the free-text cleanup, the fallback).
    """

    raw: str
    prefix: str | None
    reason: str | None
    truncated: bool = False
    repaired: bool = False
    source: str = "free_text"

    @property
    def valid(self) -> bool:
        """Whether the proposal was accepted (it has a prefix and no rejection reason)."""
        return self.prefix is not None and self.reason is None

    @property
    def code(self) -> str | None:
        """The reason code alone (``"names_label"`` for ``"names_label: 'positive'"``)."""
        if self.reason is None:
            return None
        return self.reason.split(":", 1)[0].strip()


_WORD_RE = re.compile(r"\w+(?:['’]\w+)*")

# --------------------------------------------------------------------------------------------
# Rejection patterns
# --------------------------------------------------------------------------------------------

_TEMPLATE_JUNK_RE = re.compile(
    r"\{\{|\}\}|\{\s*\w*\s*\}|\$\{|<\||\|>|```"
    r"|<\s*/?\s*(?:text|tweet|input|sentence|review|label|mask|placeholder)\s*>"
    r"|\[(?:text|input|tweet|sentence|review|label|mask|cls|sep|pad|unk)\]",
    re.IGNORECASE,
)

_OPEN_Q = "\"'“‘«‹"
_CLOSE_Q = "\"'”’»›"
_Q_BEFORE = rf"[\s{re.escape(_OPEN_Q)}]*"
_ANSWER_SLOT_RE = re.compile(
    r"\b(?:answer|label|sentiment|class|category|prediction|output|rating|result|verdict|"
    r"response|classification|emotion|tone)\s*(?:is|was|will\s+be|would\s+be|should\s+be|"
    r"must\s+be|=|:|->|=>|→)\s*(?:\w+ly\s+)?" + _Q_BEFORE + r"$",
    re.IGNORECASE,
)
_COPULA_RE = re.compile(
    r"(?:\b(?:tweets?|texts?|reviews?|sentences?|messages?|posts?|comments?|inputs?|examples?|"
    r"statements?|documents?|passages?|it|this|that|they|sentiment|tone|mood|emotion|feeling)"
    r"\s+(?:is|are|was|were|seems?|sounds?|looks?|feels?|reads?(?:\s+as)?)"
    r"|\b(?:it|that|this)['’]s)\s+"
    r"(?:(?:very|clearly|definitely|likely|probably|quite|really|rather|mostly|overall|so|too|"
    r"always|extremely|strongly|obviously|certainly|undoubtedly|highly|a|an)\s+)*"
    + _Q_BEFORE
    + r"$",
    re.IGNORECASE,
)
_ARROW_RE = re.compile(r"(?:->|=>|→|=)" + _Q_BEFORE + r"$")
_COLON_RE = re.compile(r":" + _Q_BEFORE + r"$")
_IMPERATIVE_RE = re.compile(
    r"\b(?:answer|respond|reply|say|output|predict|return|print|write|choose|pick|select|label|"
    r"classify|mark|tag|make|call|categori[sz]e|rate|guess|assume|assign|put)\b"
    r"(?:\s+(?:it|this|that|them|each|every|all|the|a|an|one|tweet|tweets|text|texts|review|"
    r"reviews|input|sentence|with|as|to|always|simply|just|only|be|is)){0,5}\s+" + _Q_BEFORE + r"$",
    re.IGNORECASE,
)
# A label followed by one of these nouns is used descriptively ("pay attention to negative words").
_DESCRIPTIVE_AFTER_RE = re.compile(
    r"^[\s" + re.escape(_CLOSE_Q) + r"]*(?:words?|terms?|phrases?|tweets?|reviews?|texts?|"
    r"examples?|ones?|signals?|cues?|emojis?|emoticons?|language|sentiment|tone|expressions?|"
    r"aspects?|parts?|statements?|messages?|posts?|comments?|sentences?|content|indicators?|"
    r"hints?|clues?|feelings?|emotions?|vibes?)\b",
    re.IGNORECASE,
)
# "... positive if it praises something": a criterion, not an answer.
_CRITERION_AFTER_RE = re.compile(
    r"^[\s" + re.escape(_CLOSE_Q) + r",]*(?:if|when|whenever|unless|only\s+if)\b", re.IGNORECASE
)
# A label that is being defined, not given: "0 = 1 star", "1 means neutral", "2: positive",
# "answer 0 for negative", "4 (5 stars)". Opaque labels (ids, codes) need exactly this. The
# strong markers define on their own; the weak ones (":", "(", "for") only in a list of two or
# more such keys, so that "The tweet is positive: it praises ..." is still a giveaway.
_DEF_STRONG = (
    r"=|->|=>|→|means\b|stands\s+for\b|is\s+for\b|denotes\b|indicates\b|represents\b|"
    r"signals\b|corresponds\s+to\b"
)
_DEF_WEAK = r":|\(|for\b"
_DEF_GAP = r"[\s" + re.escape(_CLOSE_Q) + r"]*"
_DEFINITION_STRONG_RE = re.compile(r"^" + _DEF_GAP + r"(?:" + _DEF_STRONG + r")", re.IGNORECASE)
_DEFINITION_WEAK_RE = re.compile(r"^" + _DEF_GAP + r"(?:" + _DEF_WEAK + r")", re.IGNORECASE)
_DEFINITION_MARK_RE = re.compile(
    r"^" + _DEF_GAP + r"(?:" + _DEF_STRONG + "|" + _DEF_WEAK + r")" + _DEF_GAP + r"$",
    re.IGNORECASE,
)
_INDIRECT_QUESTION_RE = re.compile(r"\b(?:whether|if)\b", re.IGNORECASE)
_SENTENCE_END_RE = re.compile(r"[.!?]+[\"'”’»)\]]*(?=\s|$)")
_TRAILING_CLOSERS_RE = re.compile(r"[\s" + re.escape(_CLOSE_Q) + r").!]*")

# Words ignored when deciding whether the whole text is just a label ("Positive sentiment.").
_FILLER_WORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "this",
        "that",
        "tweet",
        "text",
        "review",
        "sentence",
        "sentiment",
        "label",
        "class",
        "category",
        "answer",
        "output",
        "prediction",
        "it",
        "its",
        "it's",
        "tone",
        "overall",
        "very",
        "definitely",
        "clearly",
        "emotion",
        "mood",
        "feeling",
        "rating",
        "result",
        "final",
        "my",
        "verdict",
    ]
)
_LIST_FILLER_WORDS = frozenset(
    [
        "sentiment",
        "sentiments",
        "tone",
        "tones",
        "tweet",
        "tweets",
        "review",
        "reviews",
        "text",
        "texts",
        "class",
        "classes",
        "label",
        "labels",
        "category",
        "categories",
        "emotion",
        "emotions",
        "feeling",
        "feelings",
        "either",
        "a",
        "an",
        "the",
    ]
)
_LIST_CONNECTORS = frozenset(
    {",", ";", "/", "|", "&", "-", "–", "or", "and", "nor", "vs", "vs.", "versus", "to"}
)
_QUOTE_AND_BRACKET_CHARS = _OPEN_Q + _CLOSE_Q + "`()[]{}"


# --------------------------------------------------------------------------------------------
# Public helpers
# --------------------------------------------------------------------------------------------


def default_count_tokens(text: str) -> int:
    """Count tokens as whitespace-separated words (the default for the token cap)."""
    return len(text.split())


def normalize_prefix(text: str) -> str:
    """Key for duplicate detection: casefold, collapse whitespace, strip surrounding punctuation.

    Unicode is NFKC-normalised first, and curly quotes count as punctuation, so
    ``'  "Classify  the TWEET." '`` and ``"classify the tweet"`` share the key
    ``"classify the tweet"``.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = " ".join(text.split())
    start, end = 0, len(text)
    while start < end and _is_edge_junk(text[start]):
        start += 1
    while end > start and _is_edge_junk(text[end - 1]):
        end -= 1
    return text[start:end]


def parse_proposal(
    raw: str,
    *,
    label_names: Sequence[str],
    previous: Iterable[str] = (),
    max_tokens: int = 48,
    count_tokens: Callable[[str], int] | None = None,
    slot: str | None = None,
    schema: OutputSchema | None = None,
) -> ParsedProposal:
    """Clean one TA completion into a prefix, or reject it with a reason.

    Args:
        raw: the completion as returned by the TA.
        label_names: the downstream task's label names; a proposal that gives one of them away
            as the answer is rejected (``names_label``).
        previous: prefixes already tried; repeating one is rejected (``duplicate``).
        max_tokens: the token cap; longer prefixes are cut down (``truncated=True``).
        count_tokens: counts the tokens of a text (default: whitespace word count).
        slot: a placeholder the prefix must hold exactly once (the cloze head's ``{mask}``);
            missing, it is added (``repaired=True``); more than once is rejected (``slot``).
        schema: the answer's JSON schema (:func:`gpta.assistant.schema.proposal_schema`):
            a JSON answer is read by it, anything else by the free-text cleanup.

    Returns:
        A :class:`ParsedProposal`; ``valid`` tells whether it was accepted.
    """
    return parse_proposals(
        [raw],
        label_names=label_names,
        previous=previous,
        max_tokens=max_tokens,
        count_tokens=count_tokens,
        slot=slot,
        schema=schema,
    )[0]


def parse_proposals(
    raws: Sequence[str],
    *,
    label_names: Sequence[str],
    previous: Iterable[str] = (),
    max_tokens: int = 48,
    count_tokens: Callable[[str], int] | None = None,
    slot: str | None = None,
    schema: OutputSchema | None = None,
) -> list[ParsedProposal]:
    """Parse a batch; a proposal duplicating an earlier one in the same batch (or previous) is
    rejected as ``duplicate``.

    Only accepted proposals count as "earlier ones": a rejected proposal never makes a later one
    a duplicate.  Results are in the order of ``raws``.
    """
    labels = _compile_labels(label_names)
    counter = count_tokens or default_count_tokens
    seen = _seen_from(previous)
    results: list[ParsedProposal] = []
    for index, raw in enumerate(raws):
        parsed = _parse_one(raw, labels, seen, max_tokens, counter, slot, schema)
        if parsed.valid and parsed.prefix is not None:
            seen.setdefault(normalize_prefix(parsed.prefix), f"batch item {index}")
        results.append(parsed)
    return results


# --------------------------------------------------------------------------------------------
# Parsing pipeline
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Label:
    name: str
    pattern: re.Pattern[str]
    words: tuple[str, ...]


def _compile_labels(label_names: Sequence[str]) -> list[_Label]:
    if isinstance(label_names, str):
        raise TypeError("label_names must be a sequence of label names, not a single string")
    labels: list[_Label] = []
    for name in label_names:
        words = [w for w in re.split(r"[\s_\-]+", str(name).strip()) if w]
        if not words:
            continue
        body = r"[\s_\-]+".join(re.escape(w) for w in words)
        pattern = re.compile(r"(?<![\w-])" + body + r"(?![\w-])", re.IGNORECASE)
        folded = tuple(w.casefold() for w in words)
        labels.append(_Label(name=str(name), pattern=pattern, words=folded))
    return labels


def _seen_from(previous: Iterable[str]) -> dict[str, str]:
    seen: dict[str, str] = {}
    for text in previous:
        if text:
            key = normalize_prefix(str(text))
            if key:
                seen.setdefault(key, "previous")
    return seen


def _parse_one(
    raw: str,
    labels: list[_Label],
    seen: dict[str, str],
    max_tokens: int,
    count_tokens: Callable[[str], int],
    slot: str | None,
    schema: OutputSchema | None,
) -> ParsedProposal:
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    source = raw if isinstance(raw, str) else ""
    how, cut = "free_text", False
    if schema is not None:
        value, how = read_answer(source, schema)
        if how != "not_json":
            if value is None:
                return ParsedProposal(
                    raw=raw,
                    prefix=None,
                    reason="unfinished: cut off before one whole sentence",
                    source=how,
                )
            whole = at_cap(value, schema)
            source, cut = whole or value, whole is not None
        else:
            how = "free_text"
    if slot is not None:
        source = _normalize_slot(source, slot)
    if how == "free_text":
        text = clean_completion(source)
    else:  # the schema held the instruction alone: no lead-ins or markdown to peel off
        text = " ".join(strip_quotes(" ".join(source.split())).split())
    if not text:
        return ParsedProposal(raw=raw, prefix=None, reason="empty", source=how)
    parsed = _checked(raw, text, labels, seen, max_tokens, count_tokens, slot)
    if cut and parsed.prefix is not None:
        parsed = replace(parsed, truncated=True)
    return replace(parsed, source=how)


def _checked(
    raw: str,
    text: str,
    labels: list[_Label],
    seen: dict[str, str],
    max_tokens: int,
    count_tokens: Callable[[str], int],
    slot: str | None,
) -> ParsedProposal:
    """Cap the text and run the validity checks (``_reject_reason``)."""
    repaired = False
    own = None  # the TA's own words, without a repair
    if slot is None:
        text, truncated = _apply_cap(text, max_tokens, count_tokens)
    else:
        count = text.count(slot)
        if count > 1:
            return ParsedProposal(
                raw=raw, prefix=None, reason=f"slot: {slot} appears {count} times, not once"
            )
        text, own, truncated, repaired = _fit_slot(text, slot, max_tokens, count_tokens)
    if not text:
        return ParsedProposal(
            raw=raw,
            prefix=None,
            reason=f"too_long: first word exceeds {max_tokens} tokens",
            truncated=True,
        )

    reason = _reject_reason(text, labels, seen, slot=slot, own=own)
    if reason is not None:
        return ParsedProposal(
            raw=raw, prefix=None, reason=reason, truncated=truncated, repaired=repaired
        )
    return ParsedProposal(raw=raw, prefix=text, reason=None, truncated=truncated, repaired=repaired)


# --------------------------------------------------------------------------------------------
# The slot (cloze templates)
# --------------------------------------------------------------------------------------------

_BLANK_VARIANTS = (r"\[\s*mask\s*\]", r"<\s*mask\s*>", r"_{3,}")
_SLOT_LEADIN_RE = re.compile(
    r"^([\s>*#_\-]*)(?:(?:new|improved|better|revised|updated|final|suggested|proposed|my|the|"
    r"your|a)\s+){0,2}(?:template\s+sentence|template|sentence)(?:\s*#?\s*\d+)?"
    r"\s*(?::|\s-\s|\s?[–—]\s)\s*",
    re.IGNORECASE | re.MULTILINE,
)


def _normalize_slot(raw: str, slot: str) -> str:
    """Blanks the TA may write (``[MASK]``, ``<mask>``, ``{{mask}}``, ``___``) become the slot;
    a ``Sentence:``/``Template:`` lead-in is dropped (it would read as a data line)."""
    variants = [re.escape(slot)]
    named = re.fullmatch(r"\{(\w+)\}", slot)
    if named is not None:
        name = re.escape(named.group(1))
        variants += [
            rf"\{{\{{\s*{name}\s*\}}\}}",
            rf"\{{\s*{name}\s*\}}",
            rf"\[\s*{name}\s*\]",
            rf"<\s*{name}\s*>",
        ]
    variants += _BLANK_VARIANTS
    pattern = re.compile("|".join(f"(?:{v})" for v in variants), re.IGNORECASE)
    return _SLOT_LEADIN_RE.sub(r"\1", pattern.sub(lambda _m: slot, raw))


def _fit_slot(
    text: str, slot: str, max_tokens: int, count_tokens: Callable[[str], int]
) -> tuple[str, str, bool, bool]:
    """``(text, own, truncated, repaired)``: the text capped with its slot kept, or (no slot,
    or the cap cut it off) capped to leave room for :data:`SLOT_REPAIR` and repaired; ``own``
    is the TA's part of it (what the checks for junk, leaks and length read)."""
    if slot in text:
        capped, truncated = _apply_cap(text, max_tokens, count_tokens)
        if slot in capped:
            return capped, capped, truncated, False
        text = " ".join(text.replace(slot, " ").split())
    suffix = SLOT_REPAIR.format(slot=slot)
    budget = max_tokens - count_tokens(suffix)
    if budget < 1 or not text:
        return "", "", True, False
    capped, truncated = _apply_cap(text, budget, count_tokens)
    capped = capped.rstrip()
    if not capped:
        return "", "", True, False
    if capped.endswith(":"):
        return f"{capped} {slot}.", capped, truncated, True  # "Sentiment:" -> "... {mask}."
    if capped[-1] not in ".!?":
        capped = capped.rstrip(",;-–— ") + "."
    return f"{capped} {suffix}", capped, truncated, True


def _reject_reason(
    text: str,
    labels: list[_Label],
    seen: dict[str, str],
    *,
    slot: str | None = None,
    own: str | None = None,
) -> str | None:
    """Why ``text`` is rejected, or None. With a slot, the checks read ``own`` (the TA's words
    without a repair) with the slot removed: the slot is no junk and no word; duplicates are
    found on the whole ``text``."""
    full = text
    if own is not None:
        text = own
    if slot is not None:
        text = " ".join(text.replace(slot, " ").split())
    junk = _TEMPLATE_JUNK_RE.search(text)
    if junk is not None:
        return f"template_junk: {junk.group(0)!r}"
    named = _named_label(text, labels)
    if named is not None:
        return f"names_label: {named!r}"
    talk = meta_talk(text)
    if talk is not None:
        return talk
    n_words = len(_WORD_RE.findall(text))
    if n_words < 2:
        return f"too_short: {n_words} word{'s' if n_words != 1 else ''}"
    words = [w.casefold() for w in _WORD_RE.findall(text)]
    if len(words) >= 6:
        top = max(set(words), key=words.count)
        if words.count(top) * 2 >= len(words):
            return f"repetitive: {top!r} is {words.count(top)} of {len(words)} words"
    origin = seen.get(normalize_prefix(full))
    if origin is not None:
        return f"duplicate: of {origin}"
    return None


# --------------------------------------------------------------------------------------------
# Token cap (rule 5)
# --------------------------------------------------------------------------------------------


def _apply_cap(text: str, max_tokens: int, count_tokens: Callable[[str], int]) -> tuple[str, bool]:
    if count_tokens(text) <= max_tokens:
        return text, False
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text) if s]
    kept: list[str] = []
    for sentence in sentences:
        if count_tokens(" ".join([*kept, sentence])) > max_tokens:
            break
        kept.append(sentence)
    if kept:
        return " ".join(kept), True
    # Even the first sentence is over the cap: cut at a word boundary (binary search).
    words = text.split()
    lo, hi = 0, len(words)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_tokens(" ".join(words[:mid])) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    cut = " ".join(words[:lo]).rstrip(" ,;:-–—(")
    return cut, True


# --------------------------------------------------------------------------------------------
# Label leak detection (rule 6, names_label)
# --------------------------------------------------------------------------------------------


def _named_label(text: str, labels: list[_Label]) -> str | None:
    """Return the label a proposal gives away as the answer, or ``None``."""
    if not labels:
        return None

    # The whole text is a label, give or take filler ("Positive sentiment.", "It's negative!").
    if not text.rstrip(_CLOSE_Q + " ").endswith("?"):
        words = [w.replace("’", "'") for w in _WORD_RE.findall(text.casefold())]
        for label in sorted(labels, key=lambda lab: -len(lab.words)):
            rest = _without_run(words, list(label.words))
            if rest is not None and all(w in _FILLER_WORDS for w in rest):
                return label.name

    occurrences = _label_occurrences(text, labels)
    if not occurrences:
        return None
    listed = _listed_flags(text, occurrences)
    defined = _definition_flags(text, occurrences)
    for (start, end, label), is_listed, is_defined in zip(
        occurrences, listed, defined, strict=True
    ):
        if is_listed or is_defined:
            continue
        if _gives_away(text, start, end):
            return label.name
    return None


def _without_run(words: list[str], run: list[str]) -> list[str] | None:
    """``words`` with the first contiguous occurrence of ``run`` removed, or ``None``."""
    for i in range(len(words) - len(run) + 1):
        if words[i : i + len(run)] == run:
            return words[:i] + words[i + len(run) :]
    return None


def _label_occurrences(text: str, labels: list[_Label]) -> list[tuple[int, int, _Label]]:
    found = [(m.start(), m.end(), label) for label in labels for m in label.pattern.finditer(text)]
    found.sort(key=lambda item: (item[0], -(item[1] - item[0])))
    kept: list[tuple[int, int, _Label]] = []
    for item in found:
        if kept and item[0] < kept[-1][1]:
            continue  # overlaps a longer label already kept ("very positive" vs "positive")
        kept.append(item)
    return kept


def _is_list_gap(gap: str) -> bool:
    """Whether the text between two labels only connects them ("positive, or negative")."""
    for ch in _QUOTE_AND_BRACKET_CHARS:
        gap = gap.replace(ch, " ")
    tokens = re.findall(r"\w+\.?|[^\w\s]", gap.casefold())
    tokens = [t for t in tokens if t not in _LIST_FILLER_WORDS]
    return bool(tokens) and all(t in _LIST_CONNECTORS for t in tokens)


def _listed_flags(text: str, occurrences: list[tuple[int, int, _Label]]) -> list[bool]:
    flags = [False] * len(occurrences)
    for i in range(len(occurrences) - 1):
        (_, end_a, label_a), (start_b, _, label_b) = occurrences[i], occurrences[i + 1]
        if label_a.words != label_b.words and _is_list_gap(text[end_a:start_b]):
            flags[i] = flags[i + 1] = True
    return flags


def _definition_flags(text: str, occurrences: list[tuple[int, int, _Label]]) -> list[bool]:
    """Which occurrences are part of a label's definition: the key ("0 = 1 star", "1 means
    neutral") or the value of a mapping whose key is another label (the "1" of "0 = 1 star")."""
    strong = [bool(_DEFINITION_STRONG_RE.match(text[end:])) for _, end, _ in occurrences]
    weak = [bool(_DEFINITION_WEAK_RE.match(text[end:])) for _, end, _ in occurrences]
    keys = [s or (w and sum(weak) >= 2) for s, w in zip(strong, weak, strict=True)]
    flags = []
    for i, (start, _, _) in enumerate(occurrences):
        gap = text[occurrences[i - 1][1] : start] if i else ""
        flags.append(keys[i] or (i > 0 and keys[i - 1] and bool(_DEFINITION_MARK_RE.match(gap))))
    return flags


def _sentence_bounds(text: str, pos: int) -> tuple[int, int, bool]:
    """The sentence around ``pos``: ``(start, end, is_question)``."""
    start = 0
    for match in _SENTENCE_END_RE.finditer(text):
        if match.end() <= pos:
            start = match.end()
        else:
            return start, match.end(), "?" in match.group(0)
    return start, len(text), False


def _gives_away(text: str, start: int, end: int) -> bool:
    """Whether the label at ``text[start:end]`` is stated as the answer."""
    sent_start, sent_end, is_question = _sentence_bounds(text, start)
    if is_question:
        return False  # "Is this tweet positive?"
    before = text[sent_start:start]
    after = text[end:sent_end]
    if _INDIRECT_QUESTION_RE.search(before):
        return False  # "Decide whether the tweet is positive."
    if _CRITERION_AFTER_RE.match(after):
        return False  # "Answer positive if the tweet praises something."
    if _ANSWER_SLOT_RE.search(before) or _COPULA_RE.search(before) or _ARROW_RE.search(before):
        return True
    if _COLON_RE.search(before) and _TRAILING_CLOSERS_RE.fullmatch(after):
        return True  # "... tweet: positive"
    return bool(_IMPERATIVE_RE.search(before)) and not _DESCRIPTIVE_AFTER_RE.match(after)


def _is_edge_junk(ch: str) -> bool:
    return ch.isspace() or ch == "`" or unicodedata.category(ch).startswith("P")
