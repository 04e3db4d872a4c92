"""The exposure channel with the leak guard, the ledger's records, secrets, and the audit.

The scripted chat models here exist only for fault handling (a blocked request, a failing
backend, a process killed mid-request); the end-to-end privacy runs use the real local TA
(test_privacy_end_to_end.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import gpta_cli

from gpta.assistant import History, TaskBrief, TeachingAssistant
from gpta.assistant.prompts import initial_messages
from gpta.chat.base import ChatResult, Sampling, Usage
from gpta.config import AssistantConfig
from gpta.privacy import (
    Exemplar,
    ExposureChannel,
    ExposureLedger,
    LeakGuard,
    RequestBlocked,
)
from gpta.privacy.audit import audit_run, format_report
from gpta.privacy.ledger import messages_hash
from gpta.secrets import register_secret, scrub

ROWS = [
    ("train.jsonl:line 1", ["my flight to Denver was cancelled twice and nobody called me back"]),
    ("train.jsonl:line 2", ["the crew on this flight were friendly and the seats were roomy"]),
    ("train.jsonl:line 3", ["lost my bag in Chicago, write to me at amy@mail.com or call today"]),
]
SRC = str(Path(__file__).resolve().parents[1] / "src")


class CountingChat:
    """Answers with a fixed instruction and counts the calls (to prove nothing was sent)."""

    backend, model_name = "scripted", "counting"

    def __init__(self):
        self.calls = 0
        self.seen = []

    def chat(self, messages, sampling, **params):
        n = sampling.n
        self.calls += 1
        self.seen.append(messages)
        return ChatResult(["Decide how the traveller feels."] * n, Usage(20, 5 * n), 0.01)


def _brief(description: str, exemplars=()) -> TaskBrief:
    return TaskBrief(
        family="text classification",
        reads="The network reads your instruction and a tweet and predicts one label.",
        description=description,
        label_names=["negative", "positive"],
        metric="accuracy",
        max_words=20,
        exemplars=tuple(exemplars),
    )


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _seal(run_dir: Path, ledger: ExposureLedger) -> None:
    """What a finished run writes: the ledger's seal in metrics.json."""
    (run_dir / "metrics.json").write_text(json.dumps(ledger.seal()), encoding="utf-8")


def _assistant(tmp_path, chat, brief, *, exemplars=(), policy="none"):
    guard = LeakGuard(ROWS, n=8)
    guard.allow(e.text for e in exemplars)
    ledger = ExposureLedger(tmp_path / "exposure.jsonl")
    ledger.record_policy(exposure=policy, exemplar_ids=[e.row_id for e in exemplars])
    channel = ExposureChannel(chat, ledger, guard=guard, exemplars=exemplars, policy=policy)
    config = AssistantConfig(candidates=2)
    return TeachingAssistant(channel, brief, config, count_tokens=lambda s: len(s.split()))


def test_clean_request_is_sent_and_recorded_with_no_rows(tmp_path):
    chat = CountingChat()
    ta = _assistant(tmp_path, chat, _brief("Tweets about airlines."))
    batch = ta.propose(initial_messages(ta.brief), seed=0)
    assert batch.error is None and chat.calls == 1
    records = _records(tmp_path / "exposure.jsonl")
    assert [r["event"] for r in records] == ["policy", "request", "response"]
    request = records[1]
    assert request["row_ids"] == [] and request["policy"] == "none"
    assert request["sha256"] == messages_hash(request["messages"])
    _seal(tmp_path, ta.channel.ledger)  # as a finished run does
    report = audit_run(tmp_path)
    assert report.ok and report.requests == 1 and report.rows_exposed == {}
    assert "no training row left the machine" in report.verdict


def test_pasted_description_is_blocked_not_sent_not_retried(tmp_path):
    chat = CountingChat()
    pasted = "Tweets like: the crew on this flight were friendly and the seats were roomy."
    ta = _assistant(tmp_path, chat, _brief(pasted))
    batch = ta.propose(initial_messages(ta.brief), seed=0)
    assert chat.calls == 0  # nothing reached the backend
    assert batch.valid == [] and "RequestBlocked" in batch.error
    assert "train.jsonl:line 2" in batch.error
    records = _records(tmp_path / "exposure.jsonl")
    assert [r["event"] for r in records] == ["policy", "blocked"]
    blocked = records[1]
    assert blocked["copied_row_ids"] == ["train.jsonl:line 2"] and blocked["windows"] >= 1
    assert "row_ids" not in blocked  # nothing was sent: no row was exposed
    assert "messages" not in blocked  # the copied text is not written again
    assert "friendly" not in json.dumps(blocked)
    # the run goes on: the next, clean request is sent
    ta.brief = _brief("Tweets about airlines.")
    assert ta.propose(initial_messages(ta.brief), seed=1).error is None
    assert chat.calls == 1
    _seal(tmp_path, ta.channel.ledger)  # as a finished run does
    report = audit_run(tmp_path)
    assert report.blocked == 1 and report.requests == 1 and report.ok
    assert report.blocked_rows == ["train.jsonl:line 2"]
    assert "blocked requests:  1" in format_report(report)


