"""Before training: class cards asked, filtered, and adopted only by cross-validation.

1. Candidates. ``cards.source: names``: the label names templated into rows (no TA).
   ``cards.source: ta``: one request per class from the description alone (no row is sent:
   the request goes through the privacy channel, its leak guard and ledger), each answer
   read under the card schema and its examples filtered (:mod:`gpta.assistant.cards`); with
   ``cards.filter_confident`` the same set less the examples a probe on the fold's real
   rows confidently gives to another class is a candidate too.
2. Screening, on the user's labelled rows only (train and dev of this run): stratified
   k-fold cross-validation with logistic regression on the pretrained model's frozen
   embeddings (the proxy, seconds), every candidate at every weight in ``cards.weights``
   against the plain rows (w = 0). Each row's out-of-fold 0/1 correctness is the paired
   score; :func:`gpta.selection.adopt` decides (higher accuracy AND a one-sided paired
   t-test at ``selection.adopt_confidence``, Bonferroni over candidates; w = 0 wins ties).
3. The dialogue gradient for cards (``cards.rounds``): the TA gets the per-class recall
   and the most confused class pairs over the cross-validated rows (aggregates only: no
   row, no example text) and writes new examples for the weak classes; the revised set is
   screened the same way against what is adopted.

``cards.json`` in the run directory holds every card, every example with the filter that
dropped it, every candidate's cross-validated score, the choice, and the share of kept
examples that a probe on the real rows alone gives to their intended class. The chosen
rows train with the chosen weight; w = 0 (nothing adopted) trains exactly the plain run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from gpta import run_files
from gpta.assistant.cards import (
    CardAnswer,
    CardSet,
    card_from_answer,
    card_messages,
    card_rows,
    feedback_messages,
    filter_examples,
    length_bounds,
    names_cards,
    output_schema,
    parse_card,
)
from gpta.assistant.material import Kind, Material, choose, held_after
from gpta.errors import GptaUserError
from gpta.fileio import write_json
from gpta.selection import (
    CrossValidated,
    ExtraRows,
    fold_count,
    per_class_feedback,
    proxy_scores,
    stratified_folds,
)

if TYPE_CHECKING:
    from gpta.chat.base import Message
    from gpta.config import GptaConfig
    from gpta.data import Table
    from gpta.distributed import Ranks
    from gpta.progress import Progress
    from gpta.tasks.base import Screening, Task
    from gpta.tasks.classification import ClassificationTask

EVENT = "cards"


@dataclass
class CardChoice:
    """What the card step decided: the adopted set and weight (w = 0: none), the training
    rows it adds, where its selection rows came from, and the class names of the TA's
    cards (label -> name; empty for the names control), offered to the label-word heads as
    their words (:func:`gpta.assistant.label_words.choose_label_words`)."""

    cards: CardSet | None = None
    weight: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)
    selection: str = ""
    variant: str = ""
    names: dict[str, str] = field(default_factory=dict)  # the TA's class names, adopted or not

    @property
    def adopted(self) -> bool:
        return bool(self.rows)


@dataclass
class CardCandidate(Material):
    """A card set at a loss weight (filtered or not), and its cross-validated result; the
    plain rows (no cards, w = 0) are one too (:meth:`plain`), the material to beat."""

    kind: ClassVar[Kind] = "cards"

    variant: str  # e.g. "ta w=1", "names w=0.25", "ta r1 filtered w=1"; "w=0": no cards
    cards: CardSet
    weight: float
    filtered: bool
    result: CrossValidated | None = None

    @classmethod
    def plain(cls, result: CrossValidated) -> CardCandidate:
        """The plain rows: no card, weight 0."""
        return cls(result.name, CardSet("none", []), 0.0, False, result)

    @property
    def name(self) -> str:
        return self.variant

    @property
    def content(self) -> CardSet:
        return self.cards

    @property
    def screening(self) -> Screening | None:
        return None if self.result is None else self.result.screening()

    def details(self) -> dict[str, Any]:
        """What ``cards.json`` and history keep of each candidate."""
        result = self.result
        return {
            "source": self.cards.source,
            "weight": self.weight,
            "filtered": self.filtered,
            "examples": len(self.cards.examples()),
            "cv_accuracy": None if result is None else round(result.accuracy, 6),
            "cv_loss": None if result is None else round(result.loss, 6),
            # each labelled row's out-of-fold 0/1 correctness, in row order (no row text):
            # what the paired test read, so another rule can be replayed from the record
            "cv_correct": None if result is None else [int(v) for v in result.correct],
        }


def choose_cards(
    config: GptaConfig,
    tables: dict[str, Table],
    task: Task,
    *,
    run_dir: str | Path,
    description: str,
    ranks: Ranks | None = None,
    quiet: bool = False,
) -> CardChoice:
    """The card step of a run (``cards.source`` not ``none``); the main process decides,
    the others receive its rows."""
    from gpta.distributed import Ranks as _Ranks
    from gpta.tasks.classification import ClassificationTask as _Classification

    ranks = ranks or _Ranks()
    if config.cards.source == "none" or task.family != "classification":
        return CardChoice()
    assert isinstance(task, _Classification)  # the classification family's class
    if ranks.is_main:
        choice = _choose(config, tables, task, Path(run_dir), description, quiet)
        ranks.broadcast((choice.rows, choice.weight))
        return choice
    shared: tuple[list[dict[str, Any]], float] = ranks.broadcast(None)
    rows, weight = shared
    return CardChoice(rows=rows, weight=weight)


def load_choice(run_dir: str | Path) -> CardChoice:
    """The adopted rows of a run's ``cards.json`` (``--resume``); none if it has none."""
    path = Path(run_dir) / run_files.CARDS
    if not path.is_file():
        return CardChoice()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        chosen = data["chosen"]
        rows, weight = list(chosen["rows"]), float(chosen["weight"])
        variant = "" if chosen["name"] == "w=0" else str(chosen["name"])
        selection = str(data["selection"])
    except (OSError, ValueError, KeyError, TypeError):
        raise GptaUserError(
            f"--resume: {path} is damaged", hint="start the run again (with --overwrite)"
        ) from None
    return CardChoice(rows=rows, weight=weight, selection=selection, variant=variant)


