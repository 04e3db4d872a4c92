"""One training row as the TA may see it.

Its own module so that the channel (which sends exemplars) and the policy (which chooses
them, and builds the channel) both import it from below.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Exemplar:
    """One training row as the TA may see it: redacted, with its id (the id is not sent)."""

    row_id: str
    text: str
    label: str | None = None
    redactions: dict[str, int] = field(default_factory=dict)