def test_channel_raises_request_blocked(tmp_path):
    guard = LeakGuard(ROWS, n=8)
    channel = ExposureChannel(CountingChat(), ExposureLedger(tmp_path / "e.jsonl"), guard=guard)
    message = [{"role": "user", "content": ROWS[0][1][0]}]
    with pytest.raises(RequestBlocked) as info:
        channel.send(message, Sampling(n=1, temperature=1, top_p=1, max_new_tokens=8, seed=0))
    assert info.value.report.row_ids == ["train.jsonl:line 1"]
    assert channel.blocked == 1 and channel.requests == 0


def test_exemplars_are_recorded_by_row_id_and_only_redacted(tmp_path):
    chat = CountingChat()
    exemplar = Exemplar(
        "train.jsonl:line 3",
        "lost my bag in Chicago, write to me at [EMAIL] or call today",
        "negative",
    )
    ta = _assistant(
        tmp_path, chat, _brief("Tweets.", [exemplar]), exemplars=[exemplar], policy="exemplars"
    )
    assert ta.propose(initial_messages(ta.brief), seed=0).error is None
    request = _records(tmp_path / "exposure.jsonl")[1]
    assert request["row_ids"] == ["train.jsonl:line 3"]
    assert "(negative) lost my bag in Chicago, write to me at [EMAIL]" in json.dumps(request)
    _seal(tmp_path, ta.channel.ledger)  # as a finished run does
    report = audit_run(tmp_path)
    assert report.ok and report.rows_exposed == {"train.jsonl:line 3": 1}
    assert "WITHIN POLICY: 1 redacted exemplar row(s)" in report.verdict
    # the unredacted row: the channel redacts it before the guard, the ledger and the wire
    raw = Exemplar("train.jsonl:line 3", ROWS[2][1][0], "negative")
    ta.brief = _brief("Tweets.", [raw])
    assert ta.propose(initial_messages(ta.brief), seed=1).error is None and chat.calls == 2
    request = _records(tmp_path / "exposure.jsonl")[-2]
    assert "amy@mail.com" not in json.dumps(request) and request["removed"] == {"email": 1}
    assert chat.seen[-1] == request["messages"]  # what the backend got is what is recorded
    # another row, not an exemplar: blocked
    other = Exemplar("train.jsonl:line 2", ROWS[1][1][0], "positive")
    ta.brief = _brief("Tweets.", [other])
    batch = ta.propose(initial_messages(ta.brief), seed=2)
    assert "RequestBlocked" in batch.error and chat.calls == 2


def test_audit_flags_rows_beyond_policy_and_edited_ledgers(tmp_path):
    ledger = ExposureLedger(tmp_path / "exposure.jsonl")
    ledger.record_policy(exposure="exemplars", exemplar_ids=["a:line 1"])
    messages = [{"role": "user", "content": "hello"}]
    params = {"n": 1}
    ledger.record_request(
        backend="b", model="m", messages=messages, row_ids=["a:line 1"], params=params
    )
    ledger.record_request(
        backend="b", model="m", messages=messages, row_ids=["a:line 9"], params=params
    )
    report = audit_run(tmp_path)
    assert report.beyond_policy == ["a:line 9"] and not report.ok
    assert report.unanswered == 2
    assert "EXPOSED BEYOND POLICY" in report.verdict and "a:line 9" in report.verdict
    cli = ["audit", str(tmp_path)]
    env = {"PYTHONPATH": SRC}
    assert gpta_cli(*cli, env=env).returncode == 0
    strict = gpta_cli(*cli, "--strict", env=env)
    assert strict.returncode == 1 and "EXPOSED BEYOND POLICY" in strict.stdout
    as_json = gpta_cli(*cli, "--json", env=env)
    assert json.loads(as_json.stdout)["beyond_policy"] == ["a:line 9"]

    edited = tmp_path / "edited"
    edited.mkdir()
    ledger = ExposureLedger(edited / "exposure.jsonl")
    ledger.record_request(backend="b", model="m", messages=messages, row_ids=[], params=params)
    text = (edited / "exposure.jsonl").read_text().replace("hello", "hullo")
    (edited / "exposure.jsonl").write_text(text)
    report = audit_run(edited)
    assert report.hash_mismatches == [1] and "UNVERIFIABLE" in report.verdict


