"""One shape for what the TA writes (issue 27): prefixes, label words and class cards are
materials with one record shape and one adoption rule; the card names are the label-word
heads' candidate words.

The card-name tests use a scripted TA (a unit test's stand-in, never a run's TA) and the
tiny models of tests/test_label_words.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_label_words import ScriptedChat, _events, _setup

from gpta.assistant import label_words as lw
from gpta.assistant.card_choice import CardCandidate, choose_cards
from gpta.assistant.cards import CardAnswer, CardSet, ClassCard, card_from_answer, names_cards
from gpta.assistant.label_words import WordCandidate
from gpta.assistant.material import KINDS, Material, choose
from gpta.assistant.parsing import ParsedProposal
from gpta.assistant.prefix import PrefixCandidate
from gpta.bundled import resolve_model_path
from gpta.chat.base import ChatResult, Usage
from gpta.config import SelectionConfig
from gpta.selection import CrossValidated
from gpta.tasks.base import Screening

COMMON = ("kind", "name", "screen_score", "screen_loss")


def _screening(name: str, rows: list[float]) -> Screening:
    return Screening(name, float(np.mean(rows)), 1.0 - float(np.mean(rows)), tuple(rows))


def _cross_validated(name: str, correct: list[float]) -> CrossValidated:
    correct_arr = np.asarray(correct)
    probabilities = np.stack([correct_arr * 0.8 + 0.1, 0.9 - correct_arr * 0.8], axis=1)
    return CrossValidated(
        name,
        np.zeros(len(correct), dtype=int),
        probabilities,
        correct_arr,
        np.log(probabilities[:, 0]),
    )


# --------------------------------------------------------------------------------------------
# each kind records itself in the common shape
# --------------------------------------------------------------------------------------------


def test_a_prefix_records_itself_in_the_common_shape():
    screened = PrefixCandidate.proposed(
        ParsedProposal("raw answer", "Decide the mood.", None),
        _screening("Decide the mood.", [1, 0]),
    )
    refused = PrefixCandidate.proposed(ParsedProposal("Sure! Here it is", None, "meta"))
    record = screened.record()
    assert isinstance(screened, Material) and screened.kind == "prefix"
    assert set(KINDS) == {"prefix", "label_words", "cards"}
    assert list(record)[:4] == list(COMMON)
    assert record["kind"] == "prefix" and record["name"] == "Decide the mood."
    assert record["screen_score"] == 0.5 and record["screen_loss"] == 0.5
    assert (
        record["raw"] == "raw answer" and record["valid"] and screened.content == "Decide the mood."
    )
    assert refused.record() == {
        "kind": "prefix",
        "name": "",
        "screen_score": None,
        "screen_loss": None,
        "raw": "Sure! Here it is",
        "prefix": None,
        "valid": False,
        "reason": "meta",
        "truncated": False,
    }


def test_a_word_set_records_itself_in_the_common_shape():
    words = {"0": "bad", "1": "good"}
    candidate = WordCandidate("ta", words, raw="{...}", index=2, result=_screening("p", [1, 1, 0]))
    record = candidate.record()
    assert candidate.kind == "label_words" and candidate.content == words
    assert list(record)[:4] == list(COMMON)
    assert record["kind"] == "label_words" and record["name"] == "ta 2"
    assert record["screen_score"] == round(2 / 3, 6) and record["words"] == words
    assert WordCandidate("names", words).record()["name"] == "names"
    assert WordCandidate("cards", words).record()["screen_score"] is None


def test_a_card_set_records_itself_in_the_common_shape():
    cards = names_cards(["negative", "positive"])
    result = _cross_validated("names w=1", [1, 1, 0, 1])
    candidate = CardCandidate("names w=1", cards, 1.0, False, result)
    record = candidate.record()
    assert candidate.kind == "cards" and candidate.content is cards
    assert list(record)[:4] == list(COMMON)
    assert record["kind"] == "cards" and record["name"] == "names w=1"
    assert record["screen_score"] == record["cv_accuracy"] == 0.75
    assert record["examples"] == 6 and record["weight"] == 1.0
    plain = CardCandidate.plain(_cross_validated("w=0", [1, 0, 0, 1]))
    assert plain.name == "w=0" and plain.weight == 0.0 and plain.record()["examples"] == 0


# --------------------------------------------------------------------------------------------
# one rule: choose
# --------------------------------------------------------------------------------------------

RULE = SelectionConfig(margin=0.0, adopt_confidence=0.95)
ROWS = 40


def _prefix(name: str, right: int) -> PrefixCandidate:
    return PrefixCandidate.screened(_screening(name, [1.0] * right + [0.0] * (ROWS - right)))


def test_choose_adopts_a_challenger_that_passes_the_paired_test():
    current = _prefix("current", 10)
    better = _prefix("better", 30)  # every row the current gets right, and 20 more
    assert choose(current, [_prefix("worse", 5), better], RULE) is better


def test_choose_refuses_a_challenger_higher_but_not_significant():
    current = _prefix("current", 20)
    slightly = _prefix("slightly", 21)  # one more row right of 40, 19 the same
    rows = list(slightly.screening.rows)
    rows[0], rows[25] = 0.0, 1.0  # and one row swapped: +1 net, not significant
    noisy = PrefixCandidate.screened(Screening("noisy", 21 / ROWS, 0.0, tuple(rows)))
    assert choose(current, [noisy], RULE) is None
    # without the paired test (the label-word step) the margin alone decides
    assert choose(current, [noisy], RULE, paired_test=False) is noisy
    # and a margin larger than the gain refuses it too
    margin = SelectionConfig(margin=0.1, adopt_confidence=0.95)
    assert choose(current, [noisy], margin, paired_test=False) is None


def test_choose_keeps_the_current_material_on_a_tie():
    current = _prefix("current", 20)
    same = _prefix("same", 20)
    assert choose(current, [same], RULE) is None
    assert choose(current, [same], RULE, paired_test=False) is None
    assert choose(current, [], RULE) is None


def test_choose_without_a_current_takes_the_best_screened_and_never_an_unscreened_one():
    refused = WordCandidate("ta", None, reason="not_json")
    low = WordCandidate("ta", {"0": "a"}, result=_screening("low", [1, 0, 0, 0]))
    high = WordCandidate("ta", {"0": "b"}, result=_screening("high", [1, 1, 0, 0]))
    assert choose(None, [refused, low, high], RULE) is high
    unscreened_current = WordCandidate("names", {"0": "0"}, reason="tokens")
    assert choose(unscreened_current, [low], RULE) is low
    assert choose(None, [refused], RULE) is None


def test_choose_decides_card_sets_against_the_plain_rows():
    plain = CardCandidate.plain(_cross_validated("w=0", [1] * 10 + [0] * 30))
    cards = names_cards(["a", "b"])
    helps = CardCandidate(
        "names w=1", cards, 1.0, False, _cross_validated("names w=1", [1] * 30 + [0] * 10)
    )
    hurts = CardCandidate("names w=0.25", cards, 0.25, False, _cross_validated("x", [0] * 40))
    assert choose(plain, [hurts], RULE) is None
    assert choose(plain, [hurts, helps], RULE) is helps


# --------------------------------------------------------------------------------------------
# the card names are the label-word heads' candidates
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smol_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_path("bundled:smollm2"))


def _requests(run_dir) -> list[dict]:
    return [r for r in _events(run_dir / "exposure.jsonl") if r["event"] == "request"]


def test_a_card_set_names_its_classes_the_user_name_where_it_is_a_word():
    answer = CardAnswer(
        name="gloomy",
        definition="",
        examples=[{"subtopic": "", "length": "short", "tone": "casual", "text": "x"}],
    )
    cards = CardSet(
        "ta",
        [
            card_from_answer("0", "", answer),
            card_from_answer("happy", "happy", answer),
            ClassCard("2", ""),
        ],
    )
    assert cards.names() == {"0": "gloomy", "happy": "happy", "2": ""}


def test_card_names_are_screened_as_the_label_words_and_no_word_request_is_sent(
    tmp_path, monkeypatch, smol_tokenizer
):
    chat = ScriptedChat(['{"0": "bad", "1": "okay", "2": "good"}'])
    config, tables, task, run_dir, made = _setup(
        tmp_path, monkeypatch, chat=chat, labels=[0, 1, 2], tokenizer=smol_tokenizer
    )
    offered = {"0": "Awful.", "1": "fine", "2": "great"}
    chosen = lw.choose_label_words(
        config, tables, task, run_dir=run_dir, description="x", quiet=True, offered=offered
    )
    assert chat.calls == 0 and made == [] and _requests(run_dir) == []
    (event,) = _events(run_dir / "history.jsonl")
    assert event["call"] is None
    (cards,) = event["candidates"]  # numeric label names: no names candidate
    assert cards["kind"] == "label_words" and cards["source"] == "cards" and cards["valid"]
    assert cards["words"] == {"0": "Awful", "1": "fine", "2": "great"}  # cleaned like a proposal
    assert isinstance(cards["screen_score"], float) and cards["chosen"]
    assert event["source"] == "cards" and chosen.head.label_words == cards["words"]
    assert chosen.manifest()["label_words_source"] == "cards"


@pytest.mark.parametrize(
    ("offered", "reason"),
    [
        ({"0": "very bad", "1": "okay", "2": "good"}, "not_a_word"),
        ({"0": "good", "1": "okay", "2": "good"}, "duplicate"),
        ({"0": "", "1": "okay", "2": "good"}, "missing"),
    ],
)
def test_card_names_that_fail_the_checks_are_refused_and_the_ta_is_asked_for_words(
    tmp_path, monkeypatch, smol_tokenizer, offered, reason
):
    chat = ScriptedChat(['{"0": "bad", "1": "okay", "2": "good"}'])
    config, tables, task, run_dir, _ = _setup(
        tmp_path, monkeypatch, chat=chat, labels=[0, 1, 2], tokenizer=smol_tokenizer
    )
    chosen = lw.choose_label_words(
        config, tables, task, run_dir=run_dir, description="x", quiet=True, offered=offered
    )
    assert chat.calls == 1 and len(_requests(run_dir)) == 1
    (event,) = _events(run_dir / "history.jsonl")
    cards, proposal = event["candidates"]
    assert (cards["source"], cards["reason"], cards["screen_score"]) == ("cards", reason, None)
    assert proposal["source"] == "ta" and proposal["chosen"]
    assert chosen.head.label_words == {"0": "bad", "1": "okay", "2": "good"}


def test_card_names_the_heads_tokenizer_refuses_are_followed_by_a_word_request(
    tmp_path, monkeypatch
):
    from transformers import AutoTokenizer

    bert = AutoTokenizer.from_pretrained(resolve_model_path("bundled:minilm"))
    chat = ScriptedChat(['{"0": "bad", "1": "good"}'])
    config, tables, task, run_dir, _ = _setup(
        tmp_path, monkeypatch, chat=chat, labels=[0, 1, 1], head="cloze", tokenizer=bert
    )
    offered = {"0": "zyzzyva", "1": "good"}  # several tokens: no cloze word
    chosen = lw.choose_label_words(
        config, tables, task, run_dir=run_dir, description="x", quiet=True, offered=offered
    )
    assert chat.calls == 1
    (event,) = _events(run_dir / "history.jsonl")
    cards, proposal = event["candidates"]
    assert cards["source"] == "cards" and cards["reason"] == "tokens"
    assert proposal["chosen"] and chosen.head.label_words == {"0": "bad", "1": "good"}


def test_user_words_win_over_the_card_names(tmp_path, monkeypatch, smol_tokenizer):
    chat = ScriptedChat(['{"0": "bad", "1": "okay", "2": "good"}'])
    config, tables, task, run_dir, _ = _setup(
        tmp_path,
        monkeypatch,
        chat=chat,
        labels=[0, 1, 2],
        tokenizer=smol_tokenizer,
        label_words={"0": "awful"},
    )
    offered = {"0": "dreadful", "1": "fine", "2": "great"}
    chosen = lw.choose_label_words(
        config, tables, task, run_dir=run_dir, description="x", quiet=True, offered=offered
    )
    assert chat.calls == 0
    (event,) = _events(run_dir / "history.jsonl")
    assert event["needed"] == ["1", "2"] and event["given"] == {"0": "awful"}
    assert chosen.head.label_words == {"0": "awful", "1": "fine", "2": "great"}
    assert event["source"] == "user+cards"
    # a card name that repeats the user's word is a duplicate, as a proposal's would be
    run_dir2 = tmp_path / "again"
    run_dir2.mkdir()
    config.model.label_words = {"0": "awful"}
    lw.choose_label_words(
        config,
        tables,
        task,
        run_dir=run_dir2,
        description="x",
        quiet=True,
        offered={"0": "dreadful", "1": "awful", "2": "great"},
    )
    (event,) = _events(run_dir2 / "history.jsonl")
    assert event["candidates"][0]["reason"] == "duplicate" and chat.calls == 1


def test_user_words_for_every_label_leave_the_card_names_unused(
    tmp_path, monkeypatch, smol_tokenizer
):
    chat = ScriptedChat([])
    words = {"0": "awful", "1": "meh", "2": "super"}
    config, tables, task, run_dir, made = _setup(
        tmp_path,
        monkeypatch,
        chat=chat,
        labels=[0, 1, 2],
        tokenizer=smol_tokenizer,
        label_words=words,
    )
    offered = {"0": "dreadful", "1": "fine", "2": "great"}
    same = lw.choose_label_words(
        config, tables, task, run_dir=run_dir, description="x", offered=offered
    )
    assert same is task and task.head.label_words == words
    assert chat.calls == 0 and made == [] and not (run_dir / "history.jsonl").exists()


class NamingCardChat:
    """Answers each card request with the class's name from ``names`` and two examples."""

    backend, model_name = "scripted", "card-namer"

    def __init__(self, names: dict[str, str]):
        self.names = names
        self.requests: list[str] = []

    def chat(self, messages, sampling, **params):
        request = messages[-1]["content"]
        self.requests.append(request)
        label = request.split("Write the card of class ")[1].split(" ")[0]
        answer = {
            "name": self.names[label],
            "definition": "A review of one kind.",
            "examples": [
                {"subtopic": s, "length": "short", "tone": "casual", "text": f"the {s} was {t}"}
                for s, t in (("soup", "as expected tonight"), ("bread", "what we got today"))
            ],
        }
        texts = [json.dumps(answer)] * sampling.n
        return ChatResult(texts=texts, usage=Usage(20, 40), seconds=0.01)


