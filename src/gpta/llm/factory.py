"""Build the configured chat backend, behind the response cache when it is on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpta.chat.base import ChatModel
from gpta.errors import GptaUserError

if TYPE_CHECKING:
    from gpta.config import AssistantConfig


def make_chat_model(
    config: AssistantConfig, *, device: str = "cpu", cache: bool | None = None
) -> ChatModel:
    """The TA backend named by ``assistant.backend``; cached unless ``assistant.cache`` is off
    (or ``cache=False``)."""
    model: ChatModel
    if config.backend == "local":
        from gpta.llm.local import LocalChatModel

        model = LocalChatModel(config.model, device=device)
    elif config.backend == "llamacpp":
        from gpta.llm.llamacpp import LlamaCppChatModel

        model = LlamaCppChatModel(
            config.model, threads=config.threads, context_window=config.context_window
        )
    elif config.backend == "openai":
        from gpta.llm.openai_backend import OpenAIChatModel

        model = OpenAIChatModel(config)
    else:
        raise GptaUserError(f"assistant.backend: unknown backend {config.backend!r}")
    if config.cache if cache is None else cache:
        from gpta.llm.cache import CachedChatModel, ResponseCache

        model = CachedChatModel(model, ResponseCache(config.cache_path))
    return model
