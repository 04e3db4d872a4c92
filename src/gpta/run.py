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

import contextlib
import copy
import json
import os
import random
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpta.assistant import History, RoundRecord, TaskBrief, TeachingAssistant, label_words
from gpta.assistant.card_choice import CardChoice, choose_cards, load_choice
from gpta.assistant.prompts import initial_messages
from gpta.assistant.tuning import DialogueGradient
from gpta.chat.usage import Projection, UsageMeter
from gpta.config import DATA_PATH_KEYS, GptaConfig, dump_config, load_config
from gpta.data import Table, read_splits, require_columns, sample_rows, stratified_split
from gpta.distributed import Ranks, init_ranks
from gpta.downstream.artifact import save_model, write_manifest
from gpta.downstream.pipeline import GptaPipeline
from gpta.downstream.training import PrefixCollator, PrefixTrainer, build_trainer, round_budget
from gpta.errors import GptaUserError
from gpta.library import record_run, resolve_warm_start
from gpta.llm import make_chat_model
from gpta.modeling.device import resolve_device
from gpta.privacy import ExposureChannel, build_exposure
from gpta.progress import Progress, warn
from gpta.round_choice import RunSelection
from gpta.run_folder import (  # the run folder's own module; its public names stay here too
    CHECKPOINTS,
    PREVIOUS,
    RUN_EXTRA,
    RUN_FILES,
    RUN_MARKER,
    STATE_FILE,
    check_run_dir,
    drop_previous,
    is_gpta_run,
    latest_checkpoint,
    prepare_run_dir,
    read_marker,
    remove_checkpoints,
    remove_incomplete_checkpoints,
    sync_files,
    undo_failed_start,
)
from gpta.run_lock import first_missing_folder, refuse_if_in_use, run_lock
from gpta.signals import Terminated, deferred
from gpta.synergy import SynergyLoop
from gpta.tasks import TASKS, Task, build_task

__all__ = [
    "CHECKPOINTS",
    "PREVIOUS",
    "RUN_EXTRA",
    "RUN_FILES",
    "RUN_MARKER",
    "STATE_FILE",
    "RunResult",
    "check_run_dir",
    "is_gpta_run",
    "latest_checkpoint",
    "load_data",
    "prepare_run_dir",
    "resume",
    "train",
]


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    prefix: str
    best_round: int
    rounds: list[RoundRecord]
    dev_metrics: dict[str, Any]
    test_metrics: dict[str, Any] | None


def _check_models(config: GptaConfig) -> None:
    """The downstream model's (and a local TA's) configuration and tokenizer load, a second
    or less: a bad model name fails before the run directory, or an old run in it, is
    touched."""
    from gpta.bundled import resolve_model_path

    _check_loadable(
        "model.name_or_path", config.model.resolved_name(config.task), resolve_model_path
    )
    assistant = config.assistant
    needs_ta = not (
        assistant.fixed_prefix and (assistant.initial != "first" or assistant.warm_start)
    )
    if needs_ta and assistant.backend == "local":
        _check_loadable("assistant.model", assistant.model, resolve_model_path)


def _check_loadable(option: str, name: str, resolve: Any) -> None:
    from transformers import AutoConfig, AutoTokenizer

    from gpta.modeling.loading import quiet_loading

    path = resolve(name)
    if path.endswith(".gguf") and Path(path).is_file():  # de-quantized by its loader
        return
    try:
        with quiet_loading():
            AutoConfig.from_pretrained(path)
            AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise GptaUserError(
            f"{option}: could not load {name!r} ({err})",
            hint="give a local model folder, a model id already in the Hugging Face cache, "
            "or a bundled model (bundled:minilm, bundled:smollm2)",
        ) from None


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
    _cap_rows(config, tables)
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
        drawn_from = len(train)
        train = sample_rows(train, data.train_size, seed=config.seed, stratify=strata(train))
        train.unsampled = drawn_from - len(train)
    tables["train"] = train
    return tables


