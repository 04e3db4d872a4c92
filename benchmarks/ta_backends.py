"""TA backends side by side: latency per proposal, local vs an OpenAI-compatible server, and
the response cache's speed-up.

The same model answers both ways: the bundled SmolLM2-135M-Instruct, de-quantized into
transformers for ``local`` (one batched ``generate`` of the K candidates), and its Q4_1 GGUF
served by llama-cpp-python's server on 127.0.0.1 for ``openai`` (that server ignores ``n``,
so the backend sends K single-completion requests, ``max_in_flight`` at a time).

    .venv/bin/python benchmarks/ta_backends.py [--repeats 5] [--candidates 4]

Writes benchmarks/results/ta_backends.json and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

# Both backends run OpenMP threads; on a shared machine spinning waits distort both. Passive
# waiting (the server fixture uses it too) keeps the comparison about the backends.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from ta_server import start_llama_server, stop_process  # noqa: E402

from gpta.assistant.prompts import TaskBrief, initial_messages  # noqa: E402
from gpta.chat.base import Sampling  # noqa: E402
from gpta.config import AssistantConfig  # noqa: E402
from gpta.llm.cache import CachedChatModel, ResponseCache  # noqa: E402
from gpta.llm.local import LocalChatModel  # noqa: E402
from gpta.llm.openai_backend import OpenAIChatModel  # noqa: E402

BRIEF = TaskBrief(
    family="text classification",
    reads="The network reads your instruction followed by one text and predicts one label.",
    description="English tweets labelled with the sentiment their author expresses.",
    label_names=["negative", "neutral", "positive"],
    metric="accuracy",
    max_words=30,
)


def timed(model, messages, *, n: int, max_new_tokens: int, seed: int) -> dict:
    sampling = Sampling(n=n, temperature=0.8, top_p=0.95, max_new_tokens=max_new_tokens, seed=seed)
    result = model.chat(messages, sampling)
    return {
        "seconds": result.seconds,
        "per_proposal": result.seconds / n,
        "completion_tokens": result.usage.completion_tokens,
        "cached": result.cached,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ta_backends.json"))
    args = parser.parse_args()
    messages = initial_messages(BRIEF)
    n, tokens = args.candidates, args.max_new_tokens
    report: dict = {"candidates": n, "max_new_tokens": tokens, "repeats": args.repeats}

    local = LocalChatModel("bundled:smollm2")
    timed(local, messages, n=n, max_new_tokens=tokens, seed=999)  # warm-up
    runs = [timed(local, messages, n=n, max_new_tokens=tokens, seed=s) for s in range(args.repeats)]
    report["local"] = runs
    del local

    with tempfile.TemporaryDirectory() as scratch:
        process, base_url = start_llama_server(Path(scratch) / "server.log")
        try:
            config = AssistantConfig(
                backend="openai", model="smollm2", base_url=base_url, max_in_flight=n
            )
            server = OpenAIChatModel(config)
            timed(server, messages, n=n, max_new_tokens=tokens, seed=999)  # warm-up
            report["openai"] = [
                timed(server, messages, n=n, max_new_tokens=tokens, seed=s)
                for s in range(args.repeats)
            ]
            cached = CachedChatModel(server, ResponseCache(Path(scratch) / "cache.sqlite"))
            misses, hits = [], []
            for s in range(args.repeats):
                misses.append(timed(cached, messages, n=n, max_new_tokens=tokens, seed=100 + s))
                hits.append(timed(cached, messages, n=n, max_new_tokens=tokens, seed=100 + s))
            report["cache_miss"], report["cache_hit"] = misses, hits
        finally:
            stop_process(process)

    def median(key: str, field: str = "per_proposal") -> float:
        return statistics.median(r[field] for r in report[key])

    report["summary"] = {
        "local_s_per_proposal": round(median("local"), 4),
        "openai_llama_cpp_s_per_proposal": round(median("openai"), 4),
        "cache_miss_s_per_request": round(median("cache_miss", "seconds"), 4),
        "cache_hit_s_per_request": round(median("cache_hit", "seconds"), 5),
        "cache_speedup": round(median("cache_miss", "seconds") / median("cache_hit", "seconds")),
        "all_hits_cached": all(r["cached"] for r in report["cache_hit"]),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report["summary"], indent=2))


if __name__ == "__main__":
    main()
