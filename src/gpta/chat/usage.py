"""Token usage, dollars and the TA budget of a run.

``assistant.prices`` maps a model name (or a name prefix: ``gpt-4o-mini`` also prices
``gpt-4o-mini-2024-07-18``) to dollars per million input and output tokens. A budget
(``assistant.max_cost_usd`` / ``assistant.max_total_tokens``) stops *asking the TA*, never
the training: a request whose worst case (its prompt plus n x max_new_tokens) would cross the
budget is not sent, and the run goes on with the best prefix it has. Cached answers cost
nothing and do not count against the budget.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

from gpta.chat.base import ChatResult, LLMRequestError, Message, Usage
from gpta.limits import MAX_TOKENS_PER_CALL


def plausible_tokens(value: Any, ceiling: int) -> int | None:
    """``value`` as a token count when a server could mean it: a whole number from 0 to
    ``ceiling`` (and never above :data:`gpta.limits.MAX_TOKENS_PER_CALL`); None otherwise
    (negative, fractional, NaN, infinite, text, a boolean, or more than the bytes hold)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        return None
    return value if 0 <= value <= min(ceiling, MAX_TOKENS_PER_CALL) else None


def prompt_token_ceiling(messages: list[Message]) -> int:
    """The most prompt tokens ``messages`` can be: a token holds at least one byte of text,
    plus room for a chat template and a server's own system prompt."""
    return sum(len(m["content"].encode("utf-8")) + 64 for m in messages) + 1024


def completion_token_ceiling(texts: list[str], max_new_tokens: int) -> int:
    """The most completion tokens ``texts`` can be: their bytes, or the tokens the request
    allowed (a reasoning model bills hidden tokens up to that limit), plus stop tokens."""
    shown = sum(len(t.encode("utf-8")) for t in texts)
    return max(shown, len(texts) * max_new_tokens) + 16 * len(texts)


def checked_usage(
    reported: tuple[Any, Any], estimate: tuple[int, int], ceilings: tuple[int, int]
) -> tuple[Usage, list[str]]:
    """The (prompt, completion) token counts a server ``reported``, each replaced by gpta's
    ``estimate`` when it is missing or implausible (:func:`plausible_tokens` under its
    ceiling); and a warning (a fault line) for each implausible one. Missing counts are
    common (some servers send none) and are estimated without a warning."""
    counts, warnings = [], []
    for name, value, guess, ceiling in zip(
        ("prompt_tokens", "completion_tokens"), reported, estimate, ceilings, strict=True
    ):
        count = plausible_tokens(value, ceiling) if value is not None else guess
        if count is None:
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:39] + "…"
            warnings.append(
                f"UsageImplausible: the server reported {name}={shown} (not a whole number "
                f"from 0 to {min(ceiling, MAX_TOKENS_PER_CALL):,}); gpta's estimate {guess:,} "
                "is recorded instead"
            )
            count = guess
        counts.append(count)
    return Usage(counts[0], counts[1]), warnings


class BudgetExhausted(LLMRequestError):
    """The TA budget does not allow another request."""


@dataclass(frozen=True)
class Price:
    """Dollars per million tokens."""

    input: float
    output: float


def find_price(model: str, prices: dict[str, Any]) -> Price | None:
    """The exact entry for ``model``, else the longest entry that is a prefix of it."""
    if not prices:
        return None
    entry = prices.get(model)
    if entry is None:
        matches = [name for name in prices if model.startswith(name)]
        if not matches:
            return None
        entry = prices[max(matches, key=len)]
    if isinstance(entry, Price):
        return entry
    if isinstance(entry, dict):
        return Price(float(entry["input"]), float(entry["output"]))
    return Price(float(entry.input), float(entry.output))


def dollars(usage: Usage, price: Price | None) -> float | None:
    if price is None:
        return None
    return (usage.prompt_tokens * price.input + usage.completion_tokens * price.output) / 1e6


