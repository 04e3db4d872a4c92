"""The leak guard on 100k training rows: index build time and per-request check time.

Rows: 100,000 synthetic rows of realistic length and vocabulary, built from the real Yelp
reviews and tweets in ../shared/data (each row takes the word length of a random real row
and is filled with random real sentences). Requests: real TA conversations built with
``gpta.assistant.prompts`` (a round-0 request, a dialogue-gradient request, and one with 4
redacted exemplars), plus a request that pastes a row (it must be blocked).

Baselines, measured in the same run on the same rows and requests:
  * ``substring scan``: ``any(row in request for row in rows)``, the plain Python check (it
    only finds whole rows, not 8-word runs);
  * ``python set``: a set of ``hash(tuple(8 words))`` of every window (same recall as the
    guard), built with plain Python.

    .venv/bin/python benchmarks/leak_guard.py [--rows 100000] [--repeats 50] [--no-set]

Prints a table and writes benchmarks/results/leak_guard.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import re
import statistics
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from benchmarks.machine import cores, cpu_model  # noqa: E402
from gpta.assistant.prompts import (  # noqa: E402
    ScoredPrefix,
    TaskBrief,
    feedback_messages,
    initial_messages,
)
from gpta.privacy.guard import LeakGuard, word_tokens  # noqa: E402
from gpta.privacy.policy import Exemplar  # noqa: E402
from gpta.privacy.redaction import redact  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def machine() -> str:
    cpu = cpu_model()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu}, {cores()} cores, Python {platform.python_version()}, "
        f"load average {load:.1f} at start"
    )


def real_texts() -> list[str]:
    texts = []
    for name in ("yelp", "twitter"):
        path = DATA / name / "train.jsonl"
        with path.open(encoding="utf-8") as handle:
            texts += [json.loads(line)["text"] for line in handle]
    return texts


def synthetic_rows(count: int, seed: int = 0) -> list[str]:
    texts = real_texts()
    sentences = [s for t in texts for s in re.split(r"(?<=[.!?])\s+", t) if len(s.split()) >= 3]
    lengths = [len(t.split()) for t in texts]
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        target = rng.choice(lengths)
        words: list[str] = []
        while len(words) < target:
            words += rng.choice(sentences).split()
        rows.append(" ".join(words[:target]))
    return rows


def requests(rows: list[str], rng: random.Random) -> dict[str, list[dict]]:
    description = (
        "Restaurant reviews and tweets written by customers, each labelled with the star rating "
        "the author gave, from one (very negative) to five (very positive)."
    )
    labels = ["1", "2", "3", "4", "5"]
    brief = TaskBrief(
        family="text classification",
        reads="The network reads your instruction and a review and predicts its star rating.",
        description=description,
        label_names=labels,
        metric="accuracy",
        max_words=48,
    )
    tried = [
        ScoredPrefix(f"Rate the review from one to five stars, noticing {w}.", 0.4 + i / 50)
        for i, w in enumerate(["service", "food", "price", "waiting times", "cleanliness"])
    ]
    feedback = feedback_messages(
        brief,
        tried=tried,
        current=tried[-1],
        previous_score=0.41,
        feedback_title="Share of each label found correctly",
        feedback={label: 0.3 + int(label) / 10 for label in labels},
    )
    exemplars = tuple(
        Exemplar(f"train.jsonl:line {i}", redact(rows[i][:600]), labels[i % 5])
        for i in rng.sample(range(len(rows)), 4)
    )
    brief_ex = TaskBrief(**{**brief.__dict__, "exemplars": exemplars})
    pasted = TaskBrief(**{**brief.__dict__, "description": description + " " + rows[7]})
    return {
        "round 0": initial_messages(brief),
        "feedback": feedback,
        "4 exemplars": initial_messages(brief_ex),
        "pasted row (blocked)": initial_messages(pasted),
    }, exemplars


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--no-set", action="store_true", help="skip the python-set baseline")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "leak_guard.json"))
    args = parser.parse_args()

    where = machine()
    rows = synthetic_rows(args.rows)
    words = sum(len(word_tokens(r)) for r in rows)
    rng = random.Random(1)
    convs, exemplars = requests(rows, rng)
    print(f"machine: {where}")
    print(f"rows: {len(rows)}, words: {words} (mean {words / len(rows):.1f} a row)")

    process = psutil.Process()
    gc.collect()
    rss_before = process.memory_info().rss
    started = time.perf_counter()
    guard = LeakGuard(((f"train.jsonl:line {i}", [r]) for i, r in enumerate(rows)), n=args.n)
    build = time.perf_counter() - started
    guard.allow(e.text for e in exemplars)
    gc.collect()
    guard_mb = (process.memory_info().rss - rss_before) / 2**20

    results: dict[str, dict] = {}
    for name, messages in convs.items():
        chars = sum(len(m["content"]) for m in messages)
        guard_s, report = timed(lambda m=messages: guard.check(m), args.repeats)
        joined = "\n".join(m["content"] for m in messages)
        scan_s, scan_hit = timed(lambda j=joined: any(r in j for r in rows), 3)
        results[name] = {
            "chars": chars,
            "guard_ms": guard_s * 1000,
            "blocked": report is not None,
            "substring_scan_ms": scan_s * 1000,
            "substring_scan_found": scan_hit,
            "speedup_vs_scan": scan_s / guard_s,
        }

    set_build = set_mb = None
    if not args.no_set:
        del guard
        gc.collect()
        rss_before = process.memory_info().rss
        started = time.perf_counter()
        index: set[int] = set()
        for r in rows:
            tokens = word_tokens(r)
            index.update(
                hash(tuple(tokens[i : i + args.n])) for i in range(len(tokens) - args.n + 1)
            )
        set_build = time.perf_counter() - started
        gc.collect()
        set_mb = (process.memory_info().rss - rss_before) / 2**20
        for name, messages in convs.items():
            joined = "\n".join(m["content"] for m in messages)

            def check(j=joined):
                t = word_tokens(j)
                return any(
                    hash(tuple(t[i : i + args.n])) in index for i in range(len(t) - args.n + 1)
                )

            set_s, _ = timed(check, args.repeats)
            results[name]["python_set_ms"] = set_s * 1000
        del index

    print(
        f"\nindex build: {build:.2f} s for {args.rows} rows "
        f"(memory held {guard_mb:.0f} MB)"
        + (
            f"; python-set baseline build {set_build:.2f} s, {set_mb:.0f} MB "
            f"(guard/set time {build / set_build:.2f}x)"
            if set_build
            else ""
        )
    )
    header = f"{'request':22} {'chars':>6} {'guard ms':>9} {'scan ms':>9} {'scan/guard':>10}"
    if set_build:
        header += f" {'set ms':>8}"
    print(header)
    for name, r in results.items():
        line = (
            f"{name:22} {r['chars']:6d} {r['guard_ms']:9.3f} {r['substring_scan_ms']:9.1f} "
            f"{r['speedup_vs_scan']:9.0f}x"
        )
        if set_build:
            line += f" {r['python_set_ms']:8.3f}"
        print(line + ("   blocked" if r["blocked"] else ""))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": where,
        "rows": args.rows,
        "words": words,
        "n": args.n,
        "build_seconds": build,
        "guard_memory_mb": guard_mb,
        "python_set_memory_mb": set_mb,
        "python_set_build_seconds": set_build,
        "requests": results,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
