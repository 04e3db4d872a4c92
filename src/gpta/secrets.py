"""Secrets (API keys, tokens, credentials) are removed from what leaves and what comes back.

:func:`scrub` replaces with ``[SECRET]``:

* every registered value (:func:`register_secret`;
  :func:`gpta.privacy.policy.register_config_secrets` reads the variable named by
  ``assistant.api_key_env`` and every ``env:NAME`` header of the config),
  wherever it appears, e.g. echoed back by a server;
* the token formats that detect-secrets (Yelp's secret scanner, Apache-2.0) knows: AWS
  access key ids, GitHub, GitLab, Slack, Stripe, SendGrid, Twilio, npm, PyPI, Discord,
  Telegram, Mailchimp, Square, Azure storage, IBM, Cloudant, Artifactory, JWTs, legacy
  OpenAI keys, ``scheme://user:password@`` URLs; its pattern lists are used directly, one
  regex per format, so new formats come with its releases;
* shapes it does not cover, written here: ``sk-``/``pk-``/``rk-``/``sess-`` keys of any
  provider (detect-secrets only knows the legacy OpenAI format with ``T3BlbkFJ`` inside),
  ``Bearer``/``Authorization: Basic`` tokens, user info in any URL (``https://user@host``),
  credential-named query parameters (``?api-key=``, ``&token=``, ``key=``, ``sig=``, ...),
  ``password = ...``-style assignments and PEM private key blocks;
* with ``prose=True`` (what is sent to the TA, exemplars included), secrets written in
  free text: the values of detect-secrets' KeywordDetector patterns (built for config and
  source files; in prose an unquoted value is its next word), passwords after a password
  word (``password hunter2``), PINs, and random-looking words by detect-secrets' entropy
  measures (an AWS secret access key) or named as keys. Not for gpta's own records: the
  ledger's hashes look random.

The channel (:mod:`gpta.privacy.channel`) scrubs every outgoing message before it is checked,
recorded and sent, and every answer before it is recorded, cached or used; the ledger scrubs
every other record before it is written; TA error messages are scrubbed before they reach
the history or the terminal.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import threading
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from detect_secrets.plugins.high_entropy_strings import (
        Base64HighEntropyString,
        HexHighEntropyString,
    )

    from gpta.chat.base import ChatResult

PLACEHOLDER = "[SECRET]"
_MIN_LENGTH = 6  # shorter values would blank out ordinary words
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_\-.+/=~]*")
_TOKEN_END = re.compile(r"[A-Za-z0-9_\-.+/=~]$")
# (pattern, group): the group whose span is replaced (0: the whole match)
_OWN_SHAPES: list[tuple[re.Pattern[str], int]] = [
    (re.compile(r"\b(?:sk|pk|rk|sess)-[A-Za-z0-9_\-]{16,}"), 0),
    (re.compile(r"(?i:bearer)\s+[A-Za-z0-9._~+/=\-]{16,}"), 0),
    (re.compile(r"(?i:authorization)\s*[:=]\s*(\S+(?:[ \t]+[A-Za-z0-9._~+/=\-]{8,})?)"), 1),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), 0),
    (re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://([^/\s@?#]+)@"), 1),  # scheme://user[:pass]@
    (
        re.compile(
            r"(?i)[?&;#](?:[a-z0-9_\-]*(?:key|token|secret|passw(?:or)?d|pwd|auth|sig|signature"
            r"|credential|session)[a-z0-9_\-]*|code)=([^&#\s\"'<>]+)"
        ),
        1,
    ),
    (  # name = value, name: value (aws_secret_access_key=..., "password": "...", API key: ...)
        re.compile(
            r"(?i)\b[a-z0-9_\-]*(?:api[-_ ]?key|apikey|secret|passw(?:or)?d|pwd|token(?!s)"
            r"|private[-_ ]?key|credential)(?![a-z])[a-z0-9_\-]*[\"']?\s*(?:[:=]|=>)\s*[\"']?"
            r"([^\s\"',;&]{6,})"
        ),
        1,
    ),
    (  # in prose: "the password is hunter22", "my API key is ..."
        re.compile(
            r"(?i)\b(?:passw(?:or)?d|api[-_ ]?key|secret[-_ ]?key)\s+is\s+[\"']?([^\s\"',;]{6,})"
        ),
        1,
    ),
    (  # "PIN 4921", "pin code: 0042"
        re.compile(r"(?i)\bpin(?:[-_ ]?code)?\b\s*(?:[:=#]|is|was)?\s*[\"']?(\d{4,8})\b"),
        1,
    ),
    (
        re.compile(
            r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?"
            r"(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
            re.DOTALL,
        ),
        0,
    ),
]
# In prose: a password word, then its value ("password hunter2", "passcode: tulip",
# "pwd -> x9!"). With nothing between them the value must hold a digit or a symbol, so that
# "password reset" and "the password manager" stay.
_PASSWORD_WORD = re.compile(
    r"(?i)\b(?:passw(?:or)?d|passwort|passcode|passphrase|pwd|pw|pass(?=\s*[:=])"
    r"|login\s+code|secret[-_ ]?key|mot\s+de\s+passe|contrase[ñn]a|senha|wachtwoord|пароль)s?\b"
    r"(\s*(?:[:=]|->|→|\bis\b|\bwas\b|\bist\b|\best\b|\bes\b)?\s*)"
    r"[\"'“‘„«]?([^\s\"'“”‘’„«»,;]{4,})"
)
_SYMBOL_OR_DIGIT = re.compile(r"[^A-Za-z]")
# Random-looking words in free text, by detect-secrets' entropy measures: runs of base64
# characters ("-" and "_" split them: they join the words of names like all-MiniLM-L6-v2)
_ENTROPY_WORD = re.compile(r"[A-Za-z0-9+/]{20,}={0,2}")
_HEX_MIN_LENGTH = 32
# detect-secrets' base64 limit (4.5 bits) is for quoted strings in code; 2 % of random
# 40-character keys fall below it. A random word of n characters from 64 reaches about
# log2(n) bits: this threshold misses 1 in 10,000 random 40-character keys (measured).
_BITS_AT_40 = 4.2
# share of a word in English-looking pieces (lower-case runs, Capitalised words) at which it
# is a name, not a key: random 40-character keys stay under it 999 times in 1,000 (measured).
# Together: about 1 in 2,000 random 40-character keys, 1 in 500 of 30 and 1 in 100 of 20
# characters are missed when nothing names them; a word named a key is always caught.
_WORDY = 0.6
# a word that follows "AWS secret key", "token:", "password" is a key whatever it looks like
_NAMED_KEY = re.compile(
    r"(?i)\b(?:aws|secret|key|token|credentials?|passw(?:or)?d|pwd)\b[^\n.;]{0,30}$"
)
_WORDISH = re.compile(r"[a-z]{4,}|[A-Z][a-z]{3,}")
_MIN_VALUE = 4  # a value after a password word shorter than this is left
_URL_CHUNK = re.compile(r"\S*://\S*")
_SKIPPED_PLUGINS = {"IPPublicDetector"}  # an IP address is personal data (redaction.py)
_lock = threading.Lock()
_secrets: set[str] = set()


@functools.cache
def _catalogue() -> tuple[re.Pattern[str], ...]:
    """detect-secrets' regex plugins' patterns (imported on first use: ~0.1 s)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import BasePlugin, RegexBasedDetector

    plugins: Mapping[str, type[BasePlugin]] = get_mapping_from_secret_type_to_class()
    patterns: list[re.Pattern[str]] = []
    for plugin in plugins.values():
        if issubclass(plugin, RegexBasedDetector) and plugin.__name__ not in _SKIPPED_PLUGINS:
            # a detector's denylist: a class attribute (a tuple of compiled patterns) under
            # the base class's abstract property
            patterns.extend(cast("Iterable[re.Pattern[str]]", plugin.denylist))
    return tuple(patterns)


