"""The only way the teaching assistant reaches an LLM.

Every request is first cleaned (:func:`clean_text`): secrets (:mod:`gpta.secrets`:
registered keys, token formats, credentials in URLs, passwords and random-looking keys written
in prose) become ``[SECRET]`` and personal details
(:class:`gpta.privacy.redaction.Redactor`: URLs, e-mail addresses, IBANs, dates of birth,
postal addresses and postcodes, phone and card numbers, IPs, handles, listed names) typed
placeholders, in every message, the description included.
The cleaned request is what the leak guard checks, what the ledger records and what is sent:
the ledger holds the exact text that left the machine. A request that copies a run of words
from any data row, other than the allowed redacted exemplars, is recorded as ``blocked`` and
raises :class:`RequestBlocked`; nothing is sent and nothing is retried. Otherwise it is
recorded in full, with the ids of the exemplar rows it carries (none under the default
``none`` policy), *before* it is sent.

Every answer is scrubbed of secrets (a server that echoes the API key) before it is recorded
or returned, so no history, metrics file, terminal line or prefix can hold one; the response
cache scrubs before it stores (:class:`gpta.llm.cache.CachedChatModel`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING

from gpta.chat.base import (
    ChatModel,
    ChatResult,
    Message,
    Sampling,
    Usage,
    bound_answers,
    count_prompt_tokens,
)
from gpta.chat.usage import UsageMeter
from gpta.privacy.ledger import ExposureLedger
from gpta.privacy.redaction import Redactor
from gpta.secrets import scrub_counted, scrub_result

if TYPE_CHECKING:
    from gpta.chat.structured import OutputSchema
    from gpta.privacy.exemplar import Exemplar
    from gpta.privacy.guard import LeakGuard, LeakReport


class RequestBlocked(RuntimeError):
    """The leak guard stopped a request: it copies training rows beyond the policy."""

    def __init__(self, request_id: int, report: LeakReport) -> None:
        super().__init__(f"blocked by the leak guard (ledger id {request_id}): {report.summary()}")
        self.request_id = request_id
        self.report = report
        self.attempts = 0  # nothing was sent


class ExposureChannel:
    """Records each request in the ledger before it is sent, then the response.

    With a :class:`UsageMeter` it also enforces the TA budget: a request the budget does
    not allow raises :class:`gpta.chat.usage.BudgetExhausted` before anything is recorded or
    sent. ``usage`` counts every answer, cached or not; the meter tells them apart.
    """

    def __init__(
        self,
        chat_model: ChatModel | None,
        ledger: ExposureLedger,
        meter: UsageMeter | None = None,
        *,
        guard: LeakGuard | None = None,
        exemplars: Sequence[Exemplar] = (),
        policy: str = "none",
        redactor: Redactor | None = None,
    ) -> None:
        self.chat_model = chat_model  # None: a run whose fixed prefix never asks the TA
        self.ledger = ledger
        self.meter = meter
        self.guard = guard
        self.exemplars = list(exemplars)
        self.policy = policy
        self.redactor = redactor or Redactor()
        self.requests = 0  # sent (recorded before sending)
        self.failed = 0  # sent, and no answer came back (an error, a timeout)
        self.blocked = 0  # stopped by the leak guard: not sent
        self.last_block: str | None = None  # the last block's summary (row ids, no text)
        self.usage = Usage()

    def _sender(self) -> ChatModel:
        """The chat model requests go to."""
        if self.chat_model is None:
            raise RuntimeError("this run asks no TA: its channel has no chat model")
        return self.chat_model

    def send(
        self,
        messages: list[Message],
        sampling: Sampling,
        *,
        schema: OutputSchema | None = None,
    ) -> ChatResult:
        """Clean, check, record and send one conversation; errors are recorded and re-raised.

        With ``schema`` (structured output) the request record holds the schema as sent
        (``output_schema``) and the response record how the answer was constrained
        (``structured``: json_schema, json_object, grammar or free_text)."""
        original = messages
        messages, removed = self.clean(messages)
        params = sampling.as_dict()
        if self.guard is not None:
            report = self.guard.check(messages)
            if report is not None:
                self.blocked += 1
                self.last_block = report.summary()
                block_id = self.ledger.record_block(
                    backend=self._sender().backend,
                    model=self._sender().model_name,
                    messages=messages,
                    copied_row_ids=report.row_ids,
                    reason="verbatim overlap with data rows outside the allowed exemplars",
                    windows=report.windows,
                    spans=[list(span) for span in report.spans],
                    policy=self.policy,
                    removed=removed,
                )
                raise RequestBlocked(block_id, report)
        if self.meter is not None:
            # worst case: a server that ignores n is sent the prompt n times
            prompt = count_prompt_tokens(self.chat_model, messages) * sampling.n
            self.meter.check(prompt, sampling.n * sampling.max_new_tokens)
        request_id = self.ledger.record_request(
            backend=self._sender().backend,
            model=self._sender().model_name,
            messages=messages,
            row_ids=self.rows_in(messages, original),
            params=params,
            policy=self.policy,
            removed=removed,
            **({} if schema is None else {"output_schema": json.loads(schema.key())}),
        )
        self.requests += 1
        try:
            if schema is None:
                result = self._sender().chat(messages, sampling)  # exactly what was recorded
            else:
                result = self._sender().chat(messages, sampling, schema=schema)
        except Exception as err:
            self.failed += 1
            attempts = getattr(err, "attempts", 1)
            faults = list(getattr(err, "faults", ()))
            self.ledger.record_error(
                request_id, f"{type(err).__name__}: {err}", attempts=attempts, faults=faults
            )
            if self.meter is not None:
                self.meter.add_failure(attempts)
            raise
        result = bound_answers(result)  # a runaway answer is cut before it is scanned or kept
        result, secrets_removed = scrub_result(result)  # before anything stores or uses it
        self.usage = self.usage + result.usage
        if self.meter is not None:
            self.meter.add(result)
        self.ledger.record_response(
            request_id,
            texts=result.texts,
            usage=asdict(result.usage),
            seconds=result.seconds,
            cached=result.cached,
            attempts=result.attempts,
            faults=list(result.faults),
            **({"secrets_removed": secrets_removed} if secrets_removed else {}),
            **({} if schema is None else {"structured": result.structured}),
        )
        return result

    def clean(self, messages: list[Message]) -> tuple[list[Message], dict[str, int]]:
        """:func:`clean_messages` with this channel's redactor."""
        return clean_messages(messages, self.redactor)

    def rows_in(self, messages: list[Message], original: list[Message] | None = None) -> list[str]:
        """Ids of the allowed exemplars whose (redacted) text this request carries, in the
        cleaned messages or in the ``original`` ones (when cleaning touched an exemplar, the
        row is still counted: over-reporting is the safe side)."""
        contents = [m["content"] for m in [*messages, *(original or [])]]
        return [e.row_id for e in self.exemplars if any(e.text in c for c in contents)]