def test_audit_of_a_directory_without_ledger_is_a_user_error(tmp_path):
    result = gpta_cli("audit", str(tmp_path), env={"PYTHONPATH": SRC})
    assert result.returncode == 2 and "no exposure ledger" in result.stderr
    assert "Traceback" not in result.stderr


class LeakyFailingChat:
    """A backend whose error message echoes the key, as some servers' 401 answers do."""

    backend, model_name = "scripted", "leaky"

    def __init__(self, key):
        self.key = key

    def chat(self, messages, sampling, **params):
        raise PermissionError(f"401 Incorrect API key provided: {self.key}")


def test_secrets_never_reach_any_file_of_the_run(tmp_path, monkeypatch):
    key = "gk-test-0123456789abcdefSECRET"
    bearer = "Bearer abcdefghijklmnop0123456789"
    register_secret(key)
    ta = _assistant(tmp_path, LeakyFailingChat(key), _brief("Tweets about airlines."))
    history = History(tmp_path / "history.jsonl")
    batch = ta.propose(initial_messages(ta.brief), seed=0)
    history.log("ta_error", round=0, error=batch.error)
    assert "401 Incorrect API key provided: [SECRET]" in batch.error
    ta.channel.ledger.record_error(99, f"proxy said {bearer} and sk-{'x' * 24}")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in files} == {"exposure.jsonl", "history.jsonl"}
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert key not in text and bearer not in text and "x" * 24 not in text, path
    assert "[SECRET]" in (tmp_path / "exposure.jsonl").read_text()
    assert scrub(f"k={key}") == "k=[SECRET]"
    assert scrub("a normal sentence about skis") == "a normal sentence about skis"


def test_llm_check_treats_the_configured_key_as_a_secret(tmp_path, monkeypatch):
    """A key that is not key-shaped, echoed by a failing server, reaches neither the
    llm-check report nor its ledger."""
    from gpta.cli import llm_check as check
    from gpta.config import GptaConfig

    key = "plain-words-password-4417"
    monkeypatch.setenv("GPTA_CHECK_TEST_KEY", key)
    monkeypatch.setenv("GPTA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(check, "make_chat_model", lambda *a, **k: LeakyFailingChat(key))
    config = GptaConfig.model_validate(
        {
            "assistant": {
                "backend": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "api_key_env": "GPTA_CHECK_TEST_KEY",
            }
        }
    )
    report = check.check_llm(config)
    assert report["ok"] is False and "401 Incorrect API key provided" in report["error"]
    assert key not in str(report) and "[SECRET]" in report["error"]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files and all(key not in p.read_text(encoding="utf-8") for p in files)


KILLED_AFTER_SEND = textwrap.dedent(
    """
    import os, signal, sys
    from gpta.chat.base import ChatResult, Sampling
    from gpta.privacy import ExposureChannel, ExposureLedger

    class SendsThenDies:
        backend, model_name = "scripted", "killed"
        def chat(self, messages, sampling, **params):
            # the request is on the wire; the process is killed before any answer
            os.kill(os.getpid(), signal.SIGKILL)

    channel = ExposureChannel(SendsThenDies(), ExposureLedger(sys.argv[1]))
    channel.send([{"role": "user", "content": "the request that was sent"}],
                 Sampling(n=1, temperature=1.0, top_p=1.0, max_new_tokens=8, seed=0))
    """
)


def test_request_survives_a_kill_right_after_send(tmp_path):
    ledger = tmp_path / "exposure.jsonl"
    env = {**os.environ, "PYTHONPATH": SRC}
    result = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_SEND, str(ledger)], env=env, capture_output=True
    )
    assert result.returncode == -signal.SIGKILL
    records = _records(ledger)
    assert [r["event"] for r in records] == ["request"]
    assert records[0]["messages"][0]["content"] == "the request that was sent"
    report = audit_run(tmp_path)
    assert report.requests == 1 and report.unanswered == 1
