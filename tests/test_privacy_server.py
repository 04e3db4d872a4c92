"""Privacy on real runs through a real OpenAI-compatible server (llama-cpp-python serving the
bundled SmolLM2), with the recording proxy of tests/ta_server.py in front of it:

* a training row that ``data.train_size`` left out of the sample, pasted into the
  description, is blocked (the guard covers every row of every file read) and nothing is sent;
* e-mail addresses, phone numbers and keys in the description never reach the server, and
  the ledger holds exactly the messages the server received;
* a server that echoes the API key back gets it into no file, no cache, no terminal line and
  no prefix;
* the finished run's ledger is sealed: ``gpta audit --strict`` passes, and an emptied ledger,
  a deleted request or a changed record count makes it fail.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import TWEETS_DESCRIPTION as DESCRIPTION
from conftest import balanced, gpta_cli, shared_rows, write_jsonl
from ta_server import FaultProxy, start_llama_server, stop_process

from gpta.config import build_config
from gpta.run import load_data, train

pytestmark = pytest.mark.slow  # a llama-cpp-python server and full runs through it

KEY_ENV = "GPTA_PRIVACY_TEST_KEY"
API_KEY = "gpta-privacy-test-key-7f3a9c2e41d8b6"  # not key-shaped: only registration finds it
PERSONAL = {
    "email": "dana.whitfield@example.org",
    "phone": "+1 (415) 555-0199",
    "openai key": "sk-proj-Zx81KqPw0aLm3NvB7yTr5UcE",
    "aws key": "AKIAZ7QW2ER5TY8UI9OP",
    "bearer": "Bearer eyJraWQiOiJhYmMxMjMiLCJhbGciOiJSUzI1NiJ9",
}


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    process, base_url = start_llama_server(tmp_path_factory.mktemp("llama") / "server.log")
    proxy = FaultProxy(base_url)
    yield proxy
    proxy.close()
    stop_process(process)


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, API_KEY)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("data")
    held_out = balanced(shared_rows("twitter", "test"), 4, min_words=12)
    return {
        "train": str(
            write_jsonl(
                base / "train.jsonl", balanced(shared_rows("twitter", "train"), 8, min_words=12)
            )
        ),
        "dev": str(write_jsonl(base / "dev.jsonl", held_out[:6])),
        "test": str(write_jsonl(base / "test.jsonl", held_out[6:])),
        "description": DESCRIPTION,
    }


def _config(data: dict, run_dir: Path, base_url: str, **overrides) -> dict:
    config = {
        "output_dir": str(run_dir),
        "device": "cpu",
        "data": dict(data),
        "model": {"max_length": 48},
        "training": {"rounds": 1, "steps_per_round": 2, "batch_size": 8},
        "assistant": {
            "backend": "openai",
            "model": "smollm2",
            "base_url": base_url,
            "api_key_env": KEY_ENV,
            "candidates": 1,
            "screen_size": 6,
            "max_new_tokens": 16,
            "max_prefix_tokens": 16,
            "context_window": 2048,
            "max_retries": 0,
            "cache_path": str(run_dir.parent / f"{run_dir.name}-cache.sqlite"),
        },
    }
    for dotted, value in overrides.items():
        section, key = dotted.split(".")
        config[section][key] = value
    return config


def _run(config: dict) -> str:
    """One run in this process; returns what it printed on stderr (the terminal)."""
    shown = io.StringIO()
    with contextlib.redirect_stderr(shown):
        train(build_config(config))
    return shown.getvalue()


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "exposure.jsonl").read_text("utf-8").splitlines()]


def _audit(*args: str) -> subprocess.CompletedProcess:
    return gpta_cli("audit", *args, timeout=300)


def test_a_row_left_out_by_train_size_is_still_guarded(proxy, data, tmp_path):
    config = _config(data, tmp_path / "run", proxy.base_url, **{"data.train_size": 6})
    sampled = set(load_data(build_config(config))["train"].locations)
    left_out = [
        (i, row)
        for i, row in enumerate(json.loads(x) for x in Path(data["train"]).read_text().splitlines())
        if f"line {i + 1}" not in sampled
    ]
    assert len(sampled) == 6 and len(left_out) == 18
    index, row = left_out[0]
    row_id = f"train.jsonl:line {index + 1}"
    config["data"]["description"] = f"{DESCRIPTION} For example: {row['text']}"
    proxy.reset()
    printed = _run(config)
    run_dir = tmp_path / "run"
    records = _records(run_dir)
    assert [r["event"] for r in records] == ["policy", "blocked"]
    assert records[1]["copied_row_ids"] == [row_id]
    assert records[0]["indexed_rows"] == 24 + 6 + 6  # every row of the three files read
    assert proxy.requests == 0  # nothing reached the server
    assert "warning:" in printed and row_id in printed
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["ledger_records"] == 2 and metrics["ledger_sha256"] == records[-1]["hash"]
    audit = _audit(str(run_dir), "--strict", "--recheck")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "blocked requests:  1" in audit.stdout and row_id in audit.stdout
    assert "WITHIN POLICY" in audit.stdout and "hash chain:        intact" in audit.stdout


def test_personal_data_and_keys_never_reach_the_server_and_the_ledger_is_what_it_got(
    proxy, data, tmp_path
):
    config = _config(data, tmp_path / "run", proxy.base_url)
    config["data"]["description"] = (
        f"{DESCRIPTION} Questions to {PERSONAL['email']} or {PERSONAL['phone']}; the labelling "
        f"service used key {PERSONAL['openai key']}, {PERSONAL['aws key']} and "
        f"Authorization: {PERSONAL['bearer']}."
    )
    proxy.reset()
    _run(config)
    run_dir = tmp_path / "run"
    received = [json.loads(body) for body in proxy.bodies]
    requests = [r for r in _records(run_dir) if r["event"] == "request"]
    assert len(received) >= 1 and len(requests) >= 1
    # every body the server got carries exactly the messages of a ledger request, and every
    # recorded request reached it (a backend may send one request more than once: retries,
    # or another structured-output form; the ledger lists those as attempts of one request)
    recorded = [r["messages"] for r in requests]
    assert all(body["messages"] in recorded for body in received)
    assert all(messages in [body["messages"] for body in received] for messages in recorded)
    wire = b"".join(proxy.bodies).decode("utf-8")
    for name, value in PERSONAL.items():
        assert value not in wire, name
        assert value.split()[-1] not in wire, name
    assert requests[0]["removed"] == {"email": 1, "phone": 1, "secret": 3}
    assert "[EMAIL]" in wire and "[PHONE]" in wire and "[SECRET]" in wire
    # on disk, only the run's copy of the user's own config holds them (nothing that was sent)
    holding = {
        path.name
        for path in tmp_path.rglob("*")
        if path.is_file()
        and any(value.split()[-1].encode() in path.read_bytes() for value in PERSONAL.values())
    }
    assert holding == {"config.yaml"}


def test_a_server_echoing_the_api_key_gets_it_nowhere(proxy, data, tmp_path):
    config = _config(data, tmp_path / "run", proxy.base_url, **{"training.rounds": 2})
    proxy.reset()
    proxy.inject("echo_key", 20)
    printed = _run(config)
    run_dir = tmp_path / "run"
    assert proxy.injected and all(
        h["authorization"] == f"Bearer {API_KEY}" for h in proxy.seen_headers
    )
    responses = [r for r in _records(run_dir) if r["event"] == "response"]
    assert responses and all("[SECRET]" in t for r in responses for t in r["texts"])
    files = [p for p in tmp_path.rglob("*") if p.is_file()]  # run files and the cache (WAL too)
    assert any(p.name.startswith("run-cache.sqlite") for p in files)
    assert any(p.name == "history.jsonl" for p in files) and any(
        p.name == "metrics.json" for p in files
    )
    for path in files:
        assert API_KEY.encode() not in path.read_bytes(), path
    assert API_KEY not in printed
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert API_KEY not in metrics["prefix"]


def test_a_finished_run_is_sealed_and_audit_fails_closed_on_tampering(proxy, data, tmp_path):
    config = _config(data, tmp_path / "run", proxy.base_url)
    proxy.reset()
    _run(config)
    run_dir = tmp_path / "run"
    assert _audit(str(run_dir), "--strict").returncode == 0

    def tampered(name: str, edit) -> subprocess.CompletedProcess:
        copy = tmp_path / name
        shutil.copytree(run_dir, copy)
        edit(copy)
        return _audit(str(copy), "--strict")

    def emptied(d: Path) -> None:
        (d / "exposure.jsonl").write_text("")

    def request_deleted(d: Path) -> None:
        lines = (d / "exposure.jsonl").read_text().splitlines(keepends=True)
        (d / "exposure.jsonl").write_text("".join(x for x in lines if '"request"' not in x))

    def count_changed(d: Path) -> None:
        metrics = json.loads((d / "metrics.json").read_text())
        metrics["ledger_records"] += 1
        (d / "metrics.json").write_text(json.dumps(metrics))

    for name, edit, expected in [
        ("emptied", emptied, "holds no record"),
        ("deleted", request_deleted, "hash chain is broken"),
        ("count", count_changed, "sealed"),
    ]:
        result = tampered(name, edit)
        assert result.returncode == 1, (name, result.stdout, result.stderr)
        assert "VERDICT: UNVERIFIABLE" in result.stdout and expected in result.stdout, name
