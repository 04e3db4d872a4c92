"""Fine-tuning in rounds on the Hugging Face Trainer.

One Trainer run covers the whole job, so the optimizer, the learning-rate
schedule, mixed precision, gradient accumulation and Accelerate's devices work
as they do for any Trainer script. A Trainer *epoch* is one GPTA *round*:

- :class:`RoundDataset` makes an epoch as long as a round (``epochs_per_round``
  passes over the rows, or ``steps_per_round`` batches);
- :class:`PrefixCollator` tokenizes each batch with the prefix of the current
  round, so a new prefix takes effect at the next round without re-tokenizing
  (with prefix variety on, each row draws its prefix from the round's pool);
- :class:`RoundEndCallback` calls the rounds loop's body (``GptaRecipe.end_of_round``)
  at every round boundary, which may set a new prefix on the collator.

A new epoch's data iterator is created after ``on_epoch_end`` returns, so every
batch of round r is built with prefix_r.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, cast

from torch.utils.data import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from gpta import run_files
from gpta.config import TrainingConfig
from gpta.distributed import launched_world_size
from gpta.errors import GptaUserError
from gpta.progress import emit_json, log_format
from gpta.tasks.base import Task

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from gpta.tasks.classification import ClassificationTask


@dataclass(frozen=True)
class Budget:
    """How much a run trains: ``rounds`` rounds of ``rows_per_round`` rows (each process's
    share included) or of ``epochs_per_round`` passes, and why."""

    rounds: int
    epochs_per_round: int
    rows_per_round: int | None
    steps_per_round: int
    rule: str  # "steps_per_round" | "epochs_per_round" | "default: max(N steps, E epochs)"

    @property
    def total_steps(self) -> int:
        return self.rounds * self.steps_per_round

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_steps": self.total_steps}


def round_budget(config: TrainingConfig, rows: int, *, world_size: int = 1) -> Budget:
    """The run's budget from ``training``: steps_per_round or epochs_per_round when set,
    else the default rule max(min_steps, min_epochs epochs) optimizer steps over all rounds,
    split evenly into the rounds (a round is then a window of rows, see RoundDataset)."""
    per_step = config.batch_size * config.gradient_accumulation_steps * world_size
    if config.steps_per_round is not None:
        steps, rule = config.steps_per_round, "steps_per_round"
    elif config.epochs_per_round is not None:
        steps = math.ceil(config.epochs_per_round * rows / per_step)
        return Budget(config.rounds, config.epochs_per_round, None, steps, "epochs_per_round")
    else:
        total = max(config.min_steps, math.ceil(config.min_epochs * rows / per_step))
        steps = math.ceil(total / config.rounds)
        rule = f"default: max({config.min_steps} steps, {config.min_epochs:g} epochs)"
    return Budget(config.rounds, 1, steps * per_step, steps, rule)


class RoundDataset(Dataset):
    """Training rows seen as one round per epoch.

    With ``epochs_per_round`` E the round is E passes over the rows. With
    ``rows_per_round`` set (from ``steps_per_round``), the round is a window of
    that many rows that moves through the data from round to round.
    """

    def __init__(
        self,
        rows: Sequence[dict[str, Any]],
        *,
        epochs_per_round: int = 1,
        rows_per_round: int | None = None,
    ) -> None:
        self.rows = list(rows)
        self.length = rows_per_round or epochs_per_round * len(self.rows)
        self.offset = 0

    def set_round(self, round_index: int) -> None:
        """Move the window for ``steps_per_round`` rounds (no effect for epoch rounds)."""
        self.offset = (round_index * self.length) % len(self.rows)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.rows[(self.offset + index) % len(self.rows)]


class PrefixCollator:
    """Turns a batch of raw rows into model inputs with the current prefix.

    With a non-empty ``pool`` (``training.augment_prefixes``) each row gets a prefix drawn
    uniformly from the pool instead: prefix variety as input augmentation.
    """

    def __init__(
        self, task: Task, tokenizer: PreTrainedTokenizerBase, prefix: str = "", *, seed: int = 0
    ) -> None:
        self.task = task
        self.tokenizer = tokenizer
        self.prefix = prefix
        self.pool: list[str] = []
        self.empty_share = 0.0
        self.seed = seed
        self.rng = random.Random(seed)

    def set_prefix(
        self,
        prefix: str,
        pool: Sequence[str] = (),
        empty_share: float = 0.0,
        *,
        round_index: int | None = None,
    ) -> None:
        """The prefix (and pool) of the next round; without a pool, ``empty_share`` of the
        batches get no prefix while the round's prefix is not empty. With ``round_index`` the
        draws restart from (seed, round), so a resumed run draws what the uninterrupted one
        did."""
        self.prefix = prefix
        self.pool = list(pool)
        self.empty_share = empty_share
        if round_index is not None:
            self.rng = random.Random(f"{self.seed}:{round_index}")

    def __call__(self, rows: list[dict[str, Any]]) -> MutableMapping[str, Any]:
        if self.pool:  # prefix variety: a prefix per row from the pool, which holds "" already
            # (training.augment_prefixes: classification only, the one family that takes them)
            return cast("ClassificationTask", self.task).collate(
                rows, self.tokenizer, [self.rng.choice(self.pool) for _ in rows]
            )
        # one draw per batch (every task family takes one prefix for a batch); none at all
        # on the plain path, so a run that never adopts a prefix draws nothing
        empty = bool(self.prefix) and self.empty_share > 0 and self.rng.random() < self.empty_share
        return self.task.collate(rows, self.tokenizer, "" if empty else self.prefix)


class RoundEndCallback(TrainerCallback):
    """Hands each round boundary to the rounds loop's body (the recipe's ``end_of_round``).

    ``on_round_end(round_index, model, train_loss)`` runs at the end of every round and
    returns True to stop training there (early stopping);
    ``on_checkpoint(round_index, path)`` runs once the Trainer has written that round's
    checkpoint (model, optimizer, scheduler, RNG states) to ``path``.
    """

    def __init__(
        self,
        dataset: RoundDataset,
        loss_meter: LossMeter,
        on_round_end: Callable[[int, Any, float | None], bool | None],
        on_checkpoint: Callable[[int, str], None] | None = None,
        start_round: int = 0,
    ) -> None:
        self.dataset = dataset
        self.loss_meter = loss_meter
        self.on_round_end = on_round_end
        self.on_checkpoint = on_checkpoint
        self.round_index = start_round

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_round(self.round_index)
        self.loss_meter.reset()

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        with preserved_rng():  # the boundary (TA, screening) must not change training's draws
            stop = self.on_round_end(self.round_index, model, self.loss_meter.mean())
        self.round_index += 1
        if stop:  # early stopping: this round's checkpoint is still written
            control.should_training_stop = True

    def on_save(self, args, state, control, **kwargs):
        if self.on_checkpoint is not None:
            path = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
            self.on_checkpoint(self.round_index - 1, path)


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Leave Python's, NumPy's and torch's random states (CPU and CUDA) as they were: what
    runs inside (TA sampling, screening) draws nothing that training would have drawn, so a
    run whose loop adopts no prefix trains exactly like the same run without the loop."""
    import numpy as np
    import torch

    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


