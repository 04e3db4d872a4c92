"""One shape for what the TA writes (issue 27): prefixes, label words and class cards are
materials with one record shape and one adoption rule."""

from __future__ import annotations

import numpy as np

from gpta.assistant.card_choice import CardCandidate
from gpta.assistant.cards import names_cards
from gpta.assistant.label_words import WordCandidate
from gpta.assistant.material import KINDS, Material, choose
from gpta.assistant.parsing import ParsedProposal
from gpta.assistant.prefix import PrefixCandidate
from gpta.config import AssistantConfig
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

RULE = AssistantConfig(margin=0.0, adopt_confidence=0.95)
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
    margin = AssistantConfig(margin=0.1, adopt_confidence=0.95)
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
