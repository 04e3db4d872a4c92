"""What the teaching assistant writes: round-0 proposals of several TAs, read and scored.

For each TA (the bundled SmolLM2-135M-Instruct through transformers and through llama.cpp in
process, and Qwen2.5-Coder-1.5B-Instruct Q4_K_M through llama.cpp) and each dataset
description (twitter, yelp, squad: ``benchmarks/profiles.py``), the round-0 conversation of
a real run is sent through the real TA path (``TeachingAssistant.propose``, the exposure
channel, the parser) in requests of K=4 until 20 proposals are in, once with structured
output (the JSON schema as a grammar) and once without (the same prompt, nothing enforced).
Recorded per proposal: the raw answer, how it was read (json / json_partial / free_text),
the prefix or the rejection reason (``meta_talk`` is the rule of
:mod:`gpta.assistant.ontask`), and the seconds per proposal.

Then, for twitter, the zero-shot dev score with the ``lm-verbalizer`` head (bundled SmolLM2
downstream, no training) of the best structured proposal of each TA against the empty
prefix: the first 10 distinct valid proposals (``--screen-max``) are screened on 64 seeded
rows of twitter/train.jsonl, the best is scored on 200 other rows (the dev rows), beside the
empty prefix.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/ta_quality.py \\
        [--qwen PATH_OR_fetched:qwen2.5-coder-1.5b] [--tas NAME,...] [--proposals 20]
        [--update] [--zero-shot-tas NAME,...] [--screen-max 10]

Writes benchmarks/results/ta_quality/results.json (every proposal and the summary) and
proposals.md (every proposal printed in full), and prints the summary table. CPU only; on 2
shared cores the whole run takes about half an hour, most of it the transformers TA and the
1.5B model.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

from benchmarks.profiles import DATASETS  # noqa: E402
from gpta.assistant import TaskBrief, TeachingAssistant  # noqa: E402
from gpta.assistant.prompts import initial_messages  # noqa: E402
from gpta.config import AssistantConfig, build_config  # noqa: E402
from gpta.llm.factory import make_chat_model  # noqa: E402
from gpta.privacy import ExposureChannel, ExposureLedger  # noqa: E402

QWEN = "fetched:qwen2.5-coder-1.5b"
# name: (backend, model, temperature); the default temperature is 0.5
TAS: dict[str, tuple[str, str, float]] = {
    "smollm2-transformers": ("local", "bundled:smollm2", 0.5),
    "smollm2-llamacpp": ("llamacpp", "bundled:smollm2", 0.5),
    "smollm2-llamacpp-t0.8": ("llamacpp", "bundled:smollm2", 0.8),
    "qwen1.5b-llamacpp": ("llamacpp", QWEN, 0.5),
}
K = 4
MAX_NEW_TOKENS = 64
SCREEN_ROWS, DEV_ROWS = 64, 200


def brief_for(name: str) -> TaskBrief:
    """The round-0 brief a real run would build: lm-verbalizer for the classification sets
    (the head that reads an instruction), the QA task's own for squad."""
    from gpta.tasks.heads.lm_verbalizer import LmVerbalizerHead
    from gpta.tasks.qa import QATask

    dataset = DATASETS[name]
    if dataset.task == "classification":
        labels = sorted(dataset.label_words or {})
        head = LmVerbalizerHead(labels, {k: dataset.label_words[k] for k in labels})
        family, reads, example, metric = "text classification", head.reads, head.example, "accuracy"
        screen_metric = "accuracy"
    else:
        io = QATask("context", "question", "answers", 384, 128).io()
        family, reads, example, labels = io.family, io.reads, io.example, io.labels
        metric, screen_metric = io.metric, io.screen_metric
    return TaskBrief(
        family=family,
        reads=reads,
        description=dataset.description,
        label_names=list(labels),
        metric=metric,
        max_words=48,
        screen_metric=screen_metric,
        example=example,
    )


