"""Efficiency ratios, each measured inside one invocation (same process, same machine load).

- ``throughput``: training steps per second of our loop (``gpta.downstream.training``'s
  Trainer with the empty prefix, tokenizing each batch in the collator) over a plain
  ``transformers.Trainer`` on the same model, rows, batch size and arguments with the data
  tokenized up front. One uncounted warm-up, then A-B, B-A, ... order, median of each;
  target >= 0.95.
- ``latency``: inference seconds over the test rows through ``gpta.load_pipeline`` with the
  saved prefix over the same pipeline with prefix ``""`` (no LLM is loaded either way).
  Alternating repeats, medians; the prefix's extra tokens are reported with it.
- ``screening``: screening K candidate prefixes on dev rows, ``task.screen`` once per
  prefix over one batched ``task.screen_many`` (issue 9), same model, rows and batch size,
  alternating, medians; the machine is named with the figure.
- The wall-time ratio GPTA / finetune and the TA share come from the main runs (table.py).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from typing import Any

from benchmarks.machine import describe


def _plain_trainer_seconds(model: Any, tokenizer: Any, task: Any, rows: list[dict], args: Any):
    import torch
    from transformers import Trainer

    encoded = []
    for start in range(0, len(rows), 256):
        chunk = rows[start : start + 256]
        batch = task.collate(chunk, tokenizer, "")  # the same features, computed up front
        for i in range(len(chunk)):
            item = {}
            for key, value in batch.items():
                if key == "labels":
                    item[key] = value[i]
                else:  # un-pad: the collator pads per batch, as ours does
                    mask = batch["attention_mask"][i].bool()
                    item[key] = value[i][mask]
            encoded.append(item)

    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        out = tokenizer.pad(
            [{k: v.tolist() for k, v in it.items() if k != "labels"} for it in items],
            return_tensors="pt",
        )
        out["labels"] = torch.stack([it["labels"] for it in items])
        return dict(out)

    trainer = Trainer(model=model, args=args, train_dataset=encoded, data_collator=collate)
    started = time.perf_counter()
    trainer.train()
    return time.perf_counter() - started, trainer.state.global_step


def throughput(config_dict: dict[str, Any], *, repeats: int = 4) -> dict[str, Any]:
    """Steps/s of our loop (empty prefix) / a plain Trainer, same model, rows and batch."""
    from transformers import TrainingArguments, set_seed

    from gpta.config import build_config
    from gpta.downstream.training import build_trainer
    from gpta.modeling.device import resolve_device
    from gpta.run import load_data
    from gpta.tasks import build_task

    config = build_config(config_dict, source="benchmark")
    if config.task != "classification":
        raise ValueError("throughput is measured on a classification dataset")
    tables = load_data(config)
    task = build_task(config, tables)
    device = resolve_device(config.device)
    name = config.model.resolved_name(config.task)
    rows = tables["train"].rows
    training = config.training.model_copy(update={"epochs_per_round": 1})
    ours, plain = [], []
    steps = {}
    with tempfile.TemporaryDirectory() as tmp:

        def run_ours() -> Any:
            set_seed(config.seed)
            model, tokenizer = task.load_model(name)
            trainer, _ = build_trainer(
                model=model,
                tokenizer=tokenizer,
                task=task,
                rows=rows,
                config=training,
                rounds=1,
                seed=config.seed,
                device=device,
                checkpoint_dir=tmp,
                prefix="",
                show_progress=False,
                on_round_end=lambda *_: None,
            )
            started = time.perf_counter()
            trainer.train()
            ours.append(time.perf_counter() - started)
            steps["ours"] = trainer.state.global_step
            return trainer.args

        def run_plain(args: Any) -> None:
            set_seed(config.seed)
            model, tokenizer = task.load_model(name)
            seconds, steps["plain"] = _plain_trainer_seconds(model, tokenizer, task, rows, args)
            plain.append(seconds)

        args = run_ours()  # warm-up (not counted): the first Trainer of a process pays extra
        ours.clear()
        for index in range(repeats):  # A-B, B-A, ...: neither side always goes first
            if index % 2 == 0:
                args = run_ours()
                run_plain(args)
            else:
                run_plain(args)
                args = run_ours()
    assert isinstance(args, TrainingArguments)
    ours_rate = steps["ours"] / statistics.median(ours)
    plain_rate = steps["plain"] / statistics.median(plain)
    return {
        "rows": len(rows),
        "batch_size": training.batch_size,
        "steps": steps,
        "ours_seconds": [round(s, 3) for s in ours],
        "plain_seconds": [round(s, 3) for s in plain],
        "ours_steps_per_s": round(ours_rate, 3),
        "plain_steps_per_s": round(plain_rate, 3),
        "ratio": round(ours_rate / plain_rate, 3),
        "target": ">= 0.95",
    }


def latency(
    run_dir: str,
    rows: list[dict[str, Any]],
    *,
    device: str,
    repeats: int = 3,
    prefix: str | None = None,
):
    """Inference seconds with the saved prefix (or ``prefix``) / with prefix "" (same loaded
    pipeline)."""
    from gpta import load_pipeline

    pipeline = load_pipeline(run_dir, device=device)
    prefix = pipeline.prefix if prefix is None else prefix
    inputs = [{k: v for k, v in r.items()} for r in rows]
    pipeline.prefix = ""
    pipeline(inputs[: min(8, len(inputs))])  # warm-up
    timings: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(repeats):
        for label, value in (("with", prefix), ("without", "")):
            pipeline.prefix = value
            started = time.perf_counter()
            pipeline(inputs)
            timings[label].append(time.perf_counter() - started)
    pipeline.prefix = prefix
    with_s = statistics.median(timings["with"])
    without_s = statistics.median(timings["without"])
    extra = len(pipeline.tokenizer(prefix, add_special_tokens=False)["input_ids"]) if prefix else 0
    return {
        "run_dir": run_dir,
        "rows": len(rows),
        "prefix": prefix,
        "prefix_tokens": extra,
        "with_prefix_seconds": [round(s, 4) for s in timings["with"]],
        "without_prefix_seconds": [round(s, 4) for s in timings["without"]],
        "ms_per_row_with": round(1000 * with_s / max(1, len(rows)), 3),
        "ms_per_row_without": round(1000 * without_s / max(1, len(rows)), 3),
        "ratio": round(with_s / without_s, 3) if without_s else None,
    }


# --- batched candidate screening (issue 9) ----------------------------------------------------
# Fixed, human-written candidate prefixes (the dataset's own instruction first), so the figure
# does not depend on what a TA happened to propose; lengths from 2 to ~25 tokens, like the
# TA's proposals.
SCREENING_PREFIXES = (
    "Sentiment:",
    "Classify the sentiment of the following text.",
    "Read the text carefully and decide which label fits it best: weigh the overall tone of "
    "the writer, not single words.",
)


def candidate_prefixes(first: str, k: int) -> list[str]:
    """``k`` distinct candidates: ``first`` (the dataset's instruction), then the fixed ones."""
    pool = [first, *SCREENING_PREFIXES]
    out = []
    for i in range(k):
        base = pool[i % len(pool)]
        out.append(base if i < len(pool) else f"{base} ({i // len(pool) + 1})")
    return out


def screening(
    config_dict: dict[str, Any],
    prefixes: list[str],
    *,
    rows: int = 64,
    repeats: int = 3,
) -> dict[str, Any]:
    """Seconds to screen ``prefixes`` on ``rows`` dev rows: ``task.screen`` once per prefix
    (sequential) against one ``task.screen_many`` call (one batched pass), same model, rows
    and ``training.eval_batch_size``. A warm-up of each, then A-B / B-A alternation, medians;
    the two must agree on every prefix's score (loss within 1e-3 relative)."""
    from transformers import set_seed

    from gpta.config import build_config
    from gpta.modeling.device import resolve_device
    from gpta.run import load_data
    from gpta.tasks import build_task

    config = build_config(config_dict, source="benchmark")
    tables = load_data(config)
    task = build_task(config, tables)
    info: dict[str, Any] = {
        "task": config.task,
        "head": config.model.head if config.task == "classification" else None,
        "model": config.model.resolved_name(config.task),
        "candidates": len(prefixes),
        "prefixes": prefixes,
        "machine": describe(config.device),
    }
    device = resolve_device(config.device)
    set_seed(config.seed)
    model, tokenizer = task.load_model(config.model.resolved_name(config.task))
    model.to(device)
    model.eval()
    dev = tables["dev"].rows[:rows]
    batch = config.training.eval_batch_size
    timings: dict[str, list[float]] = {"sequential": [], "batched": []}
    results: dict[str, Any] = {}

    def sequential() -> list[Any]:
        return [task.screen(model, tokenizer, dev, p, batch_size=batch) for p in prefixes]

    def batched() -> list[Any]:
        return list(task.screen_many(model, tokenizer, dev, prefixes, batch_size=batch))

    runners = {"sequential": sequential, "batched": batched}
    for name, fn in runners.items():  # warm-up, not counted
        results[name] = fn()
    order = list(runners)
    for index in range(repeats):
        for name in order if index % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            results[name] = runners[name]()
            timings[name].append(time.perf_counter() - started)
    by_prefix = {s.prefix: s for s in results["batched"]}
    pairs = [(a, by_prefix.get(a.prefix)) for a in results["sequential"]]
    agree = len(results["batched"]) == len(prefixes) and all(
        b is not None
        and a.score == b.score
        and abs(a.loss - b.loss) <= 1e-3 * max(1.0, abs(a.loss))
        for a, b in pairs
    )
    seq_s = statistics.median(timings["sequential"])
    bat_s = statistics.median(timings["batched"])
    info.update(
        rows=len(dev),
        batch_size=batch,
        device=str(device),
        sequential_seconds=[round(s, 4) for s in timings["sequential"]],
        batched_seconds=[round(s, 4) for s in timings["batched"]],
        sequential_median_s=round(seq_s, 4),
        batched_median_s=round(bat_s, 4),
        speedup=round(seq_s / bat_s, 3) if bat_s else None,
        agree=agree,
        scores=[
            {
                "prefix": a.prefix,
                "sequential": [a.score, a.loss],
                "batched": None if b is None else [b.score, b.loss],
            }
            for a, b in pairs
        ],
    )
    return info