def _labelled(tables: dict[str, Table]) -> tuple[list[dict[str, Any]], str]:
    """The labelled rows the run may choose with (train, and dev when the run has one),
    and a line saying where they come from."""
    train, dev = tables["train"], tables.get("dev")
    rows = list(train.rows) + (list(dev.rows) if dev is not None else [])
    parts = f"train {len(train)}" + (f" + dev {len(dev)}" if dev is not None else "")
    return rows, f"{len(rows)} labelled rows ({parts})"


def _choose(
    config: GptaConfig,
    tables: dict[str, Table],
    task: ClassificationTask,
    run_dir: Path,
    description: str,
    quiet: bool,
) -> CardChoice:
    """The card step on the main process: the folds, the proxy's screening of the plain rows
    and of each candidate, the dialogue rounds, the adoption, the record."""
    from gpta.progress import Progress

    progress = Progress(quiet=quiet)
    started = time.perf_counter()
    rows, where = _labelled(tables)
    labels = task._ids([r[task.label_column] for r in rows])
    k = fold_count(labels, config.selection.folds)
    selection = f"selection: {k}-fold cross-validation over the {where}"
    progress.info(f"class cards ({config.cards.source}): {selection}")
    proxy = _Proxy.load(config, task, rows, labels, stratified_folds(labels, k, seed=config.seed))

    writer = None
    if config.cards.source != "names":
        writer = _CardWriter(config, tables, task, run_dir, description, rows, progress)
    first = names_cards(list(task.label_names)) if writer is None else writer.initial()
    plain = CardCandidate.plain(proxy.baseline())  # the material to beat: no cards
    screened = _Screened(plain, [first], _candidates(config, first))
    proxy.screen(screened.candidates)
    current = held_after(plain, screened.candidates, config.selection) or plain
    if writer is not None:  # the names control has no TA to ask
        current = _dialogue_rounds(config, writer, proxy, screened, current)

    intended = proxy.intended_share(screened.sets[-1])
    names = first.names() if writer else {}  # the TA's class names, adopted or not
    choice = _adoption(current, plain, proxy, task, selection=selection, names=names)
    record = _card_record(
        config,
        screened,
        choice,
        folds=k,
        intended=intended,
        calls=writer.calls if writer else [],
        seconds=round(time.perf_counter() - started, 3),
    )
    _save(run_dir, record)
    _report(progress, record, choice)
    return choice


