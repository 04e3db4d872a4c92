"""Secrets (API keys, credential headers) never reach a file the run writes.

The values are registered once (:func:`register_secret`; :func:`register_config_secrets`
reads ``assistant.api_key_env`` and every ``env:NAME`` header of the config) and
:func:`scrub` replaces them, and anything shaped like a bearer token or an ``sk-`` key,
with ``[SECRET]``. The ledger scrubs every record before it is written, and TA error
messages are scrubbed before they reach the history or the terminal.
"""

from __future__ import annotations

import os
import re
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpta.config import GptaConfig

PLACEHOLDER = "[SECRET]"
_MIN_LENGTH = 6  # shorter values would blank out ordinary words
_KEY_SHAPES = re.compile(
    r"\b(?:sk|pk|rk|sess)-[A-Za-z0-9_\-]{16,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=\-]{16,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
)
_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret value so that :func:`scrub` removes it."""
    if value and len(value.strip()) >= _MIN_LENGTH:
        with _lock:
            _secrets.add(value.strip())


def register_config_secrets(config: GptaConfig) -> None:
    """The API key and every header read from the environment (``env:NAME``)."""
    assistant = config.assistant
    key_env = getattr(assistant, "api_key_env", None)
    if key_env:
        register_secret(os.environ.get(key_env))
    for value in (getattr(assistant, "extra_headers", None) or {}).values():
        if isinstance(value, str) and value.startswith("env:"):
            register_secret(os.environ.get(value.removeprefix("env:")))


def scrub(text: str) -> str:
    """``text`` with every registered secret and key-shaped string replaced."""
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, PLACEHOLDER)
    return _KEY_SHAPES.sub(PLACEHOLDER, text)


def scrub_obj(value: Any) -> Any:
    """:func:`scrub` applied to every string inside dicts, lists and tuples."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: scrub_obj(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_obj(v) for v in value]
    return value
