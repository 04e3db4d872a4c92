"""The openai backend's K candidates against a server that ignores ``n`` (llama.cpp's, Ollama):
once the backend knows, the K single-completion requests are in flight at once, never more
than ``assistant.max_in_flight``, and the answer is the same whatever the arrival order.

The fake server below counts the requests in flight. It holds each single-completion request
until ``hold`` of them are in flight (or the phase's last one has arrived), so a backend that
sent them one after another would show a peak of 1. Nothing is timed: the tests assert on
counts and on the order of the answer; the server's wait has a generous limit only so that a
broken backend fails instead of hanging.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from gpta.chat.base import LLMRequestError, Sampling, sample_seed
from gpta.chat.structured import OutputSchema, ServerForms
from gpta.config import AssistantConfig
from gpta.llm.openai_backend import OpenAIChatModel

MESSAGES = [{"role": "user", "content": "Propose an instruction."}]
HANG_GUARD = 60.0  # seconds a held request waits at most: only so that a failure cannot hang


class _CountingServer:
    """An OpenAI-compatible server on 127.0.0.1 that answers one choice, ``seed <seed>``,
    whatever ``n`` asks (``honour``: n choices), records each request's (n, seed) and the
    peak of requests in flight; 400 to a response_format while ``refuse``."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.bodies: list[tuple[int, int]] = []
        self.in_flight = self.peak = self.arrived = 0
        self.hold, self.total = 1, 1  # see expect()
        self.honour = self.refuse = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                n, seed = int(body.get("n", 1)), int(body["seed"])
                with server.lock:
                    server.bodies.append((n, seed))
                    server.in_flight += 1
                    server.peak = max(server.peak, server.in_flight)
                    server.arrived += n == 1
                    server.lock.notify_all()
                    if n == 1:
                        server.lock.wait_for(server._released, timeout=HANG_GUARD)
                    server.in_flight -= 1  # before the answer: the client's gate opens after it
                if server.refuse and body.get("response_format"):
                    return self._send(400, {"error": {"message": "response_format: no"}})
                count = n if server.honour else 1
                choices = [
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": f"seed {seed} #{i}"},
                        "finish_reason": "stop",
                    }
                    for i in range(count)
                ]
                return self._send(200, {
                    "id": "c", "object": "chat.completion", "created": 0, "model": "m",
                    "choices": choices,
                    "usage": {"prompt_tokens": 5, "completion_tokens": 3 * count,
                              "total_tokens": 5 + 3 * count},
                })  # fmt: skip

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def _released(self) -> bool:
        return self.in_flight >= self.hold or self.arrived >= self.total

    def expect(self, singles: int, hold: int) -> None:
        """The next phase sends ``singles`` single-completion requests; each is answered once
        ``hold`` are in flight together (or the last has arrived). Resets the counts."""
        with self.lock:
            self.bodies, self.peak, self.arrived = [], 0, 0
            self.total, self.hold = singles, hold

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def server():
    fake = _CountingServer()
    yield fake
    fake.close()


def _model(server: _CountingServer, tmp_path: Any, max_in_flight: int) -> OpenAIChatModel:
    model = OpenAIChatModel(
        AssistantConfig(
            backend="openai",
            model="m",
            base_url=server.base_url,
            max_retries=0,
            request_timeout=HANG_GUARD * 2,
            max_in_flight=max_in_flight,
        )
    )
    model.forms = ServerForms(tmp_path / "forms.json")
    return model


def _sampling(n: int, seed: int) -> Sampling:
    return Sampling(n=n, temperature=0.5, top_p=1.0, max_new_tokens=8, seed=seed)


def _texts(seed: int, k: int) -> list[str]:
    return [f"seed {sample_seed(seed, i)} #0" for i in range(k)]


