"""What the teaching assistant answers: one JSON object, defined here once (pydantic).

    {"instruction": "Read the tweet and decide how its author feels."}

The backends get it as a JSON schema (a grammar for local models, ``response_format`` for
servers: :mod:`gpta.chat.structured`). ``instruction`` is the prefix (for the cloze head, the
template sentence holding ``{mask}``). Its length is capped in characters so that a grammar
closes the string before the token limit cuts the answer off; an answer that is cut off
anyway is read by :func:`read_answer` up to its last whole sentence.
"""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, ConfigDict, Field, create_model

from gpta.chat.structured import OutputSchema

SCHEMA_NAME = "gpta_instruction"
# characters per token a cap may assume: low, so the grammar closes before the token limit
CHARS_PER_TOKEN = 4
_JSON_OVERHEAD_TOKENS = 12  # {"instruction": "..."} and the end-of-turn token


class Proposal(BaseModel):
    """One proposal: the instruction the small model reads before every input."""

    model_config = ConfigDict(extra="forbid", title="proposal")

    instruction: str = Field(
        description="One or two plain sentences said to the model in front of every input: "
        "what to look for and how to answer. Never an answer, a label or a question to us."
    )


def proposal_schema(max_new_tokens: int) -> OutputSchema:
    """The schema of one answer whose completion may be ``max_new_tokens`` tokens long."""
    max_chars = max(24, (max_new_tokens - _JSON_OVERHEAD_TOKENS) * CHARS_PER_TOKEN)
    model = create_model(
        "Proposal",
        __base__=Proposal,
        instruction=(
            str,
            Field(
                min_length=1,
                max_length=max_chars,
                description=Proposal.model_fields["instruction"].description,
            ),
        ),
    )
    return OutputSchema.from_model(SCHEMA_NAME, model)


_STRING_START = re.compile(r'^\s*\{\s*"instruction"\s*:\s*"')
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def read_answer(text: str, schema: OutputSchema) -> tuple[str | None, str]:
    """``(instruction, how)``. ``how`` is ``json`` (valid under the schema); ``json_partial``
    (a JSON answer that is not valid, e.g. cut off by the token limit: its instruction as far
    as it goes, and a string cut mid-way only up to its last whole sentence, else ``None``);
    or ``not_json`` (``None``: the caller falls back to the free-text parser)."""
    data = schema.parse(text)
    if data is not None:
        return str(data["instruction"]), "json"
    start = _STRING_START.match(text)
    if start is None:
        return None, "not_json"
    body = text[start.end() :]
    close = _closing_quote(body)
    if close is not None:  # the string is whole; what follows it is not (cut, or extra)
        try:
            return json.loads('"' + body[:close] + '"'), "json_partial"
        except json.JSONDecodeError:
            return None, "not_json"
    value = None  # cut inside the string: decode as much of it as decodes
    for end in range(len(body), max(len(body) - 8, 0), -1):
        try:
            value = json.loads('"' + body[:end] + '"')
            break
        except json.JSONDecodeError:
            continue
    ends = list(_SENTENCE_END.finditer(value or ""))
    if value is None or not ends:
        return None, "json_partial"
    return value[: ends[-1].end()].strip(), "json_partial"


def at_cap(value: str, schema: OutputSchema) -> str | None:
    """A JSON string that reached the schema's length cap (the grammar closed it there), cut
    back to its whole sentences, else its whole words; ``None`` when it is under the cap."""
    cap = schema.schema.get("properties", {}).get("instruction", {}).get("maxLength")
    if cap is None or len(value) < int(cap) - 1:
        return None
    ends = list(_SENTENCE_END.finditer(value))
    if ends and ends[-1].end() > len(value) // 3:
        return value[: ends[-1].end()]
    cut = value.rsplit(None, 1)[0] if len(value.split()) > 1 else value
    return cut.rstrip(" ,;:-–—(") + "."


def _closing_quote(body: str) -> int | None:
    """Index of the quote that ends a JSON string body, or ``None`` (it was cut off)."""
    escaped = False
    for index, ch in enumerate(body):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            return index
    return None
