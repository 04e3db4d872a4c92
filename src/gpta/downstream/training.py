"""Fine-tuning in rounds on the Hugging Face Trainer.

One Trainer run covers the whole job, so the optimizer, the learning-rate
schedule, mixed precision, gradient accumulation and Accelerate's devices work
as they do for any Trainer script. A Trainer *epoch* is one GPTA *round*:

- :class:`RoundDataset` makes an epoch as long as a round (``epochs_per_round``
  passes over the rows, or ``steps_per_round`` batches);
- :class:`PrefixCollator` tokenizes each batch with the prefix of the current
  round, so a new prefix takes effect at the next round without re-tokenizing;
- :class:`RoundEndCallback` hands control to the synergy loop at every round
  boundary, which may set a new prefix on the collator.

A new epoch's data iterator is created after ``on_epoch_end`` returns, so every
batch of round r is built with prefix_r.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from torch.utils.data import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import ProgressCallback

from gpta.config import TrainingConfig
from gpta.tasks.base import Task


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
    """Turns a batch of raw rows into model inputs with the current prefix."""

    def __init__(self, task: Task, tokenizer: Any, prefix: str = "") -> None:
        self.task = task
        self.tokenizer = tokenizer
        self.prefix = prefix

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return self.task.collate(rows, self.tokenizer, self.prefix)


class RoundEndCallback(TrainerCallback):
    """Calls ``on_round_end(round_index, model, train_loss)`` at the end of every round."""

    def __init__(
        self,
        dataset: RoundDataset,
        loss_meter: LossMeter,
        on_round_end: Callable[[int, Any, float | None], None],
    ) -> None:
        self.dataset = dataset
        self.loss_meter = loss_meter
        self.on_round_end = on_round_end
        self.round_index = 0

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_round(self.round_index)
        self.loss_meter.reset()

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        self.on_round_end(self.round_index, model, self.loss_meter.mean())
        self.round_index += 1


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
    """The Trainer's step bar, without printing its log dicts (the synergy loop reports)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        return


class PrefixTrainer(Trainer):
    """The Trainer, also recording each batch's loss for the round summary."""

    def __init__(self, *args: Any, loss_meter: LossMeter, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loss_meter = loss_meter

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
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
    scratch_dir: str,
    on_round_end: Callable[[int, Any, float | None], None],
    prefix: str,
    show_progress: bool = True,
) -> tuple[PrefixTrainer, PrefixCollator]:
    """A Trainer that runs ``rounds`` rounds and calls back at each round's end."""
    rows_per_round = None
    if config.steps_per_round is not None:
        rows_per_round = (
            config.steps_per_round * config.batch_size * config.gradient_accumulation_steps
        )
    dataset = RoundDataset(
        rows, epochs_per_round=config.epochs_per_round, rows_per_round=rows_per_round
    )
    collator = PrefixCollator(task, tokenizer, prefix)
    loss_meter = LossMeter()
    steps_per_round = math.ceil(
        len(dataset) / (config.batch_size * config.gradient_accumulation_steps)
    )
    args = TrainingArguments(
        output_dir=scratch_dir,
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
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        report_to="none",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=not show_progress,
        log_level="warning",
    )
    trainer = PrefixTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=collator,
        callbacks=[RoundEndCallback(dataset, loss_meter, on_round_end)],
        loss_meter=loss_meter,
    )
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(StepProgress)
    return trainer, collator
