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

Launched by torchrun / accelerate launch, every process runs this; the main process alone
talks to the TA and writes the run directory (see :mod:`gpta.distributed`).
"""

from __future__ import annotations

import copy
import json
import os
import random
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpta.assistant import History, RoundRecord, TaskBrief, TeachingAssistant
from gpta.assistant.prompts import initial_messages
from gpta.assistant.tuning import DialogueGradient
from gpta.config import GptaConfig, dump_config, load_config
from gpta.data import Table, read_splits, require_columns, sample_rows, stratified_split
from gpta.distributed import Ranks, init_ranks
from gpta.downstream.artifact import save_model, write_manifest
from gpta.downstream.device import resolve_device
from gpta.downstream.pipeline import GptaPipeline
from gpta.downstream.training import build_trainer
from gpta.errors import GptaUserError
from gpta.library import record_run, resolve_warm_start
from gpta.llm import make_chat_model
from gpta.llm.usage import UsageMeter
from gpta.privacy import build_exposure
from gpta.progress import Progress
from gpta.synergy import SynergyLoop
from gpta.tasks import TASKS, Task, build_task

CHECKPOINTS = "checkpoints"
STATE_FILE = "gpta_state.json"
RUN_FILES = (
    "config.yaml",
    "splits.json",
    "history.jsonl",
    "exposure.jsonl",
    "exemplars.jsonl",
    "metrics.json",
    "predictions",
    "model",
    CHECKPOINTS,
    "report",
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


def prepare_run_dir(path: str | Path, *, overwrite: bool, ranks: Ranks | None = None) -> Path:
    """Create the run directory; refuse to mix a new run into an old one.

    Every process checks (and fails alike) before the main process changes anything.
    """
    ranks = ranks or Ranks()
    run_dir = Path(path)
    existing = [name for name in RUN_FILES if (run_dir / name).exists()]
    if existing and not overwrite:
        raise GptaUserError(
            f"output_dir {run_dir} already holds a run ({', '.join(existing)})",
            hint="choose another --output-dir, or pass --overwrite to replace it",
        )
    ranks.barrier()
    if ranks.is_main:
        for name in existing:
            target = run_dir / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        run_dir.mkdir(parents=True, exist_ok=True)
    ranks.barrier()
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
    _absolute_data_paths(config)
    if config.assistant.warm_start:  # a bad library id or run folder fails before any work
        resolve_warm_start(config.assistant.warm_start)
    description = config.description_text()
    tables = load_data(config)
    task = build_task(config, tables)
    ranks = init_ranks(resolve_device(config.device))
    run_dir = prepare_run_dir(config.output_dir, overwrite=overwrite, ranks=ranks)
    if ranks.is_main:
        dump_config(config, run_dir / "config.yaml")
        _write_json(run_dir / "splits.json", _split_summary(tables))
    return _execute(
        config, run_dir, tables, task, description, resume_from=None, quiet=quiet, ranks=ranks
    )


def resume(run_dir: str | Path, *, quiet: bool = False) -> RunResult:
    """Continue an interrupted run from its last complete round (``gpta train --resume``)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise GptaUserError(
            f"--resume: {run_dir} holds no run (no config.yaml)",
            hint="pass the output directory of an earlier `gpta train`",
        )
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise GptaUserError(
            f"--resume: {run_dir} has no complete round to resume from",
            hint="the run stopped before its first round ended; start it again with --overwrite",
        )
    config = load_config(run_dir / "config.yaml")
    description = config.description_text()
    tables = load_data(config)
    if _split_summary(tables) != json.loads((run_dir / "splits.json").read_text("utf-8")):
        raise GptaUserError(
            f"--resume: the data no longer matches {run_dir / 'splits.json'}",
            hint="resume needs the same data files as the interrupted run",
        )
    task = build_task(config, tables)
    ranks = init_ranks(resolve_device(config.device))
    return _execute(
        config, run_dir, tables, task, description, resume_from=checkpoint, quiet=quiet, ranks=ranks
    )