def _cap_rows(config: GptaConfig, tables: dict[str, Table]) -> None:
    """Cut over-long texts before anything tokenises them (one warning, never silenced), or
    refuse a cell that must not be cut, naming its row (see :func:`gpta.data.cap_task_rows`)."""
    from gpta.data import cap_task_rows

    default_text, default_label = {
        "classification": ("text", "label"),
        "qa": ("context", "answers"),
        "multiple_choice": ("article", "answer"),
        "summarization": ("document", "summary"),
    }[config.task]
    for table in tables.values():
        message = cap_task_rows(
            table,
            family=config.task,
            text_column=config.data.text_column or default_text,
            label_column=config.data.label_column or default_label,
            question_column=config.data.question_column,
            options_column=config.data.options_column,
            max_length=config.model.max_length,
        )
        if message:
            warn(message)


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _save_best(run_dir: Path, model: Any, tokenizer: Any, manifest: dict[str, Any]) -> list[str]:
    """Write the model of a new best round atomically (staging folder, then rename); the
    files it wrote (relative to the run folder). A full disk leaves no staging folder behind;
    a file of the user's in the old ``model/`` moves into the new one."""
    staging = Path(tempfile.mkdtemp(prefix=".model-", dir=run_dir))
    try:
        save_model(model, tokenizer, staging)
        write_manifest(staging, manifest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    written = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
    target = run_dir / "model"
    if not target.exists():
        staging.rename(target)
        return [f"model/{name}" for name in written]
    marker = read_marker(run_dir)
    old = run_dir / ".model-old"
    shutil.rmtree(old, ignore_errors=True)  # left by a crash between the renames: gpta's
    target.rename(old)
    staging.rename(target)
    listed = (
        {e[len("model/") :] for e in marker.files if e.startswith("model/")} if marker else None
    )
    for path in sorted(old.rglob("*")):
        name = path.relative_to(old).as_posix()
        mine = listed is None or name in listed or name in written
        if not mine and (path.is_file() or path.is_symlink()) and not (target / name).exists():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            path.rename(target / name)
    shutil.rmtree(old)
    return [f"model/{name}" for name in written]


def _write_predictions(path: Path, table: Table, predictions: list[Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for where, prediction in zip(table.locations, predictions, strict=True):
            handle.write(
                json.dumps({"row": where, "prediction": prediction}, ensure_ascii=False) + "\n"
            )


def train(config: GptaConfig, *, overwrite: bool = False, quiet: bool = False) -> RunResult:
    """Run GPTA for the configured task and write the run directory.

    Everything that can be checked is checked before the run directory is touched: the
    folder, the data, the task, the downstream model. An old run that ``overwrite``
    replaces is kept until the new one has finished (see :func:`prepare_run_dir`); a run
    that fails before its first complete round leaves the folder as it was.
    """
    check_run_dir(config.output_dir, overwrite=overwrite)  # writes nothing
    _absolute_data_paths(config)
    if config.assistant.warm_start:  # a bad library id or run folder fails before any work
        resolve_warm_start(config.assistant.warm_start)
    description = config.description_text()
    tables = load_data(config)
    task = build_task(label_words.for_validation(config, tables), tables)
    _check_models(config)
    ranks = init_ranks(resolve_device(config.device))
    created = first_missing_folder(Path(config.output_dir))
    with run_lock(config.output_dir, ranks=ranks):  # held until the run ends, however it ends
        run_dir = prepare_run_dir(config.output_dir, overwrite=overwrite, ranks=ranks)
        try:
            cards = choose_cards(  # class cards: adopted only by cross-validation on the rows
                config,
                tables,
                task,
                run_dir=run_dir,
                description=description,
                ranks=ranks,
                quiet=quiet,
            )
            task = label_words.choose_label_words(  # opaque labels: the TA's screened words
                config,
                tables,
                task,
                run_dir=run_dir,
                description=description,
                ranks=ranks,
                quiet=quiet,
                offered=cards.names,  # the TA's card names, in place of a request for words
            )
            if ranks.is_main:
                dump_config(config, run_dir / "config.yaml")
                _write_json(run_dir / "splits.json", _split_summary(tables))
                sync_files(run_dir)
            result = _execute(
                config,
                run_dir,
                tables,
                task,
                description,
                resume_from=None,
                quiet=quiet,
                ranks=ranks,
                cards=cards,
            )
        except BaseException as err:
            undone = ranks.is_main and undo_failed_start(run_dir, created=created)
            _stopped(err, run_dir, undone=undone, ranks=ranks)
            raise
        if ranks.is_main:
            drop_previous(run_dir)
            sync_files(run_dir)
    return result


def _stopped(err: BaseException, run_dir: Path, *, undone: bool, ranks: Ranks) -> None:
    """A run stopped early: keep the file list of what it leaves up to date, and say so. A
    disk that is full, over quota or read-only is a :class:`GptaUserError` (no traceback)
    saying what is kept and how to go on; a stop before any round ended says the folder is as
    it was."""
    from gpta.fileio import disk_write_error

    if ranks.is_main and not undone:
        with contextlib.suppress(OSError):  # a full disk: the last checkpoint's list stays
            sync_files(run_dir)
    if isinstance(err, GptaUserError):
        return
    reason = disk_write_error(err) if isinstance(err, Exception) else None
    if reason is not None:
        if ranks.is_main and not undone:
            remove_incomplete_checkpoints(run_dir)  # the one cut short: space back, never resumed
        there = run_dir
        while not there.exists() and there != there.parent:  # the folder may be gone (undone)
            there = there.parent
        try:
            free = f" ({shutil.disk_usage(there).free / 2**20:,.0f} MiB free there now)"
        except OSError:
            free = ""
        if undone:
            raise GptaUserError(
                f"could not write the run in {run_dir}: {reason}{free}. No round had finished: "
                "the folder is left as it was before this run",
                hint="free space on that disk (or make it writable), or choose another "
                "--output-dir; then run again",
            ) from None
        checkpoint = latest_checkpoint(run_dir)
        kept = (
            f"The run stopped after round {checkpoint[1]['round']}, whose checkpoint is kept"
            if checkpoint
            else "The run stopped"
        )
        raise GptaUserError(
            f"could not write the run in {run_dir}: {reason}{free}. {kept}",
            hint=f"free space on that disk (or make it writable), then continue with: "
            f"gpta train --resume {run_dir}",
        ) from None
    if undone and isinstance(err, KeyboardInterrupt):
        warn(f"no round had finished: {run_dir} is left as it was before this run")


def resume(run_dir: str | Path, *, quiet: bool = False) -> RunResult:
    """Continue an interrupted run from its last complete round (``gpta train --resume``)."""
    run_dir = Path(run_dir)
    if run_dir.is_dir():
        refuse_if_in_use(run_dir)  # early; taking the lock below is the check that counts
    if not (run_dir / "config.yaml").is_file():
        raise GptaUserError(
            f"--resume: {run_dir} holds no run (no config.yaml)",
            hint="pass the output directory of an earlier `gpta train`",
        )
    if (run_dir / "metrics.json").is_file():
        raise GptaUserError(
            f"--resume: {run_dir} is a finished run, nothing is left to resume; its model is "
            f"{run_dir / 'model'}",
            hint=f"use it (gpta predict --model {run_dir} --input FILE, gpta report {run_dir}); "
            "to train again, give a new --output-dir",
        )
    unreadable: list[str] = []
    checkpoint = latest_checkpoint(run_dir, unreadable=unreadable)
    if checkpoint is None:
        why = f" (unreadable: {'; '.join(unreadable)})" if unreadable else ""
        raise GptaUserError(
            f"--resume: {run_dir} has no complete round to resume from{why}",
            hint="the run stopped before its first round ended, or its checkpoints are "
            "damaged; start it again (with --overwrite)",
        )
    if unreadable:
        warn(
            f"skipped damaged checkpoint(s) ({'; '.join(unreadable)}); resuming from "
            f"{checkpoint[0].name} (after round {checkpoint[1]['round']}) instead"
        )
    config = load_config(run_dir / "config.yaml")
    description = config.description_text()
    tables = load_data(config)
    try:
        recorded = json.loads((run_dir / "splits.json").read_text("utf-8"))
    except (OSError, ValueError):
        recorded = None
    if _split_summary(tables) != recorded:
        raise GptaUserError(
            f"--resume: the data no longer matches {run_dir / 'splits.json'}",
            hint="resume needs the same data files as the interrupted run",
        )
    task = build_task(config, tables)
    ranks = init_ranks(resolve_device(config.device))
    with run_lock(run_dir, ranks=ranks):  # held until the run ends, however it ends
        latest = latest_checkpoint(run_dir)
        if (run_dir / "metrics.json").is_file() or latest is None or latest[0] != checkpoint[0]:
            raise GptaUserError(
                f"--resume: {run_dir} changed while this command read its data (another "
                "gpta command wrote there)",
                hint=f"check the folder, then run gpta train --resume {run_dir} again",
            )
        try:
            result = _execute(
                config,
                run_dir,
                tables,
                task,
                description,
                resume_from=checkpoint,
                quiet=quiet,
                ranks=ranks,
                cards=load_choice(run_dir),
            )
        except BaseException as err:
            _stopped(err, run_dir, undone=False, ranks=ranks)
            raise
        if ranks.is_main:
            drop_previous(run_dir)  # a resumed replacement has finished: the replaced run goes
            sync_files(run_dir)
    return result


def _split_summary(tables: dict[str, Table]) -> dict[str, Any]:
    return {name: {"source": t.source, "rows": len(t)} for name, t in tables.items()}


def _absolute_data_paths(config: GptaConfig) -> None:
    """Record data paths absolutely so that a resumed run finds them from anywhere."""
    for key in DATA_PATH_KEYS:
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
    cards: CardChoice | None = None,
) -> RunResult:
    """One run in its prepared directory: the downstream model and (main process) the TA,
    the rounds (:class:`_Rounds`), then the saved model evaluated the way ``gpta predict``
    runs it, and metrics.json. ``cards``: the adopted class-card rows, trained with the
    real rows at their weight (none: exactly the plain run)."""
    ranks = ranks or Ranks()
    cards = cards or CardChoice()
    wall_started = time.perf_counter()
    progress = Progress(quiet=quiet or not ranks.is_main)
    model_name = config.model.resolved_name(config.task)
    # which rows choose the prefix and the round kept: dev, or cross-validation (before the
    # final model is loaded: selection.best_round cv trains k fold models first)
    resumed = resume_from[1] if resume_from else None
    selection = RunSelection.resolve(
        config,
        tables,
        split_off=dev_split_off_labelled(config, tables),
        legacy=resumed is not None and "selection" not in resumed,
    )
    device = resolve_device(config.device)
    selection.choose_rounds(config, task, cards.rows, resumed, progress, device)
    train_rows = [*selection.training_rows(tables), *cards.rows]
    model, tokenizer, device = _load_downstream(
        config,
        tables,
        task,
        model_name,
        progress,
        fresh=resume_from is None,
        rows=train_rows,
        selection=selection,
    )
    # the TA, the exposure ledger and the history live on the main process only
    side = (
        _teaching_side(
            config, run_dir, tables, task, description, tokenizer, device, progress, resume_from
        )
        if ranks.is_main
        else None
    )
    rounds = _Rounds(
        loop=_synergy_loop(
            config, tables["dev"], task, tokenizer, side, progress, ranks, selection
        ),
        run_dir=run_dir,
        model=model,
        tokenizer=tokenizer,
        manifest={"task": config.task, **task.manifest(), "base_model": model_name},
        history=side.history if side else None,
        ranks=ranks,
        progress=progress,
        predict_with_pool=config.training.augment_predict == "mean",
        selection=selection.record(),
        stop_after=selection.rounds.rounds if selection.rounds else None,
    )
    start_round, checkpoint = rounds.start(resume_from)
    trainer, rounds.collator = build_trainer(
        model=model,
        tokenizer=tokenizer,
        task=task,
        rows=train_rows,
        config=config.training,
        rounds=config.training.rounds,
        seed=config.seed,
        device=device,
        checkpoint_dir=str(run_dir / CHECKPOINTS),
        prefix=rounds.loop.prefix,
        show_progress=not quiet and ranks.is_main,
        on_round_end=rounds.end_of_round,
        on_checkpoint=rounds.checkpoint,
        start_round=start_round,
    )
    rounds.hand_prefix(start_round)
    # (a run resumed after its chosen last round was saved has nothing left to train)
    finished = rounds.stop_after is not None and start_round >= rounds.stop_after
    loop_seconds = 0.0 if finished else rounds.train(trainer, checkpoint)
    ranks.barrier()  # the main process has written the best model
    if ranks.is_main and not config.training.keep_checkpoints:
        remove_checkpoints(run_dir)  # gpta's checkpoint folders; a file of the user's stays

    best = ranks.broadcast(rounds.loop.best)
    assert best is not None
    results = _evaluate_saved(config, run_dir, tables, device, ranks)
    if side is None:  # another process: the main one writes the rest
        ranks.barrier()
        return RunResult(
            run_dir, best.serving_prefix, best.round, [], results["dev"], results["test"]
        )
    metrics = _metrics(config, tables, task, side, rounds, results, wall_started, loop_seconds)
    metrics["cards"] = _cards_summary(config, cards)
    metrics["selection"] = selection.record()
    if selection.best_round == "cv":  # the final model trained on the dev rows too
        metrics["budget"] = round_budget(
            config.training, len(selection.labelled), world_size=ranks.world
        ).as_dict()
    _write_json(run_dir / "metrics.json", metrics)
    write_manifest(run_dir / "model", rounds.manifest_of(best, results))
    history = side.history
    if config.assistant.library:
        record_run(run_dir, domain=config.data.domain, history=history, progress=progress)
    progress.info(_usage_line(side.meter))
    if metrics["ta_warning"]:  # it changes what the run was: printed even with -q
        progress.warn(metrics["ta_warning"])
    majority = metrics["majority_baseline"]
    progress.summary(
        str(run_dir),
        history.rounds,
        task.primary_metric,
        best.round,
        results["test"],
        majority,
        cards=metrics["cards"],
    )
    ranks.barrier()
    return RunResult(
        run_dir, best.serving_prefix, best.round, history.rounds, results["dev"], results["test"]
    )


def _load_downstream(
    config: GptaConfig,
    tables: dict[str, Table],
    task: Task,
    model_name: str,
    progress: Progress,
    *,
    fresh: bool,
    rows: list[dict[str, Any]],
    selection: RunSelection,
) -> tuple[Any, Any, str]:
    """The downstream model, its tokenizer and the device; a new run's head started from
    the training rows ``rows`` (a resumed run's checkpoint holds the trained head)."""
    from transformers import set_seed

    io = task.io()
    labels = f"; labels {io.labels}" if io.labels else ""
    progress.info(
        f"{config.task}: train {len(tables['train'])}, dev {len(tables['dev'])}, "
        f"test {len(tables['test'])} rows{labels}"
    )
    progress.info(dev_source(config, tables))
    for line in selection.lines():  # what chooses the prefix and the round kept
        progress.info(line)
    device = resolve_device(config.device)
    set_seed(config.seed)
    model, tokenizer = task.load_model(model_name)
    progress.info(f"downstream model: {model_name} on {device}")
    if fresh:
        started = task.prepare_model(
            model, tokenizer, rows, batch_size=config.training.eval_batch_size
        )
        if started:
            progress.info(f"head: {started['head_init']} on {started['pooling']}-pooled embeddings")
    return model, tokenizer, device


def dev_split_off_labelled(config: GptaConfig, tables: dict[str, Table]) -> bool:
    """Whether the dev rows were split off the user's only labelled rows (true few-shot): no
    dev file, and no row of the train file left outside the rows sampled for training. The
    one fact behind the dev line and ``selection: auto``."""
    return config.data.dev is None and not tables["train"].unsampled


def dev_source(config: GptaConfig, tables: dict[str, Table]) -> str:
    """Where the rows that choose the best round and the prefix come from, in one line."""
    dev, train = len(tables["dev"]), len(tables["train"])
    if config.data.dev is not None:
        return f"dev: {dev} rows of {Path(config.data.dev).name}"
    source = Path(str(config.data.train)).name
    outside = not dev_split_off_labelled(config, tables)
    sampled = f", outside the {train} sampled for training" if outside else ""
    return (
        f"dev: {dev} rows ({config.data.dev_fraction:.0%}) of {source} split off before "
        f"training{sampled}"
    )


def _synergy_loop(
    config: GptaConfig,
    dev: Table,
    task: Task,
    tokenizer: Any,
    side: _TeachingSide | None,
    progress: Progress,
    ranks: Ranks,
    selection: RunSelection,
) -> SynergyLoop:
    """The synergy loop of this run, screening on a seeded sample of the dev rows, or by
    cross-validation over the labelled rows (``selection.prefix: cv``)."""
    screen_indices = sorted(
        random.Random(config.seed).sample(
            range(len(dev)), min(config.selection.screen_size, len(dev))
        )
    )
    return SynergyLoop(
        task=task,
        tokenizer=tokenizer,
        assistant=side.assistant if side else None,
        brief=side.brief if side else None,
        history=side.history if side else None,
        config=config.assistant,
        rule=config.selection,
        dev_rows=dev.rows,
        screen_indices=screen_indices,
        eval_batch_size=config.training.eval_batch_size,
        rounds=selection.rounds.rounds if selection.rounds else config.training.rounds,
        seed=config.seed,
        progress=progress,
        dialogue=side.dialogue if side else None,
        ranks=ranks,
        augment=config.training.augment_prefixes,
        # dev scores choose nothing when the last round is kept
        patience=0 if selection.keeps_last else config.training.patience,
        empty_share=config.training.empty_prefix_share,
        # under best_round cv the dev rows train too: no prefix-or-none choice on them
        compare_empty=not (
            config.training.augment_prefixes and config.training.augment_predict == "mean"
        )
        and selection.best_round != "cv",
        screener=selection.screener(config, task, tokenizer),
        keep_last=selection.keeps_last,
    )


@dataclass
class _Rounds:
    """The rounds of one run, and what the run keeps between them.

    One ``Trainer.train()`` trains every round (docs/architecture.md: the optimizer state
    and the learning-rate schedule stay continuous; mixed precision, accumulation, DDP and
    checkpoints come with it), so the Trainer's epoch loop is the rounds loop's ``for``; the
    Trainer calls this object at each round's end (:class:`RoundEndCallback`)::

        for each round r:                    the Trainer's epochs
            train round r with prefix_r      the Trainer; the collator adds the prefix
            end_of_round(r)                  on_epoch_end: SynergyLoop.end_of_round, the body
                                             (evaluate, keep the best, ask the TA, screen,
                                             choose); prefix_{r+1} -> the collator
            checkpoint(r)                    on_save, once the Trainer wrote round r's
                                             checkpoint: the best round's model saved, the
                                             checkpoint marked complete
    """

    loop: SynergyLoop
    run_dir: Path
    model: Any
    tokenizer: Any
    manifest: dict[str, Any]  # the saved model's gpta.json, less what the best round adds
    history: History | None  # main process only
    ranks: Ranks
    progress: Progress
    predict_with_pool: bool  # training.augment_predict == "mean"
    collator: PrefixCollator | None = None  # build_trainer's: it adds each round's prefix
    best_to_save: RoundRecord | None = None  # a new best round, saved with its checkpoint
    best_pool: list[str] = field(default_factory=list)  # the prefixes the best round trained with
    selection: dict[str, Any] = field(default_factory=dict)  # metrics.json's, kept in checkpoints
    stop_after: int | None = None  # selection.best_round cv: the rounds chosen (of the schedule)

    def start(self, resume_from: tuple[Path, dict[str, Any]] | None) -> tuple[int, str | None]:
        """Round 0's prefix, or a resumed run's state after its last complete round; the
        first round to train and the checkpoint the Trainer resumes from."""
        if resume_from is None:
            self.loop.initial_prefix()
            return 0, None
        path, state = resume_from
        self.loop.load_state(state["loop"])
        self.progress.info(f"resuming after round {state['round']} from {path}")
        return state["round"] + 1, str(path)

    def hand_prefix(self, round_index: int) -> None:
        """The loop's prefix (and pool) to the collator for round ``round_index``."""
        assert self.collator is not None
        loop = self.loop
        self.collator.set_prefix(loop.prefix, loop.pool, loop.empty_share, round_index=round_index)

    def end_of_round(self, round_index: int, model: Any, train_loss: float | None) -> bool:
        """The Trainer finished round ``round_index``: the loop's step, then the next round's
        prefix. True stops training (early stopping; the round's checkpoint is still written)."""
        assert self.collator is not None
        trained_pool = [p for p in self.collator.pool if p]
        if self.loop.end_of_round(round_index, model, train_loss):
            self.best_to_save, self.best_pool = self.loop.best, trained_pool
        self.hand_prefix(round_index + 1)
        chosen_done = self.stop_after is not None and round_index + 1 >= self.stop_after
        return self.loop.stopped or chosen_done

    def checkpoint(self, round_index: int, path: str) -> None:
        """The Trainer wrote round ``round_index``'s checkpoint to ``path``. The model has not
        changed since the round ended: save it now if it was the best, then mark the
        checkpoint complete (resume only trusts marked checkpoints). Main process."""
        if not self.ranks.is_main:
            return
        with deferred():  # Ctrl-C / SIGTERM wait until the round is saved and marked complete
            written: list[str] = []
            if self.best_to_save is not None:
                best = self.best_to_save
                manifest = self.manifest_of(best, {"dev": best.serving_metrics})
                written = _save_best(self.run_dir, self.model, self.tokenizer, manifest)
                self.best_to_save = None
            assert self.history is not None
            state = {
                "round": round_index,
                "history_lines": self.history.line_count(),
                "loop": self.loop.state(),
                "selection": self.selection,
            }
            _write_state(Path(path) / STATE_FILE, state)
            sync_files(self.run_dir, written)  # the marker lists what the run has written

    def manifest_of(self, best: RoundRecord, metrics: dict[str, Any]) -> dict[str, Any]:
        """The saved model's gpta.json: the run's entries, the prefixes the best round trained
        with where prediction averages over them, the prefix it serves with, its metrics."""
        pool = self.best_pool if self.predict_with_pool else []
        return {
            **self.manifest,
            **({"predict_prefixes": pool} if pool else {}),
            "prefix": best.serving_prefix,
            "best_round": best.round,
            "metrics": metrics,
        }

    def train(self, trainer: PrefixTrainer, checkpoint: str | None) -> float:
        """Every round, in one ``Trainer.train()``; the seconds they took (training,
        evaluation, TA, screening, checkpoints). Ctrl-C says how to continue."""
        from transformers.utils import logging as hf_logging

        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no "Writing model shards" bar at every checkpoint
        started = time.perf_counter()
        try:
            trainer.train(resume_from_checkpoint=checkpoint)
        except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (gpta.signals.Terminated)
            done = len(self.history.rounds) if self.history else 0
            what = "stopped by SIGTERM" if isinstance(stop, Terminated) else "interrupted"
            self.progress.console.print(
                f"{what} after {done} complete round(s); continue with: "
                f"gpta train --resume {self.run_dir}"
            )
            raise
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        return time.perf_counter() - started


def _evaluate_saved(
    config: GptaConfig, run_dir: Path, tables: dict[str, Table], device: str, ranks: Ranks
) -> dict[str, dict[str, Any]]:
    """The saved model on dev and test exactly as ``gpta predict`` will run it (sharded
    across processes, like the rounds' evaluation); the main process writes predictions/."""
    pipeline = GptaPipeline(
        run_dir / "model", device=device, batch_size=config.training.eval_batch_size
    )
    results: dict[str, dict[str, Any]] = {}
    for name in ("dev", "test"):
        table = tables[name]
        evaluation = pipeline.evaluate(table.rows, ranks=ranks)
        results[name] = evaluation.metrics
        if ranks.is_main:
            _write_predictions(
                run_dir / "predictions" / f"{name}.jsonl", table, evaluation.predictions
            )
    return results


def _metrics(
    config: GptaConfig,
    tables: dict[str, Table],
    task: Task,
    side: _TeachingSide,
    run_rounds: _Rounds,
    results: dict[str, dict[str, Any]],
    wall_started: float,
    loop_seconds: float,
) -> dict[str, Any]:
    """metrics.json: the saved model's dev and test metrics against the majority class
    (a warning when it does not beat it), the rounds, timings, memory, the TA's usage."""
    loop, rounds, channel = run_rounds.loop, side.history.rounds, side.channel
    best = loop.best
    assert best is not None
    dev, test = tables["dev"], tables["test"]
    majority = task.majority_baseline(tables["train"].rows, {"dev": dev.rows, "test": test.rows})
    beats_majority = _check_majority(majority, results, task.primary_metric, run_rounds.progress)
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
            config.training, len(tables["train"]), world_size=run_rounds.ranks.world
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
        "ta_warning": _ta_warning(side),
        "ta_prompt_tokens": channel.usage.prompt_tokens,
        "ta_completion_tokens": channel.usage.completion_tokens,
        "ta_usage": side.meter.summary(),
        "ta_projection": side.projection.as_dict(),
        # share of the TA's proposals that beat the current prefix, per round and overall
        "ta_improvement": side.dialogue.finish() if side.dialogue is not None else None,
        **channel.ledger.seal(),  # the exposure ledger's final hash and record count (audit)
    }


@dataclass
class _TeachingSide:
    """What the main process holds besides the model: the TA and what it was told."""

    assistant: TeachingAssistant
    brief: TaskBrief
    history: History
    dialogue: DialogueGradient | None
    channel: ExposureChannel
    meter: UsageMeter
    projection: Projection


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
    text_column, label_column = task.exemplar_columns()
    exposure = build_exposure(  # privacy: leak guard over every row, exemplars, ledger
        config,
        tables,
        run_dir,
        text_column=text_column,
        label_column=label_column,
        description=description,
        label_names=io.labels,
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
        blocked = None if exposure.warnings else exposure.check(initial_messages(brief))
        if blocked is not None:  # the TA would be off for the run: printed even with -q
            progress.warn(
                f"the leak guard blocks the TA's first request ({blocked.summary()}): every "
                "request that carries the same text will be blocked too, and the run may "
                "train without the TA (exposure.jsonl names the rows)"
            )
    if config.assistant.max_cost_usd is not None and meter.price is None:
        progress.warn(  # it changes what the run does: printed even with -q
            f"assistant.max_cost_usd is set but assistant.prices has no "
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


def _check_majority(
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


def _cards_summary(config: GptaConfig, cards: CardChoice) -> dict[str, Any] | None:
    """metrics.json's ``cards``: what the card step adopted (None: the step was off)."""
    if config.cards.source == "none":
        return None
    counts: dict[str, int] = {}
    for row in cards.rows:
        label = str(row.get(config.data.label_column or "label"))
        counts[label] = counts.get(label, 0) + 1
    return {
        "source": config.cards.source,
        "adopted": cards.adopted,
        "variant": cards.variant or None,
        "weight": cards.weight,
        "examples_per_class": counts,
        "selection": cards.selection or None,
    }


def _ta_warning(side: _TeachingSide) -> str | None:
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


def _usage_line(meter: UsageMeter) -> str:
    """What the TA cost this run, in one line."""
    u = meter.summary()
    cost = f", ${u['cost_usd']:.4f}" if u["cost_usd"] is not None else ""
    return (
        f"TA usage: {u['calls']} calls ({u['cached_calls']} cached, {u['failed_calls']} failed, "
        f"{u['skipped_calls']} over budget), {u['prompt_tokens']} prompt + "
        f"{u['completion_tokens']} completion tokens sent{cost}"
    )
