"""The TA plumbing without a server: cache keys, the cache wrapper, the budget, context fitting,
and config checks that keep keys out of files. The scripted chat model here exists only to
test this plumbing; real runs through a real server are in test_llm_server.py."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from gpta.assistant import ScoredPrefix, TaskBrief, TeachingAssistant
from gpta.assistant.context import fit_tried
from gpta.assistant.prompts import feedback_messages
from gpta.chat.base import ChatResult, Sampling, Usage
from gpta.chat.usage import BudgetExhausted, UsageMeter, find_price
from gpta.config import AssistantConfig, GptaConfig, build_config
from gpta.errors import GptaUserError
from gpta.llm.cache import CachedChatModel, ResponseCache, cache_info, cache_key, clear_cache
from gpta.privacy import ExposureChannel, ExposureLedger

BRIEF = TaskBrief(
    family="text classification",
    reads="The network reads your instruction and a text and predicts one label.",
    description="Tweets about airlines.",
    label_names=["negative", "neutral", "positive"],
    metric="accuracy",
    max_words=30,
)
MESSAGES = [{"role": "user", "content": "Write an instruction."}]
PARAMS = {"n": 2, "temperature": 0.8, "top_p": 0.95, "max_new_tokens": 32, "seed": 7}
SAMPLING = Sampling(**PARAMS)


class CountingChat:
    """Scripted replies; counts how often it is really asked."""

    backend, model_name = "scripted", "counting"

    def __init__(self, texts=("Decide how the writer feels.", "Judge the tone.")):
        self.texts = list(texts)
        self.calls = 0

    def identity(self):
        return {"backend": self.backend, "model": self.model_name}

    def chat(self, messages, sampling, **params):
        self.calls += 1
        n = sampling.n
        return ChatResult(texts=self.texts[:n], usage=Usage(50, 10 * n), seconds=0.5)


def test_cache_key_covers_every_answer_changing_parameter_and_no_key():
    identity = {"backend": "openai", "base_url": "http://127.0.0.1:1/v1", "model": "m"}
    base = cache_key(identity, MESSAGES, PARAMS)
    assert cache_key(dict(identity), list(MESSAGES), dict(PARAMS)) == base  # stable
    assert cache_key(identity, MESSAGES, SAMPLING.as_dict()) == base  # old entries still hit
    for name, value in [
        ("n", 3),
        ("temperature", 0.7),
        ("top_p", 0.9),
        ("max_new_tokens", 33),
        ("seed", 8),
    ]:
        assert cache_key(identity, MESSAGES, {**PARAMS, name: value}) != base, name
    for name in ("backend", "base_url", "model"):
        assert cache_key({**identity, name: "other"}, MESSAGES, PARAMS) != base, name
    other_messages = [{"role": "user", "content": "Write an instruction!"}]
    assert cache_key(identity, other_messages, PARAMS) != base


def test_openai_identity_has_no_key_or_headers(monkeypatch):
    from gpta.llm.openai_backend import OpenAIChatModel

    monkeypatch.setenv("GPTA_UNIT_KEY", "sk-unit-secret-123")
    monkeypatch.setenv("GPTA_UNIT_HDR", "hdr-secret-456")
    config = AssistantConfig(
        backend="openai",
        model="m",
        base_url="http://127.0.0.1:9/v1",
        api_key_env="GPTA_UNIT_KEY",
        extra_headers={"X-Api-Key": "env:GPTA_UNIT_HDR", "X-Team": "nlp"},
    )
    model = OpenAIChatModel(config)
    blob = json.dumps(model.identity())
    assert "sk-unit-secret-123" not in blob and "hdr-secret-456" not in blob
    assert model.redact("401: bad key sk-unit-secret-123") == "401: bad key ***"


def test_cached_model_answers_once_then_from_the_file(tmp_path):
    chat = CountingChat()
    path = tmp_path / "c.sqlite"
    model = CachedChatModel(chat, ResponseCache(path))
    first = model.chat(MESSAGES, SAMPLING)
    again = CachedChatModel(chat, ResponseCache(path)).chat(MESSAGES, SAMPLING)  # reopened
    assert chat.calls == 1
    assert (first.cached, again.cached) == (False, True)
    assert again.texts == first.texts and again.usage == first.usage
    model.chat(MESSAGES, replace(SAMPLING, seed=8))
    assert chat.calls == 2
    info = cache_info(path)
    assert (info.entries, info.hits, info.models) == (2, 1, {"counting": 2})
    assert clear_cache(path) == 2 and cache_info(path).entries == 0


def test_empty_answers_are_not_cached(tmp_path):
    chat = CountingChat(texts=["", "  "])
    model = CachedChatModel(chat, ResponseCache(tmp_path / "c.sqlite"))
    model.chat(MESSAGES, SAMPLING)
    model.chat(MESSAGES, SAMPLING)
    assert chat.calls == 2


def test_cli_cache_info_and_clear(tmp_path, capsys):
    from gpta.cli import main

    path = tmp_path / "c.sqlite"
    CachedChatModel(CountingChat(), ResponseCache(path)).chat(MESSAGES, SAMPLING)
    main(["cache", "info", "--path", str(path)])
    out = capsys.readouterr().out
    assert "entries: 1" in out and str(path) in out
    main(["cache", "clear", "--path", str(path)])
    assert "removed 1" in capsys.readouterr().out


def test_prices_by_exact_name_or_longest_prefix():
    prices = {"gpt-4o": {"input": 2.5, "output": 10}, "gpt-4o-mini": {"input": 0.15, "output": 0.6}}
    assert find_price("gpt-4o-mini-2024-07-18", prices).input == 0.15
    assert find_price("gpt-4o", prices).output == 10
    assert find_price("llama3", prices) is None


def test_token_budget_stops_the_ta_not_the_caller(tmp_path):
    chat = CountingChat()
    meter = UsageMeter("counting", max_total_tokens=200)
    channel = ExposureChannel(chat, ExposureLedger(tmp_path / "exposure.jsonl"), meter)
    config = AssistantConfig(candidates=2, max_new_tokens=32)
    assistant = TeachingAssistant(channel, BRIEF, config, count_tokens=lambda s: len(s.split()))
    first = assistant.propose(MESSAGES, seed=0)
    second = assistant.propose(MESSAGES, seed=1)  # 70 used + (prompt + 2 x 32) > 200? no
    third = assistant.propose(MESSAGES, seed=2)
    assert first.error is None and second.error is None
    assert third.error is not None and "token budget" in third.error
    assert chat.calls == 2  # the third request was never sent
    summary = meter.summary()
    assert summary["prompt_tokens"] == 100 and summary["completion_tokens"] == 40
    assert summary["skipped_calls"] == 1
    ledger = (tmp_path / "exposure.jsonl").read_text().splitlines()
    assert [json.loads(x)["event"] for x in ledger] == ["request", "response"] * 2


def test_cost_budget_with_a_price_table():
    meter = UsageMeter("gpt-x", prices={"gpt-x": {"input": 1000, "output": 1000}}, max_cost_usd=0.1)
    meter.check(50, 40)  # $0.09: allowed
    meter.add(ChatResult(["a"], Usage(50, 40), 0.1))
    assert meter.cost_usd == pytest.approx(0.09)
    with pytest.raises(BudgetExhausted, match="cost budget"):
        meter.check(5, 10)
    cached = ChatResult(["a"], Usage(50, 40), 0.0, cached=True)
    meter.add(cached)  # cached answers cost nothing
    assert meter.cost_usd == pytest.approx(0.09)


def _count(messages):
    return sum(len(m["content"].split()) for m in messages)


def test_context_fit_keeps_top_m_and_recent_within_the_window():
    ranked = [ScoredPrefix(f"prefix number {i} " + "word " * 20, 0.9 - i / 100) for i in range(10)]
    recent = [ScoredPrefix("the most recent round prefix", 0.5)]

    def build(tried):
        return feedback_messages(
            BRIEF, tried=tried, current=ScoredPrefix("cur", 0.5), previous_score=None
        )

    _, shown = fit_tried(
        build, ranked, recent, top_m=5, window=10_000, max_new_tokens=64, count_messages=_count
    )
    assert len(shown) == 6 and shown[0] == recent[0]
    assert [s.prefix for s in shown[1:]] == [s.prefix for s in ranked[:5]]
    empty = _count(build([]))
    window = empty + 64 + 32 + 60  # room for about two listed prefixes
    tight, shown = fit_tried(
        build, ranked, recent, top_m=5, window=window, max_new_tokens=64, count_messages=_count
    )
    assert _count(tight) <= window - 64 - 32
    assert recent[0] in shown and 1 <= len(shown) < 6
    assert ranked[0] in shown  # the best is kept, the lower ones go first


def test_config_refuses_keys_in_files():
    with pytest.raises(GptaUserError, match="NAME of an environment variable") as caught:
        build_config({"assistant": {"api_key_env": "sk-live-abc-123"}})
    assert "sk-live-abc-123" not in caught.value.message  # a pasted key is not echoed
    with pytest.raises(GptaUserError, match="looks like a credential") as caught:
        build_config({"assistant": {"extra_headers": {"Authorization": "Bearer sk-abc"}}})
    assert "sk-abc" not in caught.value.message
    config = build_config({"assistant": {"extra_headers": {"api-key": "env:AZURE_KEY"}}})
    assert isinstance(config, GptaConfig)


def test_openai_backend_without_key_or_url_is_a_user_error(monkeypatch):
    from gpta.llm.openai_backend import OpenAIChatModel

    monkeypatch.delenv("GPTA_MISSING_KEY", raising=False)
    config = AssistantConfig(backend="openai", model="gpt-4o-mini", api_key_env="GPTA_MISSING_KEY")
    with pytest.raises(GptaUserError, match="GPTA_MISSING_KEY"):
        OpenAIChatModel(config)


def test_retry_wait_honours_retry_after_and_backs_off_with_jitter():
    import openai

    try:  # the HTTP library this openai SDK is built on
        import httpx2 as httpx
    except ImportError:
        import httpx
    from tenacity import RetryCallState

    from gpta.llm.openai_backend import _Wait, is_retryable

    request = httpx.Request("POST", "http://127.0.0.1:1/v1/chat/completions")

    def state_with(err, attempt):
        state = RetryCallState(None, None, (), {})
        state.attempt_number = attempt
        state.set_exception((type(err), err, None))
        return state

    limited = openai.RateLimitError(
        "slow down",
        response=httpx.Response(429, headers={"Retry-After": "7"}, request=request),
        body=None,
    )
    wait = _Wait(base=0.5, cap=30)
    assert 7 <= wait(state_with(limited, 1)) <= 7.1
    assert _Wait(base=0.5, cap=3)(state_with(limited, 1)) == 3  # capped
    broken = openai.InternalServerError(
        "boom", response=httpx.Response(500, request=request), body=None
    )
    waits = [wait(state_with(broken, 4)) for _ in range(20)]
    assert all(0 <= w <= 0.5 * 2**4 for w in waits) and len(set(waits)) > 1  # jittered
    assert is_retryable(limited) and is_retryable(broken)
    denied = openai.AuthenticationError(
        "bad key", response=httpx.Response(401, request=request), body=None
    )
    assert not is_retryable(denied)