@dataclass
class _Screened:
    """What the card step has screened: the plain rows, every card set asked for (the first,
    then one per dialogue round), every candidate in order, and each round's record."""

    plain: CardCandidate
    sets: list[CardSet]
    candidates: list[CardCandidate]
    rounds: list[dict[str, Any]] = field(default_factory=list)


def _dialogue_rounds(
    config: GptaConfig,
    writer: _CardWriter,
    proxy: _Proxy,
    screened: _Screened,
    current: CardCandidate,
) -> CardCandidate:
    """The dialogue gradient for cards (``cards.rounds``): each round the TA revises a set
    from per-class feedback, the revised set's candidates are screened against the material
    held, and the winner, if any, is held. Adds each round's set, candidates and record to
    ``screened``; returns what is held after the last round."""
    for round_index in range(1, config.cards.rounds + 1):
        guide = _guide(current, screened)
        assert guide.result is not None  # the plain rows and every guide are screened
        feedback = per_class_feedback(guide.result, proxy.labels, writer.names)
        # the examples are added to the set the guide came from
        guide_cards = screened.sets[-1] if guide is screened.plain else guide.cards
        revised = writer.revise(guide_cards, feedback, round_index)
        screened.sets.append(revised)
        challengers = _candidates(config, revised, tag=f"r{round_index}")
        proxy.screen(challengers)
        screened.candidates.extend(challengers)
        chosen = choose(current, challengers, config.selection)
        screened.rounds.append(
            {
                "round": round_index,
                "feedback": feedback,
                "candidates": [c.record() for c in challengers],
                "adopted": None if chosen is None else chosen.name,
            }
        )
        if chosen is not None:
            current = chosen
    return current


def _guide(current: CardCandidate, screened: _Screened) -> CardCandidate:
    """What a round's feedback is about: the adopted set, else the best screened candidate,
    else the plain rows."""
    results = [(c, c.result) for c in screened.candidates if c.result is not None]
    if current is screened.plain and results:
        return max(results, key=lambda pair: pair[1].accuracy)[0]
    return current


def _adoption(
    current: CardCandidate,
    plain: CardCandidate,
    proxy: _Proxy,
    task: ClassificationTask,
    *,
    selection: str,
    names: dict[str, str],
) -> CardChoice:
    """The choice the run trains with: the held candidate's set as it trains, its weight and
    its rows; the plain rows (nothing adopted) when nothing beat them."""
    choice = CardChoice(selection=selection, names=names)
    if current is plain:
        return choice
    kept = proxy.kept_set(current)
    choice.cards, choice.weight, choice.variant = kept, current.weight, current.name
    choice.rows = card_rows(
        kept,
        labels=task.labels,
        text_column=task.text_column,
        label_column=task.label_column,
        weight=current.weight,
    )
    return choice


