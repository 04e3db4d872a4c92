"""Class cards (gpta.assistant.cards, gpta.assistant.card_choice) and the selection rule
(gpta.selection): mechanics, not scores.

The schema, the filters, the names control, the folds and the adoption rule are tested on
values. The card step runs with a scripted chat model only to capture what is sent and to
feed it answers of a known shape (parsing and fault handling); its cross-validation uses
the real bundled MiniLM embeddings. That w = 0 trains exactly the plain run is checked on
two real runs.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch
from conftest import TWEETS_DESCRIPTION, shared_rows, write_jsonl
from hypothesis import given, settings
from hypothesis import strategies as st

from gpta.assistant import cards as C
from gpta.assistant.card_choice import choose_cards
from gpta.chat.base import ChatResult, Usage
from gpta.config import build_config
from gpta.run import load_data
from gpta.selection import (
    CrossValidated,
    ExtraRows,
    adopt,
    fold_count,
    per_class_feedback,
    proxy_scores,
    stratified_folds,
)
from gpta.tasks import build_task
from gpta.tasks.base import ROW_WEIGHT, Screening

# --------------------------------------------------------------------------------------------
# schema and parsing
# --------------------------------------------------------------------------------------------


def _answer(texts, name="gloomy"):
    return json.dumps(
        {
            "name": name,
            "definition": "The author is unhappy.",
            "examples": [
                {"subtopic": f"s{i}", "length": "short", "tone": "casual", "text": t}
                for i, t in enumerate(texts)
            ],
        }
    )


def test_a_structured_answer_parses_and_a_free_text_one_is_read_leniently():
    card = C.parse_card(_answer(["The bus was late again and I missed my exam."]))
    assert card is not None and card.name == "gloomy"
    assert card.examples[0].tone == "casual"
    wrapped = "Sure!\n```json\n" + _answer(["Cold soup, rude staff."]) + "\n```"
    assert C.parse_card(wrapped).examples[0].text == "Cold soup, rude staff."
    plain = '{"name": "x", "examples": ["one text here", "another text here"]}'
    assert [e.text for e in C.parse_card(plain).examples] == [
        "one text here",
        "another text here",
    ]
    assert C.parse_card("I cannot help with that.") is None
    assert C.parse_card('{"name": "x", "examples": []}') is None  # at least one example


def test_the_schema_has_no_length_bounds_a_grammar_compiler_would_unroll():
    text = json.dumps(C.CARD_SCHEMA)
    assert "maxLength" not in text and "maxItems" not in text
    assert set(C.CARD_SCHEMA["required"]) == {"name", "definition", "examples"}


# --------------------------------------------------------------------------------------------
# filters
# --------------------------------------------------------------------------------------------


def _card(label, texts):
    return C.ClassCard(label, label, examples=[C.CardExample(t) for t in texts])


def test_each_filter_drops_what_it_names_and_keeps_the_rest():
    cards = [
        _card(
            "negative",
            [
                "The bus was late again and I missed the first half of my exam.",
                "",
                "Here is an example of a sad tweet",
                "Such a negative day, nothing went right",
                "ok",
                "word " * 200,
                "The bus was late again and I missed the first half of my exam!",
                "The bus was late again and I missed the first half of my exam today",
            ],
        ),
        _card("positive", ["The bus was late again and I missed the first half of my exam."]),
    ]
    C.filter_examples(cards, bounds=(3, 60), names_per_class=[["negative"], ["positive"]])
    reasons = [e.dropped for e in cards[0].examples]
    assert reasons == [
        *(None, "empty", "meta", "names_class"),
        *("length", "length", "duplicate", "copy"),
    ]
    assert cards[1].examples[0].dropped == "duplicate"  # across classes too
    assert [e.text for e in cards[0].kept] == [cards[0].examples[0].text]


def test_an_id_is_never_matched_as_a_class_name():
    cards = [_card("0", ["I gave it 0 stars and 0 tips, never again"])]
    C.filter_examples(cards, bounds=(2, 50), names_per_class=[["0", ""]])
    assert cards[0].examples[0].dropped is None


def test_length_bounds_come_from_the_real_rows():
    low, high = C.length_bounds(["one two three four", "a b c d e f g h i j k l"])
    assert (low, high) == (2, 24)


# --------------------------------------------------------------------------------------------
# the names control and card rows
# --------------------------------------------------------------------------------------------


def test_the_names_control_templates_every_label_and_weights_its_rows():
    names = C.names_cards(["negative", "neutral", "positive"])
    assert names.source == "names"
    assert names.counts() == {"negative": 3, "neutral": 3, "positive": 3}
    rows = C.card_rows(names, labels=[0, 1, 2], text_column="t", label_column="y", weight=0.25)
    assert {r["y"] for r in rows} == {0, 1, 2}
    assert all(r[ROW_WEIGHT] == 0.25 for r in rows)
    assert rows[1]["t"] == "This text is negative."


# --------------------------------------------------------------------------------------------
# folds, the proxy, the adoption rule
# --------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(min_value=0, max_value=4), min_size=2, max_size=80),
    k=st.integers(min_value=2, max_value=8),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_folds_are_disjoint_cover_every_row_and_are_stratified(labels, k, seed):
    folds = stratified_folds(labels, k, seed=seed)
    flat = [i for fold in folds for i in fold]
    assert sorted(flat) == list(range(len(labels)))  # disjoint and complete
    assert len(folds) == min(k, len(labels))
    for label, count in Counter(labels).items():
        per_fold = [sum(labels[i] == label for i in fold) for fold in folds]
        assert max(per_fold) - min(per_fold) <= 1  # each class spread evenly
        assert sum(per_fold) == count
    assert stratified_folds(labels, k, seed=seed) == folds  # seeded


def test_fold_count_leaves_every_class_a_row_to_train_on():
    assert fold_count([0, 0, 0, 1, 1, 1, 1, 1], 4) == 3
    assert fold_count([0] * 10 + [1] * 10, 4) == 4
    assert fold_count([0, 1], 4) == 2


def _screen(name, score, rows):
    return Screening(name, score, 1.0, tuple(rows))


def test_adoption_needs_a_higher_score_and_a_significant_paired_test():
    current = _screen("w=0", 0.5, [0.0] * 20)
    clear = _screen("a", 0.7, [1.0] * 10 + [0.0] * 10)
    assert adopt(current, [clear], margin=0, confidence=0.95) is clear
    noisy = _screen("b", 0.55, [1.0, -1.0] * 9 + [1.0, 1.0])
    assert adopt(current, [noisy], margin=0, confidence=0.95) is None  # not significant
    assert adopt(current, [noisy], margin=0, confidence=0) is noisy  # any gain at 0
    tie = _screen("c", 0.5, [1.0] * 20)
    assert adopt(current, [tie], margin=0, confidence=0.95) is None  # the current wins ties
    assert adopt(current, [clear], margin=0.3, confidence=0.95) is None  # within the margin


def test_bonferroni_makes_many_challengers_pay():
    current = _screen("w=0", 0.5, [0.0] * 12)
    # p ~ 0.02: significant alone at 0.95, not as the best of five
    best = _screen("a", 0.6, [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert adopt(current, [best], margin=0, confidence=0.95) is best
    others = [_screen(f"o{i}", 0.4, [0.0] * 12) for i in range(4)]
    assert adopt(current, [best, *others], margin=0, confidence=0.95) is None


def test_the_proxy_predicts_every_row_out_of_fold_and_extra_rows_count_with_their_weight():
    rng = np.random.default_rng(0)
    centers = np.eye(3, 8) * 3
    labels = [i % 3 for i in range(18)]
    features = np.stack([centers[y] + rng.normal(size=8) for y in labels])
    folds = stratified_folds(labels, 3, seed=0)
    plain = proxy_scores(features, labels, folds, ExtraRows.none(8), num_classes=3, name="w=0")
    assert isinstance(plain, CrossValidated) and plain.predicted.shape == (18,)
    # the paired score is each row's 0/1 correctness, out of fold
    assert plain.screening().rows == tuple(
        float(p == y) for p, y in zip(plain.predicted, labels, strict=True)
    )
    # extra rows that contradict the classes, weighted 0 (skipped) and heavily
    wrong = ExtraRows(
        np.stack([centers[(y + 1) % 3] for y in range(3)] * 10),
        np.asarray([0, 1, 2] * 10),
        np.full(30, 0.0),
    )
    zero = proxy_scores(features, labels, folds, wrong, num_classes=3, name="w0")
    assert np.array_equal(zero.predicted, plain.predicted)
    heavy = ExtraRows(wrong.features, wrong.labels, np.full(30, 10.0))
    hurt = proxy_scores(features, labels, folds, heavy, num_classes=3, name="w10")
    assert hurt.accuracy < plain.accuracy


def test_feedback_holds_aggregates_only():
    labels = [0, 0, 1, 1, 2, 2]
    result = CrossValidated(
        "x",
        np.asarray([0, 1, 1, 1, 1, 2]),
        np.full((6, 3), 1 / 3),
        np.asarray([1, 0, 1, 1, 0, 1.0]),
        np.zeros(6),
    )
    feedback = per_class_feedback(result, labels, ["neg", "neu", "pos"])
    assert feedback["recall_per_class"] == {"neg": 0.5, "neu": 1.0, "pos": 0.5}
    assert feedback["confused_pairs"] == [
        {"true": "neg", "predicted": "neu", "count": 1},
        {"true": "pos", "predicted": "neu", "count": 1},
    ]
    messages = C.feedback_messages(
        "Tweets.", ["neg", "neu", "pos"], "neg", feedback, examples=4, confused_with=["neu"]
    )
    text = json.dumps(messages)
    assert "50%" in text and "neg taken for neu (1 times)" in text


# --------------------------------------------------------------------------------------------
# the weighted loss
# --------------------------------------------------------------------------------------------


def test_card_rows_add_a_weight_and_the_loss_weighs_each_row():
    from gpta.tasks.classification import ClassificationTask

    class Head:
        def encode(self, tokenizer, texts, prefixes, max_length):
            return {"x": torch.zeros(len(texts), 1)}

        def class_logits(self, model, inputs):
            return model

    task = ClassificationTask("t", "y", [0, 1], 16, Head())
    plain = task.collate([{"t": "a", "y": 0}, {"t": "b", "y": 1}], None, "")
    assert "row_weights" not in plain  # the plain path carries no weights
    mixed = task.collate([{"t": "a", "y": 0}, {"t": "b", "y": 1, ROW_WEIGHT: 0.5}], None, "")
    assert mixed["row_weights"].tolist() == [1.0, 0.5]
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    losses = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1]), reduction="none")
    loss, _ = task.compute_loss(logits, mixed)
    assert torch.isclose(loss, (losses[0] + 0.5 * losses[1]) / 2)
    loss, _ = task.compute_loss(logits, plain)
    assert torch.isclose(loss, losses.mean())


# --------------------------------------------------------------------------------------------
# the card step: what is sent, what is recorded (scripted TA), w = 0
# --------------------------------------------------------------------------------------------


class CardChat:
    """Answers every card request with examples of a known shape; records what it got."""

    backend, model_name = "scripted", "card-writer"

    def __init__(self, fail: bool = False):
        self.fail = fail
        self.seen: list[list[dict]] = []

    def chat(self, messages, sampling, **params):
        self.seen.append(messages)
        if self.fail:
            raise ConnectionError("server went away")
        request = messages[-1]["content"]
        label = request.split("Write the card of class ")[1].split(" ")[0]
        texts = [f"a {label} message about topic {i} written for this test" for i in range(4)]
        return ChatResult(texts=[_answer(texts, name=label)], usage=Usage(20, 40), seconds=0.01)


def _card_config(tmp_path, rows, **cards):
    train = write_jsonl(tmp_path / "data" / "train.jsonl", rows)
    test = write_jsonl(tmp_path / "data" / "test.jsonl", rows[:6])
    return build_config(
        {
            "output_dir": str(tmp_path / "run"),
            "data": {"train": str(train), "test": str(test), "description": TWEETS_DESCRIPTION},
            "model": {"max_length": 96},
            "assistant": {"cache": False},
            "cards": cards,
        }
    )


def _tweets(n=24):
    rows, counts = [], Counter()
    for row in shared_rows("twitter", "train", 400):
        if counts[row["label"]] < n // 3:
            rows.append(row)
            counts[row["label"]] += 1
    return rows


@pytest.mark.slow
def test_the_card_step_sends_no_row_and_records_every_card(tmp_path, monkeypatch):
    rows = _tweets()
    config = _card_config(tmp_path, rows, source="ta", rounds=1, examples=4)
    tables = load_data(config)
    task = build_task(config, tables)
    chat = CardChat()
    monkeypatch.setattr("gpta.llm.make_chat_model", lambda assistant, **kw: chat)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    choice = choose_cards(config, tables, task, run_dir=run_dir, description=TWEETS_DESCRIPTION)
    sent = json.dumps(chat.seen)
    assert len(chat.seen) >= 3  # one request per class, then the feedback round's
    for row in shared_rows("twitter", "train", 2000):  # no training row in any request
        assert row["text"] not in sent
    ledger = (run_dir / "exposure.jsonl").read_text()
    assert all(r["text"] not in ledger for r in rows)
    feedback = [m for m in chat.seen if "cross-validated" in m[-1]["content"]]
    assert feedback, "the dialogue round asks with aggregate feedback"
    for messages in feedback:  # aggregates only: no example text goes back either
        assert "written for this test" not in json.dumps(messages)
    record = json.loads((run_dir / "cards.json").read_text())
    assert record["selection"].startswith("selection: ")
    assert "24 labelled rows" in record["selection"]
    assert [c["label"] for c in record["sets"][0]["cards"]] == ["negative", "neutral", "positive"]
    assert record["baseline"]["name"] == "w=0" and record["candidates"]
    # the card names its class outright in every example: the filter drops them all
    kept = [e for c in record["sets"][0]["cards"] for e in c["examples"] if not e["dropped"]]
    assert kept == []
    assert not choice.adopted and choice.rows == []


@pytest.mark.slow
def test_a_failing_ta_leaves_the_plain_rows(tmp_path, monkeypatch):
    rows = _tweets(18)
    config = _card_config(tmp_path, rows, source="ta")
    tables = load_data(config)
    task = build_task(config, tables)
    monkeypatch.setattr("gpta.llm.make_chat_model", lambda assistant, **kw: CardChat(fail=True))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    choice = choose_cards(config, tables, task, run_dir=run_dir, description=TWEETS_DESCRIPTION)
    record = json.loads((run_dir / "cards.json").read_text())
    assert all(not call["ok"] and "server went away" in call["error"] for call in record["calls"])
    assert not choice.adopted and record["chosen"]["name"] == "w=0"


@pytest.mark.slow
def test_w_zero_trains_exactly_the_plain_run(tmp_path):
    from gpta.run import train

    rows = _tweets(24)
    settings = {"steps_per_round": 2, "rounds": 2, "batch_size": 8}

    def run(name, cards):
        config = _card_config(tmp_path / name, rows, **cards)
        config.training = config.training.model_copy(update=settings)
        config.assistant = config.assistant.model_copy(
            update={"initial": "empty", "fixed_prefix": True}
        )
        train(config, quiet=True)
        out = tmp_path / name / "run"
        predictions = (out / "predictions" / "test.jsonl").read_text()
        weights = (out / "model" / "pooled_head.safetensors").read_bytes()
        return out, predictions, weights

    _, plain_predictions, plain_weights = run("plain", {})
    out, predictions, weights = run("zero", {"source": "names", "weights": [0.0]})
    assert predictions == plain_predictions
    assert weights == plain_weights
    record = json.loads((out / "cards.json").read_text())
    assert record["chosen"]["name"] == "w=0" and record["candidates"] == []
    assert json.loads((out / "metrics.json").read_text())["cards"]["adopted"] is False
