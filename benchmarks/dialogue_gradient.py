"""Does the dialogue gradient train the teaching assistant? Before/after on real tweets.

1. collect: GPTA runs on a slice of ../shared/data/twitter with the bundled models
   (MiniLM downstream, SmolLM2-135M-Instruct TA); their improving proposals become
   dialogue-gradient examples in the task's store.
2. tune:    LoRA SFT of the TA on those examples (loss on the target tokens only).
3. compare: held-out runs (other seeds, other rows) where, at every round, the untuned and the
   tuned TA answer the *same* conversation with K proposals each (same sampling seed); all of
   them are screened with the same downstream model against the same current prefix. Per TA:
   - improvement rate: share of its proposals that beat the current prefix when screened;
   - validity rate: share that parse to a prefix (not empty/junk), fit the token cap without
     truncation and do not give a label away (duplicates are not counted as invalid).

Writes a JSON file of figures (default benchmarks/results/dialogue_gradient.json).
Sizes are meant for CPUs. The figures in docs/ta-tuning.md come from (2 cores, ~45 min):

    .venv/bin/python benchmarks/dialogue_gradient.py --work /tmp/dg6 \
        --collect-seeds 0 1 2 3 4 --heldout-seeds 10 11 --rounds 6 --steps 10 \
        --candidates 6 --max-new-tokens 28

`--quick`: one collection run of 3 rounds. `--rejudge HELDOUT_RUN...` recomputes the held-out
figures of finished paired runs from their histories (no model runs). Cheaper modes reuse
finished runs: `--collected RUN...` takes their examples instead of running step 1,
`--adapter DIR` skips step 2, `--replay RUN...` replaces the paired runs: each screened
round's conversation is replayed to both TAs, and the proposals are judged on that run's
saved model over its whole dev split, against the round's current prefix.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "twitter"
DESCRIPTION = (
    "English tweets from the SemEval-2017 sentiment task. Each tweet is labelled with the "
    "overall sentiment its author expresses: negative, neutral or positive."
)
LABELS = ["negative", "neutral", "positive"]


def _rows(split: str) -> list[dict]:
    with (DATA / f"{split}.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _write(path: Path, rows: list[dict]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return str(path)


def _config(args: argparse.Namespace, *, seed: int, data_dir: Path, output_dir: Path) -> Any:
    from gpta.config import AssistantConfig, build_config

    assistant = {
        "candidates": args.candidates,
        "max_new_tokens": args.max_new_tokens,
        "max_prefix_tokens": 24,
    }
    if "tune_every" in AssistantConfig.model_fields:
        assistant["tune_every"] = 0  # the benchmark tunes between phases, not inside runs
        assistant["dialogue_store"] = str(args.work / "store")
    return build_config(
        {
            "output_dir": str(output_dir),
            "seed": seed,
            "device": "cpu",
            "data": {
                "train": str(data_dir / "train.jsonl"),
                "dev": str(data_dir / "dev.jsonl"),
                "test": str(data_dir / "test.jsonl"),
                "description": DESCRIPTION,
            },
            "model": {"max_length": 64},
            "selection": {"screen_size": 48},
            "training": {
                "rounds": args.rounds,
                "steps_per_round": args.steps,
                "batch_size": 16,
                "learning_rate": 1e-4,
            },
            "assistant": assistant,
        },
        source="benchmark",
    )


def _slices(work: Path, train_rows: int) -> dict[str, Path]:
    """Disjoint twitter slices: one for collecting, one for the held-out comparison."""
    train = _rows("train")
    test = _rows("test")
    random.Random(0).shuffle(train)
    random.Random(0).shuffle(test)
    dirs = {}
    for i, name in enumerate(("collect", "heldout")):
        part = train[i * (train_rows + 60) : (i + 1) * (train_rows + 60)]
        d = work / "data" / name
        _write(d / "train.jsonl", part[:train_rows])
        _write(d / "dev.jsonl", part[train_rows:])
        _write(d / "test.jsonl", test[i * 60 : (i + 1) * 60])
        dirs[name] = d
    return dirs


class PairedChat:
    """Asks two TAs the same conversation with the same seed; returns A's then B's texts."""

    backend = "paired"

    def __init__(self, a: Any, b: Any) -> None:
        self.a, self.b = a, b
        self.model_name = f"{a.model_name} | {b.model_name}"
        self.calls: list[dict[str, Any]] = []

    def identity(self) -> dict[str, str]:
        return {"backend": self.backend, "a": str(self.a.identity()), "b": str(self.b.identity())}

    def __getattr__(self, name: str) -> Any:  # count_tokens, context_window, ... from A
        return getattr(self.a, name)

    def chat(self, messages: list[dict], sampling: Any, **params: Any) -> Any:
        from gpta.chat.base import ChatResult

        first = self.a.chat(messages, sampling, **params)
        second = self.b.chat(messages, sampling, **params)
        self.calls.append({"messages": messages, "a": first.texts, "b": second.texts})
        return ChatResult(
            texts=first.texts + second.texts,
            usage=first.usage + second.usage,
            seconds=first.seconds + second.seconds,
        )


def _beats(score: float, loss: float, current: dict[str, float], margin: float) -> bool:
    """The loop's rule without the paired test (:func:`gpta.selection.beats`) on logged
    scores."""
    from gpta.selection import beats
    from gpta.tasks.base import Screening

    return beats(
        Screening("", score, loss), Screening("", current["score"], current["loss"]), margin
    )


def _judge(run_dir: Path, calls: list[dict], count_tokens: Any, max_tokens: int) -> dict:
    """Per TA (a: untuned, b: tuned): validity and improvement over the screened rounds.

    Besides the strict rule (a proposal improves when it beats the current prefix), the
    screened proposals' mean change from the current prefix in dev-subset score and loss
    (``delta_score``, ``delta_loss``: negative loss change is better) and the share that
    scored at least as well (``not_worse_rate``): finer signals when most proposals tie."""
    from gpta.assistant.parsing import parse_proposal

    events = [json.loads(x) for x in (run_dir / "history.jsonl").open(encoding="utf-8")]
    screens = {e["round"]: e for e in events if e["event"] == "screen"}
    stats = {
        side: {
            "proposals": 0,
            "valid": 0,
            "improved": 0,
            "screened": 0,
            "not_worse": 0,
            "delta_score_sum": 0.0,
            "delta_loss_sum": 0.0,
            "rounds": [],
        }
        for side in ("a", "b")
    }
    for round_index, call in enumerate(calls):
        screen = screens.get(round_index)
        if screen is None:
            continue  # round 0 is not screened
        candidates = {c["prefix"]: c for c in screen["candidates"]}
        current = screen["current"]
        for side in ("a", "b"):
            valid = improved = 0
            for raw in call[side]:
                parsed = parse_proposal(
                    raw, label_names=LABELS, max_tokens=max_tokens, count_tokens=count_tokens
                )
                if not parsed.valid or parsed.truncated:
                    continue
                valid += 1
                hit = candidates.get(parsed.prefix)
                if hit is not None and parsed.prefix != current["prefix"]:
                    improved += _beats(hit["score"], hit["loss"], current, 0.0)
                    stats[side]["screened"] += 1
                    stats[side]["not_worse"] += hit["score"] >= current["score"]
                    stats[side]["delta_score_sum"] += hit["score"] - current["score"]
                    stats[side]["delta_loss_sum"] += hit["loss"] - current["loss"]
            n = len(call[side])
            stats[side]["proposals"] += n
            stats[side]["valid"] += valid
            stats[side]["improved"] += improved
            stats[side]["rounds"].append(
                {"round": round_index, "proposals": n, "valid": valid, "improved": improved}
            )
    for side in stats.values():
        n, m = side["proposals"], side["screened"]
        side["improvement_rate"] = round(side["improved"] / n, 4) if n else None
        side["validity_rate"] = round(side["valid"] / n, 4) if n else None
        side["not_worse_rate"] = round(side["not_worse"] / m, 4) if m else None
        side["delta_score"] = round(side.pop("delta_score_sum") / m, 5) if m else None
        side["delta_loss"] = round(side.pop("delta_loss_sum") / m, 5) if m else None
    return stats


def _calls_from_history(run_dir: Path) -> list[dict]:
    """The paired calls of a finished held-out run, rebuilt from its history: each TA call
    logged 2K proposals, the untuned TA's K first (PairedChat's order)."""
    events = [json.loads(x) for x in (run_dir / "history.jsonl").open(encoding="utf-8")]
    rounds = sorted({e["round"] for e in events if e["event"] == "proposal"})
    calls = []
    for r in range(max(rounds) + 1 if rounds else 0):
        raws = [e["raw"] for e in events if e["event"] == "proposal" and e["round"] == r]
        half = len(raws) // 2
        calls.append({"a": raws[:half], "b": raws[half:]})
    return calls


def _merge(stats: list[dict]) -> dict:
    """Totals over held-out runs, rates recomputed from the counts."""
    keys = ("proposals", "valid", "improved", "screened", "not_worse")
    out = {k: sum(s[k] for s in stats) for k in keys}
    m = out["screened"]
    out.update(_rates(out))
    out["not_worse_rate"] = round(out["not_worse"] / m, 4) if m else None
    for key in ("delta_score", "delta_loss"):
        weighted = sum((s[key] or 0.0) * s["screened"] for s in stats)
        out[key] = round(weighted / m, 5) if m else None
    return out


def _replay(run_dirs: list[Path], untuned: Any, tuned: Any, args: argparse.Namespace) -> dict:
    """Held-out rounds replayed: each screened round's conversation (from the ledger) is put
    to both TAs with the same seed; their proposals and the round's current prefix are
    screened on that run's saved downstream model over its whole dev split."""
    from gpta.assistant.dialogue import round_dialogues
    from gpta.assistant.parsing import parse_proposal
    from gpta.chat.base import Sampling
    from gpta.config import load_config
    from gpta.run import load_data
    from gpta.selection import beats
    from gpta.tasks import build_task

    totals = {s: {"proposals": 0, "valid": 0, "improved": 0} for s in ("untuned", "tuned")}
    rounds = []
    for run_dir in run_dirs:
        config = load_config(run_dir / "config.yaml")
        tables = load_data(config)
        task = build_task(config, tables)
        model, tokenizer = task.load_trained(str(run_dir / "model"))
        task_, tokenizer_ = task, tokenizer
        dev = tables["dev"].rows

        def count_tokens(text: str, _tok: Any = tokenizer) -> int:
            return len(_tok(text, add_special_tokens=False)["input_ids"])

        cache: dict[str, Any] = {}

        def screen(prefix: str, _c: dict = cache, _dev: list = dev, _m: Any = model) -> Any:
            if prefix not in _c:
                _c[prefix] = task_.screen(_m, tokenizer_, _dev, prefix, batch_size=64)  # noqa: B023
            return _c[prefix]

        for dialogue in round_dialogues(run_dir):
            if dialogue.messages is None or dialogue.current_prefix is None:
                continue  # round 0: nothing to beat
            current = screen(dialogue.current_prefix)
            row = {"run": run_dir.name, "round": dialogue.round, "current": current.score}
            for side, ta in (("untuned", untuned), ("tuned", tuned)):
                sampling = Sampling(
                    n=args.candidates,
                    temperature=0.8,
                    top_p=0.95,
                    max_new_tokens=args.max_new_tokens,
                    seed=1000 + dialogue.round,
                )
                texts = ta.chat(dialogue.messages, sampling).texts
                valid = improved = 0
                for raw in texts:
                    parsed = parse_proposal(
                        raw, label_names=task.label_names, max_tokens=24, count_tokens=count_tokens
                    )
                    if not parsed.valid or parsed.truncated:
                        continue
                    valid += 1
                    if parsed.prefix != dialogue.current_prefix:
                        improved += beats(screen(parsed.prefix), current, 0.0)
                totals[side]["proposals"] += len(texts)
                totals[side]["valid"] += valid
                totals[side]["improved"] += improved
                row[side] = {"texts": texts, "valid": valid, "improved": improved}
            rounds.append(row)
            print(
                f"replay {run_dir.name} round {dialogue.round}: "
                f"untuned {row['untuned']['improved']}/{len(row['untuned']['texts'])} "
                f"tuned {row['tuned']['improved']}/{len(row['tuned']['texts'])}",
                file=sys.stderr,
                flush=True,
            )
    return {"rounds": rounds, **{side: _rates(t) for side, t in totals.items()}}