def clean_text(text: str, redactor: Redactor | None = None) -> tuple[str, dict[str, int]]:
    """``text`` as it may leave: secrets (those written in prose too) and personal details
    replaced, made valid UTF-8; and how many values of each kind were replaced (counts, no
    values). Every message and every exemplar is cleaned by this one function."""
    redactor = redactor or Redactor()
    counts: Counter[str] = Counter()
    text = text.encode("utf-8", "replace").decode("utf-8")  # a lone surrogate: "?"
    # until nothing changes: a placeholder the redactor writes can complete a secret's
    # shape ("://[SECRET][HANDLE]-@" reads as URL credentials), and what leaves must
    # clean to itself
    for _ in range(4):
        scrubbed, secrets = scrub_counted(text, prose=True)
        counts["secret"] += secrets
        redacted = redactor.redact(scrubbed)
        counts.update(redacted.counts)
        if redacted.text == text:
            break
        text = redacted.text
    return text, {kind: count for kind, count in sorted(counts.items()) if count}


def clean_messages(
    messages: list[Message], redactor: Redactor | None = None
) -> tuple[list[Message], dict[str, int]]:
    """``messages`` as they may leave (:func:`clean_text` on each), and how many values of
    each kind were replaced."""
    counts: Counter[str] = Counter()
    cleaned = []
    for message in messages:
        text, removed = clean_text(str(message.get("content", "")), redactor)
        counts.update(removed)
        cleaned.append({**message, "content": text})
    return cleaned, {kind: count for kind, count in sorted(counts.items()) if count}