def _card_record(
    config: GptaConfig,
    screened: _Screened,
    choice: CardChoice,
    *,
    folds: int,
    intended: float | None,
    calls: list[dict[str, Any]],
    seconds: float,
) -> dict[str, Any]:
    """What ``cards.json`` holds: the selection, the plain rows, every candidate, set and
    round, the TA's calls, and the choice with its rows."""
    baseline = screened.plain.result
    assert baseline is not None  # the plain rows are screened first
    return {
        "source": config.cards.source,
        "selection": choice.selection,
        "folds": folds,
        "proxy": "logistic regression (C=1) on the pretrained model's frozen embeddings",
        "paired_score": "out-of-fold 0/1 correctness, per labelled row",
        "confidence": config.selection.adopt_confidence,
        "baseline": {
            "name": "w=0",
            "cv_accuracy": round(baseline.accuracy, 6),
            "cv_loss": round(baseline.loss, 6),
            "cv_correct": [int(v) for v in baseline.correct],
        },
        "candidates": [c.record() for c in screened.candidates],
        "rounds": screened.rounds,
        "sets": [s.record() for s in screened.sets],
        "intended_class_share": intended,
        "calls": calls,
        "seconds": seconds,
        "chosen": {
            "name": choice.variant or "w=0",
            "weight": choice.weight,
            "counts": choice.cards.counts() if choice.cards else {},
            "rows": choice.rows,
        },
    }


def _save(run_dir: Path, record: dict[str, Any]) -> None:
    """Write ``cards.json``, then the ``cards`` event of ``history.jsonl`` (the record less
    the rows, the sets and the rounds)."""
    from gpta.assistant.history import History

    write_json(run_dir / run_files.CARDS, record)
    History(run_dir / run_files.HISTORY).log(
        EVENT,
        source=record["source"],
        selection=record["selection"],
        baseline=record["baseline"],
        candidates=record["candidates"],
        chosen=record["chosen"]["name"],
        weight=record["chosen"]["weight"],
        counts=record["chosen"]["counts"],
        calls=len(record["calls"]),
        seconds=record["seconds"],
    )


class _Embedder:
    """Frozen embeddings of the pretrained downstream model (loaded once, here only)."""

    def __init__(self, task: ClassificationTask, model_name: str, config: GptaConfig) -> None:
        from gpta.assistant.label_words import _load_pretrained
        from gpta.modeling.loading import quiet_loading
        from gpta.tasks.heads import LABEL_WORD_HEADS

        with quiet_loading():
            if task.head.name in LABEL_WORD_HEADS:  # before its words are chosen: no head to bind
                self.model, self.tokenizer = _load_pretrained(task.head.name, model_name)
            else:
                self.model, self.tokenizer = task.load_model(model_name)
        self.model.eval()
        self.max_length = config.model.max_length
        self.batch_size = config.training.eval_batch_size

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        from gpta.modeling.embeddings import frozen_embeddings

        return frozen_embeddings(
            self.model,
            self.tokenizer,
            texts,
            max_length=self.max_length,
            batch_size=self.batch_size,
        )


def _candidates(config: GptaConfig, cards: CardSet, *, tag: str = "") -> list[CardCandidate]:
    """The set at every weight > 0, and (TA cards, ``cards.filter_confident``) the filtered
    set at every weight."""
    label = cards.source + (f" {tag}" if tag else "")
    weights = sorted({float(w) for w in config.cards.weights if w > 0})
    out = [CardCandidate(f"{label} w={w:g}", cards, w, False) for w in weights]
    if cards.source == "ta" and config.cards.filter_confident:
        out += [CardCandidate(f"{label} filtered w={w:g}", cards, w, True) for w in weights]
    return out


