"""Extractive QA (SQuAD format): windows and offsets with and without a prefix, span decoding,
SQuAD metrics on hand-checked cases, bad input, and a 2-round run with the bundled models
on real SQuAD rows -> `gpta predict` / `gpta eval` / load_pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import shared_rows, write_jsonl

from gpta import load_pipeline
from gpta.cli import main
from gpta.config import build_config
from gpta.run import train
from gpta.tasks import TASKS
from gpta.tasks.common import load_tokenizer
from gpta.tasks.qa import QATask, decode, question_word, span_label

PREFIX = "Find the exact words of the passage that answer the question."
DESCRIPTION = (
    "Paragraphs from English Wikipedia with questions written by crowd workers; every answer "
    "is a span of its paragraph (SQuAD v1.1)."
)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("bundled:minilm")


@pytest.fixture(scope="module")
def squad_rows() -> list[dict]:
    return shared_rows("squad", "train", 40)


def _task(max_length: int = 192, doc_stride: int = 64) -> QATask:
    return QATask("context", "question", "answers", max_length, doc_stride)


# --- windows and offsets --------------------------------------------------------------------
def _labelled_answer(feats, rows, window: int) -> str | None:
    start, end = feats.start_positions[window], feats.end_positions[window]
    offsets = feats.offsets[window]
    if offsets[start] is None:  # labelled CLS: the answer is not (whole) in this window
        assert start == end == 0
        return None
    context = rows[feats.row[window]]["context"]
    return context[offsets[start][0] : offsets[end][1]]


@pytest.mark.parametrize("prefix", ["", PREFIX])
def test_span_labels_recover_the_answer_with_and_without_prefix(tokenizer, squad_rows, prefix):
    task = _task(max_length=96, doc_stride=32)  # small windows: long contexts overflow
    feats = task.features(tokenizer, squad_rows, prefix, labelled=True)
    assert len(feats) > len(squad_rows)  # some contexts needed several windows
    found: dict[int, str] = {}
    for window in range(len(feats)):
        text = _labelled_answer(feats, squad_rows, window)
        if text is not None:
            found[feats.row[window]] = text
    assert set(found) == set(range(len(squad_rows)))  # every answer sits whole in some window
    mismatched = [i for i, text in found.items() if text != squad_rows[i]["answers"]["text"][0]]
    # only answers that start or end inside a word piece can differ (none in these rows)
    assert mismatched == []


def test_prefix_and_question_stay_whole_in_every_window(tokenizer, squad_rows):
    task = _task(max_length=96, doc_stride=32)
    rows = squad_rows[:10]
    feats = task.features(tokenizer, rows, PREFIX, labelled=True)
    for window, index in enumerate(feats.row):
        first = f"{PREFIX} {rows[index]['question'].strip()}"
        expected = tokenizer(first, add_special_tokens=False)["input_ids"]
        ids = feats.inputs["input_ids"][window]
        assert ids[1 : 1 + len(expected)] == expected  # right after [CLS], never truncated
        assert len(ids) == 96


def test_prefix_moves_tokens_not_character_offsets(tokenizer, squad_rows):
    task = _task()
    rows = squad_rows[:12]
    plain = task.features(tokenizer, rows, "", labelled=True)
    prefixed = task.features(tokenizer, rows, PREFIX, labelled=True)
    shift = len(tokenizer(PREFIX, add_special_tokens=False)["input_ids"])

    def spans(feats):
        found: dict[int, list[tuple[int, int, int]]] = {}
        for w in range(len(feats)):
            start, end = feats.start_positions[w], feats.end_positions[w]
            if feats.offsets[w][start] is not None:
                chars = (feats.offsets[w][start][0], feats.offsets[w][end][1])
                found.setdefault(feats.row[w], []).append((*chars, start))
        return found

    a, b = spans(plain), spans(prefixed)
    assert a.keys() == b.keys() == set(range(len(rows)))
    single = 0
    for i in a:
        assert {s[:2] for s in a[i]} == {s[:2] for s in b[i]}  # the same context characters
        if plain.row.count(i) == prefixed.row.count(i) == 1:  # one window each
            single += 1
            assert b[i][0][2] == a[i][0][2] + shift  # the prefix only moves token positions
    assert single >= 6


def test_span_label_outside_the_window_is_cls():
    offsets = [None, (0, 4), (5, 9), (10, 14), None]
    assert span_label(offsets, 5, 9) == (2, 2)
    assert span_label(offsets, 0, 14) == (1, 3)
    assert span_label(offsets, 10, 20) == (0, 0)  # runs past the window
    assert span_label(offsets, 15, 18, cls_index=0) == (0, 0)


@pytest.mark.parametrize("prefix", ["", PREFIX])
def test_decoding_returns_the_context_slice_of_the_best_span(tokenizer, squad_rows, prefix):
    """Logits peaked on the labelled tokens decode to exactly the answer, across windows."""
    task = _task(max_length=96, doc_stride=32)
    rows = squad_rows[:16]
    feats = task.features(tokenizer, rows, prefix, labelled=True)
    start = torch.zeros(len(feats), 96)
    end = torch.zeros(len(feats), 96)
    for w in range(len(feats)):
        if feats.offsets[w][feats.start_positions[w]] is not None:
            start[w, feats.start_positions[w]] = 12.0
            end[w, feats.end_positions[w]] = 12.0
    answers = decode(rows, "context", feats, start, end)
    for row, answer in zip(rows, answers, strict=True):
        assert answer["answer"] == row["context"][answer["start"] : answer["end"]]
        assert answer["answer"] == row["answers"]["text"][0]
        assert 0.5 < answer["score"] <= 1.0


def test_decoding_respects_order_and_max_answer_length(tokenizer):
    task = _task(max_length=64)
    row = {"context": "alpha beta gamma delta epsilon zeta eta theta", "question": "which?"}
    feats = task.features(tokenizer, [row], "", labelled=False)
    context_tokens = [i for i, o in enumerate(feats.offsets[0]) if o is not None]
    start = torch.zeros(1, 64)
    end = torch.zeros(1, 64)
    start[0, context_tokens[5]] = 10.0  # the most likely start comes after...
    end[0, context_tokens[1]] = 10.0  # ...the most likely end: not a valid span
    start[0, context_tokens[0]] = 9.0
    answer = decode([row], "context", feats, start, end)[0]
    assert answer["answer"] == "alpha beta"
    limited = decode([row], "context", feats, start, end, max_answer_tokens=1)[0]
    assert len(limited["answer"].split()) == 1


# --- metrics -------------------------------------------------------------------------------------
def test_squad_metrics_hand_checked():
    task = _task()
    rows = [
        {
            "question": "What is in Paris?",
            "answers": {"text": ["Eiffel Tower"], "answer_start": [0]},
        },
        {"question": "Where is it?", "answers": {"text": ["Eiffel Tower"], "answer_start": [0]}},
        {
            "question": "Who built it?",
            "answers": {"text": ["Gustave Eiffel", "the engineer Eiffel"], "answer_start": [0, 0]},
        },
        {"question": "When was it built?", "answers": {"text": ["1889"], "answer_start": [0]}},
    ]
    predictions = [
        "the Eiffel Tower!",  # normalisation drops articles and punctuation: exact
        "Tower in Paris",  # 1 common token: P 1/3, R 1/2 -> F1 0.4
        "Eiffel",  # best reference: "the engineer Eiffel" -> {engineer, eiffel}: F1 2/3
        "1890",  # wrong
    ]
    metrics = task.metrics(predictions, rows)
    assert metrics["exact_match"] == pytest.approx(0.25)
    assert metrics["f1"] == pytest.approx((1 + 0.4 + 2 / 3 + 0) / 4, abs=1e-5)
    assert metrics["f1_by_question_word"] == pytest.approx(
        {"what": 1.0, "who": 0.6667, "when": 0.0, "where": 0.4}, abs=1e-4
    )
    assert metrics["questions"] == {"what": 1, "who": 1, "when": 1, "where": 1}


def test_question_words():
    assert question_word("In what year did it open?") == "what"
    assert question_word("To whom was it given?") == "who"
    assert question_word("The tower is made of?") == "other"


# --- bad input -----------------------------------------------------------------------------------
def _train_cli(tmp_path: Path, rows: list[dict], *extra: str) -> list[str]:
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    return [
        "train",
        "--train",
        str(data),
        "--description",
        DESCRIPTION,
        "--output-dir",
        str(tmp_path / "run"),
        "--set",
        "task=qa",
        *extra,
    ]


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


def _good_rows(n: int = 8) -> list[dict]:
    return [dict(row) for row in shared_rows("squad", "train", n)]


def test_bad_answer_start_names_the_row(tmp_path, capsys):
    rows = _good_rows()
    answer = rows[3]["answers"]
    rows[3]["answers"] = {"text": answer["text"], "answer_start": [answer["answer_start"][0] + 2]}
    assert _exit_code(_train_cli(tmp_path, rows)) == 2
    err = capsys.readouterr().err
    assert "train.jsonl, line 4: answer_start" in err and "does not match the context" in err
    assert f"occurs at offset {answer['answer_start'][0]}" in err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("answers"), "the row has no 'answers' field"),
        (lambda r: r.pop("question"), "the row has no 'question' field"),
        (lambda r: r.update(context="   "), "column 'context' has empty text"),
        (lambda r: r.update(answers="Denver"), "must be a mapping"),
        (lambda r: r.update(answers={"text": ["a"], "answer_start": []}), "1 answer texts"),
        (lambda r: r.update(answers={"text": ["a"], "answer_start": ["x"]}), "not an integer"),
    ],
)
def test_bad_rows_exit_2_naming_the_row(tmp_path, capsys, change, message):
    rows = _good_rows()
    change(rows[5])
    assert _exit_code(_train_cli(tmp_path, rows)) == 2
    err = capsys.readouterr().err
    assert "line 6" in err and message in err, err


def test_question_too_long_for_max_length(tmp_path, capsys):
    rows = _good_rows()
    rows[2]["question"] = "why " * 80 + "?"
    argv = _train_cli(tmp_path, rows, "--max-length", "96", "--max-prefix-tokens", "16")
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err
    assert "line 3: the question is" in err and "model.max_length 96" in err


def test_a_static_prefix_longer_than_the_cap_is_held_to_the_rows_before_training(tmp_path, capsys):
    """A static prefix is used as written (not cut to assistant.max_prefix_tokens): a question
    that fits beside a 16-token prefix but not beside it stops the run before anything is
    written, naming the row and the option."""
    rows = _good_rows()
    rows[2]["question"] = "why " * 40 + "?"
    limits = ("--max-length", "96", "--max-prefix-tokens", "16")
    static = "Read the passage carefully, then copy the shortest span that answers it. " * 4
    argv = _train_cli(tmp_path, rows, *limits, "--set", "assistant.initial=static",
                      "--set", f"assistant.static_prefix={static}")  # fmt: skip
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err
    assert "line 3: the question is" in err and "assistant.static_prefix" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_task_is_registered():
    assert TASKS["qa"] is QATask
    config = build_config({"task": "qa"})
    assert QATask.stratify_column_for(config) is None


# --- the whole path: 2 rounds with the bundled models ------------------------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("qa-e2e")
    held_out = shared_rows("squad", "test", 24)  # dev-v1.1 rows: up to 3 reference answers
    data = {
        "train": write_jsonl(base / "train.jsonl", shared_rows("squad", "train", 24)),
        "dev": write_jsonl(base / "dev.jsonl", held_out[:12]),
        "test": write_jsonl(base / "test.jsonl", held_out[12:]),
    }
    config = build_config(
        {
            "task": "qa",
            "output_dir": str(base / "run"),
            "data": {**{k: str(v) for k, v in data.items()}, "description": DESCRIPTION},
            "model": {"max_length": 192, "doc_stride": 64},
            "training": {
                "epochs_per_round": 1,
                "rounds": 2,
                "batch_size": 8,
                "learning_rate": 1e-4,
            },
            "assistant": {
                "warmup_rounds": 0,
                "candidates": 2,
                "screen_size": 8,
                "max_new_tokens": 40,
                "max_prefix_tokens": 24,
            },
        }
    )
    result = train(config, quiet=True)
    return {"dir": result.run_dir, "result": result, **data}


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open(encoding="utf-8")]


@pytest.mark.slow
def test_run_scores_rounds_with_f1_and_screens(run):
    run_dir = run["dir"]
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["task"] == "qa" and metrics["primary_metric"] == "f1"
    assert [r["round"] for r in metrics["rounds"]] == [0, 1]
    for split in ("dev", "test"):
        assert 0.0 <= metrics[split]["exact_match"] <= metrics[split]["f1"] <= 1.0
    best = metrics["rounds"][metrics["best_round"]]
    served = best["empty_dev_score"] if best["serving_prefix"] == "" and best["prefix"] else None
    expected = best["dev_score"] if served is None else served  # its prefix, or none if better
    assert metrics["dev"]["f1"] == pytest.approx(expected)  # reloaded model, same score
    assert all(r["dev_loss"] > 0 and r["train_loss"] > 0 for r in metrics["rounds"])
    events = _lines(run_dir / "history.jsonl")
    proposals = [e for e in events if e["event"] == "proposal"]
    assert len([p for p in proposals if p["round"] == 0]) == 2
    screen = [e for e in events if e["event"] == "screen"]
    assert len(screen) == 1 and screen[0]["round"] == 1
    assert 0.0 <= screen[0]["current"]["score"] <= 1.0  # F1 on the 8-row dev subset


@pytest.mark.slow
def test_ta_is_told_the_family_and_metric_and_never_sees_a_row(run):
    requests = [r for r in _lines(run["dir"] / "exposure.jsonl") if r["event"] == "request"]
    assert len(requests) == 2
    contexts = [row["context"] for row in _lines(run["train"])]
    for request in requests:
        sent = " ".join(m["content"] for m in request["messages"])
        assert "every answer is a span of its paragraph" in sent  # what the data is
        assert not any(context[:80] in sent for context in contexts)
    assert "F1" in " ".join(m["content"] for m in requests[1]["messages"])  # the metric
    assert "F1 by question word" in " ".join(
        m["content"] for m in requests[1]["messages"]
    )  # the dialogue gradient's aggregate numbers


@pytest.mark.slow
def test_predictions_are_spans_and_predict_matches_them(run, tmp_path, capsys):
    run_dir = run["dir"]
    expected = [p["prediction"] for p in _lines(run_dir / "predictions" / "test.jsonl")]
    rows = _lines(run["test"])
    assert len(expected) == len(rows) == 12
    for prediction, row in zip(expected, rows, strict=True):
        assert isinstance(prediction, str) and prediction in row["context"]

    out = tmp_path / "predicted.jsonl"
    assert (
        _exit_code_or_zero(
            ["predict", "--model", str(run_dir), "--input", str(run["test"]), "--output", str(out)]
        )
        == 0
    )
    predicted = _lines(out)
    assert [p["answer"] for p in predicted] == expected
    assert [p["row"] for p in predicted] == [f"line {i}" for i in range(1, 13)]
    for p, row in zip(predicted, rows, strict=True):
        assert 0.0 <= p["score"] <= 1.0
        assert row["context"][p["start"] : p["end"]] == p["answer"]

    pipeline = load_pipeline(run_dir)
    unlabelled = [{"context": r["context"], "question": r["question"]} for r in rows]
    assert [p["answer"] for p in pipeline(unlabelled)] == expected

    capsys.readouterr()
    assert _exit_code_or_zero(["eval", "--model", str(run_dir), "--data", str(run["test"])]) == 0
    scored = json.loads(capsys.readouterr().out)
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert scored["f1"] == pytest.approx(metrics["test"]["f1"])


@pytest.mark.slow
def test_predict_and_eval_reject_bad_rows(run, tmp_path, capsys):
    rows = _lines(run["test"])[:3]
    broken = [dict(r) for r in rows]
    del broken[1]["question"]
    path = write_jsonl(tmp_path / "no_question.jsonl", broken)
    assert _exit_code(["predict", "--model", str(run["dir"]), "--input", str(path)]) == 2
    assert "line 2" in capsys.readouterr().err

    shifted = [dict(r) for r in rows]
    answers = shifted[2]["answers"]
    shifted[2]["answers"] = {**answers, "answer_start": [s + 1 for s in answers["answer_start"]]}
    path = write_jsonl(tmp_path / "shifted.jsonl", shifted)
    assert _exit_code(["eval", "--model", str(run["dir"]), "--data", str(path)]) == 2
    err = capsys.readouterr().err
    assert "shifted.jsonl, line 3: answer_start" in err and "does not match" in err


def _exit_code_or_zero(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return exc.code or 0
    return 0
