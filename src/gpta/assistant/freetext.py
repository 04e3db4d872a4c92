"""The free-text fallback: a teaching assistant's answer that is not JSON, cleaned to one line.

Used only when an answer is not JSON under the schema (a server that honours no
``response_format`` form and a model that ignored the prompt's JSON form): with a grammar
or an honoured schema, none of this runs. The TA, often a tiny chat model, wraps what we
asked for in chat tokens, markdown, polite lead-ins ("Sure! Here's an improved prefix:"),
quotes and trailing explanations; :func:`clean_completion` peels them off in four rules:

1. special tokens: text after the first end-of-turn token is dropped, other tokens removed;
2. markdown: fences, rules, headings, list markers, emphasis;
3. lead-ins and reasoning: polite openers, ``Prefix:``-style labels, ``Here is ...:``;
   a line that starts reasoning ("Explanation:", "This prefix helps ...") ends the scan, a
   line that echoes data ("Tweet: ...") is skipped; the first plausible line is kept;
4. quotes around the whole line (balanced, or a lone leading or trailing one).

Only the standard library is used.
"""

from __future__ import annotations

import re

# --------------------------------------------------------------------------------------------
# Chat special tokens
# --------------------------------------------------------------------------------------------

# Tokens that end a turn: text after the first one (once something was said) is dropped.
_END_TOKEN_RE = re.compile(
    r"<\|im_end\|>|<\|endoftext\|>|<\|end_of_text\|>|<\|eot_id\|>|<\|end\|>|</s>|<end_of_turn>|<eos>",
    re.IGNORECASE,
)
# Tokens that open a turn, with the role name that follows them.
_TURN_START_RE = re.compile(
    r"(?:<\|im_start\|>|<\|start_header_id\|>|<start_of_turn>|<\|(?:system|user|assistant)\|>)"
    r"[ \t]*(?:system|user|assistant|model)?[ \t]*(?:<\|end_header_id\|>)?",
    re.IGNORECASE,
)
# Any other special token: <|...|>, <s>, [INST], <<SYS>>, ...
_SPECIAL_TOKEN_RE = re.compile(
    r"<\|[^<>|\n]{0,40}\|>|</?s>|\[/?INST\]|<</?SYS>>|<(?:unk|pad|bos|eos|mask)>"
    r"|<start_of_turn>|<end_of_turn>",
    re.IGNORECASE,
)

# --------------------------------------------------------------------------------------------
# Line-level markdown, lead-ins and reasoning
# --------------------------------------------------------------------------------------------

_FENCE_LINE_RE = re.compile(r"^(?:```|~~~)[\w+-]*\s*$")
_RULE_LINE_RE = re.compile(r"^(?:[-*_=]\s*){3,}$")
_LEADING_MARKUP_RE = re.compile(
    r"^(?:#{1,6}\s*|>\s*|[-*+]\s+|[•▪►·◦]\s*|\(?\d{1,2}[.)]\s+|\(\d{1,2}\)\s*|[a-hA-H][.)]\s+(?=\w))"
)
_ITALIC_UNDERSCORE_RE = re.compile(r"(?<!\w)_([^_\n]+?)_(?!\w)")
_SINGLE_BACKTICKS_RE = re.compile(r"(?<!`)`{1,2}(?!`)")