@functools.cache
def _keyword_patterns() -> tuple[re.Pattern[str], tuple[tuple[re.Pattern[str], int], ...]]:
    """detect-secrets' KeywordDetector: its keywords, and its patterns (for config files and
    for quoted values, applied to any text: ``password: x``, ``db_pass = "x"``)."""
    from detect_secrets.plugins import keyword

    found = {
        **keyword.CONFIG_DENYLIST_REGEX_TO_GROUP,
        **keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
    }
    return re.compile("|".join(keyword.DENYLIST), re.IGNORECASE), tuple(found.items())


@functools.cache
def _entropy_plugins() -> tuple[Base64HighEntropyString, HexHighEntropyString]:
    """detect-secrets' Base64HighEntropyString and HexHighEntropyString, at their limits."""
    from detect_secrets.plugins.high_entropy_strings import (
        Base64HighEntropyString,
        HexHighEntropyString,
    )

    return Base64HighEntropyString(), HexHighEntropyString()


def _has_letters_and_digits(word: str) -> bool:
    return any(c.isdigit() for c in word) and any(c.isalpha() for c in word)


def _random_looking(word: str) -> bool:
    """A word that holds letters and digits and is random to detect-secrets' entropy
    measures (an AWS secret access key, a hex token); prose, hashtags, model names
    (``HuggingFaceTB/SmolLM2``) and numbers are not."""
    word = word.rstrip("=")
    if not _has_letters_and_digits(word):
        return False
    base64, hexa = _entropy_plugins()
    if all(c in hexa.charset for c in word):
        return (
            len(word) >= _HEX_MIN_LENGTH
            and hexa.calculate_shannon_entropy(word) > hexa.entropy_limit
        )
    if sum(map(len, _WORDISH.findall(word))) >= _WORDY * len(word):
        return False
    limit = min(base64.entropy_limit, _BITS_AT_40 * math.log2(len(word)) / math.log2(40))
    return base64.calculate_shannon_entropy(word) > limit


def _match_end(pattern: re.Pattern[str], text: str, pos: int) -> int:
    """Where ``pattern`` (one that matches the empty string) stops matching from ``pos``."""
    match = pattern.match(text, pos)
    return match.end() if match is not None else pos


