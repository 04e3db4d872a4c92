"""``gpta train``: one GPTA run from a configuration to a run directory.

Read the data -> build the task -> take the run folder -> choose class cards and label
words -> the recipe (:class:`gpta.recipe.GptaRecipe`): load the downstream model and the TA,
train in rounds, save the best round's model and evaluate it the way ``gpta predict`` does.

The run directory::

    config.yaml        the configuration as resolved
    splits.json        where train/dev/test came from and their sizes
    history.jsonl      every round, proposal, screening and selection, appended as it happens
    exposure.jsonl     every request sent to the TA, written before it is sent
    metrics.json       dev and test metrics of the saved model, timings, memory
    predictions/       dev.jsonl and test.jsonl from the saved model
    model/             the best round's model and tokenizer (Hugging Face format) + gpta.json

Its life (the lock, the marker, ``--overwrite``, ``--resume``) is :mod:`gpta.run_lifecycle`;
the TA side :mod:`gpta.teaching_side`; the numbers of a finished run :mod:`gpta.run_metrics`.
Launched by torchrun / accelerate launch, every process runs this; the main process alone
talks to the TA and writes the run directory (see :mod:`gpta.distributed`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gpta import run_files
from gpta.assistant import label_words
from gpta.assistant.card_choice import choose_cards, load_choice
from gpta.config import GptaConfig, dump_config, load_config
from gpta.data import Table, read_splits, require_columns, sample_rows, stratified_split
from gpta.distributed import init_ranks
from gpta.errors import GptaUserError
from gpta.fileio import write_json
from gpta.library import resolve_warm_start
from gpta.modeling.device import resolve_device
from gpta.progress import warn
from gpta.recipe import GptaRecipe, RunResult
from gpta.run_data import absolute_data_paths, dev_source, dev_split_off_labelled, split_summary
from gpta.run_folder import (  # the run folder's own module; its public names stay here too
    CHECKPOINTS,
    PREVIOUS,
    RUN_EXTRA,
    RUN_FILES,
    RUN_MARKER,
    STATE_FILE,
    check_run_dir,
    is_gpta_run,
    latest_checkpoint,
    prepare_run_dir,
    sync_files,
)
from gpta.run_lifecycle import new_run, resumable_checkpoint, resumed_run
from gpta.tasks import TASKS, build_task
from gpta.teaching_side import needs_ta

__all__ = [
    "CHECKPOINTS",
    "PREVIOUS",
    "RUN_EXTRA",
    "RUN_FILES",
    "RUN_MARKER",
    "STATE_FILE",
    "RunResult",
    "check_run_dir",
    "dev_source",
    "dev_split_off_labelled",
    "is_gpta_run",
    "latest_checkpoint",
    "load_data",
    "prepare_run_dir",
    "resume",
    "train",
]


def train(config: GptaConfig, *, overwrite: bool = False, quiet: bool = False) -> RunResult:
    """Run GPTA for the configured task and write the run directory.

    Everything that can be checked is checked before the run directory is touched: the
    folder, the data, the task, the downstream model. An old run that ``overwrite``
    replaces is kept until the new one has finished (see :func:`prepare_run_dir`); a run
    that fails before its first complete round leaves the folder as it was.
    """
    check_run_dir(config.output_dir, overwrite=overwrite)  # writes nothing
    absolute_data_paths(config)
    if config.assistant.warm_start:  # a bad library id or run folder fails before any work
        resolve_warm_start(config.assistant.warm_start)
    description = config.description_text()
    tables = load_data(config)
    task = build_task(label_words.for_validation(config, tables), tables)
    _check_models(config)
    ranks = init_ranks(resolve_device(config.device))
    # locked until the run ends, however it ends; undone if no round finishes
    with new_run(config.output_dir, overwrite=overwrite, ranks=ranks) as run_dir:
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
            dump_config(config, run_dir / run_files.CONFIG)
            write_json(run_dir / run_files.SPLITS, split_summary(tables))
            sync_files(run_dir)
        return _execute(
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


def resume(run_dir: str | Path, *, quiet: bool = False) -> RunResult:
    """Continue an interrupted run from its last complete round (``gpta train --resume``)."""
    run_dir = Path(run_dir)
    checkpoint = resumable_checkpoint(run_dir)
    config = load_config(run_dir / run_files.CONFIG)
    description = config.description_text()
    tables = load_data(config)
    try:
        recorded = json.loads((run_dir / run_files.SPLITS).read_text("utf-8"))
    except (OSError, ValueError):
        recorded = None
    if split_summary(tables) != recorded:
        raise GptaUserError(
            f"--resume: the data no longer matches {run_dir / 'splits.json'}",
            hint="resume needs the same data files as the interrupted run",
        )
    task = build_task(config, tables)
    ranks = init_ranks(resolve_device(config.device))
    with resumed_run(run_dir, checkpoint[0], ranks=ranks):  # locked until the run ends
        return _execute(
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


def _execute(*args: Any, **kwargs: Any) -> RunResult:
    """One run in its prepared folder (:class:`GptaRecipe`'s arguments), the recipe's steps
    in order; the run folder's tests replace it to try the folder's life without training."""
    recipe = GptaRecipe(*args, **kwargs)
    recipe.setup()  # the model, the TA side, round 0's prefix, the Trainer
    recipe.train()  # the rounds
    recipe.cleanup()  # the checkpoints go once the best model is saved (before it is evaluated)
    return recipe.save()  # the saved model evaluated; predictions, metrics.json, the record


def _check_models(config: GptaConfig) -> None:
    """The downstream model's (and a local TA's) configuration and tokenizer load, a second
    or less: a bad model name fails before the run directory, or an old run in it, is
    touched."""
    from gpta.bundled import resolve_model_path

    _check_loadable(
        "model.name_or_path", config.model.resolved_name(config.task), resolve_model_path
    )
    if needs_ta(config) and config.assistant.backend == "local":
        _check_loadable("assistant.model", config.assistant.model, resolve_model_path)


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
    family = TASKS[config.task]
    for table in tables.values():  # before anything tokenises a row
        message = family.cap_rows(
            table, family.columns_for(config), max_length=config.model.max_length
        )
        if message:
            warn(message)  # never silenced
    train = tables["train"]
    column = family.stratify_column_for(config)

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
