"""The compared methods: every GPTA-side method is one ``gpta.run.train(config)``.

All methods share the model, training settings (rounds x epochs, batch size, learning rate,
schedule), data sample and seed; they differ only in the prefix policy:

| method | config |
| --- | --- |
| finetune | assistant.initial=empty, assistant.fixed_prefix (no TA loaded) |
| static | assistant.initial=static + static_prefix (the dataset's instruction), fixed_prefix |
| ta-once | the TA's first prefix (round 0), fixed_prefix: no dialogue gradient |
| gpta | the full loop |
| transfer | assistant.warm_start = the partner dataset's gpta run (same level, seed), fixed |
| gpta-tuned | the full loop with a TA LoRA adapter tuned on other runs' dialogues (not run yet) |
| prompt-tuning | PEFT prompt tuning initialised from the description (own loop below) |
"""

from __future__ import annotations

import copy
import math
import resource
import time
from pathlib import Path
from typing import Any

from benchmarks.profiles import DATASETS, Profile, setting

GPTA_METHODS = ("finetune", "static", "ta-once", "gpta", "transfer", "gpta-tuned")


class NotRun(Exception):
    """A method that cannot run here; the reason goes in results.jsonl."""


def base_config(
    profile: Profile,
    dataset: str,
    level: int | None,
    seed: int,
    paths: dict[str, Any],
    output_dir: Path,
) -> dict[str, Any]:
    spec = DATASETS[dataset]
    data = {
        "train": paths["train"],
        "dev": paths["dev"],
        "test": paths["test"],
        "description": spec.description,
        "domain": spec.domain,
        **spec.columns,
    }
    if level is not None:
        data["train_size"] = int(level)
    model: dict[str, Any] = {"max_length": setting(profile, dataset, "max_length")}
    name = profile.summarization_model if spec.task == "summarization" else profile.model
    if name:
        model["name_or_path"] = name
    return {
        "task": spec.task,
        "output_dir": str(output_dir),
        "seed": seed,
        "device": profile.device,
        "data": data,
        "model": model,
        "training": {
            "rounds": profile.rounds,
            "epochs_per_round": profile.epochs_per_round,
            "batch_size": profile.batch_size,
            "learning_rate": profile.learning_rate,
            "report_to": ["none"],
        },
        "assistant": {
            "candidates": profile.candidates,
            "screen_size": profile.screen_size,
            "max_new_tokens": profile.ta_max_new_tokens,
            "max_prefix_tokens": min(48, setting(profile, dataset, "max_length") // 2),
            # every proposal is generated, none replayed: TA time is measured, not cached
            "cache": False,
            # the benchmark must not write into the user's prefix library
            "library": False,
        },
    }


def method_config(
    method: str, base: dict[str, Any], *, transfer_from: Path | None = None
) -> dict[str, Any]:
    """The config dict of ``method`` (a GPTA-side method) from the shared base."""
    config = copy.deepcopy(base)
    assistant = config["assistant"]
    spec = next(d for d in DATASETS.values() if d.description == config["data"]["description"])
    if method == "finetune":
        assistant.update(initial="empty", fixed_prefix=True)
    elif method == "static":
        assistant.update(initial="static", static_prefix=spec.static_prefix, fixed_prefix=True)
    elif method == "ta-once":
        assistant.update(initial="first", fixed_prefix=True)
    elif method == "gpta":
        # each seed keeps its own dialogue store: seeds stay independent runs
        run_dir = Path(config["output_dir"])
        assistant["dialogue_store"] = str(run_dir.parent / f"dialogue-{run_dir.name}")
    elif method == "transfer":
        if transfer_from is None or not (transfer_from / "model").is_dir():
            raise NotRun(
                f"no finished gpta run of the partner dataset ({spec.partner}) to take "
                "its prefix from: run gpta on it in the same invocation"
            )
        assistant.update(warm_start=str(transfer_from), fixed_prefix=True)
    elif method == "gpta-tuned":
        raise NotRun(
            "not wired yet: the adapter support exists (assistant.adapter, "
            "gpta.assistant.tuning), but the benchmark does not yet LoRA-tune a per-seed "
            "adapter on the other seeds' gpta dialogues before this run"
        )
    else:
        raise ValueError(method)
    return config


def run_gpta_method(config_dict: dict[str, Any]) -> dict[str, Any]:
    """One ``gpta.run.train``; returns the fields of a results.jsonl line."""
    import json

    from gpta.config import build_config
    from gpta.run import train

    config = build_config(config_dict, source="benchmark")
    cuda = _cuda_reset()
    started = time.perf_counter()
    result = train(config, overwrite=True, quiet=True)
    outer = time.perf_counter() - started
    run_dir = result.run_dir
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    rounds = metrics["rounds"]
    split = {"train": 0.0, "eval": 0.0, "ta": 0.0, "screen": 0.0}
    for r in rounds:
        for key in split:
            split[key] += float(r["seconds"].get(key, 0.0))
    # round 0's proposal happens before training: it is in ta_seconds, not in rounds[]
    split["ta"] = float(metrics.get("ta_seconds", split["ta"]))
    metric = metrics["primary_metric"]
    return {
        "metric": metric,
        "test": metrics["test"].get(metric),
        "dev": metrics["dev"].get(metric),
        "test_metrics": metrics["test"],
        "dev_curve": [r["dev_score"] for r in rounds],
        "dev_loss_curve": [r["dev_loss"] for r in rounds],
        "train_loss_curve": [r["train_loss"] for r in rounds],
        "prefix": metrics["prefix"],
        "prefixes": [r["prefix"] for r in rounds],
        "best_round": metrics["best_round"],
        "wall_seconds": round(outer, 2),
        "run_wall_seconds": metrics["wall_seconds"],
        "seconds": {k: round(v, 2) for k, v in split.items()},
        "ta_requests": metrics.get("ta_requests", 0),
        "ta_tokens": int(metrics.get("ta_prompt_tokens", 0))
        + int(metrics.get("ta_completion_tokens", 0)),
        "peak_rss_mb": metrics.get("peak_rss_mb"),
        "peak_cuda_mb": _cuda_peak(cuda),
        "run_dir": str(run_dir),
    }


def _cuda_reset() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        return True
    return False


def _cuda_peak(active: bool) -> float | None:
    if not active:
        return None
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


# --- prompt tuning (PEFT), the outside anchor ------------------------------------------------
def run_prompt_tuning(config_dict: dict[str, Any], *, learning_rate: float) -> dict[str, Any]:
    """PEFT prompt tuning of the same model, initialised from the dataset description.

    Same data sample, seed, batch size and number of epochs (rounds x epochs_per_round) as
    the GPTA-side methods; the encoder is frozen, the virtual tokens and the classifier head
    train (PEFT's SEQ_CLS default), at ``learning_rate`` (prompt tuning needs a far larger
    rate than full fine-tuning). Dev is scored after every epoch; the best epoch's weights
    are scored on test. Classification only.
    """
    import torch
    from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model
    from transformers import get_linear_schedule_with_warmup, set_seed

    from gpta.bundled import resolve_model_path
    from gpta.config import build_config
    from gpta.downstream.device import resolve_device
    from gpta.run import load_data
    from gpta.tasks import build_task

    config = build_config(config_dict, source="benchmark")
    if config.task != "classification":
        raise NotRun(f"prompt-tuning is wired for classification only (not {config.task})")
    started = time.perf_counter()
    cuda = _cuda_reset()
    tables = load_data(config)
    task = build_task(config, tables)
    device = resolve_device(config.device)
    set_seed(config.seed)
    name = config.model.resolved_name(config.task)
    model, tokenizer = task.load_model(name)
    description = config.description_text()
    init_ids = tokenizer(description, add_special_tokens=False)["input_ids"]
    peft_config = PromptTuningConfig(
        task_type=TaskType.SEQ_CLS,
        prompt_tuning_init=PromptTuningInit.TEXT,
        prompt_tuning_init_text=description,
        num_virtual_tokens=len(init_ids),
        tokenizer_name_or_path=str(resolve_model_path(name)),
    )
    model = get_peft_model(model, peft_config).to(device)
    train_rows = tables["train"].rows
    epochs = config.training.rounds * config.training.epochs_per_round
    batch = config.training.batch_size
    steps = epochs * math.ceil(len(train_rows) / batch)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=learning_rate
    )
    schedule = get_linear_schedule_with_warmup(optimizer, 0, steps)
    generator = torch.Generator().manual_seed(config.seed)
    curve, losses, train_seconds, eval_seconds = [], [], 0.0, 0.0
    best_state, best_key = None, None
    for _epoch in range(epochs):
        model.train()
        tick = time.perf_counter()
        order = torch.randperm(len(train_rows), generator=generator).tolist()
        epoch_loss = []
        for start in range(0, len(order), batch):
            rows = [train_rows[i] for i in order[start : start + batch]]
            inputs = {k: v.to(device) for k, v in task.collate(rows, tokenizer, "").items()}
            loss = model(**inputs).loss
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            epoch_loss.append(float(loss.detach()))
        train_seconds += time.perf_counter() - tick
        tick = time.perf_counter()
        dev = task.evaluate(model, tokenizer, tables["dev"].rows, "", batch_size=64)
        eval_seconds += time.perf_counter() - tick
        curve.append(dev.score)
        losses.append(sum(epoch_loss) / max(1, len(epoch_loss)))
        key = (dev.score, -(dev.loss or 0.0))
        if best_key is None or key > best_key:
            best_key = key
            best_state = {
                k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad
            }
    assert best_state is not None
    with torch.no_grad():
        for k, v in model.named_parameters():
            if k in best_state:
                v.copy_(best_state[k])
    tick = time.perf_counter()
    dev = task.evaluate(model, tokenizer, tables["dev"].rows, "", batch_size=64)
    test = task.evaluate(model, tokenizer, tables["test"].rows, "", batch_size=64)
    eval_seconds += time.perf_counter() - tick
    metric = task.primary_metric
    return {
        "metric": metric,
        "test": test.metrics.get(metric),
        "dev": dev.metrics.get(metric),
        "test_metrics": test.metrics,
        "dev_curve": curve,
        "dev_loss_curve": None,
        "train_loss_curve": losses,
        "prefix": f"<{len(init_ids)} virtual tokens>",
        "prefixes": None,
        "best_round": curve.index(best_key[0]) if best_key else None,
        "wall_seconds": round(time.perf_counter() - started, 2),
        "run_wall_seconds": None,
        "seconds": {
            "train": round(train_seconds, 2),
            "eval": round(eval_seconds, 2),
            "ta": 0.0,
            "screen": 0.0,
        },
        "ta_requests": 0,
        "ta_tokens": 0,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_cuda_mb": _cuda_peak(cuda),
        "run_dir": None,
        "prompt_tuning_lr": learning_rate,
    }
