"""The openai TA backend against a real OpenAI-compatible server.

llama-cpp-python's server serves the bundled SmolLM2 GGUF on 127.0.0.1 (started once per
test session); a fault-injecting proxy (tests/ta_server.py) sits in front of it. Full GPTA
runs go through it: a 2-round run, the same run again answered from the cache, one run per
fault, and `gpta llm-check`. The API key is a made-up secret that the proxy sees on every
request and that must appear in no file the runs write.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import TWEETS_DESCRIPTION as DESCRIPTION
from conftest import balanced as _balanced
from conftest import gpta_cli, shared_rows, write_jsonl
from ta_server import LONG_TOKENS, FaultProxy, start_llama_server, stop_process

from gpta.config import build_config
from gpta.run import train

pytestmark = pytest.mark.slow  # a llama-cpp-python server and full runs through it

KEY_ENV = "GPTA_TEST_TA_KEY"
API_KEY = "gpta-test-key-" + secrets.token_hex(12)  # not key-shaped: no pattern scrubs it
CANDIDATES = 2


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    process, base_url = start_llama_server(log)
    yield base_url
    stop_process(process)


@pytest.fixture(scope="module")
def proxy(llama_server):
    proxy = FaultProxy(llama_server, hang_seconds=60)
    yield proxy
    proxy.close()


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, API_KEY)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("ta-data")
    held_out = _balanced(shared_rows("twitter", "test"), 6)  # 18 rows
    return {
        "train": str(
            write_jsonl(base / "train.jsonl", _balanced(shared_rows("twitter", "train"), 8))
        ),
        "dev": str(write_jsonl(base / "dev.jsonl", held_out[:12])),
        "test": str(write_jsonl(base / "test.jsonl", held_out[12:])),
        "description": DESCRIPTION,
    }


def _config(data: dict, output_dir: Path, base_url: str, **assistant) -> dict:
    return {
        "output_dir": str(output_dir),
        "device": "cpu",
        "data": dict(data),
        "model": {"max_length": 64},
        "training": {"rounds": 2, "epochs_per_round": 1, "batch_size": 8, "learning_rate": 1e-4},
        "assistant": {
            "warmup_rounds": 0,
            # free text: each fault meets the request it was aimed at (the structured-output
            # forms, tried one after another, are tested in test_structured_output.py)
            "structured_output": False,
            "backend": "openai",
            "model": "smollm2",
            "base_url": base_url,
            "api_key_env": KEY_ENV,
            "extra_headers": {"X-Gpta-Test": "yes"},
            "candidates": CANDIDATES,
            "screen_size": 8,
            "max_new_tokens": 24,
            "max_prefix_tokens": 24,
            "context_window": 2048,
            "request_timeout": 60,
            "max_retries": 2,
            "retry_backoff": 0.05,
            "retry_max_wait": 2,
            "max_in_flight": 2,
            "prices": {"smollm2": {"input": 0.5, "output": 1.5}},
            **assistant,
        },
    }


def _gpta(*args: str) -> subprocess.CompletedProcess:
    return gpta_cli(*args, env={KEY_ENV: API_KEY}, timeout=600)


def _events(run_dir: Path, kind: str) -> list[dict]:
    lines = (run_dir / "history.jsonl").read_text(encoding="utf-8").splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == kind]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, proxy, data) -> dict:
    """The same 2-round run twice through the CLI, sharing one cache file."""
    base = tmp_path_factory.mktemp("ta-runs")
    cache = base / "cache" / "llm.sqlite"
    out: dict = {"base": base, "cache": cache, "logs": []}
    for name in ("first", "second"):
        config = _config(data, base / name, proxy.base_url, cache_path=str(cache))
        path = base / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        proxy.reset()
        result = _gpta("train", "--config", str(path))
        assert result.returncode == 0, result.stderr[-3000:]
        out[name] = {
            "dir": base / name,
            "upstream_calls": proxy.upstream_calls,
            "headers": list(proxy.seen_headers),
        }
        out["logs"] += [result.stdout, result.stderr]
    return out


def test_a_full_run_through_the_server_counts_usage(two_runs):
    first = two_runs["first"]
    assert first["upstream_calls"] >= 2  # round 0 and round 1 reached the server
    calls = _events(first["dir"], "ta_call")
    assert [c["round"] for c in calls] == [0, 1]
    assert all(c["ok"] and not c["cached"] for c in calls)
    assert all(c["completions"] == CANDIDATES for c in calls)
    assert all(c["prompt_tokens"] > 0 and c["completion_tokens"] > 0 for c in calls)
    metrics = json.loads((first["dir"] / "metrics.json").read_text())
    usage = metrics["ta_usage"]
    assert usage["calls"] == 2 and usage["cached_calls"] == 0
    assert usage["prompt_tokens"] == sum(c["prompt_tokens"] for c in calls)
    assert usage["completion_tokens"] == sum(c["completion_tokens"] for c in calls)
    expected = (usage["prompt_tokens"] * 0.5 + usage["completion_tokens"] * 1.5) / 1e6
    assert usage["cost_usd"] == pytest.approx(expected, rel=1e-3)
    assert metrics["ta_projection"]["calls"] == 2
    assert any("TA projection" in log for log in two_runs["logs"][:2])
    # every request carried the key and the extra header: the key is really in use
    assert all(h.get("authorization") == f"Bearer {API_KEY}" for h in first["headers"])
    assert all(h.get("x-gpta-test") == "yes" for h in first["headers"])


def test_the_identical_second_run_is_served_from_the_cache(two_runs):
    first, second = two_runs["first"], two_runs["second"]
    assert second["upstream_calls"] == 0
    calls = _events(second["dir"], "ta_call")
    assert [c["cached"] for c in calls] == [True, True]

    def proposals(run_dir):
        return [(p["round"], p["raw"], p["prefix"]) for p in _events(run_dir, "proposal")]

    assert proposals(second["dir"]) == proposals(first["dir"])
    usage = json.loads((second["dir"] / "metrics.json").read_text())["ta_usage"]
    assert usage["cached_calls"] == 2 and usage["prompt_tokens"] == 0
    assert usage["cached_prompt_tokens"] > 0 and usage["cost_usd"] == 0


def test_the_api_key_is_in_no_file_and_no_log(two_runs):
    places = [p for p in two_runs["base"].rglob("*") if p.is_file()]
    assert any(p.name == "exposure.jsonl" for p in places)
    assert any(p.name.startswith("llm.sqlite") for p in places)  # the cache is searched too
    needle = API_KEY.encode()
    leaks = [str(p) for p in places if needle in p.read_bytes()]
    assert leaks == []
    assert not any(API_KEY in log for log in two_runs["logs"])


def test_llm_check_makes_one_round_trip(proxy, tmp_path):
    proxy.reset()
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(_config({}, tmp_path / "unused", proxy.base_url)), encoding="utf-8"
    )
    result = gpta_cli(
        "llm-check",
        "--config",
        str(config),
        env={KEY_ENV: API_KEY, "GPTA_CACHE_DIR": str(tmp_path / "cache")},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: True" in result.stdout and "latency_s:" in result.stdout
    assert "model: smollm2" in result.stdout and proxy.base_url in result.stdout
    assert proxy.upstream_calls == 1
    assert API_KEY not in result.stdout + result.stderr
    for path in (tmp_path / "cache").rglob("*"):
        assert path.is_dir() or API_KEY.encode() not in path.read_bytes()


def test_llm_check_reports_a_dead_server(tmp_path):
    result = gpta_cli(
        "llm-check",
        "--set",
        "assistant.backend=openai",
        "--set",
        "assistant.base_url=http://127.0.0.1:9/v1",
        "--set",
        "assistant.max_retries=0",
        env={"GPTA_CACHE_DIR": str(tmp_path)},
        timeout=120,
    )
    assert result.returncode == 1
    assert "ok: False" in result.stdout and "APIConnectionError" in result.stdout


FAULTS = {
    # fault: (how many requests get it, what the history must show)
    "429": (2, "RateLimitError 429"),
    "500": (3, "InternalServerError 500"),
    "hang": (1, "APITimeoutError"),
    "malformed": (1, ""),
    "empty": (CANDIDATES, ""),
    "long": (1, ""),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_the_run_survives_each_fault(fault, proxy, data, tmp_path):
    times, named = FAULTS[fault]
    proxy.reset()
    proxy.inject(fault, times)
    # one request at a time: this server answers one at a time, and a queued request must not
    # run into the short timeout that the hang test needs
    timeout = 15 if fault == "hang" else 60
    config = build_config(
        _config(
            data,
            tmp_path / "run",
            proxy.base_url,
            cache=False,
            request_timeout=timeout,
            max_in_flight=1,
        )
    )
    result = train(config, quiet=True)  # the run completes
    run_dir = tmp_path / "run"
    assert (run_dir / "metrics.json").is_file() and (run_dir / "model" / "gpta.json").is_file()
    assert proxy.injected == [fault] * times and proxy.faults == []
    calls = _events(run_dir, "ta_call")
    assert [c["round"] for c in calls] == [0, 1]
    first, second = calls
    assert second["ok"] and second["completions"] == CANDIDATES  # the TA recovered
    faults = " | ".join(first["faults"])
    if fault in ("429", "hang", "malformed"):  # retried, then answered
        assert first["ok"] and first["attempts"] >= times + 1 and len(first["faults"]) >= times
        assert named in faults
    elif fault == "500":  # the retry budget (2 retries) is spent: a clear, final error
        assert not first["ok"] and first["attempts"] == 3
        assert "InternalServerError 500" in first["error"] and "gave up after 3" in first["error"]
        errors = _events(run_dir, "ta_error")
        assert errors and errors[0]["round"] == 0
        assert _events(run_dir, "select")[0]["prefix"] == ""  # carried on, no prefix
    elif fault == "empty":
        assert first["ok"] and first["valid"] == 0
        round0 = [p for p in _events(run_dir, "proposal") if p["round"] == 0]
        assert len(round0) == CANDIDATES and all(p["prefix"] is None for p in round0)
        assert _events(run_dir, "select")[0]["prefix"] == ""
    elif fault == "long":
        assert first["ok"] and first["completion_tokens"] >= LONG_TOKENS
        assert "LimitIgnored" in faults  # the server ignored max_tokens: recorded, clipped
        round0 = [p for p in _events(run_dir, "proposal") if p["round"] == 0]
        assert round0 and all(len(p["raw"]) <= 8 * 24 for p in round0)
        assert all(p["prefix"] is None or p["truncated"] for p in round0)
        usage = json.loads((run_dir / "metrics.json").read_text())["ta_usage"]
        assert usage["completion_tokens"] >= LONG_TOKENS
    assert result.run_dir == run_dir


def test_the_token_budget_stops_the_ta_not_the_run(proxy, data, tmp_path):
    proxy.reset()
    # the round-0 request's worst case (~1,500 tokens: the prompt, with its worked examples,
    # x 2 candidates + 2 x 24) fits; with its ~1,100 tokens spent, the next one's does not
    config = build_config(
        _config(data, tmp_path / "run", proxy.base_url, cache=False, max_total_tokens=2000)
    )
    train(config, quiet=True)
    calls = _events(tmp_path / "run", "ta_call")
    assert calls[0]["ok"] and not calls[1]["ok"] and "token budget" in calls[1]["error"]
    assert proxy.requests == CANDIDATES  # round 1 never asked the server
    usage = json.loads((tmp_path / "run" / "metrics.json").read_text())["ta_usage"]
    assert (
        usage["skipped_calls"] == 1 and usage["prompt_tokens"] + usage["completion_tokens"] <= 2000
    )
