"""The TA's conversations, fault handling and the exposure ledger.

The scripted chat models here exist only to test parsing and fault handling;
every real run uses a real LLM (see test_end_to_end.py)."""

from __future__ import annotations

import dataclasses
import json

from gpta.assistant import History, RoundRecord, ScoredPrefix, TaskBrief, TeachingAssistant
from gpta.assistant.prompts import (
    SYSTEM,
    WORKED_EXAMPLES,
    feedback_messages,
    initial_messages,
    input_unit,
)
from gpta.chat.base import ChatResult, Usage
from gpta.config import AssistantConfig
from gpta.privacy import ExposureChannel, ExposureLedger

BRIEF = TaskBrief(
    family="text classification",
    reads="The network reads your instruction and a text and predicts one label.",
    description="Tweets about airlines.",
    label_names=["negative", "neutral", "positive"],
    metric="accuracy",
    max_words=30,
)


class FailingChat:
    backend, model_name = "scripted", "always-fails"

    def __init__(self):
        self.calls = 0

    def chat(self, messages, sampling, **params):
        self.calls += 1
        raise ConnectionError("server went away")


class ScriptedChat:
    backend, model_name = "scripted", "fixed-replies"

    def __init__(self, texts):
        self.texts = texts

    def chat(self, messages, sampling, **params):
        n = sampling.n
        return ChatResult(texts=self.texts[:n], usage=Usage(10 * n, 5 * n), seconds=0.01)


def _assistant(chat, tmp_path, candidates=3):
    ledger = ExposureLedger(tmp_path / "exposure.jsonl")
    config = AssistantConfig(candidates=candidates)
    return TeachingAssistant(
        ExposureChannel(chat, ledger), BRIEF, config, count_tokens=lambda s: len(s.split())
    ), ledger


def _ledger(tmp_path):
    return [json.loads(x) for x in (tmp_path / "exposure.jsonl").read_text().splitlines()]


def test_llm_failure_is_reported_not_raised(tmp_path):
    """Retrying is the backend's job; what reaches the TA is reported, never raised."""
    chat = FailingChat()
    assistant, _ = _assistant(chat, tmp_path)
    batch = assistant.propose(initial_messages(BRIEF), seed=0)
    assert chat.calls == 1
    assert batch.valid == [] and "server went away" in batch.error
    events = [r["event"] for r in _ledger(tmp_path)]
    assert events == ["request", "error"]  # the request was logged before the send


def test_proposals_are_parsed_and_ledgered(tmp_path):
    chat = ScriptedChat(
        [
            'Instruction: "Decide how the traveller feels about the airline."',
            "positive",
            "Decide how the traveller feels about the airline.",
        ]
    )
    assistant, _ = _assistant(chat, tmp_path)
    batch = assistant.propose(initial_messages(BRIEF), seed=0)
    assert batch.valid == ["Decide how the traveller feels about the airline."]
    assert [p.valid for p in batch.proposals] == [True, False, False]
    records = _ledger(tmp_path)
    assert [r["event"] for r in records] == ["request", "response"]
    assert records[0]["row_ids"] == [] and records[0]["model"] == "fixed-replies"
    assert records[1]["usage"] == {"prompt_tokens": 30, "completion_tokens": 15}


def test_ledger_ids_continue_across_reopen(tmp_path):
    ledger = ExposureLedger(tmp_path / "exposure.jsonl")
    first = ledger.record_request(backend="b", model="m", messages=[], row_ids=[], params={})
    again = ExposureLedger(tmp_path / "exposure.jsonl")
    second = again.record_request(backend="b", model="m", messages=[], row_ids=[], params={})
    assert (first, second) == (1, 2)


def test_feedback_lists_scores_best_last_with_per_label_numbers():
    messages = feedback_messages(
        BRIEF,
        tried=[ScoredPrefix("B", 0.7), ScoredPrefix("", 0.5), ScoredPrefix("A", 0.6)],
        current=ScoredPrefix("B", 0.7),
        previous_score=0.6,
        feedback_title="Share of each label found correctly",
        feedback={"negative": 0.9, "neutral": 0.2, "positive": 0.8},
    )
    user = messages[-1]["content"]
    assert (
        user.index("(no instruction): 0.500") < user.index('"A": 0.600') < user.index('"B": 0.700')
    )
    assert "up 0.100" in user and "neutral 0.20" in user
    assert "Tweets about airlines." in user


