"""``gpta llm-check``: one round-trip to the configured TA before a long run.

The request goes through the exposure channel like every other (its ledger is
``llm-check.jsonl`` in gpta's cache dir); it bypasses the response cache, so it really
reaches the server. The message holds no data: it asks for one word.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from gpta.chat.usage import UsageMeter, find_price
from gpta.config import GptaConfig
from gpta.llm.factory import make_chat_model
from gpta.paths import cache_dir

CHECK_MESSAGES = [
    {"role": "system", "content": "You are a connectivity check. Answer with one word."},
    {"role": "user", "content": "Reply with the word OK."},
]


def check_llm(config: GptaConfig, *, device: str = "cpu") -> dict[str, Any]:
    """Send one short request; returns what a person needs to see (never the key)."""
    from gpta.privacy import ExposureChannel, ExposureLedger
    from gpta.privacy.policy import register_config_secrets
    from gpta.secrets import scrub

    # the key and env: headers are secrets before anything is sent or recorded, as in a run:
    # a server's error may echo a key that is not key-shaped
    register_config_secrets(config)
    assistant = config.assistant
    started = time.perf_counter()
    model = make_chat_model(assistant, device=device, cache=False)
    load_seconds = time.perf_counter() - started
    meter = UsageMeter(assistant.model, prices=assistant.prices)
    channel = ExposureChannel(model, ExposureLedger(cache_dir() / "llm-check.jsonl"), meter)
    report: dict[str, Any] = {
        "backend": assistant.backend,
        "model": assistant.model,
    }
    if assistant.backend == "openai":
        report["base_url"] = getattr(model, "base_url", assistant.base_url)
        report["api_key_env"] = assistant.api_key_env
    try:
        sampling = assistant.sampling(seed=0)
        result = channel.send(CHECK_MESSAGES, replace(sampling, n=1, max_new_tokens=16))
    except Exception as err:  # report it; the exit status says it failed
        report.update(ok=False, error=scrub(f"{type(err).__name__}: {err}"))
        report["attempts"] = getattr(err, "attempts", 1)
        return report
    report.update(
        ok=True,
        reply=result.texts[0].strip()[:80] if result.texts else "",
        latency_s=round(result.seconds, 3),
        load_s=round(load_seconds, 3),
        attempts=result.attempts,
        prompt_tokens=result.usage.prompt_tokens,
        completion_tokens=result.usage.completion_tokens,
        price="per million tokens: "
        + (
            f"${price.input} in, ${price.output} out"
            if (price := find_price(assistant.model, assistant.prices))
            else "not in assistant.prices"
        ),
    )
    if result.faults:
        report["faults"] = "; ".join(result.faults)
    return report
