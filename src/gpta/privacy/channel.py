"""The only way the teaching assistant reaches an LLM.

Under the ``none`` exposure policy (the only one so far) the assistant builds
its messages from the dataset description and aggregate scores; no training
row is attached, so every request is recorded with an empty ``row_ids``.
"""

from __future__ import annotations

from dataclasses import asdict

from gpta.llm.base import ChatModel, ChatResult, Message, Usage
from gpta.privacy.ledger import ExposureLedger


class ExposureChannel:
    """Records each request in the ledger before it is sent, then the response."""

    def __init__(self, chat_model: ChatModel, ledger: ExposureLedger) -> None:
        self.chat_model = chat_model
        self.ledger = ledger
        self.requests = 0
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
    ) -> ChatResult:
        """Send one conversation; errors are recorded and re-raised."""
        params = {
            "n": n,
            "temperature": temperature,
            "top_p": top_p,
            "max_new_tokens": max_new_tokens,
            "seed": seed,
        }
        request_id = self.ledger.record_request(
            backend=self.chat_model.backend,
            model=self.chat_model.model_name,
            messages=messages,
            row_ids=[],
            params=params,
        )
        self.requests += 1
        try:
            result = self.chat_model.chat(messages, **params)
        except Exception as err:
            self.ledger.record_error(request_id, f"{type(err).__name__}: {err}")
            raise
        self.usage = self.usage + result.usage
        self.ledger.record_response(
            request_id, texts=result.texts, usage=asdict(result.usage), seconds=result.seconds
        )
        return result
