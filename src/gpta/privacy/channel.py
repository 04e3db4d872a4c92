"""The only way the teaching assistant reaches an LLM.

Every request is first checked by the leak guard (when the run has one): a request that
copies a run of words from any data row, other than the allowed redacted exemplars, is
recorded as ``blocked`` and raises :class:`RequestBlocked`; nothing is sent and nothing is
retried. Otherwise it is recorded in full, with the ids of the exemplar rows it carries
(none under the default ``none`` policy), *before* it is sent, then the response.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING

from gpta.llm.base import ChatModel, ChatResult, Message, Usage
from gpta.llm.usage import UsageMeter
from gpta.privacy.ledger import ExposureLedger

if TYPE_CHECKING:
    from gpta.llm.structured import OutputSchema
    from gpta.privacy.guard import LeakGuard, LeakReport
    from gpta.privacy.policy import Exemplar


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
    not allow raises :class:`gpta.llm.usage.BudgetExhausted` before anything is recorded or
    sent. ``usage`` counts every answer, cached or not; the meter tells them apart.
    """

    def __init__(
        self,
        chat_model: ChatModel,
        ledger: ExposureLedger,
        meter: UsageMeter | None = None,
        *,
        guard: LeakGuard | None = None,
        exemplars: Sequence[Exemplar] = (),
        policy: str = "none",
    ) -> None:
        self.chat_model = chat_model
        self.ledger = ledger
        self.meter = meter
        self.guard = guard
        self.exemplars = list(exemplars)
        self.policy = policy
        self.requests = 0
        self.blocked = 0
        self.usage = Usage()

    def send(
        self,
        messages: list[Message],
        *,
        n: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        seed: int,
        schema: OutputSchema | None = None,
    ) -> ChatResult:
        """Send one conversation; errors are recorded and re-raised.

        With ``schema`` (structured output) the request record holds the schema as sent
        (``output_schema``) and the response record how the answer was constrained
        (``structured``: json_schema, json_object, grammar or free_text)."""
        params = {
            "n": n,
            "temperature": temperature,
            "top_p": top_p,
            "max_new_tokens": max_new_tokens,
            "seed": seed,
        }
        if self.guard is not None:
            report = self.guard.check(messages)
            if report is not None:
                self.blocked += 1
                block_id = self.ledger.record_block(
                    backend=self.chat_model.backend,
                    model=self.chat_model.model_name,
                    messages=messages,
                    copied_row_ids=report.row_ids,
                    reason="verbatim overlap with data rows outside the allowed exemplars",
                    windows=report.windows,
                    spans=[list(span) for span in report.spans],
                    policy=self.policy,
                )
                raise RequestBlocked(block_id, report)
        if self.meter is not None:
            # worst case: a server that ignores n is sent the prompt n times
            prompt = _prompt_tokens(self.chat_model, messages) * n
            self.meter.check(prompt, n * max_new_tokens)
        request_id = self.ledger.record_request(
            backend=self.chat_model.backend,
            model=self.chat_model.model_name,
            messages=messages,
            row_ids=self.rows_in(messages),
            params=params,
            policy=self.policy,
            **({} if schema is None else {"output_schema": json.loads(schema.key())}),
        )
        self.requests += 1
        try:
            if schema is None:
                result = self.chat_model.chat(messages, **params)
            else:
                result = self.chat_model.chat(messages, **params, schema=schema)
        except Exception as err:
            attempts = getattr(err, "attempts", 1)
            faults = list(getattr(err, "faults", ()))
            self.ledger.record_error(
                request_id, f"{type(err).__name__}: {err}", attempts=attempts, faults=faults
            )
            if self.meter is not None:
                self.meter.add_failure(attempts)
            raise
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
            **({} if schema is None else {"structured": result.structured}),
        )
        return result

    def rows_in(self, messages: list[Message]) -> list[str]:
        """Ids of the allowed exemplars whose (redacted) text this request carries."""
        contents = [m["content"] for m in messages]
        return [e.row_id for e in self.exemplars if any(e.text in c for c in contents)]


def _prompt_tokens(chat_model: ChatModel, messages: list[Message]) -> int:
    counter = getattr(chat_model, "count_message_tokens", None)
    if callable(counter):
        return int(counter(messages))
    return sum(len(m["content"]) for m in messages) // 3 + 1
