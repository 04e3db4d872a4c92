"""``gpta train``: one GPTA run from a configuration to a run directory.

Read the data -> build the task -> load the downstream model and the TA ->
train in rounds (the Trainer) with the synergy loop at every round's end ->
reload the best round's saved model and evaluate it the way ``gpta predict`` does.

The run directory::

    config.yaml        the configuration as resolved
    splits.json        where train/dev/test came from and their sizes
    history.jsonl      every round, proposal, screening and selection, appended as it happens
    exposure.jsonl     every request sent to the TA, written before it is sent
    metrics.json       dev and test metrics of the saved model, timings, memory
    predictions/       dev.jsonl and test.jsonl from the saved model
    model/             the best round's model and tokenizer (Hugging Face format) + gpta.json
"""

from __future__ import annotations

import json
import random
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpta.assistant import History, RoundRecord, TaskBrief, TeachingAssistant
from gpta.config import GptaConfig, dump_config
from gpta.data import Table, read_splits, require_columns, sample_rows, stratified_split
from gpta.downstream.artifact import save_model, write_manifest
from gpta.downstream.device import resolve_device
from gpta.downstream.pipeline import GptaPipeline
from gpta.downstream.training import build_trainer
from gpta.errors import GptaUserError
from gpta.llm import make_chat_model
from gpta.privacy import ExposureChannel, ExposureLedger
from gpta.progress import Progress
from gpta.synergy import SynergyLoop
from gpta.tasks import TASKS, build_task

RUN_FILES = (
    "config.yaml",
    "splits.json",
    "history.jsonl",
    "exposure.jsonl",
    "metrics.json",
    "predictions",
    "model",
)


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    prefix: str
    best_round: int
    rounds: list[RoundRecord]
    dev_metrics: dict[str, Any]
    test_metrics: dict[str, Any] | None


def prepare_run_dir(path: str | Path, *, overwrite: bool) -> Path:
    """Create the run directory; refuse to mix a new run into an old one."""
    run_dir = Path(path)
    existing = [name for name in RUN_FILES if (run_dir / name).exists()]
    if existing and not overwrite:
        raise GptaUserError(
            f"output_dir {run_dir} already holds a run ({', '.join(existing)})",
            hint="choose another --output-dir, or pass --overwrite to replace it",
        )
    for name in existing:
        target = run_dir / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def load_data(config: GptaConfig) -> dict[str, Table]:
    """Read the splits; carve dev/test out of train when not given; sample low-resource.

    Splits and samples are stratified by label for classification, plain seeded otherwise.
    """
    data = config.data
    if data.train is None:
        raise GptaUserError(
            "no training data",
            hint="set data.train (--train) to a file, a datasets folder or a hub dataset name",
        )
    tables = read_splits(data.train, data.dev, data.test, fmt=data.format)
    train = tables["train"]
    column = TASKS[config.task].stratify_column_for(config)

    def strata(table: Table) -> list | None:
        return table.column(column) if column else None

    if column:
        require_columns(train, [column], option="data.label_column")
    if "test" not in tables:
        train, tables["test"] = stratified_split(
            train, data.test_fraction, seed=config.seed, stratify=strata(train)
        )
    if "dev" not in tables:
        train, tables["dev"] = stratified_split(
            train, data.dev_fraction, seed=config.seed, stratify=strata(train)
        )
    if data.train_size is not None:
        train = sample_rows(train, data.train_size, seed=config.seed, stratify=strata(train))
    tables["train"] = train
    return tables


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _save_best(
    run_dir: Path, model: Any, tokenizer: Any, manifest: dict[str, Any], record: RoundRecord
) -> None:
    """Write the model of a new best round atomically (staging folder, then rename)."""
    staging = Path(tempfile.mkdtemp(prefix=".model-", dir=run_dir))
    save_model(model, tokenizer, staging)
    write_manifest(
        staging,
        {
            **manifest,
            "prefix": record.prefix,
            "best_round": record.round,
            "metrics": {"dev": record.dev_metrics},
        },
    )
    target = run_dir / "model"
    if target.exists():
        old = run_dir / ".model-old"
        target.rename(old)
        staging.rename(target)
        shutil.rmtree(old)
    else:
        staging.rename(target)