def propose(chat_model: Any, brief: TaskBrief, *, temperature: float, structured: bool,
            proposals: int, scratch: Path) -> list[dict[str, Any]]:  # fmt: skip
    """``proposals`` round-0 proposals in requests of K, through the real TA path."""
    config = AssistantConfig(
        candidates=K,
        max_new_tokens=MAX_NEW_TOKENS,
        temperature=temperature,
        structured_output=structured,
    )
    ledger = ExposureLedger(scratch / f"exposure-{time.monotonic_ns()}.jsonl")
    counter = getattr(chat_model, "count_tokens", None) or (lambda s: len(s.split()))
    assistant = TeachingAssistant(
        ExposureChannel(chat_model, ledger), brief, config, count_tokens=counter
    )
    out: list[dict[str, Any]] = []
    request = 0
    while len(out) < proposals:
        batch = assistant.propose(initial_messages(brief), seed=1000 + request)
        if batch.error:
            raise RuntimeError(batch.error)
        for proposal in batch.proposals:
            out.append(
                {
                    "request": request,
                    "raw": proposal.raw,
                    "read_as": proposal.source,
                    "prefix": proposal.prefix,
                    "reason": proposal.reason,
                    "code": proposal.code,
                    "structured": batch.structured,
                    "seconds": batch.seconds / max(1, len(batch.proposals)),
                }
            )
        request += 1
    return out[:proposals]


def _rows(name: str) -> tuple[list[dict], list[dict]]:
    rows = [json.loads(x) for x in (SHARED / name / "train.jsonl").read_text().splitlines()]
    random.Random(0).shuffle(rows)
    return rows[:SCREEN_ROWS], rows[SCREEN_ROWS : SCREEN_ROWS + DEV_ROWS]


class ZeroShot:
    """The lm-verbalizer head on the bundled SmolLM2, untrained, on twitter rows."""

    def __init__(self, scratch: Path) -> None:
        from transformers import AutoModelForCausalLM

        from gpta.data import Table
        from gpta.modeling.loading import load_pretrained
        from gpta.tasks import build_task

        dataset = DATASETS["twitter"]
        self.screen_rows, self.dev_rows = _rows("twitter")
        train = scratch / "train.jsonl"
        train.write_text("".join(json.dumps(r) + "\n" for r in self.screen_rows + self.dev_rows))
        config = build_config(
            {
                "output_dir": str(scratch / "unused"),
                "data": {"train": str(train), "description": dataset.description},
                "model": {
                    "head": "lm-verbalizer",
                    "label_words": dataset.label_words,
                    "max_length": 128,
                },
            }
        )
        tables = {name: Table(name, self.dev_rows) for name in ("train", "dev", "test")}
        self.task = build_task(config, tables)
        self.model, self.tokenizer = load_pretrained(AutoModelForCausalLM, "bundled:smollm2")
        self.model.eval()

    def score(self, prefix: str, rows: list[dict]) -> float:
        screened = self.task.screen(self.model, self.tokenizer, rows, prefix, batch_size=16)
        return float(screened.score)

    def best_vs_empty(self, prefixes: list[str]) -> dict[str, Any]:
        screened = {p: self.score(p, self.screen_rows) for p in dict.fromkeys(prefixes)}
        best = max(screened, key=screened.get) if screened else None
        result = {
            "screened": len(screened),
            "best": best,
            "best_screen": screened.get(best) if best else None,
            "empty_dev": self.score("", self.dev_rows),
            "best_dev": self.score(best, self.dev_rows) if best else None,
        }
        return result


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(records)
    valid = [r for r in records if r["prefix"] is not None]
    return {
        "proposals": n,
        "json_read": sum(r["read_as"] in ("json", "json_partial") for r in records) / n,
        "schema_valid": sum(r["read_as"] == "json" for r in records) / n,
        "valid": len(valid) / n,
        "meta_talk": sum(r["code"] == "meta_talk" for r in records) / n,
        "rejected": dict(Counter(r["code"] for r in records if r["code"])),
        "seconds_per_proposal": statistics.median(r["seconds"] for r in records),
        "paths": dict(Counter(str(r["structured"]) for r in records)),
    }