def latest_checkpoint(run_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint whose round was completely recorded (its state file exists)."""
    found = []
    for path in (run_dir / CHECKPOINTS).glob("checkpoint-*"):
        state_file = path / STATE_FILE
        if state_file.is_file():
            state = json.loads(state_file.read_text(encoding="utf-8"))
            found.append((state["round"], path, state))
    if not found:
        return None
    _, path, state = max(found, key=lambda item: item[0])
    return path, state


def _split_summary(tables: dict[str, Table]) -> dict[str, Any]:
    return {name: {"source": t.source, "rows": len(t)} for name, t in tables.items()}


def _absolute_data_paths(config: GptaConfig) -> None:
    """Record data paths absolutely so that a resumed run finds them from anywhere."""
    for key in ("train", "dev", "test", "description_file"):
        value = getattr(config.data, key)
        if value is not None and Path(value).exists():
            setattr(config.data, key, str(Path(value).resolve()))


def _write_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(json.dumps(state, ensure_ascii=False))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _execute(
    config: GptaConfig,
    run_dir: Path,
    tables: dict[str, Table],
    task: Task,
    description: str,
    *,
    resume_from: tuple[Path, dict[str, Any]] | None,
    quiet: bool,
    ranks: Ranks | None = None,
) -> RunResult:
    from transformers import set_seed

    ranks = ranks or Ranks()
    wall_started = time.perf_counter()
    progress = Progress(quiet=quiet or not ranks.is_main)
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

    # the TA, the exposure ledger and the history live on the main process only
    side = (
        _teaching_side(
            config, run_dir, tables, task, description, tokenizer, device, progress, resume_from
        )
        if ranks.is_main
        else None
    )

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
        assistant=side.assistant if side else None,
        brief=side.brief if side else None,
        history=side.history if side else None,
        config=config.assistant,
        dev_rows=dev.rows,
        screen_indices=screen_indices,
        eval_batch_size=config.training.eval_batch_size,
        rounds=config.training.rounds,
        seed=config.seed,
        on_new_best=lambda _model, record: pending_best.append(record),
        progress=progress,
        dialogue=side.dialogue if side else None,
        ranks=ranks,
        augment=config.training.augment_prefixes,
    )
    pending_best: list[RoundRecord] = []
    best_pool: list[str] = []  # prefix variety: the prefixes the best round trained with

    def on_round_end(round_index: int, round_model: Any, train_loss: float | None) -> None:
        trained_pool = [p for p in collator.pool if p]
        known = len(pending_best)
        prefix = loop.end_of_round(round_index, round_model, train_loss)
        if len(pending_best) > known:
            best_pool[:] = trained_pool
        collator.set_prefix(prefix, loop.pool)

    def extra_manifest() -> dict[str, Any]:
        if config.training.augment_predict == "mean" and best_pool:
            return {"predict_prefixes": best_pool}
        return {}

    def on_checkpoint(round_index: int, path: str) -> None:
        # The model has not changed since the round ended: save it now if it was the best,
        # then mark the checkpoint complete. Resume only trusts marked checkpoints.
        if not ranks.is_main:
            return
        if pending_best:
            _save_best(
                run_dir, model, tokenizer, {**manifest, **extra_manifest()}, pending_best.pop()
            )
        state = {
            "round": round_index,
            "history_lines": side.history.line_count(),
            "loop": loop.state(),
        }
        _write_state(Path(path) / STATE_FILE, state)

    if resume_from is None:
        prefix = loop.initial_prefix()
        start_round, checkpoint = 0, None
    else:
        loop.load_state(resume_from[1]["loop"])
        prefix, start_round = loop.prefix, resume_from[1]["round"] + 1
        checkpoint = str(resume_from[0])
        progress.info(f"resuming after round {start_round - 1} from {checkpoint}")

    trainer, collator = build_trainer(
        model=model,
        tokenizer=tokenizer,
        task=task,
        rows=tables["train"].rows,
        config=config.training,
        rounds=config.training.rounds,
        seed=config.seed,
        device=device,
        checkpoint_dir=str(run_dir / CHECKPOINTS),
        prefix=prefix,
        show_progress=not quiet and ranks.is_main,
        on_round_end=on_round_end,
        on_checkpoint=on_checkpoint,
        start_round=start_round,
    )
    collator.set_prefix(prefix, loop.pool)
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Writing model shards" bar at every checkpoint
    try:
        trainer.train(resume_from_checkpoint=checkpoint)
    except KeyboardInterrupt:
        done = len(side.history.rounds) if side else 0
        progress.console.print(
            f"interrupted after {done} complete round(s); continue with: "
            f"gpta train --resume {run_dir}"
        )
        raise
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    ranks.barrier()  # the main process has written the best model
    if ranks.is_main and not config.training.keep_checkpoints:
        shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)

    # Evaluate the saved model exactly as `gpta predict` will run it (sharded across
    # processes, like the rounds' evaluation).
    best = ranks.broadcast(loop.best)
    assert best is not None
    pipeline = GptaPipeline(
        run_dir / "model", device=device, batch_size=config.training.eval_batch_size
    )
    results: dict[str, dict[str, Any]] = {}
    for name, table in (("dev", dev), ("test", test)):
        evaluation = pipeline.evaluate(table.rows, ranks=ranks)
        results[name] = evaluation.metrics
        if ranks.is_main:
            _write_predictions(
                run_dir / "predictions" / f"{name}.jsonl", table, evaluation.predictions
            )
    if side is None:  # another process: the main one writes the rest
        ranks.barrier()
        return RunResult(run_dir, best.prefix, best.round, [], results["dev"], results["test"])
    history, channel, meter, dialogue = side.history, side.channel, side.meter, side.dialogue
    projection = side.projection

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
        "ta_blocked": channel.blocked,
        "ta_prompt_tokens": channel.usage.prompt_tokens,
        "ta_completion_tokens": channel.usage.completion_tokens,
        "ta_usage": meter.summary(),
        "ta_projection": projection.as_dict(),
        # share of the TA's proposals that beat the current prefix, per round and overall
        "ta_improvement": dialogue.finish() if dialogue is not None else None,
    }
    _write_json(run_dir / "metrics.json", metrics)
    write_manifest(
        run_dir / "model",
        {
            **manifest,
            **extra_manifest(),
            "prefix": best.prefix,
            "best_round": best.round,
            "metrics": results,
        },
    )
    if config.assistant.library:
        record_run(run_dir, domain=config.data.domain, history=history, progress=progress)
    progress.info(_usage_line(meter))
    progress.summary(str(run_dir), rounds, task.primary_metric, best.round, results["test"])
    ranks.barrier()
    return RunResult(run_dir, best.prefix, best.round, rounds, results["dev"], results["test"])


@dataclass
class _TeachingSide:
    """What the main process holds besides the model: the TA and what it was told."""

    assistant: TeachingAssistant
    brief: TaskBrief
    history: History
    dialogue: DialogueGradient | None
    channel: Any
    meter: UsageMeter
    projection: Any


def _teaching_side(
    config: GptaConfig,
    run_dir: Path,
    tables: dict[str, Table],
    task: Task,
    description: str,
    tokenizer: Any,
    device: str,
    progress: Progress,
    resume_from: tuple[Path, dict[str, Any]] | None,
) -> _TeachingSide:
    """The privacy channel and ledger, the TA, its usage meter, the history, the dialogue
    gradient."""
    io = task.io()
    exposure = build_exposure(  # privacy: leak guard over every row, exemplars, ledger
        config,
        tables,
        run_dir,
        text_column=getattr(task, "text_column", "text"),
        label_column=getattr(task, "label_column", None),
        description=description,
    )
    exposure.announce(progress)
    progress.info(f"teaching assistant: {config.assistant.backend} {config.assistant.model}")
    # A fixed empty/static/transferred prefix never asks the TA: do not load it.
    needs_ta = not (
        config.assistant.fixed_prefix
        and (config.assistant.initial != "first" or config.assistant.warm_start)
    )
    chat_model = make_chat_model(config.assistant, device=device) if needs_ta else None
    brief = TaskBrief(
        family=io.family,
        reads=io.reads,
        description=description,
        label_names=io.labels,
        metric=io.metric,
        max_words=config.assistant.max_prefix_tokens,
        screen_metric=io.screen_metric,
        example=io.example,
        slot=io.slot,
        exemplars=tuple(exposure.exemplars),
    )
    meter = UsageMeter(
        config.assistant.model,
        prices={k: v.model_dump() for k, v in config.assistant.prices.items()},
        max_cost_usd=config.assistant.max_cost_usd,
        max_total_tokens=config.assistant.max_total_tokens,
    )
    channel = exposure.channel(chat_model, meter)
    # a background TA request counts tokens in its own thread: not with the collator's tokenizer
    ta_tokenizer = copy.deepcopy(tokenizer) if config.assistant.background else tokenizer
    assistant = TeachingAssistant(
        channel,
        brief,
        config.assistant,
        count_tokens=lambda text: len(ta_tokenizer(text, add_special_tokens=False)["input_ids"]),
        on_call=lambda info: history.log("ta_call", **info),
    )
    projection = assistant.projection(
        calls=(
            0
            if chat_model is None
            else int(config.assistant.initial == "first")
            + (0 if config.assistant.fixed_prefix else config.training.rounds - 1)
        ),
        first=initial_messages(brief),
    )
    if chat_model is not None:
        progress.info(projection.line())
    if config.assistant.max_cost_usd is not None and meter.price is None:
        progress.info(
            f"[yellow]warning:[/] assistant.max_cost_usd is set but assistant.prices has no "
            f"price for {config.assistant.model}: only the token budget can apply"
        )
    if resume_from is None:
        history = History(run_dir / "history.jsonl")
    else:
        history = History.resume(run_dir / "history.jsonl", lines=resume_from[1]["history_lines"])
    # the dialogue gradient: the task's example store, the TA's adapter and tuning, its rates
    dialogue = None
    if chat_model is not None:
        dialogue = DialogueGradient(
            config,
            chat_model=chat_model,
            run_dir=run_dir,
            family=config.task,
            description=description,
            label_names=io.labels,
            history=history,
            device=device,
        )

    return _TeachingSide(assistant, brief, history, dialogue, channel, meter, projection)


def _usage_line(meter: UsageMeter) -> str:
    """What the TA cost this run, in one line."""
    u = meter.summary()
    cost = f", ${u['cost_usd']:.4f}" if u["cost_usd"] is not None else ""
    return (
        f"TA usage: {u['calls']} calls ({u['cached_calls']} cached, {u['failed_calls']} failed, "
        f"{u['skipped_calls']} over budget), {u['prompt_tokens']} prompt + "
        f"{u['completion_tokens']} completion tokens sent{cost}"
    )
