"""Chat backends for the teaching assistant: local transformers and OpenAI-compatible
servers, behind one interface, a response cache and a usage meter."""

from gpta.llm.base import ChatModel, ChatResult, LLMRequestError, Message, Sampling, Usage
from gpta.llm.factory import make_chat_model
from gpta.llm.usage import BudgetExhausted, UsageMeter

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
