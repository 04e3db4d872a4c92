"""The teaching assistant: asks the LLM for K prefixes and parses what comes back.

Retrying is the backend's job (tenacity, in ``gpta.llm.openai_backend``); here a request is
made once, and whatever ends it (retry budget spent, TA budget reached, a bug in a backend)
becomes ``ProposalBatch.error``: the training run always carries on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gpta.assistant.context import fit_tried
from gpta.assistant.parsing import ParsedProposal, parse_proposals
from gpta.assistant.prompts import ScoredPrefix, TaskBrief, feedback_messages
from gpta.assistant.schema import proposal_schema
from gpta.chat.base import Message, Usage, count_prompt_tokens
from gpta.chat.usage import Projection
from gpta.config import AssistantConfig
from gpta.privacy.channel import ExposureChannel
from gpta.secrets import scrub

if TYPE_CHECKING:
    from gpta.assistant.history import History


@dataclass
class ProposalBatch:
    """What one request produced: parsed proposals, or the error that stopped it."""

    proposals: list[ParsedProposal] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    seconds: float = 0.0
    error: str | None = None
    cached: bool = False
    attempts: int = 0
    faults: list[str] = field(default_factory=list)
    structured: str | None = None  # how the answer was constrained (gpta.chat.structured)

    @property
    def valid(self) -> list[str]:
        return [p.prefix for p in self.proposals if p.prefix is not None]


class TeachingAssistant:
    """Sends conversations through the exposure channel; never raises on LLM failure."""

    def __init__(
        self,
        channel: ExposureChannel,
        brief: TaskBrief,
        config: AssistantConfig,
        *,
        count_tokens: Callable[[str], int],
        on_call: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.channel = channel
        self.brief = brief
        self.config = config
        self.count_tokens = count_tokens
        self.on_call = on_call  # e.g. History.log("ta_call", ...): what each request did

    @property
    def context_window(self) -> int:
        """The TA's window: ``assistant.context_window``, else what the backend says."""
        window = self.config.context_window
        return int(window or getattr(self.channel.chat_model, "context_window", 0) or 8192)

    def _backend(self) -> str:
        """The TA's backend (``local`` for a run that asks no TA: it has no chat model)."""
        model = self.channel.chat_model
        return model.backend if model is not None else "local"

    def count_message_tokens(self, messages: list[Message]) -> int:
        """The TA's prompt tokens for ``messages`` (:func:`gpta.chat.base.count_prompt_tokens`)."""
        return count_prompt_tokens(self.channel.chat_model, messages)

    def projection(self, *, calls: int, first: list[Message]) -> Projection:
        """Worst-case TA usage of a run with ``calls`` requests, ``first`` the round-0 request.

        A feedback prompt is the first prompt plus at most M + recent listed prefixes
        (each at most ``max_prefix_tokens`` downstream tokens, counted twice for the TA's
        tokenizer), capped by the context window.
        """
        cfg = self.config
        base = self.count_message_tokens(first)
        listed = (cfg.history_top_m + cfg.history_recent) * (2 * cfg.max_prefix_tokens + 8)
        prompt = min(base + listed + 60, max(base, self.context_window - cfg.max_new_tokens))
        meter = self.channel.meter
        return Projection(
            calls=calls,
            n=cfg.candidates,
            prompt_tokens_per_call=prompt * cfg.candidates
            if self._backend() in ("local", "llamacpp")
            else prompt,
            max_completion_tokens_per_call=cfg.candidates * cfg.max_new_tokens,
            price=meter.price if meter is not None else None,
        )

    def feedback(
        self,
        history: History,
        *,
        current: ScoredPrefix,
        previous_score: float | None,
        **kwargs: Any,
    ) -> list[Message]:
        """The dialogue-gradient conversation, cut to fit the TA's context window.

        Shows the top-M screened prefixes and the last ``assistant.history_recent`` rounds'
        prefixes (see :mod:`gpta.assistant.context`); ``kwargs`` go to ``feedback_messages``.
        """
        ranked = history.tried(max(self.config.history_top_m, 1))
        screened = history.screened
        recent_rounds = (
            history.rounds[-self.config.history_recent :] if self.config.history_recent else []
        )
        recent, seen = [], set()
        for record in recent_rounds:
            if record.prefix in screened and record.prefix not in seen:
                seen.add(record.prefix)
                recent.append(ScoredPrefix(record.prefix, screened[record.prefix]))

        def build(tried: list[ScoredPrefix]) -> list[Message]:
            return feedback_messages(
                self.brief, tried=tried, current=current, previous_score=previous_score, **kwargs
            )

        messages, _ = fit_tried(
            build,
            ranked,
            recent,
            top_m=self.config.history_top_m,
            window=self.context_window,
            max_new_tokens=self.config.max_new_tokens,
            count_messages=self.count_message_tokens,
        )
        return messages

    def propose(
        self,
        messages: list[Message],
        *,
        seed: int,
        previous: Iterable[str] = (),
        round_index: int | None = None,
    ) -> ProposalBatch:
        """K sampled proposals for ``messages``; an LLM failure is reported, not raised.

        The answer is asked for under :func:`proposal_schema` (``assistant.structured_output``;
        off, the prompt still asks for the JSON form but nothing enforces it). Every answer is
        read as JSON first and by the free-text cleanup when it is not JSON."""
        schema = proposal_schema(self.config.max_new_tokens)
        try:
            result = self.channel.send(
                messages,
                self.config.sampling(seed=seed),
                **({"schema": schema} if self.config.structured_output else {}),
            )
        except Exception as err:  # a TA failure must never end the training run
            batch = ProposalBatch(
                error=scrub(f"{type(err).__name__}: {err}"),
                attempts=getattr(err, "attempts", 1),
                faults=[scrub(f) for f in getattr(err, "faults", ())],
            )
            self._report(batch, round_index)
            return batch
        proposals = parse_proposals(
            result.texts,
            label_names=self.brief.label_names,
            previous=list(previous),
            max_tokens=self.config.max_prefix_tokens,
            count_tokens=self.count_tokens,
            slot=self.brief.slot,
            schema=schema,
        )
        batch = ProposalBatch(
            proposals,
            result.usage,
            result.seconds,
            cached=result.cached,
            attempts=result.attempts,
            faults=[scrub(f) for f in result.faults],
            structured=result.structured,
        )
        self._report(batch, round_index)
        return batch

    def _report(self, batch: ProposalBatch, round_index: int | None) -> None:
        if self.on_call is None:
            return
        meter = self.channel.meter
        self.on_call(
            {
                "round": round_index,
                "ok": batch.error is None,
                "error": batch.error,
                "cached": batch.cached,
                "attempts": batch.attempts,
                "faults": batch.faults,
                "completions": len(batch.proposals),
                "valid": len(batch.valid),
                "structured": batch.structured,
                "read_as": dict(Counter(p.source for p in batch.proposals)),
                "rejected": dict(Counter(p.code for p in batch.proposals if p.code)),
                "prompt_tokens": batch.usage.prompt_tokens,
                "completion_tokens": batch.usage.completion_tokens,
                "seconds": round(batch.seconds, 4),
                "run_cost_usd": meter.summary()["cost_usd"] if meter is not None else None,
            }
        )
