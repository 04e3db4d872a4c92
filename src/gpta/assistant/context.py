"""Keep the dialogue-gradient conversation inside the TA's context window.

The conversation lists scored prefixes. It shows the top-M by screened score plus the
prefixes of the last few rounds (``assistant.history_recent``), where M is the smaller of
``assistant.history_top_m`` and what the window holds::

    M_window = (window - completion reserve - tokens of the conversation with no list)
               // tokens of the longest listed line  -  recent prefixes shown

and if the measured conversation is still too long, the lowest-scored top-M entries go
first, then the oldest recent ones. The completion reserve is ``max_new_tokens`` (each of the
n completions needs that much room after the prompt) plus a small margin for the chat
template. Token counts come from the TA's own tokenizer (local backend) or a conservative
estimate of 3 characters a token (openai backend).
"""

from __future__ import annotations

from collections.abc import Callable

from gpta.assistant.prompts import ScoredPrefix
from gpta.chat.base import Message

MARGIN_TOKENS = 32


def fit_tried(
    build: Callable[[list[ScoredPrefix]], list[Message]],
    ranked: list[ScoredPrefix],
    recent: list[ScoredPrefix],
    *,
    top_m: int,
    window: int,
    max_new_tokens: int,
    count_messages: Callable[[list[Message]], int],
) -> tuple[list[Message], list[ScoredPrefix]]:
    """The conversation (and the list it shows) that fits ``window``.

    ``ranked`` is best first; ``recent`` is oldest first and always kept while it fits.
    """
    limit = window - max_new_tokens - MARGIN_TOKENS
    recent_prefixes = {item.prefix for item in recent}
    ranked = [item for item in ranked if item.prefix not in recent_prefixes]
    empty_cost = count_messages(build([]))
    candidates = recent + ranked[:top_m]
    if candidates:
        longest = max(candidates, key=lambda item: len(item.prefix))
        line_cost = max(1, count_messages(build([longest])) - empty_cost)
        m_window = max(0, (limit - empty_cost) // line_cost - len(recent))
    else:
        m_window = 0
    top = ranked[: min(top_m, m_window)]
    kept_recent = list(recent)
    while True:
        chosen = kept_recent + top
        messages = build(chosen)
        if count_messages(messages) <= limit or not chosen:
            return messages, chosen
        if top:
            top = top[:-1]  # the lowest-scored of the top M
        else:
            kept_recent = kept_recent[1:]  # the oldest recent round