# Lines that start the TA's reasoning: they and everything after them are dropped.
_STOP_LINE_RE = re.compile(
    r"^(?:"
    r"(?:explanation|reasoning|reason|rationale|justification|notes?|nb|why|analysis|"
    r"commentary|feedback|p\.?s\.?)\s*[:\-–—]"
    r"|this\s+(?:new\s+|improved\s+|revised\s+)?(?:prefix|instruction|prompt|hint|sentence|"
    r"approach|way|version|change|wording|will|helps?|ensures?|should|can|gives|provides|"
    r"tells|guides|allows|makes|encourages|prepends|adds)\b"
    r"|the\s+(?:above\s+|new\s+|improved\s+)?(?:prefix|instruction|prompt)\s+(?:helps?|tells|"
    r"guides|ensures?|encourages|gives|provides|makes|allows|adds|focuses|will|should|is\s+"
    r"(?:designed|meant|intended|more|better|clearer))\b"
    r"|in\s+this\s+(?:prefix|instruction|prompt)\b"
    r"|by\s+(?:adding|prepending|using)\b"
    r"|i\s+(?:chose|hope|think|believe|added|used|made|changed|included|have)\b"
    r"|hope\s+this\b|let\s+me\s+know\b"
    r")",
    re.IGNORECASE,
)
# The same markers in the middle of a line: the line is cut there and nothing after it is kept.
_INLINE_STOP_RE = re.compile(
    r"\s*[(\[]?\b(?:explanation|reasoning|rationale|justification|note)\s*:"
    r"|(?<=[.!?\"'”’])\s+(?:this\s+(?:new\s+|improved\s+)?(?:prefix|instruction|prompt|hint|"
    r"will|helps?|should|ensures?|encourages|tells|guides)\b|i\s+hope\b|hope\s+this\b"
    r"|let\s+me\s+know\b)",
    re.IGNORECASE,
)
# Lines that echo data or examples rather than an instruction: skipped, parsing goes on.
_DATA_LINE_RE = re.compile(
    r"^(?:(?:for\s+(?:example|instance)|e\.g\.)\b"
    r"|(?:examples?(?:\s+(?:input|output|usage))?|input|tweet|text|review|sentence|sample|"
    r"original(?:\s+(?:prefix|instruction|prompt))?|(?:old|previous|current)\s+"
    r"(?:prefix|instruction|prompt))\s*#?\d*\s*:)",
    re.IGNORECASE,
)
# Polite openers; a line starting with one is chatter unless it carries a "...:" lead-in.
_POLITE_RE = re.compile(
    r"^(?:sure(?:\s+thing)?|certainly|of\s+course|absolutely|okay|ok|great(?:\s+question)?|"
    r"alright|all\s+right|no\s+problem|happy\s+to\s+help|gladly)\b[!.,:;\s-]*",
    re.IGNORECASE,
)
_HERE = r"here\s+is|here['’]s|here\s+are|below\s+is|below\s+are"
_HERE_RE = re.compile(
    rf"^(?:{_HERE}|the\s+following\s+is|i\s+(?:would\s+|'d\s+)?(?:suggest|propose|recommend)"
    r"|my\s+(?:suggestion|proposal|answer|prefix|instruction)\s+is)\b",
    re.IGNORECASE,
)
_HERE_NO_COLON_RE = re.compile(rf"^(?:{_HERE})\b", re.IGNORECASE)
# Up to two adjectives before the noun of a lead-in ("New prefix", "My improved instruction").
_LEADIN_WORDS = (
    r"^(?:(?:new|improved|better|revised|updated|final|suggested|proposed|alternative|refined|"
    r"rewritten|modified|your|my|the|a|an)\s+){0,2}"
)
_LEADIN_NOUNS = r"prefix|instruction|prompt|answer|response|output|hint|suggestion"
# "Prefix:", "New prefix:", "Instruction for the model:", "Answer:", "Prompt 2 -", ...
_LABEL_LEADIN_RE = re.compile(
    rf"{_LEADIN_WORDS}(?:{_LEADIN_NOUNS}|assistant|system|ta)"
    r"(?:\s*#?\s*\d+)?(?:\s+(?:for|to)\b[^:\n]{0,40})?"
    r"(?:\s+(?:is|would\s+be|will\s+be|could\s+be|might\s+be))?\s*(?::|\s-\s|\s?[–—]\s|=)\s*",
    re.IGNORECASE,
)
# A heading that is only a lead-in label ("### New Prefix").
_BARE_LEADIN_RE = re.compile(
    rf"{_LEADIN_WORDS}(?:{_LEADIN_NOUNS})(?:\s*#?\s*\d+)?\s*[.!]?$", re.IGNORECASE
)
_EMBEDDED_LEADIN_RE = re.compile(
    r"(?:here\s+is|here['’]s|here\s+are|below\s+is|(?:new\s+|improved\s+)?"
    r"(?:prefix|instruction|prompt))[^:\n]*:\s*",
    re.IGNORECASE,
)

_WORD_CHAR_RE = re.compile(r"\w")

# --------------------------------------------------------------------------------------------
# Cleaning (rules 1-4)
# --------------------------------------------------------------------------------------------


def clean_completion(raw: str) -> str:
    """Rules 1-4: strip tokens and markup, drop lead-ins and reasoning, pick a line, unquote."""
    text = _strip_special_tokens(raw.replace("\r\n", "\n").replace("\r", "\n"))
    candidates: list[str] = []
    for line in text.split("\n"):
        cleaned, stop = _clean_line(line)
        if cleaned:
            candidates.append(cleaned)
        if stop:
            break

    plausible = [c for c in candidates if len(_WORD_CHAR_RE.findall(c)) >= 3]
    chosen = next((c for c in plausible if not c.endswith(":")), None)
    if chosen is None:
        # Only lead-in-looking lines ("Classify the sentiment of the following tweet:"): a line
        # ending in ':' is only a lead-in when an instruction follows it.
        chosen = next(iter(plausible), None)
    if chosen is None:
        return ""
    return " ".join(strip_quotes(chosen).split())


