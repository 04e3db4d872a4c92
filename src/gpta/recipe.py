"""One GPTA run as a recipe: :meth:`~GptaRecipe.setup`, :meth:`~GptaRecipe.train` (the
rounds), :meth:`~GptaRecipe.save` and :meth:`~GptaRecipe.cleanup`, in torchtune's sense.

The rounds loop reads here, top to bottom: :meth:`GptaRecipe.train` is its ``for``, and
:meth:`GptaRecipe.end_of_round` its body (evaluate, keep the best, ask the TA, screen,
choose, record). The Trainer stays underneath for the steps of a round: one
``Trainer.train()`` trains every round, so the optimizer state and the learning-rate
schedule stay continuous (docs/architecture.md), and its epoch end calls the round body
straight back (:class:`gpta.downstream.training.RoundEndCallback`). What the body's steps
choose with, the prefix-selection policy and the TA's requests, is
:class:`gpta.synergy.SynergyLoop`.

The recipe runs in a run folder already prepared and locked (:mod:`gpta.run_lifecycle`);
:func:`gpta.run.train` and :func:`gpta.run.resume` read the data and build the task first.
Launched by torchrun / accelerate launch, every process runs it; the main process alone
talks to the TA and writes the run folder (see :mod:`gpta.distributed`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpta import run_files
from gpta.assistant import RoundRecord
from gpta.assistant.card_choice import CardChoice
from gpta.config import GptaConfig
from gpta.data import Table
from gpta.distributed import Ranks
from gpta.downstream.artifact import write_manifest
from gpta.downstream.training import build_trainer, round_budget
from gpta.fileio import write_json
from gpta.library import record_run
from gpta.modeling.device import resolve_device
from gpta.progress import Progress
from gpta.round_choice import RunSelection
from gpta.run_data import dev_source, dev_split_off_labelled
from gpta.run_folder import CHECKPOINTS, STATE_FILE, remove_checkpoints, sync_files, write_state
from gpta.run_lifecycle import save_best
from gpta.run_metrics import cards_summary, evaluate_saved, run_metrics, usage_line
from gpta.signals import Terminated, deferred
from gpta.synergy import SynergyLoop
from gpta.tasks import Task
from gpta.teaching_side import teaching_side


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    prefix: str
    best_round: int
    rounds: list[RoundRecord]
    dev_metrics: dict[str, Any]
    test_metrics: dict[str, Any] | None


class GptaRecipe:
    """One run in its prepared folder: ``setup()``, ``train()``, ``save()``, ``cleanup()``.

    ``resume_from``: the checkpoint (its path and gpta state) a resumed run continues from.
    ``cards``: the adopted class-card rows, trained with the real rows at their weight
    (none: exactly the plain run).
    """

    def __init__(
        self,
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
    ) -> None:
        self.config, self.run_dir, self.tables, self.task = config, run_dir, tables, task
        self.description = description
        self.resume_from = resume_from
        self.ranks = ranks or Ranks()
        self.cards = cards or CardChoice()
        self.wall_started = time.perf_counter()
        self.progress = Progress(quiet=quiet or not self.ranks.is_main)
        self.show_progress = not quiet and self.ranks.is_main
        self.model_name = config.model.resolved_name(config.task)
        self.best_to_save: RoundRecord | None = None  # a new best round, saved with its checkpoint
        self.best_pool: list[str] = []  # the prefixes the best round trained with
        self.loop_seconds = 0.0  # the rounds, from first step to last

    # --- setup ---------------------------------------------------------------------------------
    def setup(self) -> None:
        """What the rounds need: which rows choose the prefix and the round kept, the
        downstream model, (main process) the TA side, the prefix-selection policy, round 0's
        prefix (or a resumed run's state), the Trainer."""
        config, tables, task, resumed = self.config, self.tables, self.task, self.resumed
        # dev, or cross-validation (chosen before the final model is loaded:
        # selection.best_round cv trains k fold models first)
        self.selection = RunSelection.resolve(
            config,
            tables,
            split_off=dev_split_off_labelled(config, tables),
            legacy=resumed is not None and "selection" not in resumed,
        )
        device = resolve_device(config.device)
        self.selection.choose_rounds(config, task, self.cards.rows, resumed, self.progress, device)
        self.stop_after = self.selection.rounds.rounds if self.selection.rounds else None
        train_rows = [*self.selection.training_rows(tables), *self.cards.rows]
        self.model, self.tokenizer, self.device = self._load_downstream(train_rows)
        # the TA, the exposure ledger and the history live on the main process only
        self.side = (
            teaching_side(
                config,
                self.run_dir,
                tables,
                task,
                self.description,
                self.tokenizer,
                self.device,
                self.progress,
                self.resume_from,
            )
            if self.ranks.is_main
            else None
        )
        self.loop = SynergyLoop(
            config,
            task=task,
            tokenizer=self.tokenizer,
            dev_rows=tables["dev"].rows,
            side=self.side,
            selection=self.selection,
            progress=self.progress,
            ranks=self.ranks,
        )
        # the saved model's gpta.json, less what the best round adds; the choice of rows that
        # every checkpoint keeps
        self.manifest = {"task": config.task, **task.manifest(), "base_model": self.model_name}
        self.selection_record = self.selection.record()
        self.start_round, self.checkpoint_path = self._start()
        self.trainer, self.collator = build_trainer(
            model=self.model,
            tokenizer=self.tokenizer,
            task=task,
            rows=train_rows,
            config=config.training,
            rounds=config.training.rounds,
            seed=config.seed,
            device=self.device,
            checkpoint_dir=str(self.run_dir / CHECKPOINTS),
            prefix=self.loop.prefix,
            show_progress=self.show_progress,
            on_round_end=self.end_of_round,
            on_checkpoint=self.checkpoint,
            start_round=self.start_round,
        )
        self._hand_prefix(self.start_round)

    @property
    def resumed(self) -> dict[str, Any] | None:
        """A resumed run's gpta state (None for a new run)."""
        return self.resume_from[1] if self.resume_from else None

    def _load_downstream(self, rows: list[dict[str, Any]]) -> tuple[Any, Any, str]:
        """The downstream model, its tokenizer and the device; a new run's head started from
        the training rows ``rows`` (a resumed run's checkpoint holds the trained head)."""
        from transformers import set_seed

        config, tables, progress = self.config, self.tables, self.progress
        io = self.task.io()
        labels = f"; labels {io.labels}" if io.labels else ""
        progress.info(
            f"{config.task}: train {len(tables['train'])}, dev {len(tables['dev'])}, "
            f"test {len(tables['test'])} rows{labels}"
        )
        progress.info(dev_source(config, tables))
        for line in self.selection.lines():  # what chooses the prefix and the round kept
            progress.info(line)
        device = resolve_device(config.device)
        set_seed(config.seed)
        model, tokenizer = self.task.load_model(self.model_name)
        progress.info(f"downstream model: {self.model_name} on {device}")
        if self.resume_from is None:
            started = self.task.prepare_model(
                model, tokenizer, rows, batch_size=config.training.eval_batch_size
            )
            if started:
                progress.info(
                    f"head: {started['head_init']} on {started['pooling']}-pooled embeddings"
                )
        return model, tokenizer, device

    def _start(self) -> tuple[int, str | None]:
        """Round 0's prefix, or a resumed run's state after its last complete round; the
        first round to train and the checkpoint the Trainer resumes from."""
        if self.resume_from is None:
            self.loop.initial_prefix()
            return 0, None
        path, state = self.resume_from
        self.loop.load_state(state["loop"])
        self.progress.info(f"resuming after round {state['round']} from {path}")
        return state["round"] + 1, str(path)

    # --- train: the rounds -----------------------------------------------------------------------
    def train(self) -> None:
        """The rounds loop::

            for each round r:                the Trainer's epochs, in one Trainer.train()
                train round r with prefix_r  the Trainer; the collator adds the prefix
                end_of_round(r)              evaluate, keep the best, ask the TA, screen,
                                             choose, record; prefix_{r+1} to the collator
                checkpoint(r)                the best round's model saved, the checkpoint
                                             marked complete (for --resume)

        A run resumed after its chosen last round was saved has nothing left to train."""
        if self.stop_after is not None and self.start_round >= self.stop_after:
            self.ranks.barrier()
            return
        with self._said_how_to_continue(), _no_progress_bars():
            started = time.perf_counter()
            self.trainer.train(resume_from_checkpoint=self.checkpoint_path)  # every round
            # training, evaluation, TA, screening and checkpoints
            self.loop_seconds = time.perf_counter() - started
        self.ranks.barrier()  # the main process has written the best model

    @contextlib.contextmanager
    def _said_how_to_continue(self) -> Iterator[None]:
        """Ctrl-C (or SIGTERM) during the rounds says how many are complete and how to go on."""
        try:
            yield
        except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (gpta.signals.Terminated)
            done = len(self.side.history.rounds) if self.side else 0
            what = "stopped by SIGTERM" if isinstance(stop, Terminated) else "interrupted"
            self.progress.console.print(
                f"{what} after {done} complete round(s); continue with: "
                f"gpta train --resume {self.run_dir}"
            )
            raise

    def end_of_round(self, round_index: int, model: Any, train_loss: float | None) -> bool:
        """The body of the rounds loop: the Trainer has just trained round ``round_index``
        with the loop's prefix. True stops training (early stopping, or the chosen round
        count reached; the round's checkpoint is still written).

        Every process runs every step in this order (the scoring is sharded and gathered, so
        the processes meet in the same collectives); the main process alone reports, asks the
        TA and writes the history."""
        loop = self.loop
        trained_pool = [p for p in self.collator.pool if p]
        record = loop.evaluate_round(round_index, model, train_loss)  # evaluate on dev
        is_best = loop.keep_if_best(record)  # the best round so far? early stopping
        loop.report_round(record, is_best)
        if loop.asks_after(round_index):  # not after the last round, the warm-up, a fixed prefix
            screening = _Stopwatch()
            with screening:  # before the join: a TA slower than the round is awaited meanwhile
                current = loop.screen_current(model)  # the score to beat
            loop.before_asking(round_index)  # a background answer joined; the TA tuned if due
            batch, waited = loop.ask_ta(round_index, record)  # ask (or take the background answer)
            with screening:
                screened = loop.screen(model, loop.challengers(round_index, batch))  # screen
                loop.choose_next(round_index, current, batch, screened)  # only a significant gain
            ta, screen = round(batch.seconds, 3), round(screening.seconds, 3)
            record.seconds.update({**waited, "ta": ta, "screen": screen})
            loop.after_asking(round_index)  # the TA's improvement rate logged
        loop.record_round(record)  # the round and the next prefix in the history
        loop.start_round()  # the next prefix on every process
        if is_best:  # saved with this round's checkpoint
            self.best_to_save, self.best_pool = loop.best, trained_pool
        self._hand_prefix(round_index + 1)
        chosen_done = self.stop_after is not None and round_index + 1 >= self.stop_after
        return loop.stopped or chosen_done

    def checkpoint(self, round_index: int, path: str) -> None:
        """The Trainer wrote round ``round_index``'s checkpoint to ``path``. The model has not
        changed since the round ended: save it now if it was the best, then mark the
        checkpoint complete (resume only trusts marked checkpoints). Main process."""
        if not self.ranks.is_main:
            return
        assert self.side is not None
        with deferred():  # Ctrl-C / SIGTERM wait until the round is saved and marked complete
            written: list[str] = []
            if self.best_to_save is not None:
                best = self.best_to_save
                manifest = self._manifest(best, {"dev": best.serving_metrics})
                written = save_best(self.run_dir, self.model, self.tokenizer, manifest)
                self.best_to_save = None
            state = {
                "round": round_index,
                "history_lines": self.side.history.line_count(),
                "loop": self.loop.state(),
                "selection": self.selection_record,
            }
            write_state(Path(path) / STATE_FILE, state)
            sync_files(self.run_dir, written)  # the marker lists what the run has written

    def _hand_prefix(self, round_index: int) -> None:
        """The loop's prefix (and pool) to the collator for round ``round_index``."""
        loop = self.loop
        self.collator.set_prefix(loop.prefix, loop.pool, loop.empty_share, round_index=round_index)

    def _manifest(self, best: RoundRecord, metrics: dict[str, Any]) -> dict[str, Any]:
        """The saved model's gpta.json: the run's entries, the prefixes the best round trained
        with where prediction averages over them, the prefix it serves with, its metrics."""
        predict_with_pool = self.config.training.augment_predict == "mean"
        pool = self.best_pool if predict_with_pool else []
        return {
            **self.manifest,
            **({"predict_prefixes": pool} if pool else {}),
            "prefix": best.serving_prefix,
            "best_round": best.round,
            "metrics": metrics,
        }

    # --- save ----------------------------------------------------------------------------------
    def save(self) -> RunResult:
        """The saved model (the best round's, written at its checkpoint) evaluated on dev and
        test the way ``gpta predict`` runs it, predictions/, metrics.json, its manifest's
        metrics, the library record, the run's summary."""
        config, ranks, progress, side = self.config, self.ranks, self.progress, self.side
        best = ranks.broadcast(self.loop.best)
        assert best is not None
        results = evaluate_saved(config, self.run_dir, self.tables, self.device, ranks)
        if side is None:  # another process: the main one writes the rest
            ranks.barrier()
            return RunResult(
                self.run_dir, best.serving_prefix, best.round, [], results["dev"], results["test"]
            )
        metrics = run_metrics(
            config,
            self.tables,
            self.task,
            side,
            self.loop,
            results,
            ranks=ranks,
            progress=progress,
            wall_started=self.wall_started,
            loop_seconds=self.loop_seconds,
        )
        metrics["cards"] = cards_summary(config, self.cards)
        metrics["selection"] = self.selection.record()
        if self.selection.best_round == "cv":  # the final model trained on the dev rows too
            metrics["budget"] = round_budget(
                config.training, len(self.selection.labelled), world_size=ranks.world
            ).as_dict()
        write_json(self.run_dir / run_files.METRICS, metrics)
        write_manifest(self.run_dir / run_files.MODEL, self._manifest(best, results))
        history = side.history
        if config.assistant.library:
            record_run(self.run_dir, domain=config.data.domain, history=history, progress=progress)
        progress.info(usage_line(side.meter))
        if metrics["ta_warning"]:  # it changes what the run was: printed even with -q
            progress.warn(metrics["ta_warning"])
        progress.summary(
            str(self.run_dir),
            history.rounds,
            self.task.primary_metric,
            best.round,
            results["test"],
            metrics["majority_baseline"],
            cards=metrics["cards"],
        )
        ranks.barrier()
        return RunResult(
            self.run_dir,
            best.serving_prefix,
            best.round,
            history.rounds,
            results["dev"],
            results["test"],
        )

    # --- cleanup -------------------------------------------------------------------------------
    def cleanup(self) -> None:
        """The rounds' checkpoints go (gpta's folders; a file of the user's stays) unless
        ``training.keep_checkpoints``: once the rounds are over and the best model is saved,
        and before it is evaluated, so the evaluation has their disk space. The run folder's
        own end (the replaced run dropped, the lock released) is
        :func:`gpta.run_lifecycle.new_run`'s."""
        if self.ranks.is_main and not self.config.training.keep_checkpoints:
            remove_checkpoints(self.run_dir)


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """No transformers progress bar (e.g. "Writing model shards" at every checkpoint) inside;
    the Trainer's step bar is gpta's own callback."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # unannotated there
    try:
        yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


class _Stopwatch:
    """The seconds spent inside its ``with`` blocks, added up."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __enter__(self) -> _Stopwatch:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._started