def write_markdown(results: dict[str, Any], path: Path) -> None:
    lines = [
        "# Round-0 TA proposals (benchmarks/ta_quality.py)",
        "",
        "Every proposal in full: the raw answer, then the prefix it gave (or why it was",
        "rejected). `structured`: the JSON schema as a grammar; `free`: the same prompt, nothing",
        "enforced. Generated by the command in the script's docstring; see results.json.",
        "",
    ]
    for ta, per_dataset in results["proposals"].items():
        for dataset, variants in per_dataset.items():
            for variant, records in variants.items():
                lines += [f"## {ta} / {dataset} / {variant}", ""]
                for i, record in enumerate(records, 1):
                    raw = " ".join(record["raw"].split())
                    verdict = (
                        f"-> `{record['prefix']}`"
                        if record["prefix"] is not None
                        else f"-> rejected: {record['reason']}"
                    )
                    lines.append(f"{i}. {raw}  \n   {verdict} ({record['read_as']})")
                lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tas", default=",".join(TAS))
    parser.add_argument("--datasets", default="twitter,yelp,squad")
    parser.add_argument("--proposals", type=int, default=20)
    parser.add_argument("--qwen", default=QWEN, help="the 1.5B GGUF: a path or fetched: name")
    parser.add_argument("--no-zero-shot", action="store_true")
    parser.add_argument("--zero-shot-tas", default=None, help="default: every TA run")
    parser.add_argument(
        "--screen-max", type=int, default=10, help="distinct valid proposals screened per TA"
    )
    parser.add_argument(
        "--update", action="store_true", help="keep the other TAs' results in results.json"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ta_quality"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "settings": {
            "K": K,
            "max_new_tokens": MAX_NEW_TOKENS,
            "proposals": args.proposals,
            "threads": os.cpu_count(),
            "load_average_start": os.getloadavg(),
        },
        "proposals": {},
        "summary": {},
        "zero_shot": {},
    }
    if args.update and (out / "results.json").is_file():
        kept = json.loads((out / "results.json").read_text())
        for key in ("proposals", "summary", "zero_shot"):
            results[key] = {k: v for k, v in kept[key].items() if k not in args.tas.split(",")}
        results["settings"]["updated"] = args.tas
    datasets = args.datasets.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for ta in args.tas.split(","):
            backend, model, temperature = TAS[ta]
            model = args.qwen if model == QWEN else model
            started = time.perf_counter()
            chat_model = make_chat_model(AssistantConfig(backend=backend, model=model), cache=False)
            load = time.perf_counter() - started
            results["proposals"][ta] = {}
            results["summary"][ta] = {"load_seconds": round(load, 1), "temperature": temperature}
            for dataset in datasets:
                brief = brief_for(dataset)
                variants = {}
                for variant, structured in (("structured", True), ("free", False)):
                    records = propose(
                        chat_model,
                        brief,
                        temperature=temperature,
                        structured=structured,
                        proposals=args.proposals,
                        scratch=scratch,
                    )
                    variants[variant] = records
                    results["summary"][ta][f"{dataset}/{variant}"] = summarize(records)
                    print(ta, dataset, variant, results["summary"][ta][f"{dataset}/{variant}"])
                results["proposals"][ta][dataset] = variants
            del chat_model
            (out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
        if not args.no_zero_shot and "twitter" in datasets:
            zero = ZeroShot(scratch)
            for ta in (args.zero_shot_tas or args.tas).split(","):
                records = results["proposals"][ta]["twitter"]["structured"]
                valid = [r["prefix"] for r in records if r["prefix"] is not None]
                prefixes = list(dict.fromkeys(valid))[: args.screen_max]
                results["zero_shot"][ta] = zero.best_vs_empty(prefixes)
                print(ta, "zero-shot", results["zero_shot"][ta])
    results["settings"]["load_average_end"] = os.getloadavg()
    (out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    write_markdown(results, out / "proposals.md")


if __name__ == "__main__":
    main()