def _strip_special_tokens(text: str) -> str:
    # Cut at the first end-of-turn token once something has been said.
    for match in _END_TOKEN_RE.finditer(text):
        before = _TURN_START_RE.sub(" ", text[: match.start()])
        if _WORD_CHAR_RE.search(_SPECIAL_TOKEN_RE.sub(" ", before)):
            text = text[: match.start()]
            break
    text = _TURN_START_RE.sub("\n", text)
    text = _END_TOKEN_RE.sub("\n", text)
    return _SPECIAL_TOKEN_RE.sub(" ", text)


def _strip_markdown(line: str) -> str:
    line = line.strip()
    if _FENCE_LINE_RE.match(line) or _RULE_LINE_RE.match(line):
        return ""
    line = line.replace("**", "").replace("__", "").replace("~~", "")
    previous = None
    while previous != line:
        previous = line
        line = _LEADING_MARKUP_RE.sub("", line, count=1).strip()
    line = line.replace("*", "")
    line = _ITALIC_UNDERSCORE_RE.sub(r"\1", line)
    line = _SINGLE_BACKTICKS_RE.sub("", line)
    return line.strip()


def _clean_line(line: str) -> tuple[str, bool]:
    """Clean one line; return ``(text, stop)`` where ``stop`` ends the scan of later lines."""
    line = _strip_markdown(line)
    if not line:
        return "", False
    if _STOP_LINE_RE.match(line):
        return "", True

    stop = False
    inline = _INLINE_STOP_RE.search(line)
    if inline is not None:
        line, stop = line[: inline.start()].strip(), True

    previous = None
    while previous != line and line:
        previous = line
        if _DATA_LINE_RE.match(line):
            return "", stop
        polite = _POLITE_RE.match(line)
        if polite is not None and polite.end() > 0:
            rest = line[polite.end() :]
            embedded = _EMBEDDED_LEADIN_RE.search(rest)
            # "Sure! ..." is chatter unless it carries "Here is the prefix: <instruction>".
            line = rest[embedded.end() :].strip() if embedded is not None else ""
            continue
        here = _HERE_RE.match(line)
        if here is not None:
            colon = line.find(":", here.end())
            if colon >= 0:
                line = line[colon + 1 :].strip()
                continue
            if _HERE_NO_COLON_RE.match(line):
                return "", stop  # "Here's a better prefix." -- chatter
        if _BARE_LEADIN_RE.match(line):
            return "", stop
        leadin = _LABEL_LEADIN_RE.match(line)
        if leadin is not None:
            line = line[leadin.end() :].strip()
            continue
        if _STOP_LINE_RE.match(line):
            return "", True
        line = _strip_markdown(line)
    return line, stop


def _quote_family(ch: str) -> str | None:
    if ch in '"“”„«»':
        return "double"
    if ch in "'‘’‹›":
        return "single"
    if ch == "`":
        return "backtick"
    return None


def _is_quote_at(text: str, index: int, family: str) -> bool:
    ch = text[index]
    if _quote_family(ch) != family:
        return False
    if family == "single":
        # An apostrophe inside a word ("tweet's") is not a quote.
        left = text[index - 1] if index > 0 else ""
        right = text[index + 1] if index + 1 < len(text) else ""
        if left.isalnum() and right.isalnum():
            return False
    return True


def _count_quotes(text: str, family: str) -> int:
    return sum(1 for i in range(len(text)) if _is_quote_at(text, i, family))


def _strip_quotes_once(text: str) -> str:
    tail_match = re.search(r"[.!?]*$", text)
    assert tail_match is not None
    body, punct = text[: tail_match.start()], tail_match.group(0)
    family = _quote_family(text[0]) if text else None
    if family is None:
        return _without_lone_closing_quote(text, body, punct)
    if (
        len(body) >= 2
        and _quote_family(body[-1]) == family
        and _is_quote_at(body, len(body) - 1, family)
    ):
        inner = body[1:-1]
        nested = (
            len(inner) >= 2
            and _quote_family(inner[0]) == family
            and _quote_family(inner[-1]) == family
            and _count_quotes(inner[1:-1], family) == 0
        )
        if nested or _count_quotes(inner, family) == 0:
            inner = inner.strip()
            if punct and not inner.endswith((".", "!", "?")):
                inner += punct
            return inner
    if _count_quotes(text, family) % 2 == 1:
        return text[1:]
    return _without_lone_closing_quote(text, body, punct)


def _without_lone_closing_quote(text: str, body: str, punct: str) -> str:
    """``text`` without the quote that ends its ``body`` when that quote is unbalanced
    (``Classify the tweet."”``), else ``text`` as it is."""
    family = _quote_family(body[-1]) if body else None
    if family is not None and _count_quotes(text, family) % 2 == 1:
        return body[:-1] + punct
    return text


def strip_quotes(text: str) -> str:
    """Rule 4: strip surrounding quotes when balanced, or a lone leading/trailing one."""
    text = text.strip()
    while text:
        stripped = _strip_quotes_once(text).strip()
        if stripped == text:
            break
        text = stripped
    return text
