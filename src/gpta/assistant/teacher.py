"""The teaching assistant: asks the LLM for K prefixes and parses what comes back."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gpta.assistant.parsing import ParsedProposal, parse_proposals
from gpta.assistant.prompts import TaskBrief
from gpta.config import AssistantConfig
from gpta.llm.base import Message, Usage
from gpta.privacy.channel import ExposureChannel


@dataclass
class ProposalBatch:
    """What one request produced: parsed proposals, or the error that stopped it."""

    proposals: list[ParsedProposal] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    seconds: float = 0.0
    error: str | None = None

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
        attempts: int = 2,
    ) -> None:
        self.channel = channel
        self.brief = brief
        self.config = config
        self.count_tokens = count_tokens
        self.attempts = attempts

    def propose(
        self, messages: list[Message], *, seed: int, previous: Iterable[str] = ()
    ) -> ProposalBatch:
        """K sampled proposals for ``messages``; an LLM failure is reported, not raised."""
        error = None
        for attempt in range(self.attempts):
            try:
                result = self.channel.send(
                    messages,
                    n=self.config.candidates,
                    temperature=self.config.temperature,
                    top_p=self.config.top_p,
                    max_new_tokens=self.config.max_new_tokens,
                    seed=seed + attempt,
                )
            except Exception as err:  # a TA failure must never end the training run
                error = f"{type(err).__name__}: {err}"
                continue
            proposals = parse_proposals(
                result.texts,
                label_names=self.brief.label_names,
                previous=list(previous),
                max_tokens=self.config.max_prefix_tokens,
                count_tokens=self.count_tokens,
            )
            return ProposalBatch(proposals, result.usage, result.seconds)
        return ProposalBatch(error=error)