def test_once_known_to_ignore_n_the_k_completions_are_in_flight_at_once(server, tmp_path):
    model = _model(server, tmp_path, max_in_flight=4)
    # first request: the behaviour is unknown, so one request for all three (a server that
    # honours n bills the prompt once); it answers one: the other two go out together
    server.expect(singles=2, hold=2)
    first = model.chat(MESSAGES, _sampling(3, seed=7))
    assert server.bodies[0] == (3, 7)
    assert sorted(server.bodies[1:]) == sorted((1, sample_seed(7, i)) for i in (1, 2))
    assert server.peak == 2 and model.ignores_n
    assert first.texts == _texts(7, 3) and first.attempts == 3
    # from now on: three single-completion requests, all in flight together, none for n=3
    server.expect(singles=3, hold=3)
    second = model.chat(MESSAGES, _sampling(3, seed=8))
    assert sorted(server.bodies) == sorted((1, sample_seed(8, i)) for i in range(3))
    assert server.peak == 3
    assert second.texts == _texts(8, 3)  # in completion order, whatever order they came in
    assert second.attempts == 3 and second.usage.prompt_tokens == 15


def test_never_more_than_max_in_flight(server, tmp_path):
    model = _model(server, tmp_path, max_in_flight=2)
    server.expect(singles=4, hold=2)
    model.chat(MESSAGES, _sampling(5, seed=1))  # learns: 1 answer, then 4 one by one
    assert model.ignores_n and server.peak == 2
    server.expect(singles=5, hold=2)
    result = model.chat(MESSAGES, _sampling(5, seed=2))
    assert len(server.bodies) == 5 and all(n == 1 for n, _ in server.bodies)
    assert server.peak == 2  # two at a time, never three
    assert result.texts == _texts(2, 5)


def test_a_server_that_honours_n_is_asked_once_per_request(server, tmp_path):
    server.honour = True
    model = _model(server, tmp_path, max_in_flight=4)
    for seed in (3, 4):
        server.expect(singles=0, hold=1)
        result = model.chat(MESSAGES, _sampling(3, seed=seed))
        assert server.bodies == [(3, seed)] and len(result.texts) == 3
    assert not model.ignores_n


def test_the_same_bodies_in_every_run(server, tmp_path):
    """A run's requests do not depend on what an earlier model object learned: the response
    cache and the latency benchmark's replays key on the bodies."""
    seen = []
    for _ in range(2):
        model = _model(server, tmp_path, max_in_flight=4)
        bodies = []
        for seed in (5, 6):
            server.expect(singles=2 if seed == 5 else 3, hold=2 if seed == 5 else 3)
            model.chat(MESSAGES, _sampling(3, seed=seed))
            bodies.append(sorted(server.bodies))
        seen.append(bodies)
    assert seen[0] == seen[1]
    assert seen[0][0][-1] == (3, 5)  # each run's first request asks for all three


def test_refused_single_requests_fall_back_like_one_request(server, tmp_path):
    """Known to ignore n, every single-completion request refused with a response_format:
    the structured-output negotiation falls back as it does for one refused request."""
    model = _model(server, tmp_path, max_in_flight=4)
    server.expect(singles=2, hold=2)
    model.chat(MESSAGES, _sampling(3, seed=1))
    server.refuse = True
    server.expect(singles=3, hold=1)
    schema = OutputSchema("t", {"type": "object", "required": ["a"]})
    result = model.chat(MESSAGES, _sampling(3, seed=2), schema=schema)
    assert result.structured == "free_text" and len(result.texts) == 3
    assert any("refused response_format json_schema" in f for f in result.faults)


def test_every_single_request_failing_raises_one_error(server, tmp_path):
    model = _model(server, tmp_path, max_in_flight=4)
    server.expect(singles=2, hold=2)
    model.chat(MESSAGES, _sampling(3, seed=1))
    server.refuse = True
    server.expect(singles=3, hold=1)
    with pytest.raises(LLMRequestError) as caught:
        model._complete(MESSAGES, _sampling(3, seed=2), {"type": "json_object"})
    assert caught.value.attempts == 3 and caught.value.format_refused
    assert len(caught.value.faults) == 3
