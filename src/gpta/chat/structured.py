"""Structured output: a JSON schema the TA's answer must follow, and how each backend gets it.

A request may carry an :class:`OutputSchema`. Every backend says in
:attr:`gpta.chat.base.ChatResult.structured` how the answer was constrained:

- ``"json_schema"``: an OpenAI-compatible server honoured OpenAI's form,
  ``response_format={"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``;
- ``"json_object"``: a server honoured llama-cpp-python's form,
  ``response_format={"type": "json_object", "schema": {...}}``;
- ``"grammar"``: a local backend decoded under a grammar compiled from the schema
  (llama.cpp's JSON-schema grammar in process, xgrammar for transformers);
- ``"free_text"``: nothing constrained the answer (a server that honours neither form, or
  a local backend without a grammar library): the caller parses free text.

Servers differ, and some accept a schema with HTTP 200 without enforcing it, so every
answer is validated (:meth:`OutputSchema.check`) and what a server honours is learned by
trying the forms in :data:`SERVER_FORMS` order, then remembered per base URL and model in
memory and in ``structured-output.json`` beside the response cache (:class:`ServerForms`).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

from gpta.paths import llm_cache_path

#: What a server is asked with, in the order tried; ``free_text`` sends no response_format.
SERVER_FORMS = ("json_schema", "json_object", "free_text")
PATHS = ("json_schema", "json_object", "grammar", "free_text")
# keywords OpenAI's strict mode refuses or ignores: kept for grammars, dropped from its form
_STRICT_UNSUPPORTED = ("maxLength", "minLength", "title")


@dataclass(frozen=True)
class OutputSchema:
    """A JSON schema (``schema``) with a ``name``, and a pydantic model that validates an
    answer against it (``None``: only "a JSON object holding the required keys")."""

    name: str
    schema: dict[str, Any]
    model: type[BaseModel] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_model(cls, name: str, model: type[BaseModel]) -> OutputSchema:
        return cls(name, model.model_json_schema(), model)

    def key(self) -> str:
        """The canonical JSON of the schema (for cache keys and grammar caches)."""
        return json.dumps({"name": self.name, "schema": self.schema}, sort_keys=True)

    def parse(self, text: str) -> dict[str, Any] | None:
        """The answer as a dict when it is valid under the schema, else ``None``."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError):
            return None
        if not isinstance(data, dict):
            return None
        if self.model is not None:
            try:
                return self.model.model_validate(data).model_dump()
            except ValidationError:
                return None
        required = self.schema.get("required", [])
        return data if all(name in data for name in required) else None

    def check(self, text: str) -> str:
        """``valid``; ``cut`` (a JSON object that was not finished: the token limit, not the
        server, stopped it); or ``invalid`` (finished, and not what the schema asks)."""
        if self.parse(text) is not None:
            return "valid"
        stripped = text.strip()
        if stripped.startswith("{") and _scan(stripped)[1]:
            return "cut"
        return "invalid"

    def strict_schema(self) -> dict[str, Any]:
        """The schema for OpenAI's strict mode: the keywords it does not take removed."""
        return _without(self.schema, _STRICT_UNSUPPORTED)


def response_format(form: str, schema: OutputSchema) -> dict[str, Any] | None:
    """The ``response_format`` body of a request in ``form`` (``None`` for free text)."""
    if form == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": schema.name, "schema": schema.strict_schema(), "strict": True},
        }
    if form == "json_object":
        return {"type": "json_object", "schema": schema.schema}
    if form == "free_text":
        return None
    raise ValueError(f"unknown structured-output form {form!r}")


def json_spans(text: str) -> list[str]:
    """Balanced ``{...}`` or ``[...]`` spans of a text, outermost first (string-aware): the
    JSON a free-text answer may hold, for the caller to decode."""
    return _scan(text)[0]


def _scan(text: str) -> tuple[list[str], bool]:
    """``(spans, open)``: the balanced spans of :func:`json_spans`, and whether the text
    ends inside a span (an unclosed bracket or string)."""
    spans, depth, start, quoted, escaped = [], 0, -1, False, False
    for i, char in enumerate(text):
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
            continue
        if char == '"' and depth:
            quoted = True
        elif char in "{[":
            if depth == 0:
                start = i
            depth += 1
        elif char in "}]" and depth:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
    return spans, depth > 0


def _without(value: Any, keys: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(v, keys) for v in value]
    return value


def default_forms_path() -> Path:
    """``structured-output.json`` beside the response cache file."""
    return llm_cache_path().parent / "structured-output.json"


class ServerForms:
    """Which ``response_format`` form each server (base URL + model) honours.

    Kept in memory for the process and in a small JSON file, so a later run does not probe
    again. A finding is replaced when a server stops honouring it (an answer that is
    finished but not valid under the schema).
    """

    _lock = threading.Lock()
    _memory: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_forms_path()

    @staticmethod
    def key(base_url: str, model: str) -> str:
        return f"{base_url.rstrip('/')}|{model}"

    def get(self, base_url: str, model: str) -> str | None:
        key = self.key(base_url, model)
        with self._lock:
            found = self._memory.get(f"{self.path}::{key}")
            if found is None:
                found = self._read().get(key)
                if found is not None:
                    self._memory[f"{self.path}::{key}"] = found
        form = found.get("form") if found else None
        return form if form in SERVER_FORMS else None

    def put(self, base_url: str, model: str, form: str, why: str) -> None:
        key = self.key(base_url, model)
        entry = {"form": form, "why": why, "time": round(time.time(), 3)}
        with self._lock:
            self._memory[f"{self.path}::{key}"] = entry
            data = self._read()
            data[key] = entry
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd, staging = tempfile.mkstemp(prefix=".forms-", dir=self.path.parent)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(data, handle, indent=1, sort_keys=True)
                os.replace(staging, self.path)
            except OSError:  # a read-only cache dir: the finding stays in memory
                pass

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}