class UsageMeter:
    """Counts calls and tokens (sent vs cached), prices them and enforces the budget."""

    def __init__(
        self,
        model: str,
        *,
        prices: dict[str, Any] | None = None,
        max_cost_usd: float | None = None,
        max_total_tokens: int | None = None,
    ) -> None:
        self.model = model
        self.price = find_price(model, prices or {})
        self.max_cost_usd = max_cost_usd
        self.max_total_tokens = max_total_tokens
        self.calls = 0
        self.cached_calls = 0
        self.failed_calls = 0
        self.skipped_calls = 0
        self.attempts = 0
        self.usage = Usage()  # billed: sent to the backend
        self.cached_usage = Usage()  # answered from the cache
        self._lock = threading.Lock()

    @property
    def cost_usd(self) -> float | None:
        return dollars(self.usage, self.price)

    def check(self, prompt_tokens: int, max_completion_tokens: int) -> None:
        """Raise :class:`BudgetExhausted` if this request could cross the budget."""
        worst = Usage(prompt_tokens, max_completion_tokens)
        with self._lock:
            reason = None
            total = self.usage.total + worst.total
            if self.max_total_tokens is not None and total > self.max_total_tokens:
                reason = (
                    f"token budget: {self.usage.total} of {self.max_total_tokens} used, "
                    f"the next request may take {worst.total}"
                )
            if reason is None and self.max_cost_usd is not None:
                spent = self.cost_usd or 0.0
                # an unpriced model: the cost budget cannot apply (the run warns at its start)
                if (
                    self.price is not None
                    and spent + (dollars(worst, self.price) or 0.0) > self.max_cost_usd
                ):
                    reason = (
                        f"cost budget: ${spent:.4f} of ${self.max_cost_usd:.4f} spent, the next "
                        f"request may cost ${dollars(worst, self.price):.4f}"
                    )
            if reason is not None:
                self.skipped_calls += 1
                raise BudgetExhausted(f"TA budget reached ({reason}); no more TA requests")

    def add(self, result: ChatResult) -> None:
        with self._lock:
            self.calls += 1
            self.attempts += result.attempts
            if result.cached:
                self.cached_calls += 1
                self.cached_usage = self.cached_usage + result.usage
            else:
                self.usage = self.usage + result.usage

    def add_failure(self, attempts: int) -> None:
        with self._lock:
            self.calls += 1
            self.failed_calls += 1
            self.attempts += attempts

    def summary(self) -> dict[str, Any]:
        cost = self.cost_usd
        return {
            "model": self.model,
            "calls": self.calls,
            "cached_calls": self.cached_calls,
            "failed_calls": self.failed_calls,
            "skipped_calls": self.skipped_calls,
            "http_attempts": self.attempts,
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
            "cached_prompt_tokens": self.cached_usage.prompt_tokens,
            "cached_completion_tokens": self.cached_usage.completion_tokens,
            "cost_usd": round(cost, 6) if cost is not None else None,
            "max_cost_usd": self.max_cost_usd,
            "max_total_tokens": self.max_total_tokens,
        }


@dataclass(frozen=True)
class Projection:
    """The TA's worst-case usage for a run, printed before it starts."""

    calls: int
    n: int
    prompt_tokens_per_call: int
    max_completion_tokens_per_call: int
    price: Price | None

    @property
    def prompt_tokens(self) -> int:
        return self.calls * self.prompt_tokens_per_call

    @property
    def completion_tokens(self) -> int:
        return self.calls * self.max_completion_tokens_per_call

    @property
    def cost_usd(self) -> float | None:
        return dollars(Usage(self.prompt_tokens, self.completion_tokens), self.price)

    def line(self) -> str:
        cost = self.cost_usd
        money = f", at most ${cost:.4f}" if cost is not None else " (no price for this model)"
        return (
            f"TA projection: {self.calls} requests x {self.n} completions; "
            f"~{self.prompt_tokens_per_call} prompt + <={self.max_completion_tokens_per_call} "
            f"completion tokens each = ~{self.prompt_tokens + self.completion_tokens} tokens"
            f"{money}"
        )

    def as_dict(self) -> dict[str, Any]:
        cost = self.cost_usd
        return {
            "calls": self.calls,
            "n": self.n,
            "prompt_tokens_per_call": self.prompt_tokens_per_call,
            "max_completion_tokens_per_call": self.max_completion_tokens_per_call,
            "prompt_tokens": self.prompt_tokens,
            "max_completion_tokens": self.completion_tokens,
            "max_cost_usd": round(cost, 6) if cost is not None else None,
        }
