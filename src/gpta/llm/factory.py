"""Build the configured chat backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpta.errors import GptaUserError
from gpta.llm.base import ChatModel

if TYPE_CHECKING:
    from gpta.config import AssistantConfig


def make_chat_model(config: AssistantConfig, *, device: str = "cpu") -> ChatModel:
    """The TA backend named by ``assistant.backend``."""
    if config.backend == "local":
        from gpta.llm.local import LocalChatModel

        return LocalChatModel(config.model, device=device)
    raise GptaUserError(f"assistant.backend: unknown backend {config.backend!r}")
