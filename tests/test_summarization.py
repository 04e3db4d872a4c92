"""Summarization: ROUGE on hand-checked cases, decoder-only inputs (loss on the summary only),
the prefix key/value cache (identical outputs), bad input, and 2-round runs with a decoder-only
model (bundled SmolLM2, real local TA, `gpta predict`) and a tiny seq2seq T5 built here."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import gpta_cli, shared_rows, write_jsonl

from gpta import load_pipeline
from gpta.cli import main
from gpta.tasks.summarization import (
    DECODER,
    IGNORE,
    SummarizationTask,
    rouge_scores,
    split_sentences,
)

DESCRIPTION = (
    "BBC news articles (XSum). Each article comes with a one-sentence summary written by "
    "its journalist, saying what the article is about."
)


# --- ROUGE, hand-checked -----------------------------------------------------------------------
def test_rouge_hand_checked():
    same = rouge_scores(["the cat sat on the mat"], ["the cat sat on the mat"])
    assert same == pytest.approx(dict.fromkeys(["rouge1", "rouge2", "rougeL", "rougeLsum"], 1.0))
    # prediction 6 tokens, reference 6 tokens; 5 shared unigrams, 3 shared bigrams
    # (the cat, on the, the mat), longest common subsequence "the cat on the mat" = 5
    one = rouge_scores(["the cat sat on the mat"], ["the cat was on the mat"])
    assert one["rouge1"] == pytest.approx(5 / 6)
    assert one["rouge2"] == pytest.approx(3 / 5)
    assert one["rougeL"] == pytest.approx(5 / 6)
    # the Porter stemmer: running -> run, dogs -> dog
    assert rouge_scores(["Running dogs!"], ["run dog"])["rouge1"] == pytest.approx(1.0)
    # an empty summary scores 0; the mean is over rows
    two = rouge_scores(["", "the cat sat on the mat"], ["a summary", "the cat sat on the mat"])
    assert two["rouge1"] == pytest.approx(0.5)
    # P = 1/2, R = 1/4 -> F = 2PR/(P+R) = 1/3
    assert rouge_scores(["cat dog"], ["cat bird fish cow"])["rouge1"] == pytest.approx(1 / 3)


def test_rouge_lsum_uses_sentences():
    # swapped sentences: one LCS over the whole text finds 3 of 6 tokens, the summary-level
    # LCS (one per reference sentence, union) finds all 6
    scores = rouge_scores(["A b c. D e f."], ["D e f.\nA b c."])
    assert scores["rougeL"] == pytest.approx(0.5)
    assert scores["rougeLsum"] == pytest.approx(1.0)


def test_split_sentences():
    assert split_sentences("One here. Two there! Three? Four") == (
        "One here.\nTwo there!\nThree?\nFour"
    )
    assert split_sentences('He said "stop." Then left.') == 'He said "stop."\nThen left.'
    assert split_sentences("Costs 3.5 million. Done.") == "Costs 3.5 million.\nDone."
    # a text with line breaks (CNN/DailyMail highlights) keeps them as they are
    assert split_sentences("First point .\nSecond point\n\n") == "First point .\nSecond point"


# --- decoder-only inputs -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def smollm2():
    task = SummarizationTask("document", "summary", DECODER, 160, 32, 8, 1)
    model, tokenizer = task.load_model("bundled:smollm2")
    return task, model, tokenizer


def test_decoder_collate_loss_on_summary_only(smollm2):
    task, _, tokenizer = smollm2
    rows = [
        {"document": "word " * 1000, "summary": "A long document."},
        {"document": "Short news item.", "summary": "Short summary."},
    ]
    prefix = "Summarize the article in one sentence."
    batch = task.collate(rows, tokenizer, prefix)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    head = task.prefix_ids(tokenizer, prefix)
    assert tokenizer.decode(head) == prefix + "\n\n"
    for i, row in enumerate(rows):
        ids = batch["input_ids"][i][batch["attention_mask"][i] == 1].tolist()
        labels = batch["labels"][i].tolist()
        assert ids[: len(head)] == head  # the same token prefix on every row
        assert len(ids) <= task.max_length  # the long document was cut to fit
        scored = [t for t in labels if t != IGNORE]
        assert tokenizer.decode(scored) == " " + row["summary"] + tokenizer.eos_token
        first = next(j for j, t in enumerate(labels) if t != IGNORE)
        assert tokenizer.decode(ids[:first]).endswith("\nSummary:")  # no loss on the prompt
        assert all(t == IGNORE for t in labels[len(ids) :])  # nor on padding
    # the prompt of the short row is exactly prefix, document, cue
    prompt = tokenizer.decode(batch["input_ids"][1][:first])
    assert prompt == prefix + "\n\nShort news item.\nSummary:"
    # with the empty prefix: document and cue only
    plain = task.collate(rows[1:], tokenizer, "")["input_ids"][0].tolist()
    assert tokenizer.decode(plain).startswith("Short news item.\nSummary: Short summary.")


def test_prefix_cache_gives_identical_outputs(smollm2):
    task, model, tokenizer = smollm2
    documents = [r["document"] for r in shared_rows("xsum", "test", limit=2)]
    documents.append("The council approved a new bridge over the river on Monday.")
    prefix = "Summarize this BBC article in one short sentence."
    for beams in (1, 2):
        task.num_beams = beams
        # batches of 2 and 1: padding between prefix and document in the first
        cached = task.generate_ids(model, tokenizer, documents, prefix, batch_size=2)
        recomputed = task.generate_ids(
            model, tokenizer, documents, prefix, batch_size=2, use_prefix_cache=False
        )
        one_by_one = [
            task.generate_ids(model, tokenizer, [d], prefix, batch_size=1, use_prefix_cache=False)[
                0
            ]
            for d in documents
        ]
        assert cached == recomputed == one_by_one
        assert all(cached)  # something was generated for every input
    task.num_beams = 1


def test_screen_is_minus_summary_loss(smollm2):
    task, model, tokenizer = smollm2
    rows = shared_rows("xsum", "train", limit=3)
    screening = task.screen(model, tokenizer, rows, "Summarize:", batch_size=2)
    assert screening.loss > 0 and screening.score == -screening.loss
    # the batch size does not change the token-weighted mean
    again = task.screen(model, tokenizer, rows, "Summarize:", batch_size=3)
    assert again.loss == pytest.approx(screening.loss, rel=1e-4)


# --- bad input ------------------------------------------------------------------------------------
def _fail(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def _train_args(tmp_path: Path, train: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--set",
        "task=summarization",
        "--train",
        str(train),
        "--description",
        DESCRIPTION,
        "--output-dir",
        str(tmp_path / "run"),
        *extra,
    ]


@pytest.mark.parametrize(
    ("bad_row", "expected"),
    [
        ({"document": "An article."}, ["line 3", "'summary'"]),
        ({"document": "An article.", "summary": "  "}, ["line 3", "'summary'", "empty"]),
        ({"document": "", "summary": "A summary."}, ["line 3", "'document'", "empty"]),
        ({"document": "An article.", "summary": ["a", "b"]}, ["line 3", "not a string"]),
    ],
)
def test_bad_rows_name_the_row(capsys, tmp_path, bad_row, expected):
    rows = [{"document": f"Article {i}.", "summary": f"Summary {i}."} for i in range(30)]
    rows[2] = bad_row
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    err = _fail(capsys, *_train_args(tmp_path, train))
    assert "train.jsonl" in err
    for needle in expected:
        assert needle in err
    assert not (tmp_path / "run").exists()  # nothing written


def test_cnndm_columns_need_naming(capsys, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", shared_rows("cnndm", "train", limit=20))
    err = _fail(capsys, *_train_args(tmp_path, train))
    assert "'document'" in err and "'article'" in err and "data.text_column" in err


def test_too_long_summary_budget(capsys, tmp_path):
    rows = [{"document": f"Article {i}.", "summary": f"Summary {i}."} for i in range(30)]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    err = _fail(
        capsys,
        *_train_args(tmp_path, train, "--max-length", "128", "--set", "model.max_target_length=96"),
    )
    assert "model.max_target_length" in err


def test_evaluate_names_row_with_empty_summary(smollm2):
    from gpta.errors import GptaUserError

    task, model, tokenizer = smollm2
    rows = [{"document": "A.", "summary": "B."}, {"document": "C.", "summary": ""}]
    with pytest.raises(GptaUserError, match=r"row 2: an empty value in column 'summary'"):
        task.evaluate(model, tokenizer, rows, "", batch_size=2)


# --- a 2-round run with the bundled SmolLM2 (downstream and TA) ---------------------------------
def _gpta(*args: str) -> subprocess.CompletedProcess:
    return gpta_cli(*args, timeout=1800)


@pytest.fixture(scope="module")
def decoder_run(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("summ")
    train_rows = shared_rows("xsum", "train", limit=8)
    held_out = shared_rows("xsum", "test", limit=8)
    train = write_jsonl(base / "train.jsonl", train_rows)
    dev = write_jsonl(base / "dev.jsonl", held_out[:4])
    test = write_jsonl(base / "test.jsonl", held_out[4:])
    config = {
        "task": "summarization",
        "output_dir": str(base / "run"),
        "data": {"train": str(train), "dev": str(dev), "test": str(test)},
        "model": {"max_length": 256, "max_target_length": 32, "max_new_tokens": 16},
        "training": {
            "epochs_per_round": 1,
            "rounds": 2,
            "batch_size": 2,
            "eval_batch_size": 4,
            "learning_rate": 5e-5,
        },
        "assistant": {
            "warmup_rounds": 0,
            "candidates": 2,
            "screen_size": 4,
            "max_new_tokens": 32,
            "max_prefix_tokens": 24,
        },
    }
    (base / "description.txt").write_text(DESCRIPTION, encoding="utf-8")
    config["data"]["description_file"] = str(base / "description.txt")
    config_path = base / "run.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = _gpta("train", "--config", str(config_path))
    assert result.returncode == 0, result.stderr[-3000:]
    return {"dir": base / "run", "test": test, "stdout": result.stdout}


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "history.jsonl").open(encoding="utf-8")]


@pytest.mark.slow
def test_decoder_run_rounds_and_screening(decoder_run):
    run_dir = decoder_run["dir"]
    assert "dev rougeL" in decoder_run["stdout"]
    events = _events(run_dir)
    rounds = [e for e in events if e["event"] == "round"]
    assert [r["round"] for r in rounds] == [0, 1]
    for r in rounds:
        assert 0.0 <= r["dev_score"] <= 1.0 and r["dev_loss"] > 0 and r["train_loss"] > 0
        assert r["dev_score"] == r["dev_metrics"]["rougeL"]
        assert {"rouge1", "rouge2", "rougeL", "rougeLsum"} <= set(r["dev_metrics"])
    screen = [e for e in events if e["event"] == "screen"]
    assert len(screen) == 1
    for s in [screen[0]["current"], *screen[0]["candidates"]]:
        assert s["score"] == pytest.approx(-s["loss"]) and s["loss"] > 0
    # the TA was told the family and the metric
    ledger = [json.loads(line) for line in (run_dir / "exposure.jsonl").open(encoding="utf-8")]
    sent = " ".join(m["content"] for r in ledger if r["event"] == "request" for m in r["messages"])
    assert "abstractive summarization" in sent and "ROUGE-L" in sent
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))

    def serving(r: dict) -> tuple[float, float]:  # the round's prefix, or none if better
        own = (r["dev_score"], -r["dev_loss"])
        if r.get("empty_dev_score") is None:
            return own
        return max(own, (r["empty_dev_score"], -r["empty_dev_loss"]))

    best = max(rounds, key=serving)
    assert metrics["best_round"] == best["round"]
    assert metrics["dev"]["rougeL"] == pytest.approx(serving(best)[0])  # reload is exact
    manifest = json.loads((run_dir / "model" / "gpta.json").read_text(encoding="utf-8"))
    assert manifest["task"] == "summarization" and manifest["architecture"] == DECODER


@pytest.mark.slow
def test_decoder_predict_equals_training_time_generation(decoder_run):
    run_dir = decoder_run["dir"]
    expected = [
        json.loads(line)["prediction"]
        for line in (run_dir / "predictions" / "test.jsonl").open(encoding="utf-8")
    ]
    assert all(isinstance(p, str) for p in expected)
    result = _gpta("predict", "--model", str(run_dir), "--input", str(decoder_run["test"]))
    assert result.returncode == 0, result.stderr[-3000:]
    assert [json.loads(line)["summary"] for line in result.stdout.splitlines()] == expected
    documents = [json.loads(line)["document"] for line in decoder_run["test"].open()]
    pipeline = load_pipeline(run_dir)
    assert [p["summary"] for p in pipeline(documents[:2])] == expected[:2]


@pytest.mark.slow
def test_decoder_predict_bad_row(decoder_run, capsys, tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"document": "A text."}, {"text": "no doc"}])
    err = _fail(capsys, "predict", "--model", str(decoder_run["dir"]), "--input", str(bad))
    assert "line 2" in err and "'document'" in err


# --- a 2-round run with a tiny seq2seq model ------------------------------------------------------
@pytest.mark.slow
def test_seq2seq_two_rounds(tmp_path):
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    from gpta import load_config, train
    from gpta.bundled import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("bundled:smollm2"))
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=2,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    T5ForConditionalGeneration(config).save_pretrained(tmp_path / "t5")
    tokenizer.save_pretrained(tmp_path / "t5")
    rows = shared_rows("cnndm", "train", limit=14)
    train_file = write_jsonl(tmp_path / "train.jsonl", rows[:8])
    dev_file = write_jsonl(tmp_path / "dev.jsonl", rows[8:12])
    test_file = write_jsonl(tmp_path / "test.jsonl", rows[12:])
    result = train(
        load_config(
            overrides={
                "task": "summarization",
                "output_dir": str(tmp_path / "run"),
                "data.train": str(train_file),
                "data.dev": str(dev_file),
                "data.test": str(test_file),
                "data.text_column": "article",
                "data.label_column": "highlights",
                "data.description": "CNN and Daily Mail news articles with bullet highlights.",
                "model.name_or_path": str(tmp_path / "t5"),
                "model.max_length": 128,
                "model.max_target_length": 32,
                "model.max_new_tokens": 8,
                "model.num_beams": 2,
                "training.rounds": 2,
                "training.batch_size": 4,
                "training.learning_rate": 1e-3,
                "assistant.candidates": 2,
                "assistant.screen_size": 4,
                "assistant.max_new_tokens": 32,
                "assistant.max_prefix_tokens": 24,
            }
        ),
        quiet=True,
    )
    assert [r.round for r in result.rounds] == [0, 1]
    manifest = json.loads((result.run_dir / "model" / "gpta.json").read_text(encoding="utf-8"))
    assert manifest["architecture"] == "seq2seq" and manifest["text_column"] == "article"
    assert set(result.test_metrics) >= {"rouge1", "rouge2", "rougeL", "rougeLsum", "loss"}
    # the round's loss went down with a high learning rate on a random model
    assert result.rounds[1].dev_loss < result.rounds[0].dev_loss
    pipeline = load_pipeline(result.run_dir)
    out = pipeline([r["article"] for r in rows[12:]])
    saved = [
        json.loads(line)["prediction"]
        for line in (result.run_dir / "predictions" / "test.jsonl").open(encoding="utf-8")
    ]
    assert [p["summary"] for p in out] == saved
