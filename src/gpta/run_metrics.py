"""A finished run's numbers: the saved model evaluated as ``gpta predict`` runs it (and its
predictions/), metrics.json, the warnings and lines of the run's end."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path
from typing import Any

from gpta import run_files
from gpta.assistant.card_choice import CardChoice
from gpta.chat.usage import UsageMeter
from gpta.config import GptaConfig
from gpta.data import Table
from gpta.distributed import Ranks
from gpta.downstream.pipeline import GptaPipeline
from gpta.downstream.training import round_budget
from gpta.progress import Progress
from gpta.synergy import SynergyLoop
from gpta.tasks import TASKS, Task
from gpta.teaching_side import TeachingSide


def write_predictions(path: Path, table: Table, predictions: list[Any]) -> None:
    """predictions/<split>.jsonl: each row's location in its file and the prediction."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for where, prediction in zip(table.locations, predictions, strict=True):
            handle.write(
                json.dumps({"row": where, "prediction": prediction}, ensure_ascii=False) + "\n"
            )


def evaluate_saved(
    config: GptaConfig, run_dir: Path, tables: dict[str, Table], device: str, ranks: Ranks
) -> dict[str, dict[str, Any]]:
    """The saved model on dev and test exactly as ``gpta predict`` will run it (sharded
    across processes, like the rounds' evaluation); the main process writes predictions/."""
    pipeline = GptaPipeline(
        run_dir / run_files.MODEL, device=device, batch_size=config.training.eval_batch_size
    )
    results: dict[str, dict[str, Any]] = {}
    for name in ("dev", "test"):
        table = tables[name]
        evaluation = pipeline.evaluate(table.rows, ranks=ranks)
        results[name] = evaluation.metrics
        if ranks.is_main:
            write_predictions(
                run_dir / run_files.predictions_file(name), table, evaluation.predictions
            )
    return results


def run_metrics(
    config: GptaConfig,
    tables: dict[str, Table],
    task: Task,
    side: TeachingSide,
    loop: SynergyLoop,
    results: dict[str, dict[str, Any]],
    *,
    ranks: Ranks,
    progress: Progress,
    wall_started: float,
    loop_seconds: float,
) -> dict[str, Any]:
    """metrics.json: the saved model's dev and test metrics against the majority class
    (a warning when it does not beat it), the rounds, timings, memory, the TA's usage."""
    rounds, channel = side.history.rounds, side.channel
    best = loop.best
    assert best is not None
    dev, test = tables["dev"], tables["test"]
    majority = task.majority_baseline(tables["train"].rows, {"dev": dev.rows, "test": test.rows})
    beats_majority = check_majority(majority, results, task.primary_metric, progress)
    return {
        "task": config.task,
        "primary_metric": task.primary_metric,
        "best_round": best.round,
        "prefix": best.serving_prefix,
        "dev": results["dev"],
        "test": results["test"],
        "majority_baseline": majority,
        "beats_majority": beats_majority,
        "budget": round_budget(
            config.training, len(tables["train"]), world_size=ranks.world
        ).as_dict(),
        "rounds_trained": len(rounds),
        "early_stopped": loop.stopped and len(rounds) < config.training.rounds,
        "rounds": [
            {
                "round": r.round,
                "prefix": r.prefix,
                "dev_score": r.dev_score,
                "dev_loss": r.dev_loss,
                "empty_dev_score": r.empty_dev_score,
                "serving_prefix": r.serving_prefix,
                "train_loss": r.train_loss,
                "seconds": r.seconds,
            }
            for r in rounds
        ],
        "wall_seconds": round(time.perf_counter() - wall_started, 2),
        # the rounds (training, evaluation, TA, screening, checkpoints) from first step to last
        "loop_seconds": round(loop_seconds, 2),
        "ta_seconds": round(loop.ta_seconds, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "ta_requests": channel.requests,
        "ta_failed": channel.failed,
        "ta_blocked": channel.blocked,
        "ta_warning": ta_warning(side),
        "ta_prompt_tokens": channel.usage.prompt_tokens,
        "ta_completion_tokens": channel.usage.completion_tokens,
        "ta_usage": side.meter.summary(),
        "ta_projection": side.projection.as_dict(),
        # share of the TA's proposals that beat the current prefix, per round and overall
        "ta_improvement": side.dialogue.finish() if side.dialogue is not None else None,
        **channel.ledger.seal(),  # the exposure ledger's final hash and record count (audit)
    }


def check_majority(
    majority: dict[str, Any] | None,
    results: dict[str, dict[str, Any]],
    metric: str,
    progress: Progress,
) -> bool | None:
    """Whether the saved model beats always answering the majority class on dev; a plain
    warning when it does not (None where the family has no majority answer)."""
    if majority is None or majority.get("dev") is None:
        return None
    score = results["dev"].get(metric)
    if score is not None and score > majority["dev"]:
        return True
    test = results["test"].get(metric) if results.get("test") else None
    progress.warn(
        f"the saved model does not beat the majority-class baseline on dev ({metric} "
        f"{score:.3f} vs {majority['dev']:.3f} for always answering {majority['answer']!r}"
        + (f"; test {test:.3f} vs {majority['test']:.3f}" if test is not None else "")
        + "): it has not learned the task. Give it more training rows or steps "
        "(training.min_steps), or check the labels."
    )
    return False


def cards_summary(config: GptaConfig, cards: CardChoice) -> dict[str, Any] | None:
    """metrics.json's ``cards``: what the card step adopted (None: the step was off)."""
    if config.cards.source == "none":
        return None
    counts: dict[str, int] = {}
    for row in cards.rows:
        label = str(row.get(TASKS["classification"].columns_for(config).label))
        counts[label] = counts.get(label, 0) + 1
    return {
        "source": config.cards.source,
        "adopted": cards.adopted,
        "variant": cards.variant or None,
        "weight": cards.weight,
        "examples_per_class": counts,
        "selection": cards.selection or None,
    }


def ta_warning(side: TeachingSide) -> str | None:
    """What the run's TA requests came to when some got no answer (failed, timed out,
    blocked by the leak guard, over budget), for the end of the run and metrics.json;
    None when every request was answered (docs/meaning.md)."""
    channel, skipped = side.channel, side.meter.skipped_calls
    answered = channel.requests - channel.failed
    lost = channel.failed + channel.blocked + skipped
    if not lost:
        return None
    parts = [
        f"{count} {what}"
        for count, what in (
            (channel.failed, "failed (errors and time-outs: history.jsonl has each)"),
            (channel.blocked, f"blocked by the leak guard (last: {channel.last_block})"),
            (skipped, "over the TA budget"),
        )
        if count
    ]
    total = answered + lost
    if answered:
        return (
            f"{lost} of {total} TA requests got no answer: {'; '.join(parts)}; the TA's "
            "proposals of those rounds are missing"
        )
    return (
        f"the TA never answered: all {total} TA request(s) got no answer ({'; '.join(parts)}); "
        "this run trained without the TA's prefixes (its starting prefix only)"
    )


def usage_line(meter: UsageMeter) -> str:
    """What the TA cost this run, in one line."""
    u = meter.summary()
    cost = f", ${u['cost_usd']:.4f}" if u["cost_usd"] is not None else ""
    return (
        f"TA usage: {u['calls']} calls ({u['cached_calls']} cached, {u['failed_calls']} failed, "
        f"{u['skipped_calls']} over budget), {u['prompt_tokens']} prompt + "
        f"{u['completion_tokens']} completion tokens sent{cost}"
    )
