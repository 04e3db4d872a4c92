"""The one chat-model interface every TA backend implements."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from gpta.limits import ANSWER_CHARS

if TYPE_CHECKING:
    from gpta.chat.structured import OutputSchema

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": "..."}


@dataclass(frozen=True)
class Sampling:
    """How one request samples: ``n`` completions at ``temperature`` and ``top_p``, each at
    most ``max_new_tokens`` long, seeded ``seed``.

    Built from the config by :meth:`gpta.config.AssistantConfig.sampling`; a caller that
    needs other values (one completion, a longer answer) derives them with
    :func:`dataclasses.replace`.
    """

    n: int
    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int

    def as_dict(self) -> dict[str, Any]:
        """The fields by name, in field order: what the ledger records and the cache keys on
        (the same dict the keyword arguments made before, so stored cache entries still hit).
        """
        return asdict(self)


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

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChatResult:
    """``n`` sampled completions for one conversation.

    ``cached`` is true when the answer came from the response cache (nothing was sent);
    ``attempts`` counts the HTTP requests made (retries included) and ``faults`` names
    what went wrong on the way (``"RateLimitError: ..."``) even when a retry then worked.
    ``structured`` says how an answer asked for with a schema was constrained
    (``json_schema``, ``json_object``, ``grammar`` or ``free_text``; see
    :mod:`gpta.chat.structured`); ``None`` when no schema was asked for.
    """

    texts: list[str]
    usage: Usage
    seconds: float
    cached: bool = False
    attempts: int = 1
    faults: tuple[str, ...] = field(default_factory=tuple)
    structured: str | None = None


class LLMRequestError(RuntimeError):
    """The TA could not answer: the retry budget is spent or the request cannot succeed.

    The message never contains an API key; ``attempts`` and ``faults`` say what happened;
    ``format_refused`` is true when the server refused the request's response_format (the
    openai backend then retries in a weaker form).
    """

    def __init__(self, message: str, *, attempts: int = 1, faults: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.faults = faults
        self.format_refused = False


class ChatModel(Protocol):
    """Messages in; ``sampling.n`` completions, text and token usage out. With ``schema``,
    each completion should be a JSON object under it (how far that held:
    ``ChatResult.structured``).
    """

    backend: str
    model_name: str

    def chat(
        self,
        messages: list[Message],
        sampling: Sampling,
        *,
        schema: OutputSchema | None = None,
    ) -> ChatResult: ...


def bound_answers(result: ChatResult) -> ChatResult:
    """``result`` with every completion cut to :data:`gpta.limits.ANSWER_CHARS` characters, a
    fault saying which were cut; ``result`` itself when none was longer. Applied before an
    answer is stored anywhere (the response cache, the ledger, the history): a 20 MB answer
    was once kept whole in all three."""
    limit = ANSWER_CHARS.value()
    cut = [(i, len(text)) for i, text in enumerate(result.texts) if len(text) > limit]
    if not cut:
        return result
    faults = tuple(
        f"AnswerTooLong: completion {i + 1} of {len(result.texts)} held {size:,} characters; "
        f"kept the first {limit:,} ({ANSWER_CHARS.env})"
        for i, size in cut
    )
    return replace(
        result, texts=[text[:limit] for text in result.texts], faults=result.faults + faults
    )


def sample_seed(seed: int, index: int) -> int:
    """The seed of completion ``index`` of a request seeded ``seed`` (backends that sample one
    completion at a time). Not ``seed + index``: requests seeded one apart (consecutive rounds)
    would then share all but one of their completions."""
    if index == 0:
        return seed
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def cache_identity(model: ChatModel) -> dict[str, str]:
    """What, besides the request, decides a backend's answer (never a key or a header)."""
    identity = getattr(model, "identity", None)
    if callable(identity):
        return identity()
    return {"backend": model.backend, "model": model.model_name}


def count_tokens_approx(text: str) -> int:
    """A conservative token count for models whose tokenizer we do not have (~3 chars/token)."""
    return max(1, (len(text) + 2) // 3)


def count_message_tokens_approx(messages: list[Message]) -> int:
    """gpta's one estimate of a conversation's prompt tokens, for a TA without a tokenizer.

    Each message's text at ~3 characters a token (:func:`count_tokens_approx`), plus 4 tokens
    a message and 3 for the reply's start, the chat template's overhead. Decision (issue 20):
    this is the estimate the budget check and the ledger already used for the ``openai``
    backend (the one backend without a tokenizer); the cruder fallbacks that the teaching
    assistant (characters / 3 + 8) and the exposure channel (characters / 3 + 1) kept for a
    chat model without ``count_message_tokens`` now use it too.
    """
    return sum(count_tokens_approx(m["content"]) + 4 for m in messages) + 3


def count_prompt_tokens(model: object, messages: list[Message]) -> int:
    """The prompt tokens of ``messages`` for ``model``: its own ``count_message_tokens``
    (its tokenizer and chat template) when it has one, else
    :func:`count_message_tokens_approx`."""
    counter = getattr(model, "count_message_tokens", None)
    if callable(counter):
        return int(counter(messages))
    return count_message_tokens_approx(messages)
