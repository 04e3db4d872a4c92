"""The prefix as teaching material: one instruction the small model reads before every input.

A TA proposal (refused by the parser, or screened at a round boundary), the current prefix,
the empty prefix and a transferred or static one are all :class:`PrefixCandidate`; the
rounds loop (:class:`gpta.synergy.SynergyLoop`) chooses among them with
:func:`gpta.assistant.material.choose` and records each proposal as event ``proposal``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from gpta.assistant.material import Kind, Material

if TYPE_CHECKING:
    from gpta.assistant.parsing import ParsedProposal
    from gpta.tasks.base import Screening


@dataclass
class PrefixCandidate(Material):
    """A prefix (None: a proposal the parser refused), its screening, and the TA's answer
    it was read from (None: not a proposal of this round)."""

    kind: ClassVar[Kind] = "prefix"

    prefix: str | None
    result: Screening | None = None
    raw: str | None = None
    reason: str | None = None
    truncated: bool = False

    @classmethod
    def screened(cls, result: Screening) -> PrefixCandidate:
        """A prefix as its screening names it (the current, the empty, a challenger)."""
        return cls(result.prefix, result)

    @classmethod
    def proposed(cls, proposal: ParsedProposal, result: Screening | None = None) -> PrefixCandidate:
        """A TA proposal, with its screening when it was screened."""
        return cls(proposal.prefix, result, proposal.raw, proposal.reason, proposal.truncated)

    @property
    def name(self) -> str:
        """The prefix itself (the empty string: no prefix; a refused proposal too)."""
        return self.prefix or ""

    @property
    def content(self) -> str | None:
        return self.prefix

    @property
    def screening(self) -> Screening | None:
        return self.result

    def details(self) -> dict[str, Any]:
        """The proposal's own fields (event ``proposal`` of ``history.jsonl``)."""
        return {
            "raw": self.raw,
            "prefix": self.prefix,
            "valid": self.prefix is not None,
            "reason": self.reason,
            "truncated": self.truncated,
        }
