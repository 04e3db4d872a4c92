"""The prefix-selection policy of the rounds loop, and the TA's requests behind it.

:class:`SynergyLoop` is not the loop itself: the rounds loop reads in the recipe
(:meth:`gpta.recipe.GptaRecipe.train` and its round body,
:meth:`~gpta.recipe.GptaRecipe.end_of_round`). This module holds the steps that body calls,
and what they keep between rounds (the prefix, the best round, the request in flight):

warm-up:  the first round(s) train with NO prefix, so the model learns the task before any
          prefix exists (assistant.warmup_rounds); the TA's description-only proposals are
          asked meanwhile (in the background where the backend allows) and screened at its end
each round r: train with prefix_r (the Trainer does this; once a prefix is adopted, a share
          of the rows still trains with none) -> then, at the round's end:
    evaluate on dev -> score_r, and with no prefix too when prefix_r is not empty; the round's
        model serves with whichever scored better; keep it if it is the best so far
    stop early after `patience` rounds without a better dev score
    dialogue gradient: the TA sees the scored prefixes, the change, per-label numbers
    the TA proposes K candidates; screen them, the current prefix and the empty prefix
        on a dev subset with the current model (forward passes only)
    prefix_{r+1} = the best screened candidate if a paired test on the screening rows says it
        beats the current prefix (selection.adopt_confidence), else prefix_r

Why each step, and what it costs: docs/never-worse.md. With assistant.fixed_prefix (the
benchmark baselines) none of warm-up, prefix mixing or the no-prefix choice applies: the
round-0 prefix trains and serves as given.

Under several processes (torchrun / accelerate launch) every process runs every step: the
evaluation and screening rows are sharded and gathered (:mod:`gpta.distributed`), the main
process alone asks the TA and keeps the history, and its chosen prefix is broadcast.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TypeVar

from gpta.assistant import (
    History,
    ProposalBatch,
    RoundRecord,
    ScoredPrefix,
    TaskBrief,
    TeachingAssistant,
)
from gpta.assistant.background import BackgroundProposals
from gpta.assistant.material import choose
from gpta.assistant.prefix import PrefixCandidate
from gpta.assistant.prompts import initial_messages
from gpta.config import GptaConfig
from gpta.distributed import Ranks
from gpta.progress import Progress
from gpta.round_choice import RunSelection
from gpta.selection import beats, best_of
from gpta.tasks.base import Evaluation, Screening, Task
from gpta.teaching_side import TeachingSide

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from gpta.chat.base import Message


T = TypeVar("T")


def _main_only(value: T | None, name: str) -> T:
    """A part of the loop only the main process holds."""
    if value is None:
        raise RuntimeError(f"the synergy loop's {name} is the main process's; this one has none")
    return value


class SynergyLoop:
    """Chooses the prefix of each round from the TA's proposals and the model's scores: the
    steps of a round boundary (evaluate, keep the best, ask, screen, choose, record), the
    TA's background requests, and the state a checkpoint keeps."""

    # The TA, its brief and the run's history: the main process's (None on the others,
    # which never read them)
    @property
    def assistant(self) -> TeachingAssistant:
        return _main_only(self._assistant, "assistant")

    @assistant.setter
    def assistant(self, value: TeachingAssistant | None) -> None:
        self._assistant = value

    @property
    def brief(self) -> TaskBrief:
        return _main_only(self._brief, "brief")

    @brief.setter
    def brief(self, value: TaskBrief | None) -> None:
        self._brief = value

    @property
    def history(self) -> History:
        return _main_only(self._history, "history")

    @history.setter
    def history(self, value: History | None) -> None:
        self._history = value

    def __init__(
        self,
        config: GptaConfig,
        *,
        task: Task,
        tokenizer: PreTrainedTokenizerBase,
        dev_rows: Sequence[dict[str, Any]],
        side: TeachingSide | None,
        selection: RunSelection,
        progress: Progress,
        ranks: Ranks | None = None,
    ) -> None:
        """The policy of one run: ``config`` (its assistant, selection and training sections),
        the TA side (the main process's; None on the others, which only take part in the
        sharded evaluation and screening) and what chooses the prefix and the round kept
        (``selection``)."""
        training = config.training
        self.task = task
        self.tokenizer = tokenizer
        self._assistant = side.assistant if side else None
        self._brief = side.brief if side else None
        self._history = side.history if side else None
        self.dialogue = side.dialogue if side else None  # TA tuning, improvement rates
        self.config = config.assistant
        self.rule = config.selection  # the adoption rule's margin and confidence
        self.dev_rows = list(dev_rows)
        # screening on a seeded sample of the dev rows (or by cross-validation, screener)
        screen_indices = sorted(
            random.Random(config.seed).sample(
                range(len(self.dev_rows)), min(config.selection.screen_size, len(self.dev_rows))
            )
        )
        self.screen_rows = [self.dev_rows[i] for i in screen_indices]
        self.eval_batch_size = training.eval_batch_size
        self.rounds = selection.rounds.rounds if selection.rounds else training.rounds
        self.seed = config.seed
        self.progress = progress
        self.ranks = ranks or Ranks()
        self.augment = training.augment_prefixes  # prefix variety: the top-M screened prefixes
        self.prefix = ""
        self.pool: list[str] = []  # with augment: the prefixes a training row may draw
        # assistant.background: the request in flight while a round trains, and the one
        # answered and waiting to be screened at this boundary
        self._pending: BackgroundProposals | None = None
        self._ready: BackgroundProposals | None = None
        self._ready_waited = 0.0
        self._asked = False  # whether the TA was asked anything yet (else: description only)
        self._first: list[str] | None = None  # warm-up: the first challengers, if not the TA's
        self.best: RoundRecord | None = None
        self._last_eval: Evaluation | None = None  # the latest round's dev evaluation
        self.rounds_since_best = 0
        self._best_serving: tuple[float, float] | None = None  # the best round's (score, -loss)
        self.stopped = False  # early stopping: no better dev score for `patience` rounds
        # dev scores choose nothing when the last round is kept
        self.patience = 0 if selection.keeps_last else training.patience
        # score each prefixed round with no prefix too, and serve with the better (off for
        # the fixed-prefix baselines, for prediction averaged over a prefix pool, and under
        # best_round cv, where the dev rows train too)
        self.compare_empty = (
            not (training.augment_prefixes and training.augment_predict == "mean")
            and selection.best_round != "cv"
            and not self.config.fixed_prefix
        )
        # once a prefix is adopted, this share of the batches still trains with none (not for
        # the fixed-prefix baselines, which train with exactly their prefix)
        self.empty_share = 0.0 if self.config.fixed_prefix else training.empty_prefix_share
        self.ta_seconds = 0.0
        self._round_started = time.perf_counter()
        # selection.prefix: cv screens by cross-validation over every labelled row instead
        # of the dev rows (gpta.prefix_cv); selection.best_round: cv / last keeps the last
        # round (docs/selection.md)
        self.screener: Callable[[torch.nn.Module, Sequence[str]], list[Screening]] | None = (
            selection.screener(config, task, tokenizer)
        )
        self.keep_last = selection.keeps_last

    # --- round 0 -----------------------------------------------------------------------------
    def initial_prefix(self) -> str:
        """The TA's first valid proposal from the description alone (or the empty prefix)."""
        if self.ranks.is_main:
            self._initial_prefix()
        self._share_prefix()
        self._round_started = time.perf_counter()
        return self.prefix

    @property
    def warmup(self) -> int:
        """Rounds trained with no prefix before the first prefix may be adopted."""
        return 0 if self.config.fixed_prefix else min(self.config.warmup_rounds, self.rounds - 1)

    def _initial_prefix(self) -> None:
        select: dict[str, Any] = {"reason": "initial"}
        if self.warmup:
            self.prefix = ""
            select = {"reason": "warmup", "rounds": self.warmup}
            self._first = self._first_candidates()
            if self._first is None and self.config.in_background():
                messages = initial_messages(self.brief)
                self._pending = BackgroundProposals(
                    lambda: self._ask(messages, -1, set()), asked_after_round=-1
                )
        elif self.config.warm_start:  # a transferred prefix: no TA request for round 0
            from gpta.library import warm_start_select

            self.prefix, select = warm_start_select(
                self.config.warm_start, self.config.max_prefix_tokens, self.assistant.count_tokens
            )
            source = select["source"]
            self.progress.info(f"round-0 prefix transferred from {source['kind']} {source['ref']}")
        elif self.config.initial == "empty":
            self.prefix = ""
        elif self.config.initial == "static":
            self.prefix = (self.config.static_prefix or "").strip()
        else:
            self.progress.ta_start(0)
            self._asked = True
            batch = self.assistant.propose(
                initial_messages(self.brief), seed=self.seed * 1000, round_index=0
            )
            self.ta_seconds += batch.seconds
            self.progress.ta_done(batch)
            for proposal in batch.proposals:
                self.history.add_proposal(
                    PrefixCandidate.proposed(proposal), round=0, improved=False
                )
            if batch.error:
                self.history.log("ta_error", round=0, error=batch.error)
            self.prefix = batch.valid[0] if batch.valid else ""
        self.history.log("select", round=0, prefix=self.prefix, **select)
        self.progress.prefix_chosen(0, self.prefix, changed=True)
        self.pool = self._pool()

    def _first_candidates(self) -> list[str] | None:
        """With warm-up: a transferred or static round-0 prefix is the first challenger of the
        empty prefix (no TA request); None when the TA proposes the first candidates."""
        if self.config.warm_start:
            from gpta.library import warm_start_select

            prefix, _ = warm_start_select(
                self.config.warm_start, self.config.max_prefix_tokens, self.assistant.count_tokens
            )
            return [prefix]
        if self.config.initial == "static":
            return [(self.config.static_prefix or "").strip()]
        if self.config.initial == "empty":
            return []
        return None

    # --- the steps of a round boundary (the recipe's round body calls them) -----------------
    def _last_round(self, round_index: int) -> bool:
        return round_index == self.rounds - 1 or self.stopped

    def _warming(self, round_index: int) -> bool:
        """No proposals until the warm-up's last round."""
        return round_index < self.warmup - 1

    def asks_after(self, round_index: int) -> bool:
        """Whether this boundary asks the TA and screens: not after the last round, not during
        the warm-up, never with a fixed prefix."""
        fixed = self.config.fixed_prefix
        return not (self._last_round(round_index) or fixed or self._warming(round_index))

    def evaluate_round(
        self, round_index: int, model: torch.nn.Module, train_loss: float | None
    ) -> RoundRecord:
        """The round on dev with its prefix, and (the round then serves with whichever is
        better) with no prefix."""
        train_seconds = time.perf_counter() - self._round_started
        started = time.perf_counter()
        dev = self._evaluate(model, self.prefix)
        eval_seconds = time.perf_counter() - started
        empty = self._evaluate(model, "") if self.prefix and self.compare_empty else None
        empty_seconds = time.perf_counter() - started - eval_seconds
        self._last_eval = dev  # the TA's per-label feedback
        return RoundRecord(
            round=round_index,
            prefix=self.prefix,
            dev_score=dev.score,
            dev_loss=dev.loss,
            train_loss=self.ranks.mean(train_loss),
            dev_metrics=dev.metrics,
            seconds={
                "train": round(train_seconds, 3),
                "eval": round(eval_seconds, 3),
                **({"eval_empty": round(empty_seconds, 3)} if empty else {}),
            },
            empty_dev_score=empty.score if empty else None,
            empty_dev_loss=empty.loss if empty else None,
            empty_dev_metrics=empty.metrics if empty else None,
        )

    def keep_if_best(self, record: RoundRecord) -> bool:
        """Whether this round is the best so far (by the score it would be saved with; the
        same on every process, the scores are gathered), and early stopping."""
        serving = record.serving_score
        is_best = self.keep_last or self._best_serving is None or serving > self._best_serving
        if is_best:
            self._best_serving = serving
            self.rounds_since_best = 0
            self.best = record
        else:
            self.rounds_since_best += 1
        self.stopped = bool(self.patience) and self.rounds_since_best >= self.patience
        return is_best

    def report_round(self, record: RoundRecord, is_best: bool) -> None:
        """The round's line; an early stop said and logged (main process)."""
        if not self.ranks.is_main:
            return
        self.progress.round_done(record, self.task.primary_metric, is_best, self.rounds)
        if self.stopped and self._pending is not None:
            # a background request nobody will screen: wait for it, so that what the run sent
            # and recorded does not depend on thread timing
            unused, self._pending = self._pending, None
            unused.result()
        if self.stopped and record.round < self.rounds - 1:
            best = self.best
            assert best is not None  # the first round is always the best so far
            self.history.log(
                "early_stop", round=record.round, patience=self.patience, best_round=best.round
            )
            self.progress.info(
                f"early stop after round {record.round}: no better dev score for "
                f"{self.patience} rounds (best: round {best.round})"
            )

    def before_asking(self, round_index: int) -> None:
        """A background request must be answered before the TA may be tuned (main process)."""
        if not self.ranks.is_main:
            return
        self._ready, self._pending = self._pending, None
        if self._ready is not None:
            self._ready_waited = self._ready.result()[1]
        if self.dialogue is not None:
            self.dialogue.before_proposals(round_index)  # tunes the TA when due

    def screen_current(self, model: torch.nn.Module) -> Screening:
        """The current prefix on the screening rows: the score a challenger must beat."""
        (current,) = self._screen_many(model, [self.prefix])
        if self.ranks.is_main:
            self.history.note_screened(current.prefix, current.score)
        return current

    def ask_ta(
        self, round_index: int, record: RoundRecord
    ) -> tuple[ProposalBatch, dict[str, float]]:
        """The TA's proposals for the next round (main process; an empty batch elsewhere):
        none at the warm-up's end when a static or transferred prefix is the challenger, the
        answer asked in the background during the round, or a request now; and this
        boundary's request started in the background for the next one. With the seconds
        waited for a background answer."""
        if not self.ranks.is_main:
            return ProposalBatch(), {}
        messages = self._conversation(record)
        ask_round = round_index + 1
        waited: dict[str, float] = {}
        first = self._first_challengers(round_index)
        if first is not None:
            batch = ProposalBatch()
        elif self._ready is not None:  # asked in the background during the round
            pending, self._ready = self._ready, None
            batch, _ = pending.result()
            waited["ta_wait"] = round(self._ready_waited, 3)  # joined before any TA tuning
            self.history.log(
                "ta_background",
                round=ask_round,
                asked_after_round=pending.asked_after_round,
                seconds=round(batch.seconds, 3),
                waited=round(self._ready_waited, 3),
            )
        else:
            self.progress.ta_start(ask_round)
            batch = self._ask(messages, round_index, self._known_prefixes())
        if self.config.in_background() and round_index + 1 < self.rounds - 1:
            # This boundary's conversation, answered while the next round trains and screened
            # at the next boundary. Its own seed: at the first boundary the same conversation
            # was also just answered here.
            known = self._known_prefixes() | set(batch.valid)  # read here, not in the thread
            self._pending = BackgroundProposals(
                lambda: self._ask(messages, round_index, known, seed_offset=500),
                asked_after_round=round_index,
            )
        if first is None:
            self.progress.ta_done(batch)
        self.ta_seconds += batch.seconds
        if batch.error:
            self.history.log("ta_error", round=ask_round, error=batch.error)
        return batch, waited

    def _first_challengers(self, round_index: int) -> list[str] | None:
        """At the warm-up's last boundary: the static or transferred prefix that challenges
        the empty one (None: the TA's proposals are the challengers)."""
        return self._first if round_index == self.warmup - 1 else None

    def challengers(self, round_index: int, batch: ProposalBatch) -> list[str] | None:
        """What is screened against the current prefix: the proposals and the empty prefix
        (main process; None elsewhere, which gets them by broadcast)."""
        if not self.ranks.is_main:
            return None
        first = self._first_challengers(round_index)
        if first is not None:
            return [p for p in dict.fromkeys(first) if p and p != self.prefix]
        return [p for p in dict.fromkeys([*batch.valid, ""]) if p != self.prefix]

    def screen(self, model: torch.nn.Module, challengers: list[str] | None) -> dict[str, Screening]:
        """The main process's challengers on the screening rows, on every process."""
        challengers = self.ranks.broadcast(challengers)
        return dict(zip(challengers, self._screen_many(model, challengers), strict=True))

    def choose_next(
        self,
        round_index: int,
        current: Screening,
        batch: ProposalBatch,
        screened: dict[str, Screening],
    ) -> None:
        """prefix_{r+1}: the best screened challenger if a paired test on the screening rows
        says it beats the current prefix, else the current prefix (the rule of every
        teaching material, :func:`gpta.assistant.material.choose`); every proposal and
        screening recorded (main process)."""
        if not self.ranks.is_main:
            return
        for proposal in batch.proposals:
            result = screened.get(proposal.prefix) if proposal.prefix is not None else None
            self.history.add_proposal(
                PrefixCandidate.proposed(proposal, result),
                round=round_index + 1,
                improved=bool(result and beats(result, current, self.rule.margin)),
            )
        for result in screened.values():
            self.history.note_screened(result.prefix, result.score)
        self.history.log(
            "screen",
            round=round_index + 1,
            current=_logged(current),
            candidates=[_logged(s) for s in screened.values()],
        )
        challengers = [PrefixCandidate.screened(s) for s in screened.values()]
        best = best_of(list(screened.values()))
        # the one adoption rule of every material (a paired test, Bonferroni over the k)
        adopted = choose(PrefixCandidate.screened(current), challengers, self.rule)
        changed = adopted is not None
        if best is not None and not changed and beats(best, current, self.rule.margin):
            reason = (
                f"not significant at {self.rule.adopt_confidence:g} on "
                f"{len(best.rows)} screening rows"
            )
            self.history.log(
                "not_adopted",
                round=round_index + 1,
                prefix=best.prefix,
                score=best.score,
                current=current.score,
                reason=reason,
            )
            self.progress.not_adopted(best.prefix, best.score, current.score, reason)
        if adopted is not None:
            self.prefix = adopted.name
        self.progress.screen_done(current, list(screened.values()), self.prefix, changed)
        self.progress.prefix_chosen(round_index + 1, self.prefix, changed=changed)

    def after_asking(self, round_index: int) -> None:
        """The dialogue gradient's improvement rate of this boundary's proposals (logged)."""
        if self.dialogue is not None:
            self.dialogue.after_proposals(round_index + 1)

    def record_round(self, record: RoundRecord) -> None:
        """The round and the next round's prefix in the history; the next round's prefix pool
        (main process)."""
        if not self.ranks.is_main:
            return
        self.history.add_round(record)
        if not self._last_round(record.round):
            fixed, warming = self.config.fixed_prefix, self._warming(record.round)
            reason = "frozen" if fixed else "warmup" if warming else "screened"
            self.history.log("select", round=record.round + 1, prefix=self.prefix, reason=reason)
        self.pool = self._pool()

    def start_round(self) -> None:
        """The next round trains with the main process's prefix, on every process."""
        self._share_prefix()
        self._round_started = time.perf_counter()

    def _conversation(self, record: RoundRecord) -> list[Message]:
        """The dialogue gradient of this boundary (a frozen TA, the ablation, gets the round-0
        conversation again: no scores, no feedback)."""
        if self.config.frozen or (not self._asked and not self.prefix):
            return initial_messages(self.brief)
        previous = self.history.rounds[-1].dev_score if self.history.rounds else None
        assert self._last_eval is not None  # the round that ends at this boundary set it
        title, per_field = self.task.feedback(self._last_eval)
        return self.assistant.feedback(  # top-M + recent rounds, within the TA's window
            self.history,
            current=ScoredPrefix(self.prefix, record.dev_score),
            previous_score=previous,
            feedback_title=title,
            feedback=per_field,
        )

    def _known_prefixes(self) -> set[str]:
        return self.history.all_prefixes() | {self.prefix}

    def _ask(
        self, messages: list[Message], round_index: int, known: set[str], *, seed_offset: int = 0
    ) -> ProposalBatch:
        self._asked = True
        return self.assistant.propose(
            messages,
            seed=self.seed * 1000 + round_index + 1 + seed_offset,
            previous=known,
            round_index=round_index + 1,
        )

    # --- checkpoints -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """What a resumed run needs, taken at a round boundary (after the next prefix is set)."""
        return {
            "prefix": self.prefix,
            "best": asdict(self.best) if self.best else None,
            "ta_seconds": self.ta_seconds,
            "pool": self.pool,
            "rounds_since_best": self.rounds_since_best,
            "asked": self._asked,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state` of a completed round."""
        self.prefix = state["prefix"]
        self.best = RoundRecord(**state["best"]) if state["best"] else None
        self._best_serving = self.best.serving_score if self.best else None
        self.ta_seconds = state["ta_seconds"]
        self.pool = state.get("pool", [])
        self.rounds_since_best = state.get("rounds_since_best", 0)
        self._asked = state.get("asked", True)
        if self.warmup:  # read at the warm-up's last boundary, if that is still to come
            self._first = self._first_candidates()
        self._round_started = time.perf_counter()

    # --- scoring, sharded across processes ---------------------------------------------------
    def _evaluate(self, model: torch.nn.Module, prefix: str) -> Evaluation:
        rows = self.dev_rows
        outputs = self.task.outputs(
            model, self.tokenizer, self.ranks.shard(rows), prefix, batch_size=self.eval_batch_size
        )
        return self.task.score(rows, self.ranks.gather_shards(outputs, len(rows)))

    def _screen_many(self, model: torch.nn.Module, prefixes: Sequence[str]) -> list[Screening]:
        """Every prefix on the screening rows, in one batched pass per process."""
        if not prefixes:
            return []
        if self.screener is not None:  # selection.prefix: cv
            return self.screener(model, list(prefixes))
        rows = self.screen_rows
        outputs = self.task.outputs_many(
            model,
            self.tokenizer,
            self.ranks.shard(rows),
            list(prefixes),
            batch_size=self.eval_batch_size,
        )
        return [
            self.task.screen_score(p, rows, self.ranks.gather_shards(out, len(rows)))
            for p, out in zip(prefixes, outputs, strict=True)
        ]

    # --- what every process trains on ----------------------------------------------------------
    def _pool(self) -> list[str]:
        """Prefix variety: the top-M screened prefixes (the current one always among them)
        and the empty prefix; empty when augmentation is off."""
        if not self.augment:
            return []
        top = [s.prefix for s in self.history.tried(self.augment)]
        if self.prefix not in top:
            top = [self.prefix, *top[: self.augment - 1]]
        return list(dict.fromkeys([*top, ""]))

    def _share_prefix(self) -> None:
        """The main process's prefix (and pool) on every process, checked to be equal."""
        self.prefix, self.pool = self.ranks.broadcast((self.prefix, self.pool))
        self.ranks.assert_same((self.prefix, self.pool), "the prefix of the next round")


def _logged(screening: Screening) -> dict[str, Any]:
    """A screening as history.jsonl keeps it: prefix, score, loss (not the per-row scores)."""
    return {"prefix": screening.prefix, "score": screening.score, "loss": screening.loss}