@dataclass
class _Proxy:
    """The screening proxy: logistic regression on the pretrained model's frozen embeddings
    of the labelled rows, cross-validated over fixed folds."""

    embed: _Embedder
    features: np.ndarray  # the labelled rows, embedded
    labels: list[int]
    folds: list[list[int]]
    num_classes: int

    @classmethod
    def load(
        cls,
        config: GptaConfig,
        task: ClassificationTask,
        rows: Sequence[dict[str, Any]],
        labels: list[int],
        folds: list[list[int]],
    ) -> _Proxy:
        """Load the pretrained model and embed the labelled rows."""
        embed = _Embedder(task, config.model.resolved_name(config.task), config)
        features = embed([r[task.text_column] for r in rows])
        return cls(embed, features, labels, folds, len(task.label_names))

    def baseline(self) -> CrossValidated:
        """The plain rows' cross-validated result (no cards, w = 0)."""
        return proxy_scores(
            self.features,
            self.labels,
            self.folds,
            ExtraRows.none(self.features.shape[1]),
            num_classes=self.num_classes,
            name="w=0",
        )

    def screen(self, candidates: Sequence[CardCandidate]) -> None:
        """Set each candidate's cross-validated result (None: a set with no example)."""
        cache: dict[int, np.ndarray] = {}  # a card set's examples, embedded once
        for candidate in candidates:
            examples = candidate.cards.examples()
            key = id(candidate.cards)
            if not examples:
                candidate.result = None
                continue
            if key not in cache:
                cache[key] = self.embed([t for _, t in examples])
            extra = ExtraRows(
                cache[key],
                np.asarray([i for i, _ in examples], dtype=int),
                np.full(len(examples), candidate.weight),
            )
            candidate.result = proxy_scores(
                self.features,
                self.labels,
                self.folds,
                extra,
                num_classes=self.num_classes,
                name=candidate.name,
                keep_extra=_confident_filter if candidate.filtered else None,
            )

    def kept_set(self, candidate: CardCandidate) -> CardSet:
        """The adopted set as it trains: for a filtered candidate, the filter applied once
        with a probe on every labelled row (the examples it drops are marked
        ``confident_other``)."""
        if not candidate.filtered:
            return candidate.cards
        from sklearn.linear_model import LogisticRegression

        examples = candidate.cards.examples()
        extra = ExtraRows(
            self.embed([t for _, t in examples]),
            np.asarray([i for i, _ in examples], dtype=int),
            np.ones(len(examples)),
        )
        probe = LogisticRegression(max_iter=1000).fit(self.features, np.asarray(self.labels))
        keep = _confident_filter(probe, extra)
        import copy

        filtered = copy.deepcopy(candidate.cards)
        position = 0
        for card in filtered.cards:
            for example in card.examples:
                if example.dropped is None:
                    if not keep[position]:
                        example.dropped = "confident_other"
                    position += 1
        return filtered

    def intended_share(self, cards: CardSet) -> float | None:
        """The share of kept examples that a probe on the real rows alone gives to their
        intended class (a measure of card quality, not used to choose)."""
        from sklearn.linear_model import LogisticRegression

        examples = cards.examples()
        if not examples or len(set(self.labels)) < 2:
            return None
        probe = LogisticRegression(max_iter=1000).fit(self.features, np.asarray(self.labels))
        predicted = probe.predict(self.embed([t for _, t in examples]))
        share = np.mean([p == i for p, (i, _) in zip(predicted, examples, strict=True)])
        return round(float(share), 4)


def _confident_filter(probe: Any, extra: ExtraRows) -> np.ndarray:
    """Keep an example unless the probe's top class is another one with at least twice the
    probability of the intended class."""
    probs = np.zeros((len(extra.labels), int(max(probe.classes_.max(), extra.labels.max())) + 1))
    probs[:, probe.classes_] = probe.predict_proba(extra.features)
    intended = probs[np.arange(len(extra.labels)), extra.labels]
    top = probs.argmax(axis=1)
    keep: np.ndarray = ~((top != extra.labels) & (probs.max(axis=1) >= 2 * intended))
    return keep


# --------------------------------------------------------------------------------------------
# The TA's cards
# --------------------------------------------------------------------------------------------


def _display_names(task: ClassificationTask) -> list[str]:
    """The names a card keeps: the user's label name where it is a word, else none yet
    (the TA's name is used)."""
    from gpta.assistant.label_words import is_opaque_label

    return ["" if is_opaque_label(n) else n for n in task.label_names]


