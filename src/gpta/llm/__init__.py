"""Chat backends for the teaching assistant: local transformers and OpenAI-compatible
servers, behind one interface, a response cache and a usage meter."""

from gpta.chat.base import ChatModel, ChatResult, LLMRequestError, Message, Sampling, Usage
from gpta.chat.usage import BudgetExhausted, UsageMeter
from gpta.llm.factory import make_chat_model

__all__ = [
    "BudgetExhausted",
    "ChatModel",
    "ChatResult",
    "LLMRequestError",
    "Message",
    "Sampling",
    "Usage",
    "UsageMeter",
    "make_chat_model",
]
