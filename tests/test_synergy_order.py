"""The order of the steps at a round boundary that asked the TA in the background: the current
prefix is screened before the boundary waits for the answer (screening it needs no answer, so
a TA slower than the round is awaited while it runs), and the challengers after it. A fake
task, screener and background answer record the order; nothing trains and nothing is timed.
"""

from __future__ import annotations

from typing import Any

from gpta.assistant import History, ProposalBatch, TaskBrief
from gpta.config import build_config
from gpta.downstream.training import PrefixCollator
from gpta.progress import Progress
from gpta.recipe import GptaRecipe
from gpta.round_choice import RunSelection
from gpta.synergy import SynergyLoop
from gpta.tasks.base import Evaluation, Screening

ROWS = [{"text": f"row {i}", "label": i % 2} for i in range(4)]
BRIEF = TaskBrief(
    family="text classification",
    reads="The network reads your instruction and a text and predicts one label.",
    description="Tweets about airlines.",
    label_names=["negative", "positive"],
    metric="accuracy",
    max_words=30,
)


class _Task:
    primary_metric = "accuracy"

    def outputs(self, model: Any, tokenizer: Any, rows: Any, prefix: str, **_: Any) -> list[int]:
        return [0] * len(rows)

    def score(self, rows: Any, outputs: Any) -> Evaluation:
        return Evaluation(0.5, 1.0, {}, [None] * len(rows), [1.0] * len(rows))

    def feedback(self, evaluation: Evaluation) -> tuple[str, dict[str, float]]:
        return "Share of each label found correctly", {}


class _Answer:
    """Stands in for :class:`gpta.assistant.background.BackgroundProposals`."""

    asked_after_round = -1

    def __init__(self, events: list[Any], batch: ProposalBatch) -> None:
        self.events, self.batch = events, batch

    def result(self) -> tuple[ProposalBatch, float]:
        self.events.append("joined the TA's answer")
        return self.batch, 0.0


def test_the_current_prefix_is_screened_while_the_answer_is_awaited(tmp_path):
    events: list[Any] = []

    def screener(model: Any, prefixes: list[str]) -> list[Screening]:
        events.append(("screened", tuple(prefixes)))
        return [Screening(p, 0.5, 1.0, (1.0,) * len(ROWS)) for p in prefixes]

    config = build_config(
        {
            "seed": 0,
            "assistant": {"frozen": True, "background": True},
            "training": {"rounds": 2, "eval_batch_size": 4},
            "selection": {"screen_size": len(ROWS)},
        }
    )
    selection = RunSelection(prefix="dev", best_round="dev", labelled=[], where="", k=2, seed=0)
    loop = SynergyLoop(
        config,
        task=_Task(),  # type: ignore[arg-type]
        tokenizer=None,  # type: ignore[arg-type]
        dev_rows=ROWS,
        side=None,
        selection=selection,
        progress=Progress(quiet=True),
    )
    loop.brief, loop.history = BRIEF, History(tmp_path / "history.jsonl")
    loop.screener = screener
    loop.prefix = "Current instruction:"
    batch = ProposalBatch(error="no proposals")  # its challengers: the empty prefix alone
    loop._pending = _Answer(events, batch)  # type: ignore[assignment]
    recipe = GptaRecipe.__new__(GptaRecipe)  # only the rounds loop's body is used
    recipe.loop, recipe.stop_after = loop, None
    recipe.collator = PrefixCollator(_Task(), None)  # type: ignore[arg-type]
    recipe.end_of_round(0, model=None, train_loss=0.1)
    joined = events.index("joined the TA's answer")  # (the batch is read again after it)
    assert events[:joined] == [("screened", ("Current instruction:",))]  # needs no answer
    assert events[-1] == ("screened", ("",))  # the challengers come with the answer
