"""The TA side of a run: what the main process holds besides the model.

The privacy channel and its ledger, the TA and its brief, its usage meter and projection,
the history and the dialogue gradient, built once at the start of a run (a resumed run's
history read back to its last complete round). Only the main process has one; the others
take part in the sharded evaluation and screening alone (:mod:`gpta.distributed`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpta import run_files
from gpta.assistant import History, TaskBrief, TeachingAssistant
from gpta.assistant.prompts import initial_messages
from gpta.assistant.tuning import DialogueGradient
from gpta.chat.usage import Projection, UsageMeter
from gpta.config import GptaConfig
from gpta.data import Table
from gpta.llm import make_chat_model
from gpta.privacy import Exposure, ExposureChannel, build_exposure
from gpta.progress import Progress
from gpta.tasks import Task


@dataclass
class TeachingSide:
    """What the main process holds besides the model: the TA and what it was told."""

    assistant: TeachingAssistant
    brief: TaskBrief
    history: History
    dialogue: DialogueGradient | None
    channel: ExposureChannel
    meter: UsageMeter
    projection: Projection


def needs_ta(config: GptaConfig) -> bool:
    """Whether the run asks the TA anything: a fixed empty, static or transferred prefix
    never does (its TA is not even loaded)."""
    assistant = config.assistant
    return not (assistant.fixed_prefix and (assistant.initial != "first" or assistant.warm_start))


def teaching_side(
    config: GptaConfig,
    run_dir: Path,
    tables: dict[str, Table],
    task: Task,
    description: str,
    tokenizer: Any,
    device: str,
    progress: Progress,
    resume_from: tuple[Path, dict[str, Any]] | None,
) -> TeachingSide:
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
    chat_model = make_chat_model(config.assistant, device=device) if needs_ta(config) else None
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
    meter = _usage_meter(config)
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
        _warn_if_first_request_blocked(exposure, brief, progress)
    if config.assistant.max_cost_usd is not None and meter.price is None:
        progress.warn(  # it changes what the run does: printed even with -q
            f"assistant.max_cost_usd is set but assistant.prices has no "
            f"price for {config.assistant.model}: only the token budget can apply"
        )
    if resume_from is None:
        history = History(run_dir / run_files.HISTORY)
    else:
        history = History.resume(run_dir / run_files.HISTORY, lines=resume_from[1]["history_lines"])
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

    return TeachingSide(assistant, brief, history, dialogue, channel, meter, projection)


def _usage_meter(config: GptaConfig) -> UsageMeter:
    """The TA's token and cost meter, with the run's prices and budgets."""
    return UsageMeter(
        config.assistant.model,
        prices={k: v.model_dump() for k, v in config.assistant.prices.items()},
        max_cost_usd=config.assistant.max_cost_usd,
        max_total_tokens=config.assistant.max_total_tokens,
    )


def _warn_if_first_request_blocked(
    exposure: Exposure, brief: TaskBrief, progress: Progress
) -> None:
    """The leak guard would block the TA's first request: the TA would be off for the run,
    said even with -q."""
    blocked = None if exposure.warnings else exposure.check(initial_messages(brief))
    if blocked is not None:
        progress.warn(
            f"the leak guard blocks the TA's first request ({blocked.summary()}): every "
            "request that carries the same text will be blocked too, and the run may "
            "train without the TA (exposure.jsonl names the rows)"
        )
