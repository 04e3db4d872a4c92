"""Redaction of exemplar rows before they leave the machine.

Every pattern lives here, in one tested module. Each match is replaced with a typed
placeholder (``[EMAIL]``, ``[PHONE]``, ...), so the TA still sees the shape of the text
("write to [EMAIL]") and nothing of the value. The patterns lean towards redacting too much:
a lost phone-like number costs the TA nothing, a leaked one cannot be taken back.

Why not scrubadub or presidio (checked offline with Python 3.11): scrubadub 2.0.1 (last
release 2023) installs and runs offline, but has no IP-address detector, missed spaced card
numbers, ``https://x.org/a`` URLs and phone numbers that ``phonenumbers`` deems invalid
(``555-123-4567``), and pulls in faker, dateparser and textblob. presidio-analyzer 2.2
installs from wheels but brings spaCy, and its engine loads a spaCy model that is not on
PyPI (a download at run time); its pattern recognisers alone have no postal address and no
date of birth. Neither fits a dependency that must be exact and offline; these patterns are
short enough to own.

Order matters and is fixed: URLs with a scheme first (they may hold ``@`` and IPs), then
e-mail addresses, bare domains, IP addresses, IBANs, dates of birth, postal addresses,
postcodes, card-like numbers, phone numbers, long digit runs, @handles and finally the names
the user listed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

PLACEHOLDERS = {
    "url": "[URL]",
    "email": "[EMAIL]",
    "ip": "[IP]",
    "iban": "[IBAN]",
    "birth_date": "[BIRTH_DATE]",
    "address": "[ADDRESS]",
    "postcode": "[POSTCODE]",
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
# IBAN: country, check digits, 11-30 letters and digits, in groups of four or not (the
# mod-97 check below decides).
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{4}){2,7}(?:[ -]?[A-Z0-9]{1,3})?\b")
# A date of birth: a date (or a month and year, or a year) shortly after a word that says
# it is one. Dates alone (an order date, a visit) are not personal data here.
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DAY = r"(?:[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?:1[89]|20)\d\d"
_DATE = (
    rf"(?:\d{{1,4}}[./-]\d{{1,2}}[./-]\d{{1,4}}"  # 12/03/1985, 1985-03-12, 3.12.85
    rf"|{_DAY}(?:\s+of)?\s+{_MONTH},?\s+(?:{_YEAR}|'?\d\d)"  # 12 March 1985, 12th of Mar 85
    rf"|{_MONTH}\s+{_DAY},?\s+(?:{_YEAR}|'?\d\d)"  # March 12, 1985
    rf"|{_MONTH},?\s+{_YEAR}|{_YEAR})"  # March 1985, 1985
)
_BIRTH_DATE = re.compile(
    r"(?i)\b(?:born|birth\s*(?:date|day)|date\s+of\s+birth|d\.?\s?o\.?\s?b\.?|bday|b-day)"
    rf"(?:[^.\n\d]{{0,24}}?)(?<![\w])({_DATE})(?![\w])"
)
_US_STATES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ"
    "|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|DC"
)
_POSTCODES = (
    rf"\b(?:{_US_STATES})\s+\d{{5}}(?:-\d{{4}})?\b"  # a state and its ZIP code
    r"|\b\d{5}-\d{4}\b"  # ZIP+4
    r"|\b(?:[A-Z]{1,2}\d[A-Z\d]?|GIR)\s?\d[A-Z]{2}\b"  # UK: SW1A 2AA, M1 1AE
    r"|\b[ABCEGHJ-NPRSTVXY]\d[A-Z]\s?\d[A-Z]\d\b"  # Canada: K1A 0B1
)
_POSTCODE = re.compile(_POSTCODES)
# A street address: a house number, one to four words, a street type (Baker Street, Main
# St, 5th Ave), then optionally a direction, a unit, a town and a state or postcode.
_STREET_TYPES = (
    "street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|place|pl|square|sq"
    "|terrace|ter|way|parkway|pkwy|highway|hwy|circle|cir|close|crescent|cres|row|mews"
    "|gardens|gdns|grove|alley|trail|plaza|broadway|strasse|straße|str"
)
# as written in an address: Street, STREET, St (a lower-case "court" is prose)
_STREET_TYPE = "|".join(f"{t.capitalize()}|{t.upper()}" for t in _STREET_TYPES.split("|"))
_NAME_WORD = r"(?:[A-Z][\w'-]*|[A-Z][a-z]{0,2}\.|\d{1,3}(?:st|nd|rd|th))"
_ADDRESS = re.compile(
    r"(?<![\w.,/-])\d{1,6}[A-Za-z]?(?:[-/]\d{1,4})?,?\s+"
    rf"(?:{_NAME_WORD}\s+){{0,3}}{_NAME_WORD}\s+"  # Capitalised words, 5th
    rf"(?:{_STREET_TYPE})\b\.?"
    r"(?:\s+(?:N|S|E|W|NE|NW|SE|SW)\b\.?)?"
    r"(?:,?\s+(?i:apt|apartment|suite|ste|unit|flat|floor|fl|#)\.?\s*#?\w{1,5})?"
    r"(?:,\s*[A-Z][a-z][\w'-]*(?:\s+[A-Z][a-z][\w'-]*){0,2})?"  # , Springfield
    rf"(?:,?\s+(?:{_POSTCODES}))?"  # , IL 62704 / London NW1 6XE
)
_ADDRESS_EUROPE = re.compile(
    r"\b[A-ZÄÖÜ][\wäöüß-]*(?:straße|strasse|str\.|weg|gasse|platz|allee|damm)\s+\d{1,4}[a-z]?\b"
    r"|\b\d{1,4}(?:\s?(?:bis|ter))?,?\s+(?:rue|avenue|boulevard|bd|place|chemin|allée|impasse"
    r"|quai)\s+(?:(?:de|du|des|la|le|l'|d')\s*)*[A-ZÉ][\w'-]*"
)
_PO_BOX = re.compile(r"(?i)\bp\.?\s?o\.?\s+box\s+\d{1,6}\b")
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


def iban_ok(text: str) -> bool:
    """The ISO 13616 check (mod 97) that every IBAN carries; 4 lines, not a dependency."""
    compact = re.sub(r"[ -]", "", text)
    if not 15 <= len(compact) <= 34:
        return False
    digits = "".join(str(int(c, 36)) for c in compact[4:] + compact[:4])
    return int(digits) % 97 == 1


def _iban(match: re.Match[str], counts: Counter[str]) -> str:
    if not iban_ok(match.group(0)):
        return match.group(0)
    counts["iban"] += 1
    return PLACEHOLDERS["iban"]


def _birth_date(match: re.Match[str], counts: Counter[str]) -> str:
    counts["birth_date"] += 1
    start, end = match.span(1)
    whole = match.group(0)
    offset = match.start()
    return whole[: start - offset] + PLACEHOLDERS["birth_date"] + whole[end - offset :]


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

        def simple(kind: str) -> Callable[[re.Match[str]], str]:
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
            text = _IBAN.sub(lambda m: _iban(m, counts), text)
            text = _BIRTH_DATE.sub(lambda m: _birth_date(m, counts), text)
            text = _ADDRESS.sub(simple("address"), text)
            text = _ADDRESS_EUROPE.sub(simple("address"), text)
            text = _PO_BOX.sub(simple("address"), text)
            text = _POSTCODE.sub(simple("postcode"), text)
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
