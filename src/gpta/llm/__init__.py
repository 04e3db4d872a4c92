"""Chat backends for the teaching assistant."""

from gpta.llm.base import ChatModel, ChatResult, Message, Usage
from gpta.llm.factory import make_chat_model

__all__ = ["ChatModel", "ChatResult", "Message", "Usage", "make_chat_model"]
