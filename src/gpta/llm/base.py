"""The one chat-model interface every TA backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": "..."}


@dataclass(frozen=True)
class Usage:
    """Tokens spent by one request."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


@dataclass(frozen=True)
class ChatResult:
    """``n`` sampled completions for one conversation."""

    texts: list[str]
    usage: Usage
    seconds: float


class ChatModel(Protocol):
    """Messages in; n completions, text and token usage out."""

    backend: str
    model_name: str

    def chat(
        self,
        messages: list[Message],
        *,
        n: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        seed: int,
    ) -> ChatResult: ...