def _value(text: str, start: int, end: int) -> tuple[int, int]:
    """A value found in prose, less a full stop or a bracket after it; nothing when it is
    (or holds) a placeholder gpta wrote (``[SECRET]``, ``[EMAIL]``)."""
    while end > start and text[end - 1] in ".)":  # "!" and "?" may be part of a password
        end -= 1
    if "[" in text[start:end] or "]" in text[start:end] or end - start < _MIN_VALUE:
        return start, start
    return start, end


def _prose_spans(text: str) -> list[tuple[int, int]]:
    """Values after a password word, keyword assignments, and random-looking words."""
    spans: list[tuple[int, int]] = []
    for match in _PASSWORD_WORD.finditer(text):
        start, end = _value(text, *match.span(2))
        if match.group(1).strip() or _SYMBOL_OR_DIGIT.search(text[start:end]):
            spans.append((start, end))
    keywords, patterns = _keyword_patterns()
    for pattern, group in patterns:
        for match in pattern.finditer(text):
            stem = keywords.search(match.group(0))
            after = match.start() + stem.end() if stem else match.start()
            if text[after : after + 1].islower():
                continue  # an English word that starts like one: secretary, passwords
            start, end = match.span(group)
            if not (start > 0 and text[start - 1] in "'\"`"):  # unquoted: one word of prose,
                end = start + len(text[start:end].split(maxsplit=1)[0]) if end > start else end
                start, end = _value(text, start, end)  # not the rest of the line
            spans.append((start, end))
    urls = [m.span() for m in _URL_CHUNK.finditer(text)]  # URL paths are not keys
    for match in _ENTROPY_WORD.finditer(text):
        start, end = match.span()
        inside_url = any(a <= start and end <= b for a, b in urls)
        if inside_url:
            continue
        word = match.group(0)
        named = _NAMED_KEY.search(text, max(0, start - 40), start) is not None
        if _random_looking(word) or (named and _has_letters_and_digits(word)):
            spans.append((start, end))
    return spans


def register_secret(value: str | None) -> None:
    """Remember a secret value so that :func:`scrub` removes it."""
    if value and len(value.strip()) >= _MIN_LENGTH:
        with _lock:
            _secrets.add(value.strip())


def _spans(text: str, prose: bool) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    with _lock:
        known = list(_secrets)
    for secret in known:
        start = text.find(secret)
        while start != -1:
            spans.append((start, start + len(secret)))
            start = text.find(secret, start + 1)
    for pattern in _catalogue():
        for match in pattern.finditer(text):
            start, end = match.span()
            if pattern.groups and match.group(1) and match.start(1) > start:
                start, end = match.span(1)  # "context: (value)": only the value
            if end > start and _TOKEN_END.search(text[start:end]):
                # a pattern that stops inside a token (a JWT's signature) takes all of it
                end = _match_end(_TOKEN_CHARS, text, end)
            spans.append((start, end))
    for pattern, group in _OWN_SHAPES:
        for match in pattern.finditer(text):
            spans.append(match.span(group))
    if prose:
        spans.extend(_prose_spans(text))
    return [(a, b) for a, b in spans if b > a]


def scrub_counted(text: str, *, prose: bool = False) -> tuple[str, int]:
    """``text`` with every secret replaced by ``[SECRET]``, and how many were replaced.

    ``prose``: also the secrets written in free text (a value after a password word,
    detect-secrets' keyword assignments, random-looking words), for what is sent to the TA
    (:func:`gpta.privacy.channel.clean_text`); not for gpta's own records, whose hashes
    look random. Overlapping finds are merged into one placeholder; repeated until nothing
    is found, so the result scrubs to itself."""
    total = 0
    for _ in range(8):
        spans = sorted(_spans(text, prose))
        if not spans:
            break
        merged: list[list[int]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        merged = [m for m in merged if text[m[0] : m[1]] != PLACEHOLDER]
        if not merged:
            break
        pieces, last = [], 0
        for start, end in merged:
            pieces += [text[last:start], PLACEHOLDER]
            last = end
        text = "".join([*pieces, text[last:]])
        total += len(merged)
    return text, total


def scrub(text: str) -> str:
    """``text`` with every registered secret and every key-shaped string replaced."""
    return scrub_counted(text)[0]


def scrub_obj(value: Any) -> Any:
    """:func:`scrub` applied to every string inside dicts, lists and tuples (a lone
    surrogate, which no file can hold as UTF-8, becomes ``?``)."""
    if isinstance(value, str):
        return scrub(value.encode("utf-8", "replace").decode("utf-8"))
    if isinstance(value, dict):
        return {k: scrub_obj(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub_obj(v) for v in value)
    return value


def scrub_result(result: ChatResult) -> tuple[ChatResult, int]:
    """A chat result with every secret removed from its texts and faults, and how many
    were removed from the texts (a server that echoes the key gets ``[SECRET]`` back)."""
    texts, removed = [], 0
    for text in result.texts:
        clean, count = scrub_counted(text)
        texts.append(clean)
        removed += count
    faults = tuple(scrub(fault) for fault in result.faults)
    if not removed and faults == tuple(result.faults):
        return result, 0
    return dataclasses.replace(result, texts=texts, faults=faults), removed