def _rates(t: dict[str, int]) -> dict[str, Any]:
    n = t["proposals"]
    return {
        **t,
        "improvement_rate": round(t["improved"] / n, 4) if n else None,
        "validity_rate": round(t["valid"] / n, 4) if n else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/gpta-bench-dialogue"))
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/dialogue_gradient.json"
    )
    parser.add_argument("--collect-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--heldout-seeds", type=int, nargs="+", default=[10])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=4, help="downstream steps per round")
    parser.add_argument("--candidates", type=int, default=6)
    parser.add_argument("--train-rows", type=int, default=240)
    parser.add_argument("--max-new-tokens", type=int, default=40, help="TA tokens per proposal")
    parser.add_argument("--epochs", type=int, default=3, help="LoRA epochs")
    parser.add_argument("--quick", action="store_true", help="1 collect run, 3 rounds")
    parser.add_argument("--adapter", type=Path, help="skip step 2: use this adapter")
    parser.add_argument(
        "--collected",
        type=Path,
        nargs="+",
        help="use these finished runs as the collection (skip step 1)",
    )
    parser.add_argument(
        "--replay",
        type=Path,
        nargs="+",
        help="step 3 by replaying these runs' screened rounds on their saved models "
        "instead of new paired runs",
    )
    parser.add_argument(
        "--rejudge",
        type=Path,
        nargs="+",
        help="only recompute the held-out figures of these finished paired runs into --out",
    )
    args = parser.parse_args()
    if args.rejudge:
        _rejudge(args)
        return
    if args.quick:
        args.collect_seeds, args.rounds = args.collect_seeds[:1], 3
    args.work.mkdir(parents=True, exist_ok=True)

    import torch
    from transformers import AutoTokenizer

    import gpta.run as gpta_run
    import gpta.teaching_side as teaching_side
    from gpta.assistant.dialogue import DialogueStore, examples_from_run
    from gpta.assistant.tuning import LoraSettings, tune_lora
    from gpta.bundled import resolve_model_path
    from gpta.llm.local import LocalChatModel

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    started = time.perf_counter()
    slices = _slices(args.work, args.train_rows)
    report: dict[str, Any] = {
        "dataset": "twitter (../shared/data/twitter, SemEval-2017 4A)",
        "ta": "bundled:smollm2 (SmolLM2-135M-Instruct)",
        "downstream": "bundled:minilm (all-MiniLM-L6-v2)",
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }

    # 1. collect ----------------------------------------------------------------------------
    store = DialogueStore(args.work / "store")
    collect_runs = []
    for run_dir in args.collected or []:
        found = examples_from_run(run_dir)
        store.add(found)
        collect_runs.append({"run": str(run_dir), "examples": len(found)})
    for seed in [] if args.collected else args.collect_seeds:
        run_dir = args.work / "collect" / f"seed{seed}"
        t0 = time.perf_counter()
        gpta_run.train(
            _config(args, seed=seed, data_dir=slices["collect"], output_dir=run_dir),
            overwrite=True,
            quiet=True,
        )
        examples = examples_from_run(run_dir)
        store.add(examples)
        events = [json.loads(x) for x in (run_dir / "history.jsonl").open(encoding="utf-8")]
        proposals = [e for e in events if e["event"] == "proposal" and e["round"] > 0]
        collect_runs.append(
            {
                "seed": seed,
                "screened_proposals": len(proposals),
                "improved": sum(p["improved"] for p in proposals),
                "examples": len(examples),
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        print(f"collect seed {seed}: {collect_runs[-1]}", file=sys.stderr, flush=True)
    examples = store.examples()
    report["collect"] = {"runs": collect_runs, "examples": len(examples)}
    if not examples:
        report["error"] = "no improving proposal in the collection runs: nothing to tune on"
        _save(args.out, report, started)
        return

    # 2. tune -------------------------------------------------------------------------------
    if args.adapter is not None:  # a tuning done before on the same examples
        from types import SimpleNamespace

        from gpta.assistant.tuning import adapter_meta

        tuned = SimpleNamespace(**adapter_meta(args.adapter))
        tuned.adapter_dir = str(args.adapter)
    else:
        tuned = tune_lora(
            examples,
            base_model="bundled:smollm2",
            out_dir=store.next_adapter_dir(),
            settings=LoraSettings(epochs=args.epochs),
            seed=0,
        )
    report["tune"] = {
        k: getattr(tuned, k)
        for k in ("adapter_dir", "examples", "steps", "loss_before", "loss_after", "epoch_losses")
    }
    report["tune"]["seconds"] = tuned.seconds
    print(f"tuned: {report['tune']}", file=sys.stderr, flush=True)

    # 3. compare on held-out rounds ------------------------------------------------------------
    untuned_ta = LocalChatModel("bundled:smollm2")
    tuned_ta = LocalChatModel("bundled:smollm2")
    tuned_ta.load_adapter(tuned.adapter_dir)
    if args.replay:
        report["heldout_replay"] = _replay(args.replay, untuned_ta, tuned_ta, args)
        _save(args.out, report, started)
        return
    count_tokens_tok = AutoTokenizer.from_pretrained(resolve_model_path("bundled:minilm"))

    def count_tokens(text: str) -> int:
        return len(count_tokens_tok(text, add_special_tokens=False)["input_ids"])

    heldout = []
    original = teaching_side.make_chat_model
    for seed in args.heldout_seeds:
        paired = PairedChat(untuned_ta, tuned_ta)
        teaching_side.make_chat_model = lambda *a, _p=paired, **k: _p
        run_dir = args.work / "heldout" / f"seed{seed}"
        t0 = time.perf_counter()
        try:
            gpta_run.train(
                _config(args, seed=seed, data_dir=slices["heldout"], output_dir=run_dir),
                overwrite=True,
                quiet=True,
            )
        finally:
            teaching_side.make_chat_model = original
        stats = _judge(run_dir, paired.calls, count_tokens, 24)
        heldout.append(
            {
                "seed": seed,
                "untuned": stats["a"],
                "tuned": stats["b"],
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        print(
            f"held-out seed {seed}: untuned {stats['a']['improvement_rate']} "
            f"tuned {stats['b']['improvement_rate']}",
            file=sys.stderr,
            flush=True,
        )

    report["heldout"] = _heldout_totals(heldout)
    _save(args.out, report, started)


def _heldout_totals(heldout: list[dict]) -> dict:
    return {
        "runs": heldout,
        "untuned": _merge([h["untuned"] for h in heldout]),
        "tuned": _merge([h["tuned"] for h in heldout]),
    }


def _rejudge(args: argparse.Namespace) -> None:
    """Recompute the held-out figures of finished paired runs from their histories (the
    report in --out keeps its collect and tune parts)."""
    from transformers import AutoTokenizer

    from gpta.bundled import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("bundled:minilm"))

    def count_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    report = json.loads(args.out.read_text()) if args.out.is_file() else {}
    old = {str(r.get("seed")): r for r in report.get("heldout", {}).get("runs", [])}
    heldout = []
    for run_dir in args.rejudge:
        stats = _judge(run_dir, _calls_from_history(run_dir), count_tokens, 24)
        seed = run_dir.name.removeprefix("seed")
        heldout.append(
            {
                "seed": int(seed) if seed.isdigit() else seed,
                "untuned": stats["a"],
                "tuned": stats["b"],
                "seconds": old.get(seed, {}).get("seconds"),
            }
        )
    report["heldout"] = _heldout_totals(heldout)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    print(json.dumps({k: report["heldout"][k] for k in ("untuned", "tuned")}, indent=2))


def _save(path: Path, report: dict[str, Any], started: float) -> None:
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    print(
        json.dumps(
            {k: report[k] for k in ("collect", "tune", "heldout", "heldout_replay") if k in report},
            indent=2,
        )
    )
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
