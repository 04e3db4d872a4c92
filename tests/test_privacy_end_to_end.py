"""Privacy on real runs (bundled MiniLM + the real local SmolLM2 TA, tiny sizes):

* exposure none: the request is sent, no training row is in it; audit (and its recheck) says so;
* exposure exemplars (k=3, sampled): every request carries exactly the 3 redacted rows, the
  raw e-mail addresses never leave, exemplars are printed and listed; audit says 3 rows;
* a description that pastes a training row: a warning at start, the request is blocked and
  recorded, nothing is sent, and the run still finishes;
* no file of any run holds the API key from the environment.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import TWEETS_DESCRIPTION as DESCRIPTION
from conftest import balanced, gpta_cli, shared_rows, write_jsonl

from gpta import load_config, train
from gpta.privacy.audit import audit_run

pytestmark = pytest.mark.slow  # real runs with the bundled models

API_KEY = "sk-e2e-privacy-0123456789abcdefghij"


def _config(base: Path, name: str, train_path: Path, rounds: int = 1, **privacy) -> dict:
    held_out = balanced(shared_rows("twitter", "test"), 4, min_words=10)
    return {
        "output_dir": str(base / name),
        "data": {
            "train": str(train_path),
            "dev": str(write_jsonl(base / "dev.jsonl", held_out[:6])),
            "test": str(write_jsonl(base / "test.jsonl", held_out[6:])),
            "description": DESCRIPTION,
        },
        "model": {"max_length": 48},
        "training": {
            "epochs_per_round": 1,
            "rounds": rounds,
            "batch_size": 8,
            "learning_rate": 1e-4,
        },
        "assistant": {
            "warmup_rounds": 0,
            "candidates": 1,
            "screen_size": 6,
            "max_new_tokens": 12,
            "max_prefix_tokens": 16,
        },
        "privacy": privacy,
    }


def _records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "exposure.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _gpta(*args: str) -> subprocess.CompletedProcess:
    return gpta_cli(*args, env={"OPENAI_API_KEY": API_KEY})


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("privacy")
    rows = balanced(shared_rows("twitter", "train"), 6, min_words=10)
    # every training row carries personal details that must not leave the machine
    rows = [
        {**row, "text": f"{row['text']} Reach me at fan{i}@example.com or +44 20 7946 {1000 + i}"}
        for i, row in enumerate(rows)
    ]
    train_path = write_jsonl(base / "train.jsonl", rows)
    out = {"base": base, "rows": rows}

    # in one process (imports paid once); 2 rounds with exemplars (round 0 and feedback), 1 else
    os.environ["OPENAI_API_KEY"] = API_KEY
    try:
        config = _config(base, "exemplars", train_path, 2, exposure="exemplars", exemplars=3)
        shown = io.StringIO()
        with contextlib.redirect_stderr(shown):  # the exemplars are printed at run start
            train(load_config(overrides=_flat(config)))
        out["exemplars"] = (base / "exemplars", shown.getvalue())
        train(load_config(overrides=_flat(_config(base, "none", train_path))), quiet=True)
        pasted = _config(base, "pasted", train_path)
        pasted["data"]["description"] = f"{DESCRIPTION} For example: {rows[4]['text']}"
        shown = io.StringIO()
        with contextlib.redirect_stderr(shown):  # -q: the warnings are printed all the same
            train(load_config(overrides=_flat(pasted)), quiet=True)
        out["pasted_output"] = shown.getvalue()
    finally:
        del os.environ["OPENAI_API_KEY"]
    return out


def _flat(config: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        elif not isinstance(value, dict):
            flat[f"{prefix}{key}"] = value
    return flat


def test_none_run_sends_requests_without_any_training_row(runs):
    run_dir = runs["base"] / "none"
    records = _records(run_dir)
    requests = [r for r in records if r["event"] == "request"]
    assert len(requests) == 1 and all(r["row_ids"] == [] for r in requests)
    assert records[0]["event"] == "policy" and records[0]["exposure"] == "none"
    sent = json.dumps(requests)
    for row in runs["rows"]:
        assert row["text"][:40] not in sent
    assert not (run_dir / "exemplars.jsonl").exists()
    report = audit_run(run_dir)
    assert report.ok and report.requests == 1 and report.rows_exposed == {}
    assert report.blocked == 0 and report.chars_sent > len(DESCRIPTION)
    result = _gpta("audit", str(run_dir), "--strict", "--recheck")
    assert result.returncode == 0, result.stderr
    assert "no row copied beyond the allowed exemplars" in result.stdout
    assert "rows exposed:      0" in result.stdout
    assert "no training row left the machine" in result.stdout


def test_exemplar_run_exposes_exactly_the_k_redacted_rows(runs):
    run_dir, printed = runs["exemplars"]
    listed = [json.loads(x) for x in (run_dir / "exemplars.jsonl").read_text().splitlines()]
    ids = [e["row_id"] for e in listed]
    assert len(ids) == 3 and len(set(ids)) == 3
    assert all(i.startswith("train.jsonl:line ") for i in ids)
    assert len({e["label"] for e in listed}) == 3  # spread over the labels
    for e in listed:
        assert "[EMAIL]" in e["text"] and "[PHONE]" in e["text"] and "@example.com" not in e["text"]
        assert e["redactions"]["email"] == 1
        assert e["row_id"] in printed and e["text"][:30] in printed  # shown to the user
    requests = [r for r in _records(run_dir) if r["event"] == "request"]
    assert len(requests) >= 1  # one TA call per round that asks the TA (round 0 may warm up)
    for request in requests:
        assert request["row_ids"] == ids
        content = request["messages"][-1]["content"]
        assert all(e["text"] in content for e in listed)
    ledger = (run_dir / "exposure.jsonl").read_text(encoding="utf-8")
    assert "@example.com" not in ledger and "7946 10" not in ledger
    # the rows that were not chosen are nowhere in what was sent
    chosen = {int(i.rsplit(" ", 1)[1]) - 1 for i in ids}
    for index, row in enumerate(runs["rows"]):
        if index not in chosen:
            assert row["text"][:40] not in ledger
    report = audit_run(run_dir)
    assert report.ok and sorted(report.rows_exposed) == sorted(ids)
    assert report.rows_exposed == {i: len(requests) for i in ids}
    audit = _gpta("audit", str(run_dir), "--strict", "--recheck")
    assert audit.returncode == 0 and "rows exposed:      3" in audit.stdout
    assert "WITHIN POLICY: 3 redacted exemplar row(s)" in audit.stdout


def test_pasted_description_is_blocked_and_the_run_finishes(runs):
    run_dir = runs["base"] / "pasted"
    records = _records(run_dir)
    assert [r["event"] for r in records] == ["policy", "blocked"]
    for blocked in records[1:]:
        assert blocked["copied_row_ids"] == ["train.jsonl:line 5"]
        assert "messages" not in blocked
    assert runs["rows"][4]["text"][:40] not in json.dumps(records)
    history = [json.loads(x) for x in (run_dir / "history.jsonl").read_text().splitlines()]
    errors = [e for e in history if e["event"] == "ta_error"]
    assert len(errors) == 1 and "RequestBlocked" in errors[0]["error"]
    assert "warning:" in runs["pasted_output"] and "train.jsonl:line 5" in runs["pasted_output"]
    # and at the end: the TA never answered (said under -q, and in metrics.json)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["ta_blocked"] == 1 and metrics["ta_requests"] == 0
    assert metrics["ta_warning"].startswith("the TA never answered: all 1 TA request(s)")
    assert "1 blocked by the leak guard" in metrics["ta_warning"]
    assert f"warning: {metrics['ta_warning']}" in runs["pasted_output"]
    assert (run_dir / "model" / "gpta.json").is_file()  # the run went on
    assert json.loads((run_dir / "model" / "gpta.json").read_text())["prefix"] == ""
    report = audit_run(run_dir)
    assert report.requests == 0 and report.blocked == 1 and report.ok
    assert report.blocked_rows == ["train.jsonl:line 5"]


def test_no_file_of_any_run_holds_the_api_key(runs):
    files = [p for p in runs["base"].rglob("*") if p.is_file()]
    assert len(files) > 20
    for path in files:
        assert API_KEY.encode() not in path.read_bytes(), path


def test_long_label_names_are_sent_and_a_ta_that_never_answers_is_warned_under_q(tmp_path):
    """Label names of 8 and more words are the run's own text, not a copy of the rows that
    carry them: the request goes out (here to a port nobody listens on, so it fails), and the
    end of the -q run says that the TA never answered, as metrics.json does."""
    import socket

    long_names = {
        "negative": "the author is unhappy or angry about the subject of the tweet",
        "neutral": "the author states facts or news without taking any side at all",
        "positive": "the author is happy or pleased about the subject of the tweet",
    }
    rows = [{**r, "label": long_names[r["label"]]} for r in balanced(
        shared_rows("twitter", "train"), 4, min_words=10)]  # fmt: skip
    config = _config(tmp_path, "dead", write_jsonl(tmp_path / "train.jsonl", rows), 2)
    for split in ("dev", "test"):
        path = Path(config["data"][split])
        held = [json.loads(line) for line in path.read_text().splitlines()]
        write_jsonl(path, [{**r, "label": long_names[r["label"]]} for r in held])
    with socket.socket() as sock:  # a free port, closed again: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config["assistant"].update(backend="openai", model="m", base_url=f"http://127.0.0.1:{port}/v1",
                               max_retries=0, cache=False)  # fmt: skip
    config["training"]["rounds"] = 2
    shown, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(shown), contextlib.redirect_stdout(out):
        train(load_config(overrides=_flat(config)), quiet=True)
    metrics = json.loads((tmp_path / "dead" / "metrics.json").read_text())
    assert metrics["ta_blocked"] == 0  # the long label names were not taken for a copy
    assert metrics["ta_failed"] == metrics["ta_requests"] >= 2
    policy = _records(tmp_path / "dead")[0]
    assert sorted(policy["label_names"]) == sorted(long_names.values())
    warning = metrics["ta_warning"]
    assert warning.startswith(f"the TA never answered: all {metrics['ta_failed']} TA request(s)")
    assert f"warning: {warning}" in shown.getvalue()
    assert "TA usage" not in shown.getvalue()  # -q: progress is hidden, the warning is not
    assert "GPTA run" in out.getvalue()  # the closing table
