from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from gpta.bundled import resolve_model_path
from gpta.data import Table
from gpta.errors import GptaUserError
from gpta.tasks.classification import ClassificationTask


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_model_path("bundled:minilm"))


def _table(rows, source="train.jsonl"):
    return Table(source=source, rows=rows, locations=[f"line {i + 1}" for i in range(len(rows))])


def _task(max_length=32):
    return ClassificationTask("text", "label", ["negative", "positive"], max_length)


def test_input_begins_with_prefix_and_only_text_is_truncated(tokenizer):
    task = _task(max_length=32)
    prefix = "Decide whether the review is positive or negative."
    text = " ".join(f"word{i}" for i in range(200))
    ids = task.encode(tokenizer, [text], prefix)["input_ids"][0].tolist()
    prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    assert len(ids) == 32
    assert ids[0] == tokenizer.cls_token_id
    assert ids[1 : 1 + len(prefix_ids)] == prefix_ids  # the whole prefix survives
    assert ids[-1] == tokenizer.sep_token_id
    text_part = ids[1 + len(prefix_ids) : -1]
    full_text = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert text_part == full_text[: len(text_part)]  # the text was cut at its end
    assert len(text_part) < len(full_text)


def test_empty_prefix_is_plain_fine_tuning_input(tokenizer):
    task = _task(max_length=64)
    with_empty = task.encode(tokenizer, ["the soup was cold"], "")["input_ids"].tolist()
    plain = tokenizer(["the soup was cold"], return_tensors="pt")["input_ids"].tolist()
    assert with_empty == plain


def test_labels_come_from_train_and_unknown_labels_name_the_row():
    train = _table([{"text": "a", "label": "pos"}, {"text": "b", "label": "neg"}])
    dev = _table([{"text": "c", "label": "pos"}, {"text": "d", "label": "meh"}], "dev.jsonl")
    with pytest.raises(GptaUserError) as err:
        ClassificationTask.from_tables(
            {"train": train, "dev": dev}, text_column="text", label_column="label", max_length=32
        )
    assert "dev.jsonl, line 2" in err.value.message and "'meh'" in err.value.message


def test_single_class_is_an_error():
    train = _table([{"text": "a", "label": 1}, {"text": "b", "label": 1}])
    with pytest.raises(GptaUserError) as err:
        ClassificationTask.from_tables(
            {"train": train}, text_column="text", label_column="label", max_length=32
        )
    assert "single class" in err.value.message


def test_integer_labels_sort_numerically_and_match_floats():
    train = _table([{"text": t, "label": y} for t, y in [("a", 10), ("b", 2), ("c", 1.0)]])
    task = ClassificationTask.from_tables(
        {"train": train}, text_column="text", label_column="label", max_length=32
    )
    assert task.labels == [1, 2, 10]
    assert task.label_ids(train) == [2, 1, 0]


def test_empty_label_names_the_row():
    train = _table([{"text": "a", "label": "x"}, {"text": "b", "label": " "}])
    with pytest.raises(GptaUserError) as err:
        ClassificationTask.from_tables(
            {"train": train}, text_column="text", label_column="label", max_length=32
        )
    assert "line 2" in err.value.message and "empty label" in err.value.message


def test_metrics_hand_checked():
    task = ClassificationTask("text", "label", ["a", "b", "c"], 32)
    metrics = task.metrics([0, 1, 1, 2], [0, 1, 2, 2])
    assert metrics["accuracy"] == pytest.approx(0.75)
    # per class F1: a=1, b=2/3, c=2/3 -> macro 7/9
    assert metrics["macro_f1"] == pytest.approx(7 / 9, abs=1e-4)
    assert metrics["recall_per_class"] == {"a": 1.0, "b": 1.0, "c": 0.5}