def test_the_card_steps_names_become_the_label_words_of_an_lm_head(
    tmp_path, monkeypatch, smol_tokenizer
):
    """The card step (the LM head's model loaded without binding the placeholder words)
    names the classes; the label-word step screens those names and sends no request."""
    names = {"0": "awful", "1": "fine", "2": "great"}
    chat = NamingCardChat(names)
    config, tables, task, run_dir, _ = _setup(
        tmp_path, monkeypatch, chat=chat, labels=[0, 1, 2], tokenizer=smol_tokenizer
    )
    config.assistant = config.assistant.model_copy(update={"cache": False})
    config.cards = config.cards.model_copy(update={"source": "ta", "examples": 2, "folds": 2})
    cards = choose_cards(config, tables, task, run_dir=run_dir, description="x", quiet=True)
    assert cards.names == names and len(chat.requests) == 3
    chosen = lw.choose_label_words(
        config, tables, task, run_dir=run_dir, description="x", quiet=True, offered=cards.names
    )
    assert len(chat.requests) == 3  # the card requests only: no request for words
    (event,) = [e for e in _events(run_dir / "history.jsonl") if e["event"] == "label_words"]
    (candidate,) = event["candidates"]
    assert candidate["source"] == "cards" and candidate["chosen"]
    assert chosen.head.label_words == names and event["source"] == "cards"