def _write_predictions(path: Path, table: Table, predictions: list[Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for where, prediction in zip(table.locations, predictions, strict=True):
            handle.write(
                json.dumps({"row": where, "prediction": prediction}, ensure_ascii=False) + "\n"
            )


def train(config: GptaConfig, *, overwrite: bool = False, quiet: bool = False) -> RunResult:
    """Run GPTA for the configured task and write the run directory."""
    from transformers import set_seed

    wall_started = time.perf_counter()
    progress = Progress(quiet=quiet)
    description = config.description_text()
    tables = load_data(config)
    task = build_task(config, tables)
    run_dir = prepare_run_dir(config.output_dir, overwrite=overwrite)
    dump_config(config, run_dir / "config.yaml")
    _write_json(
        run_dir / "splits.json",
        {name: {"source": t.source, "rows": len(t)} for name, t in tables.items()},
    )
    io = task.io()
    labels = f"; labels {io.labels}" if io.labels else ""
    progress.info(
        f"{config.task}: train {len(tables['train'])}, dev {len(tables['dev'])}, "
        f"test {len(tables['test'])} rows{labels}"
    )

    device = resolve_device(config.device)
    set_seed(config.seed)
    model_name = config.model.resolved_name(config.task)
    model, tokenizer = task.load_model(model_name)
    progress.info(f"downstream model: {model_name} on {device}")

    ledger = ExposureLedger(run_dir / "exposure.jsonl")
    progress.info(f"teaching assistant: {config.assistant.backend} {config.assistant.model}")
    chat_model = make_chat_model(config.assistant, device=device)
    brief = TaskBrief(
        family=io.family,
        reads=io.reads,
        description=description,
        label_names=io.labels,
        metric=io.metric,
        max_words=config.assistant.max_prefix_tokens,
        screen_metric=io.screen_metric,
        example=io.example,
    )
    channel = ExposureChannel(chat_model, ledger)
    assistant = TeachingAssistant(
        channel,
        brief,
        config.assistant,
        count_tokens=lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]),
    )
    history = History(run_dir / "history.jsonl")

    dev, test = tables["dev"], tables["test"]
    screen_indices = sorted(
        random.Random(config.seed).sample(
            range(len(dev)), min(config.assistant.screen_size, len(dev))
        )
    )
    manifest = {"task": config.task, **task.manifest(), "base_model": model_name}
    loop = SynergyLoop(
        task=task,
        tokenizer=tokenizer,
        assistant=assistant,
        brief=brief,
        history=history,
        config=config.assistant,
        dev_rows=dev.rows,
        screen_indices=screen_indices,
        eval_batch_size=config.training.eval_batch_size,
        rounds=config.training.rounds,
        seed=config.seed,
        on_new_best=lambda m, record: _save_best(run_dir, m, tokenizer, manifest, record),
        progress=progress,
    )
    prefix = loop.initial_prefix()

    with tempfile.TemporaryDirectory(prefix="gpta-trainer-") as scratch:
        trainer, collator = build_trainer(
            model=model,
            tokenizer=tokenizer,
            task=task,
            rows=tables["train"].rows,
            config=config.training,
            rounds=config.training.rounds,
            seed=config.seed,
            device=device,
            scratch_dir=scratch,
            prefix=prefix,
            show_progress=not quiet,
            on_round_end=lambda r, m, loss: setattr(
                collator, "prefix", loop.end_of_round(r, m, loss)
            ),
        )
        trainer.train()

    # Evaluate the saved model exactly as `gpta predict` will run it.
    best = loop.best
    assert best is not None
    pipeline = GptaPipeline(
        run_dir / "model", device=device, batch_size=config.training.eval_batch_size
    )
    results: dict[str, dict[str, Any]] = {}
    for name, table in (("dev", dev), ("test", test)):
        evaluation = pipeline.evaluate(table.rows)
        results[name] = evaluation.metrics
        _write_predictions(run_dir / "predictions" / f"{name}.jsonl", table, evaluation.predictions)

    rounds = history.rounds
    metrics = {
        "task": config.task,
        "primary_metric": task.primary_metric,
        "best_round": best.round,
        "prefix": best.prefix,
        "dev": results["dev"],
        "test": results["test"],
        "rounds": [
            {
                "round": r.round,
                "prefix": r.prefix,
                "dev_score": r.dev_score,
                "dev_loss": r.dev_loss,
                "train_loss": r.train_loss,
                "seconds": r.seconds,
            }
            for r in rounds
        ],
        "wall_seconds": round(time.perf_counter() - wall_started, 2),
        "ta_seconds": round(loop.ta_seconds, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "ta_requests": channel.requests,
        "ta_prompt_tokens": channel.usage.prompt_tokens,
        "ta_completion_tokens": channel.usage.completion_tokens,
    }
    _write_json(run_dir / "metrics.json", metrics)
    write_manifest(
        run_dir / "model",
        {**manifest, "prefix": best.prefix, "best_round": best.round, "metrics": results},
    )
    progress.summary(str(run_dir), rounds, task.primary_metric, best.round, results["test"])
    return RunResult(run_dir, best.prefix, best.round, rounds, results["dev"], results["test"])
