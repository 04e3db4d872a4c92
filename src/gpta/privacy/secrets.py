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
  ``password = ...``-style assignments and PEM private key blocks. detect-secrets' own
  keyword and entropy plugins are not used: they are built for source files (they need a
  file type) and flag ordinary words in prose.

The channel (:mod:`gpta.privacy.channel`) scrubs every outgoing message before it is checked,
recorded and sent, and every answer before it is recorded, cached or used; the ledger scrubs
every other record before it is written; TA error messages are scrubbed before they reach
the history or the terminal.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpta.llm.base import ChatResult

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
    (
        re.compile(
            r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?"
            r"(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
            re.DOTALL,
        ),
        0,
    ),
]
_SKIPPED_PLUGINS = {"IPPublicDetector"}  # an IP address is personal data (redaction.py)
_lock = threading.Lock()
_secrets: set[str] = set()


@functools.cache
def _catalogue() -> tuple[re.Pattern[str], ...]:
    """detect-secrets' regex plugins' patterns (imported on first use: ~0.1 s)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector

    patterns: list[re.Pattern[str]] = []
    for plugin in get_mapping_from_secret_type_to_class().values():
        if issubclass(plugin, RegexBasedDetector) and plugin.__name__ not in _SKIPPED_PLUGINS:
            patterns.extend(plugin.denylist)
    return tuple(patterns)


def register_secret(value: str | None) -> None:
    """Remember a secret value so that :func:`scrub` removes it."""
    if value and len(value.strip()) >= _MIN_LENGTH:
        with _lock:
            _secrets.add(value.strip())


def _spans(text: str) -> list[tuple[int, int]]:
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
                end = _TOKEN_CHARS.match(text, end).end()
            spans.append((start, end))
    for pattern, group in _OWN_SHAPES:
        for match in pattern.finditer(text):
            spans.append(match.span(group))
    return [(a, b) for a, b in spans if b > a]


def scrub_counted(text: str) -> tuple[str, int]:
    """``text`` with every secret replaced by ``[SECRET]``, and how many were replaced.

    Overlapping finds are merged into one placeholder; repeated until nothing is found, so
    the result scrubs to itself."""
    total = 0
    for _ in range(8):
        spans = sorted(_spans(text))
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