class LossMeter:
    """Mean training loss over a round."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total = 0.0
        self.count = 0

    def add(self, value: float) -> None:
        self.total += value
        self.count += 1

    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


class StepProgress(ProgressCallback):
    """The Trainer's step bar with the round's running loss, without printing its log dicts
    (the synergy loop reports)."""

    def __init__(self, loss_meter: LossMeter | None = None) -> None:
        super().__init__()
        self.loss_meter = loss_meter

    def on_step_end(self, args, state, control, **kwargs):
        if self.training_bar is not None and self.loss_meter is not None and self.loss_meter.count:
            self.training_bar.set_postfix(loss=f"{self.loss_meter.mean():.4f}", refresh=False)
        super().on_step_end(args, state, control, **kwargs)

    def on_log(self, args, state, control, logs=None, **kwargs):
        return


class JsonStepLog(TrainerCallback):
    """``step`` events for ``--log-format json``: about 20 per run, and the last step."""

    def __init__(self, loss_meter: LossMeter) -> None:
        self.loss_meter = loss_meter
        self.started = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        every = max(1, state.max_steps // 20)
        if state.global_step % every and state.global_step != state.max_steps:
            return
        elapsed = time.perf_counter() - self.started
        done = max(1, state.global_step)
        emit_json(
            "step",
            step=state.global_step,
            max_steps=state.max_steps,
            round_loss=self.loss_meter.mean(),
            elapsed_seconds=round(elapsed, 2),
            train_eta_seconds=round(elapsed / done * (state.max_steps - state.global_step), 1),
        )


def report_integrations(names: Sequence[str]) -> list[str] | str:
    """``training.report_to`` for TrainingArguments; a named integration that is not installed
    is a user error (\"all\" takes whichever are installed)."""
    from transformers.integrations import get_available_reporting_integrations

    wanted = [n for n in names if n != "none"]
    if not wanted:
        return "none"
    if "all" in wanted:
        return "all"
    available = set(get_available_reporting_integrations())
    missing = [n for n in wanted if n not in available]
    if missing:
        raise GptaUserError(
            f"training.report_to: {', '.join(missing)} is not installed",
            hint=f"pip install {' '.join(missing)}, or leave it out of training.report_to",
        )
    return wanted


class PrefixTrainer(Trainer):
    """The Trainer, also recording each batch's loss for the round summary.

    ``task_loss(model, inputs) -> (loss, logits)`` replaces the model's own loss where the
    task defines one (classification: cross-entropy over the head's class scores).
    """

    def __init__(
        self,
        *args: Any,
        loss_meter: LossMeter,
        task_loss: Callable[[Any, dict[str, Any]], tuple[Any, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.loss_meter = loss_meter
        self.task_loss = task_loss
        if task_loss is not None:
            self.loss_is_scaled_for_ga = False  # a batch mean: the Trainer divides for GA

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.task_loss is not None:
            loss, logits = self.task_loss(model, inputs)
            result = (loss, {"logits": logits}) if return_outputs else loss
        else:
            result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss = result[0] if return_outputs else result
        self.loss_meter.add(float(loss.detach()))
        return result


def build_trainer(
    *,
    model: Any,
    tokenizer: Any,
    task: Task,
    rows: Sequence[dict[str, Any]],
    config: TrainingConfig,
    rounds: int,
    seed: int,
    device: str,
    checkpoint_dir: str,
    on_round_end: Callable[[int, Any, float | None], bool | None],
    on_checkpoint: Callable[[int, str], None] | None = None,
    start_round: int = 0,
    prefix: str,
    show_progress: bool = True,
    logs_dir: str | None = None,
) -> tuple[PrefixTrainer, PrefixCollator]:
    """A Trainer that runs ``rounds`` rounds and calls back at each round's end."""
    budget = round_budget(config, len(rows), world_size=launched_world_size())
    dataset = RoundDataset(  # every process takes its share of a round's rows
        rows, epochs_per_round=budget.epochs_per_round, rows_per_round=budget.rows_per_round
    )
    collator = PrefixCollator(task, tokenizer, prefix, seed=seed)
    loss_meter = LossMeter()
    steps_per_round = math.ceil(
        len(dataset) / (config.batch_size * config.gradient_accumulation_steps)
    )
    report_to = report_integrations(config.report_to)
    try:
        args = TrainingArguments(
            output_dir=checkpoint_dir,
            num_train_epochs=rounds,
            per_device_train_batch_size=config.batch_size,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            learning_rate=config.learning_rate,
            weight_decay=config.weight_decay,
            warmup_steps=int(config.warmup_ratio * steps_per_round * rounds),
            lr_scheduler_type="linear",
            seed=seed,
            data_seed=seed,
            use_cpu=device == "cpu",
            fp16=config.mixed_precision == "fp16",
            bf16=config.mixed_precision == "bf16",
            # A checkpoint at every round boundary; two kept, so that a crash while writing the
            # newest still leaves a complete one to resume from.
            save_strategy="epoch" if on_checkpoint is not None else "no",
            save_total_limit=2,
            eval_strategy="no",
            # the integrations get the training loss and learning rate every ~5% of the steps
            logging_strategy="steps" if report_to != "none" else "no",
            logging_steps=max(1, steps_per_round * rounds // 20),
            report_to=report_to,
            remove_unused_columns=False,
            dataloader_num_workers=0,
            disable_tqdm=not show_progress,
            # the Trainer sets transformers' verbosity to this when it starts; with JSON logs
            # stderr holds JSON lines only (e.g. no plain "mtime may not be reliable" warning)
            log_level="error" if log_format() == "json" else "warning",
        )
    except ValueError as err:  # e.g. fp16 without CUDA, bf16 on hardware without it
        if config.mixed_precision == "no":
            raise
        raise GptaUserError(
            f"training.mixed_precision={config.mixed_precision} is not available here: {err}",
            hint="use training.mixed_precision: no (or bf16 where the hardware supports it)",
        ) from None
    trainer = PrefixTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=collator,
        callbacks=[RoundEndCallback(dataset, loss_meter, on_round_end, on_checkpoint, start_round)],
        loss_meter=loss_meter,
        task_loss=task.compute_loss,
    )
    if trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:
        raise GptaUserError(
            "FSDP and DeepSpeed are not supported: GPTA evaluates and screens the whole model "
            "on every process at each round's end",
            hint="launch with plain data parallelism (DDP: accelerate config with "
            "distributed_type MULTI_GPU or MULTI_CPU)",
        )
    trainer.pop_callback(ProgressCallback)
    trainer.pop_callback(PrinterCallback)  # it would print the integrations' log dicts
    if show_progress:
        json_logs = log_format() == "json"
        trainer.add_callback(JsonStepLog(loss_meter) if json_logs else StepProgress(loss_meter))
    for callback in trainer.callback_handler.callbacks:
        if type(callback).__name__ == "TensorBoardCallback" and callback.logging_dir is None:
            # next to the checkpoints, not inside them: they are deleted when the run ends
            callback.logging_dir = logs_dir or os.path.join(
                os.path.dirname(os.path.abspath(checkpoint_dir)), run_files.LOGS
            )
    return trainer, collator
