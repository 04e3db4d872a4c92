"""Redaction of exemplar rows before they leave the machine.

Every pattern lives here, in one tested module. Each match is replaced with a typed
placeholder (``[EMAIL]``, ``[PHONE]``, ...), so the TA still sees the shape of the text
("write to [EMAIL]") and nothing of the value. The patterns lean towards redacting too much:
a lost phone-like number costs the TA nothing, a leaked one cannot be taken back.

Why not scrubadub or presidio (checked offline with Python 3.11): scrubadub 2.0.1 (last
release 2023) installs and runs offline, but has no IP-address detector, missed spaced card
numbers, ``https://x.org/a`` URLs and phone numbers that ``phonenumbers`` deems invalid
(``555-123-4567``), and pulls in faker, dateparser and textblob. presidio-analyzer needs
spaCy and a spaCy model for its default engine. Neither fits a dependency that must be
exact and offline; these patterns are short enough to own.

Order matters and is fixed: URLs with a scheme first (they may hold ``@`` and IPs), then
e-mail addresses, bare domains, IP addresses, card-like numbers, phone numbers, long digit
runs, @handles and finally the names the user listed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

PLACEHOLDERS = {
    "url": "[URL]",
    "email": "[EMAIL]",
    "ip": "[IP]",
    "card": "[CARD]",
    "phone": "[PHONE]",
    "number": "[NUMBER]",
    "handle": "[HANDLE]",
    "name": "[NAME]",
}

# Digit runs at least this long are redacted whatever they are (account numbers, ids).
LONG_DIGITS = 7

_TLDS = (
    "com|org|net|edu|gov|mil|int|io|co|ai|app|dev|info|biz|me|tv|uk|de|fr|es|it|nl|be|ch|at|"
    "se|no|dk|fi|pl|ru|cn|jp|kr|in|au|nz|ca|us|br|mx|ar|za|eu|ly|gl|gg|xyz|site|online|tech"
)
_URL_SCHEME = re.compile(r"\b(?:https?|ftp)://[^\s<>\"'`]+|\bwww\.[^\s<>\"'`]+", re.IGNORECASE)
_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"
)
_BARE_DOMAIN = re.compile(
    rf"(?<![\w@.-])(?:[A-Za-z0-9-]+\.)+(?:{_TLDS})\b(?:/[^\s<>\"'`]*)?", re.IGNORECASE
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\d.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\d.]*\d)")
_H = r"[0-9A-Fa-f]{1,4}"
_IPV6 = re.compile(
    rf"(?<![\w:])(?:(?:{_H}:){{7}}{_H}|(?:{_H}:){{1,7}}:(?:{_H}(?::{_H}){{0,6}})?|::{_H}(?::{_H}){{0,6}})(?![\w:])"
)
# 13-19 digits, optionally in groups split by single spaces or dashes.
_CARD_LIKE = re.compile(r"(?<![\w+-])\d(?:[ -]?\d){12,18}(?![\w-])")
# +CC, an optional (area) and 2-4 digit groups split by space, dot or dash.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d{2,5}(?:[ .-]\d{2,5}){1,5}(?![\w])"
    r"|(?<![\w+])\+\d{7,15}(?!\w)"
)
_LONG_DIGITS = re.compile(rf"(?<!\w)\d{{{LONG_DIGITS},}}(?!\w)")
_HANDLE = re.compile(r"(?<![\w@.])@[A-Za-z0-9_]{1,30}\b")


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum that card numbers carry."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char)
        if i % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card_or_number(match: re.Match[str], counts: Counter[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    kind = "card" if luhn_ok(digits) else "number"
    counts[kind] += 1
    return PLACEHOLDERS[kind]


def _phone(match: re.Match[str], counts: Counter[str]) -> str:
    text = match.group(0)
    digits = sum(c.isdigit() for c in text)
    international = text.startswith("+") or "(" in text
    # 9+ digits, or 7+ with a country code or an (area code): dates like 2023-01-15 (8 digits)
    # and ranges like 2019-2020 stay.
    if digits > 15 or digits < (7 if international else 9):
        return text
    counts["phone"] += 1
    return PLACEHOLDERS["phone"]


@dataclass(frozen=True)
class Redacted:
    """A redacted text and how many values of each kind were replaced."""

    text: str
    counts: dict[str, int] = field(default_factory=dict)


class Redactor:
    """Replaces personal details with typed placeholders; ``names`` are the user's own list."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        cleaned = sorted({n.strip() for n in names if n and n.strip()}, key=len, reverse=True)
        self.names = cleaned
        self._names = (
            re.compile(
                r"(?<!\w)(?:" + "|".join(re.escape(n) for n in cleaned) + r")(?!\w)",
                re.IGNORECASE,
            )
            if cleaned
            else None
        )

    def redact(self, text: str) -> Redacted:
        counts: Counter[str] = Counter()

        def simple(kind: str):
            def replace(_: re.Match[str]) -> str:
                counts[kind] += 1
                return PLACEHOLDERS[kind]

            return replace

        # Repeated until nothing changes (a replacement can expose a match: "10.0.0.1http://x"
        # only shows its URL once the IP is gone), so a redacted text redacts to itself: the
        # channel redacts every outgoing message, exemplars included, and they stay as listed.
        for _ in range(32):  # two passes for ordinary text; more for chains like "@a@b@c"
            before = text
            text = _URL_SCHEME.sub(simple("url"), text)
            text = _EMAIL.sub(simple("email"), text)
            text = _BARE_DOMAIN.sub(simple("url"), text)
            text = _IPV4.sub(simple("ip"), text)
            text = _IPV6.sub(simple("ip"), text)
            text = _CARD_LIKE.sub(lambda m: _card_or_number(m, counts), text)
            text = _PHONE.sub(lambda m: _phone(m, counts), text)
            text = _LONG_DIGITS.sub(simple("number"), text)
            text = _HANDLE.sub(simple("handle"), text)
            if self._names is not None:
                text = self._names.sub(simple("name"), text)
            if text == before:
                break
        return Redacted(text, dict(counts))


def redact(text: str, names: Iterable[str] = ()) -> str:
    """``text`` with personal details replaced by typed placeholders."""
    return Redactor(names).redact(text).text