class _CardWriter:
    """The TA's side of the card step: one privacy channel (built on the first request),
    the card schema, the filters against the run's rows, and a record of every call."""

    def __init__(
        self,
        config: GptaConfig,
        tables: dict[str, Table],
        task: ClassificationTask,
        run_dir: Path,
        description: str,
        rows: Sequence[dict[str, Any]],
        progress: Progress,
    ) -> None:
        from gpta.assistant.label_words import _structured
        from gpta.assistant.oneshot import OneShot

        self.config, self.task, self.description, self.progress = (
            config,
            task,
            description,
            progress,
        )
        self.channel = OneShot(config, tables, run_dir, description, task=task, progress=progress)
        self.schema = output_schema() if _structured(config) else None
        self.names = list(task.label_names)
        self.bounds = length_bounds([r[task.text_column] for r in rows])
        self.calls: list[dict[str, Any]] = []

    def _ask(
        self, label: str, messages: list[Message], *, seed: int, round_index: int
    ) -> CardAnswer | None:
        """One request for one class's card; the parsed answer or None (a failed call, an
        answer that does not read)."""
        count = self.config.cards.examples
        texts, call = self.channel.send(
            messages, seed=seed, n=1, max_new_tokens=80 * count + 80, schema=self.schema
        )
        self.calls.append({"class": label, "round": round_index, **call})
        return parse_card(texts[0]) if texts else None

    def initial(self) -> CardSet:
        """One request per class from the description alone; every example filtered."""
        display = _display_names(self.task)
        cards = []
        for index, label in enumerate(self.names):
            self.progress.info(f"  asking the TA for the card of class {label}")
            messages = card_messages(
                self.description, self.names, label, examples=self.config.cards.examples
            )
            answer = self._ask(
                label, messages, seed=self.config.cards.seed * 1000 + index, round_index=0
            )
            cards.append(card_from_answer(label, display[index], answer))
        return self._filtered(CardSet("ta", cards))

    def revise(self, cards: CardSet, feedback: dict[str, Any], round_index: int) -> CardSet:
        """The set with new examples for each weak class (recall below the mean recall, or
        the lowest), written from aggregate feedback alone."""
        import copy

        recall = {k: v for k, v in feedback["recall_per_class"].items() if v is not None}
        mean = sum(recall.values()) / max(1, len(recall))
        weak = [k for k, v in recall.items() if v < mean] or [min(recall, key=lambda k: recall[k])]
        revised = copy.deepcopy(cards)
        for card in revised.cards:
            if card.label not in weak:
                continue
            confused = [
                p["predicted"] for p in feedback["confused_pairs"] if p["true"] == card.label
            ]
            self.progress.info(f"  cards round {round_index}: new examples for class {card.label}")
            messages = feedback_messages(
                self.description,
                self.names,
                card.label,
                feedback,
                examples=self.config.cards.examples,
                confused_with=confused,
            )
            seed = self.config.cards.seed * 1000 + 100 * round_index + self.names.index(card.label)
            answer = self._ask(card.label, messages, seed=seed, round_index=round_index)
            if answer is not None:
                card.examples.extend(
                    card_from_answer(card.label, card.name, answer, round=round_index).examples
                )
        return self._filtered(revised)

    def _filtered(self, card_set: CardSet) -> CardSet:
        filter_examples(
            card_set.cards,
            bounds=self.bounds,
            names_per_class=[[card.label, card.name] for card in card_set.cards],
        )
        return card_set


def _report(progress: Progress, record: dict[str, Any], choice: CardChoice) -> None:
    base = record["baseline"]["cv_accuracy"]
    for candidate in record["candidates"]:
        if candidate["cv_accuracy"] is None:
            progress.info(f"  {candidate['name']}: no examples")
            continue
        progress.info(
            f"  {candidate['name']}: {candidate['examples']} examples, cross-validated "
            f"accuracy {candidate['cv_accuracy']:.3f} (plain rows {base:.3f})"
        )
    if choice.adopted:
        counts = ", ".join(f"{k}: {v}" for k, v in record["chosen"]["counts"].items())
        progress.info(f"class cards adopted: {choice.variant} ({counts} examples per class)")
    else:
        progress.info(
            "class cards: none adopted (no candidate beat the plain rows by the paired test "
            f"at {record['confidence']:g}); training on the real rows alone"
        )
