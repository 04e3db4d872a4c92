"""Multiple choice (RACE format): option pairs with the prefix (only the article truncated),
answers as letters or indices, accuracy on hand-checked cases, bad input, and a 2-round run
with the bundled models on real RACE rows -> `gpta predict` / `gpta eval` / load_pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import shared_rows, write_jsonl

from gpta import load_pipeline
from gpta.cli import main
from gpta.config import build_config
from gpta.errors import GptaUserError
from gpta.run import train
from gpta.tasks import TASKS
from gpta.tasks.common import load_tokenizer
from gpta.tasks.multiple_choice import MultipleChoiceTask, option_segment

PREFIX = "Choose the option that the passage supports."
DESCRIPTION = (
    "English reading-comprehension exams for Chinese middle and high school students (RACE): "
    "a passage, a question and four options, exactly one of them correct."
)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("bundled:minilm")


def _task(max_length: int = 128) -> MultipleChoiceTask:
    return MultipleChoiceTask("article", "question", "options", "answer", 4, max_length)


# --- input encoding ------------------------------------------------------------------------------
def test_option_segment_fills_the_blank_or_appends():
    assert option_segment("The Emperor wanted men to   _  .", "fight") == (
        "The Emperor wanted men to fight ."
    )
    assert option_segment("Who opened the bottle?", "Tom") == "Who opened the bottle? Tom"
    assert option_segment("_ is the best title.", "A Day Out") == "A Day Out is the best title."
    assert option_segment("He went _ and came back _.", "out; in") == (
        "He went out; in and came back _."  # the first blank only
    )


@pytest.mark.parametrize("prefix", ["", PREFIX])
def test_only_the_article_is_truncated(tokenizer, prefix):
    rows = shared_rows("race", "train", 6)
    task = _task(max_length=96)
    batch = task.encode(tokenizer, rows, prefix)
    assert batch["input_ids"].shape == (6, 4, 96)
    sep = tokenizer.sep_token_id
    for r, row in enumerate(rows):
        for c, option in enumerate(row["options"]):
            ids = batch["input_ids"][r, c].tolist()
            first_sep = ids.index(sep)
            second = ids[first_sep + 1 : ids.index(sep, first_sep + 1)]
            segment = option_segment(row["question"], option)
            text = f"{prefix} {segment}" if prefix else segment
            assert second == tokenizer(text, add_special_tokens=False)["input_ids"]  # whole
            article = tokenizer(row["article"], add_special_tokens=False)["input_ids"]
            kept = ids[1:first_sep]
            assert kept == article[: len(kept)]  # the article's head, cut at the end
            assert len(kept) < len(article)  # RACE passages are longer than 96 tokens


def test_answers_are_letters_or_zero_based_indices():
    task = _task()
    assert [task.answer_index(v, "x") for v in ("A", "b", " C ", "D", 0, 3, 2.0)] == [
        0,
        1,
        2,
        3,
        0,
        3,
        2,
    ]
    for bad in ("E", 4, -1, "AB", None, True, "1"):
        with pytest.raises(GptaUserError):
            task.answer_index(bad, "x")


# --- metrics -------------------------------------------------------------------------------------
def test_accuracy_and_accuracy_per_answer_hand_checked():
    task = _task()
    references = [0, 0, 1, 1, 2, 3, 3, 3]
    predictions = [0, 1, 1, 1, 0, 3, 2, 3]
    metrics = task.metrics(predictions, references)
    assert metrics["accuracy"] == pytest.approx(5 / 8)
    assert metrics["accuracy_per_answer"] == pytest.approx(
        {"A": 0.5, "B": 1.0, "C": 0.0, "D": 2 / 3}, abs=1e-4
    )
    assert metrics["support_per_answer"] == {"A": 2, "B": 2, "C": 1, "D": 3}


# --- bad input -----------------------------------------------------------------------------------
def _exit_code(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return exc.code or 0
    return 0


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
        "task=multiple_choice",
        *extra,
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(answer="E"), "answer 'E' in column 'answer' is not one of the 4"),
        (lambda r: r.update(answer=4), "answer 4 in column 'answer' is outside the 4 options"),
        (lambda r: r.pop("answer"), "the row has no 'answer' field"),
        (lambda r: r.pop("article"), "the row has no 'article' field"),
        (lambda r: r.update(options=r["options"][:3]), "3 options in column 'options'"),
        (lambda r: r.update(options="A or B"), "must be a list of 4 option texts"),
        (lambda r: r["options"].__setitem__(2, " "), "option C in column 'options' is empty"),
        (lambda r: r.update(question=None), "column 'question' is not a string"),
    ],
)
def test_bad_rows_exit_2_naming_the_row(tmp_path, capsys, change, message):
    rows = [json.loads(json.dumps(r)) for r in shared_rows("race", "train", 10)]
    change(rows[6])
    assert _exit_code(_train_cli(tmp_path, rows)) == 2
    err = capsys.readouterr().err
    assert "train.jsonl, line 7" in err and message in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_question_and_option_too_long_for_max_length(tmp_path, capsys):
    rows = [json.loads(json.dumps(r)) for r in shared_rows("race", "train", 10)]
    rows[1]["options"][3] = "very " * 70 + "long"
    argv = _train_cli(tmp_path, rows, "--max-length", "96", "--max-prefix-tokens", "16")
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err
    assert "line 2: question with option D is" in err and "model.max_length 96" in err


def test_task_is_registered():
    assert TASKS["multiple_choice"] is MultipleChoiceTask
    assert MultipleChoiceTask.stratify_column_for(build_config({"task": "multiple_choice"})) is None


# --- the whole path: 2 rounds with the bundled models ------------------------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("mc-e2e")
    held_out = shared_rows("race", "test", 24)
    test_rows = held_out[12:]
    for row, index in zip(test_rows[:4], range(4), strict=True):
        row["answer"] = "ABCD".index(row["answer"]) if index % 2 else row["answer"].lower()
    data = {
        "train": write_jsonl(base / "train.jsonl", shared_rows("race", "train", 24)),
        "dev": write_jsonl(base / "dev.jsonl", held_out[:12]),
        "test": write_jsonl(base / "test.jsonl", test_rows),  # some answers as index / lower case
    }
    config = build_config(
        {
            "task": "multiple_choice",
            "output_dir": str(base / "run"),
            "data": {**{k: str(v) for k, v in data.items()}, "description": DESCRIPTION},
            # room for a 24-token prefix with RACE's longest question + option (see the note:
            # a prefix too long for a row still stops the run, a known gap)
            "model": {"max_length": 160},
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
    return {"dir": result.run_dir, **data}


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open(encoding="utf-8")]


@pytest.mark.slow
def test_run_scores_rounds_with_accuracy_and_screens(run):
    run_dir = run["dir"]
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["task"] == "multiple_choice" and metrics["primary_metric"] == "accuracy"
    assert [r["round"] for r in metrics["rounds"]] == [0, 1]
    best = metrics["rounds"][metrics["best_round"]]
    assert metrics["dev"]["accuracy"] == pytest.approx(best["dev_score"])
    for split in ("dev", "test"):
        assert 0.0 <= metrics[split]["accuracy"] <= 1.0
        assert sum(metrics[split]["support_per_answer"].values()) == 12
    manifest = json.loads((run_dir / "model" / "gpta.json").read_text(encoding="utf-8"))
    assert manifest["task"] == "multiple_choice" and manifest["num_choices"] == 4
    assert manifest["input_columns"] == ["article", "question", "options"]
    screen = [e for e in _lines(run_dir / "history.jsonl") if e["event"] == "screen"]
    assert len(screen) == 1 and screen[0]["round"] == 1


@pytest.mark.slow
def test_ta_is_told_the_family_and_metric_and_never_sees_a_row(run):
    requests = [r for r in _lines(run["dir"] / "exposure.jsonl") if r["event"] == "request"]
    assert len(requests) == 2
    articles = [row["article"] for row in _lines(run["train"])]
    for request in requests:
        sent = " ".join(m["content"] for m in request["messages"])
        assert "a passage, a question and four options" in sent  # what the data is
        assert not any(article[:80] in sent for article in articles)
    assert "accuracy" in " ".join(m["content"] for m in requests[1]["messages"])  # the metric
    assert "Accuracy by correct answer letter" in " ".join(
        m["content"] for m in requests[1]["messages"]
    )


@pytest.mark.slow
def test_predict_returns_the_letter_and_matches_the_run(run, tmp_path, capsys):
    run_dir = run["dir"]
    expected = [p["prediction"] for p in _lines(run_dir / "predictions" / "test.jsonl")]
    assert len(expected) == 12 and set(expected) <= set("ABCD")

    out = tmp_path / "predicted.jsonl"
    argv = ["predict", "--model", str(run_dir), "--input", str(run["test"]), "--output", str(out)]
    assert _exit_code(argv) == 0
    predicted = _lines(out)
    assert [p["answer"] for p in predicted] == expected
    for p in predicted:
        assert set(p["probabilities"]) == set("ABCD")
        assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert p["score"] == pytest.approx(max(p["probabilities"].values()))

    rows = [{k: r[k] for k in ("article", "question", "options")} for r in _lines(run["test"])]
    assert [p["answer"] for p in load_pipeline(run_dir)(rows)] == expected

    capsys.readouterr()
    assert _exit_code(["eval", "--model", str(run_dir), "--data", str(run["test"])]) == 0
    scored = json.loads(capsys.readouterr().out)
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert scored["accuracy"] == pytest.approx(metrics["test"]["accuracy"])


@pytest.mark.slow
def test_eval_rejects_an_answer_outside_the_options(run, tmp_path, capsys):
    rows = _lines(run["test"])[:3]
    rows[1]["answer"] = "F"
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    assert _exit_code(["eval", "--model", str(run["dir"]), "--data", str(path)]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl, line 2: answer 'F'" in err and "Traceback" not in err