def test_history_tried_keeps_top_m_by_screened_score_and_best_round(tmp_path):
    history = History(tmp_path / "history.jsonl")
    for i, score in enumerate([0.5, 0.8, 0.6]):
        history.add_round(RoundRecord(i, f"p{i}", score, 1.0 - score, 0.3, {}))
        history.note_screened(f"p{i}", score - 0.1)
    history.note_screened("q", 0.9)
    history.note_screened("q", 0.4)  # the best screened score is kept
    assert [s.prefix for s in history.tried(2)] == ["q", "p1"]
    assert history.best_round().round == 1
    lines = (tmp_path / "history.jsonl").read_text().splitlines()
    assert [json.loads(x)["round"] for x in lines] == [0, 1, 2]


SLOT_BRIEF = dataclasses.replace(
    BRIEF,
    reads="The network is a masked language model: it fills {mask} in your sentence.",
    example="All in all, this news article is about {mask}.",
    slot="{mask}",
)


def test_prompts_without_a_slot_ask_for_an_instruction():
    messages = initial_messages(BRIEF)
    system, *worked, user = (m["content"] for m in messages)
    assert system.startswith(SYSTEM) and '{"instruction": "..."}' in system
    assert f"The model of this task: {BRIEF.reads}" in system
    # worked examples: our own unrelated tasks, as earlier turns, answered in the JSON form
    roles = [m["role"] for m in messages[1:-1]]
    assert roles == ["user", "assistant"] * len(WORKED_EXAMPLES)
    for example, answer in zip(WORKED_EXAMPLES, worked[1::2], strict=True):
        assert json.loads(answer) == {"instruction": example.instruction}
        assert "airline" not in answer.casefold() and "tweet" not in answer.casefold()
    # this task: family, the unit of input from the description, the labels, the description
    assert user.startswith(
        "Task: text classification.\nInput: one tweet.\nLabels: negative, neutral, positive.\n"
        "Data: Tweets about airlines."
    )
    assert user.endswith("\n\nWrite one instruction of at most 30 words.")
    assert "{mask}" not in system + user


def test_the_unit_of_input_comes_from_the_description_or_the_family():
    def unit(description, family="text classification"):
        return input_unit(dataclasses.replace(BRIEF, description=description, family=family))

    assert unit("Yelp reviews of restaurants, labelled 1-5 stars.") == "one review"
    assert unit("Support e-mails and the team that answered them.") == "one e-mail"
    assert unit("Rows of our CRM, labelled by churn.") == "one text"
    assert unit("SQuAD questions.", "extractive question answering") == (
        "a question, then a passage"
    )


def test_prompts_with_a_slot_ask_for_a_template_sentence_holding_it():
    messages = initial_messages(SLOT_BRIEF)
    system, *worked, user = (m["content"] for m in messages)
    assert "placed after every input" in system and "contains {mask} exactly once" in system
    assert system.endswith(
        "Example for another dataset: All in all, this news article is about {mask}."
    )
    assert all("{mask}" in json.loads(answer)["instruction"] for answer in worked[1::2])
    assert user.endswith(
        "Write one template sentence of at most 30 words, with {mask} where the answer word goes."
    )
    messages = feedback_messages(
        SLOT_BRIEF,
        tried=[ScoredPrefix("", 0.5), ScoredPrefix("The tweet sounds {mask}.", 0.6)],
        current=ScoredPrefix("The tweet sounds {mask}.", 0.6),
        previous_score=None,
    )
    feedback = messages[-1]["content"]
    assert "Sentences tried so far" in feedback and "(no sentence): 0.500" in feedback
    assert 'Current sentence: "The tweet sounds {mask}."' in feedback
    assert feedback.endswith(
        "Write one new template sentence of at most 30 words, with {mask} where the answer word "
        "goes, that should score higher than every sentence above."
    )
