"""Label words proposed by the TA for opaque labels (gpta.assistant.label_words).

The rule, the parsing and the checks are unit-tested on strings. The choice step is tested
with scripted chat models only for parsing and faults (invalid JSON, duplicates, a failing
TA, user words winning) and a tiny random model for the screening forward passes. The end
to end test runs the real bundled SmolLM2 as the TA *and* as the lm-verbalizer model on
yelp rows (labels 0..4).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import shared_rows, write_jsonl

from gpta.assistant import label_words as lw
from gpta.bundled import resolve_model_path
from gpta.chat.base import ChatResult, Usage
from gpta.config import build_config
from gpta.errors import GptaUserError
from gpta.run import load_data
from gpta.tasks import build_task

YELP = (
    "Yelp reviews of restaurants and local businesses written by customers. Each review is "
    "labelled with the star rating its author gave: 0 = 1 star, 1 = 2 stars, 2 = 3 stars, "
    "3 = 4 stars, 4 = 5 stars."
)


# --------------------------------------------------------------------------------------------
# the rule, parsing, checks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["0", "4", "-1", "2.5", "LABEL_1", "A", "b", "cr", "NEG", "ENTY", "LOC", "x7", "a b c d", ""],
)
def test_opaque_label_names(name):
    assert lw.is_opaque_label(name)


@pytest.mark.parametrize(
    "name", ["positive", "World", "NEGATIVE", "sci.space", "not_entailment", "Sci/Tech", "neg"]
)
def test_word_like_label_names(name):
    assert not lw.is_opaque_label(name)


def test_which_labels_the_ta_is_asked_about():
    digits = ["0", "1", "2"]
    assert lw.labels_needing_words(digits, None, "auto") == digits
    assert lw.labels_needing_words(digits, {"0": "bad"}, "auto") == ["1", "2"]
    assert lw.labels_needing_words(digits, {"0": "a", "1": "b", "2": "c"}, "auto") == []
    assert lw.labels_needing_words(digits, None, "never") == []
    words = ["negative", "positive"]
    assert lw.labels_needing_words(words, None, "auto") == []  # the names are words
    assert lw.labels_needing_words(words, None, "always") == words
    assert lw.labels_needing_words(words, {"negative": "bad"}, "always") == ["positive"]


def test_parse_json_object_list_and_lines():
    labels = ["0", "1", "2"]
    words, how = lw.parse_label_words('{"0": "bad", "1": "okay", "2": "good", "3": "x"}', labels)
    assert (words, how) == ({"0": "bad", "1": "okay", "2": "good"}, "json")  # "3" dropped
    fenced = 'Here you go:\n```json\n{"0": "bad", "1": "okay", "2": "good"}\n```'
    assert lw.parse_label_words(fenced, labels)[0] == {"0": "bad", "1": "okay", "2": "good"}
    assert lw.parse_label_words('["bad", "okay", "good"]', labels) == (
        {"0": "bad", "1": "okay", "2": "good"},
        "list",
    )
    assert lw.parse_label_words("0: bad\n1: okay\n2 - good", labels) == (
        {"0": "bad", "1": "okay", "2": "good"},
        "lines",
    )
    # a list of the wrong length, a cut-off object, prose: nothing
    assert lw.parse_label_words('["bad", "good"]', labels) == (None, "not_json")
    assert lw.parse_label_words('{"0": "bad", "1": "ok', labels) == (None, "not_json")
    assert lw.parse_label_words("I think the labels mean stars.", labels) == (None, "not_json")


def test_checks_every_label_one_word_distinct():
    needed = ["0", "1", "2"]
    assert lw.check_words(None, needed) == "not_json"
    assert lw.check_words({"0": "bad", "1": "okay"}, needed) == "missing"
    assert lw.check_words({"0": "bad", "1": "okay", "2": ""}, needed) == "missing"
    assert lw.check_words({"0": "1 star", "1": "okay", "2": "good"}, needed) == "not_a_word"
    assert lw.check_words({"0": "4stars", "1": "okay", "2": "good"}, needed) == "not_a_word"
    assert lw.check_words({"0": "very bad", "1": "okay", "2": "good"}, needed) == "not_a_word"
    assert lw.check_words({"0": "Good", "1": "okay", "2": "good"}, needed) == "duplicate"
    # the user's own words count for distinctness
    assert lw.check_words({"1": "bad", "2": "good"}, ["1", "2"], {"0": "BAD"}) == "duplicate"
    assert lw.check_words({"0": '"bad."', "1": "so-so", "2": "don't"}, needed) is None


def test_request_holds_the_description_and_labels_only():
    messages = lw.label_word_messages(YELP, ["0", "1", "2", "3", "4"])
    assert messages[0]["role"] == "system" and "JSON" in messages[0]["content"]
    assert messages[-1]["role"] == "user" and YELP in messages[-1]["content"]
    assert '{"0": "?", "1": "?", "2": "?", "3": "?", "4": "?"}' in messages[-1]["content"]
    # worked examples of unrelated tasks, each answer a valid proposal for its own labels
    for user, answer in zip(messages[1:-1:2], messages[2:-1:2], strict=True):
        assert user["role"] == "user" and answer["role"] == "assistant"
        labels = list(json.loads(answer["content"]))
        words, _ = lw.parse_label_words(answer["content"], labels)
        assert lw.check_words(words, labels) is None
    schema = lw.label_words_schema(["0", "1"])
    assert schema["required"] == ["0", "1"] and not schema["additionalProperties"]


# --------------------------------------------------------------------------------------------
# the choice step, with scripted TAs and a tiny model
# --------------------------------------------------------------------------------------------


class ScriptedChat:
    backend, model_name = "scripted", "fixed-replies"

    def __init__(self, texts):
        self.texts = texts
        self.calls = 0

    def chat(self, messages, sampling, **params):
        self.calls += 1
        n = sampling.n
        return ChatResult(texts=self.texts[:n], usage=Usage(10 * n, 5 * n), seconds=0.01)


class FailingChat:
    backend, model_name = "scripted", "always-fails"

    def chat(self, messages, sampling, **params):
        raise ConnectionError("server went away")


@pytest.fixture(scope="module")
def smol_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_path("bundled:smollm2"))


@pytest.fixture(scope="module")
def bert_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_path("bundled:minilm"))


def tiny_llama(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config).eval()


def tiny_bert_mlm(tokenizer):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        max_position_embeddings=256,
    )
    return BertForMaskedLM(config).eval()


def _setup(tmp_path, monkeypatch, *, chat, labels, head="lm-verbalizer", tokenizer, **model):
    rows = [
        {"text": f"review number {i} about the food", "label": labels[i % 3]} for i in range(12)
    ]
    data = write_jsonl(tmp_path / "data" / "train.jsonl", rows)
    dev = write_jsonl(tmp_path / "data" / "dev.jsonl", rows[:6])
    config = build_config(
        {
            "output_dir": str(tmp_path / "run"),
            "data": {
                "train": str(data),
                "dev": str(dev),
                "test": str(dev),
                "description": "Reviews, each with a score from the worst to the best.",
            },
            "model": {"head": head, "max_length": 96, **model},
            "assistant": {"candidates": 4, "screen_size": 6},
        }
    )
    tables = load_data(config)
    task = build_task(lw.for_validation(config, tables), tables)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    made = []

    def make_chat_model(assistant, **kwargs):
        made.append(assistant.model)
        return chat

    monkeypatch.setattr("gpta.llm.make_chat_model", make_chat_model)
    model = tiny_llama(tokenizer) if head == "lm-verbalizer" else tiny_bert_mlm(tokenizer)
    monkeypatch.setattr(lw, "_load_pretrained", lambda head, name: (model, tokenizer))
    return config, tables, task, run_dir, made


def _events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_proposals_are_parsed_checked_screened_and_the_best_kept(
    tmp_path, monkeypatch, smol_tokenizer
):
    answers = [
        "Sure! The labels are star ratings.",
        '{"0": "bad", "1": "bad", "2": "good"}',
        '{"0": "bad", "1": "okay", "2": "good"}',
        '```json\n{"0": "awful", "1": "fine", "2": "great"}\n```',
    ]
    chat = ScriptedChat(answers)
    config, tables, task, run_dir, made = _setup(
        tmp_path, monkeypatch, chat=chat, labels=[0, 1, 2], tokenizer=smol_tokenizer
    )
    chosen = lw.choose_label_words(
        config, tables, task, run_dir=run_dir, description="Reviews.", quiet=True
    )
    assert chat.calls == 1 and made == ["bundled:smollm2"]
    (event,) = _events(run_dir / "history.jsonl")
    assert event["event"] == "label_words" and event["needed"] == ["0", "1", "2"]
    candidates = event["candidates"]
    assert [c["source"] for c in candidates] == ["ta"] * 4  # numeric names: no names candidate
    assert [c["raw"] for c in candidates] == answers
    assert [c["reason"] for c in candidates] == ["not_json", "duplicate", None, None]
    valid = [c for c in candidates if c["valid"]]
    assert all(isinstance(c["screen_score"], float) for c in valid)
    assert all(c["screen_score"] is None for c in candidates if not c["valid"])
    (best,) = [c for c in candidates if c["chosen"]]
    assert best["screen_score"] == max(c["screen_score"] for c in valid)
    assert event["chosen"] == best["words"] and event["source"] == "ta"
    # used for training, saved in the config and in the model's manifest
    assert config.model.label_words == best["words"]
    assert chosen.head.label_words == best["words"]
    manifest = chosen.manifest()
    assert manifest["label_words"] == best["words"] and manifest["label_words_source"] == "ta"
    # the request went through the ledger, with the description and labels and no row
    ledger = _events(run_dir / "exposure.jsonl")
    (request,) = [r for r in ledger if r["event"] == "request"]
    sent = json.dumps(request["messages"])
    assert "Reviews." in sent and "review number" not in sent
    assert any(r["event"] == "response" and r["id"] == request["id"] for r in ledger)


def test_user_words_win_and_the_ta_is_not_asked_when_they_cover_every_label(
    tmp_path, monkeypatch, smol_tokenizer
):
    chat = ScriptedChat(['{"0": "bad", "1": "okay", "2": "good"}'])
    words = {"0": "awful", "1": "meh", "2": "super"}
    config, tables, task, run_dir, made = _setup(
        tmp_path,
        monkeypatch,
        chat=chat,
        labels=[0, 1, 2],
        tokenizer=smol_tokenizer,
        label_words=words,
    )
    assert lw.choose_label_words(config, tables, task, run_dir=run_dir, description="x") is task
    assert chat.calls == 0 and made == [] and not (run_dir / "history.jsonl").exists()
    assert task.head.label_words == words


def test_partial_user_words_are_kept_over_the_tas(tmp_path, monkeypatch, smol_tokenizer):
    chat = ScriptedChat(['{"0": "bad", "1": "okay", "2": "good"}', '{"1": "fine", "2": "awful"}'])
    config, tables, task, run_dir, _ = _setup(
        tmp_path,
        monkeypatch,
        chat=chat,
        labels=[0, 1, 2],
        tokenizer=smol_tokenizer,
        label_words={"0": "awful"},
    )
    chosen = lw.choose_label_words(config, tables, task, run_dir=run_dir, description="x")
    (event,) = _events(run_dir / "history.jsonl")
    assert event["needed"] == ["1", "2"]
    # the second answer reuses the user's word: a duplicate
    assert [c["reason"] for c in event["candidates"]] == [None, "duplicate"]
    assert chosen.head.label_words == {"0": "awful", "1": "okay", "2": "good"}
    assert event["source"] == "user+ta"


def test_a_failing_ta_with_numeric_labels_is_a_clear_error(tmp_path, monkeypatch, smol_tokenizer):
    config, tables, task, run_dir, _ = _setup(
        tmp_path, monkeypatch, chat=FailingChat(), labels=[0, 1, 2], tokenizer=smol_tokenizer
    )
    with pytest.raises(GptaUserError) as err:
        lw.choose_label_words(config, tables, task, run_dir=run_dir, description="x", quiet=True)
    assert "the TA call failed: ConnectionError: server went away" in err.value.message
    assert "model.label_words" in err.value.hint
    (event,) = _events(run_dir / "history.jsonl")
    assert event["call"]["ok"] is False and event["chosen"] is None
    ledger = _events(run_dir / "exposure.jsonl")
    assert [r["event"] for r in ledger if r["event"] != "policy"] == ["request", "error"]


def test_a_failing_ta_falls_back_to_usable_label_names(tmp_path, monkeypatch, smol_tokenizer):
    config, tables, task, run_dir, _ = _setup(
        tmp_path,
        monkeypatch,
        chat=FailingChat(),
        labels=["bad", "okay", "good"],
        tokenizer=smol_tokenizer,
        propose_label_words="always",
    )
    chosen = lw.choose_label_words(config, tables, task, run_dir=run_dir, description="x")
    assert chosen.head.label_words == {"bad": "bad", "good": "good", "okay": "okay"}
    (event,) = _events(run_dir / "history.jsonl")
    assert event["source"] == "names" and event["call"]["ok"] is False
    (names,) = event["candidates"]
    assert names["source"] == "names" and names["chosen"] and names["screen_score"] is not None


def test_names_stay_unless_a_proposal_screens_better(tmp_path, monkeypatch, smol_tokenizer):
    # an answer that repeats the names is not screened twice
    chat = ScriptedChat(['{"bad": "bad", "okay": "okay", "good": "good"}'])
    config, tables, task, run_dir, _ = _setup(
        tmp_path,
        monkeypatch,
        chat=chat,
        labels=["bad", "okay", "good"],
        tokenizer=smol_tokenizer,
        propose_label_words="always",
    )
    lw.choose_label_words(config, tables, task, run_dir=run_dir, description="x")
    (event,) = _events(run_dir / "history.jsonl")
    assert [(c["source"], c["reason"]) for c in event["candidates"]] == [
        ("names", None),
        ("ta", "repeated"),
    ]
    assert event["source"] == "names"


def test_cloze_words_must_be_single_tokens(tmp_path, monkeypatch, bert_tokenizer):
    chat = ScriptedChat(['{"0": "zyzzyva", "1": "good"}', '{"0": "bad", "1": "good"}'])
    config, tables, task, run_dir, _ = _setup(
        tmp_path,
        monkeypatch,
        chat=chat,
        labels=[0, 1, 1],
        head="cloze",
        tokenizer=bert_tokenizer,
    )
    chosen = lw.choose_label_words(config, tables, task, run_dir=run_dir, description="x")
    (event,) = _events(run_dir / "history.jsonl")
    first, second = event["candidates"]
    assert first["reason"] == "tokens" and "the mask holds exactly one token" in first["detail"]
    assert second["chosen"] and chosen.head.label_words == {"0": "bad", "1": "good"}


# --------------------------------------------------------------------------------------------
# end to end: the real SmolLM2 proposes words for yelp's 0..4 and is trained with them
# --------------------------------------------------------------------------------------------


def _yelp_rows(per_label: int, skip: int = 0) -> list[dict]:
    rows, seen = [], dict.fromkeys(range(5), 0)
    for row in shared_rows("yelp", "train"):
        if len(row["text"]) > 400:
            continue
        label = int(row["label"])
        seen[label] += 1
        if skip < seen[label] <= skip + per_label:
            rows.append({"text": row["text"], "label": label})
    return rows


@pytest.mark.slow
def test_smollm2_proposes_screened_label_words_for_yelp_end_to_end(tmp_path):
    from gpta.downstream.pipeline import load_pipeline
    from gpta.run import train

    data = tmp_path / "data"
    config = build_config(
        {
            "output_dir": str(tmp_path / "run"),
            "seed": 0,
            "data": {
                "train": str(write_jsonl(data / "train.jsonl", _yelp_rows(2))),
                "dev": str(write_jsonl(data / "dev.jsonl", _yelp_rows(1, skip=2))),
                "test": str(write_jsonl(data / "test.jsonl", _yelp_rows(1, skip=3))),
                "description": YELP,
            },
            "model": {"head": "lm-verbalizer", "max_length": 64},
            "training": {"rounds": 1, "steps_per_round": 1, "batch_size": 2},
            # only the label words are asked of the TA: the prefix stays empty
            "assistant": {
                "candidates": 4,
                "screen_size": 5,
                "max_prefix_tokens": 24,
                "initial": "empty",
                "fixed_prefix": True,
                "library": False,
            },
        }
    )
    result = train(config, quiet=True)
    run_dir = result.run_dir
    events = _events(run_dir / "history.jsonl")
    (event,) = [e for e in events if e["event"] == "label_words"]
    assert event["needed"] == ["0", "1", "2", "3", "4"] and event["call"]["ok"]
    candidates = event["candidates"]
    assert len(candidates) == 4 and all(c["source"] == "ta" and c["raw"] for c in candidates)
    for c in candidates:  # each proposal: screened when valid, a reason when not
        assert (c["reason"] is None) == (c["screen_score"] is not None)
    valid = [c for c in candidates if c["valid"]]
    assert valid, f"SmolLM2 proposed no usable words: {[c['raw'] for c in candidates]}"
    (best,) = [c for c in candidates if c["chosen"]]
    assert best["screen_score"] == max(c["screen_score"] for c in valid)
    assert event["source"] == "ta" and event["chosen"] == best["words"]
    # trained with them, and predict uses them
    import yaml

    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["model"]["label_words"] == best["words"]
    manifest = json.loads((run_dir / "model" / "gpta.json").read_text())
    assert manifest["label_words"] == best["words"] and manifest["label_words_source"] == "ta"
    pipeline = load_pipeline(run_dir / "model", device="cpu")
    assert pipeline.task.head.label_words == best["words"]
    (prediction,) = pipeline([{"text": "The food was cold and the waiter was rude."}])
    assert prediction["label"] in (0, 1, 2, 3, 4)
    # the request is in the ledger, with the description and no row
    ledger = _events(run_dir / "exposure.jsonl")
    requests = [r for r in ledger if r["event"] == "request"]
    assert len(requests) == 1  # the fixed empty prefix asks nothing else
    assert YELP in json.dumps(requests[0]["messages"])
    assert _yelp_rows(1)[0]["text"][:60] not in json.dumps(requests[0]["messages"])
