"""Does the TA's latency hide behind training? The loop's wall time over the same run's
training + evaluation time, against a remote-like TA that answers after 2 s and 10 s.

A remote API's answer costs this machine nothing but the wait. It is stood in for by a
replaying proxy on 127.0.0.1 in front of the REAL llama.cpp server (the bundled SmolLM2
GGUF): a first run records every answer the server gives (``record``: its timings are not
used); the timed runs replay each recorded answer byte for byte after a fixed delay,
without touching the server, so the TA's compute is off this machine's cores exactly as a
remote API's is. The same seed gives the same requests (the run is deterministic), so every
timed request is a replay; a request the recording does not hold is forwarded and counted
(``misses``), and the figure is then not clean. llama.cpp's server ignores ``n``: each run's
first TA request asks for all K completions and gets one, the other K-1 follow one by one in
parallel, and every later request is K single-completion requests sent at once (the backend
learns this per run, so the recording and each timed run send the same bodies).

    .venv/bin/python benchmarks/ta_latency.py [--delays 2 10] [--rows 64] [--local]

Each run: ``gpta train`` on the twitter sample (``--rows`` training rows, 64 dev rows),
the default budget and loop, the openai backend through the proxy (background proposals:
the default for that backend). ``ratio = loop_seconds / (train + eval seconds)`` from the
run's metrics.json: 1.00 means the TA and screening cost no wall time at all. ``--local``
adds the same run with the bundled local TA as it is (synchronous, same cores).
Writes benchmarks/results/ta_latency.json.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from ta_server import start_llama_server, stop_process  # noqa: E402

from benchmarks.machine import describe  # noqa: E402
from benchmarks.profiles import DATA_DIR, DATASETS, read_jsonl, write_jsonl  # noqa: E402


class ReplayProxy:
    """Records the upstream server's answers by request body; replays them after a delay."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.recorded: dict[str, tuple[int, bytes]] = {}
        self.delay: float | None = None  # None: record (forward everything)
        self.misses = 0
        self.replays = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                status, body = proxy.forward("GET", self.path, b"")
                self._send(status, body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = hashlib.sha256(self.path.encode() + body).hexdigest()
                started = time.perf_counter()
                with proxy.lock:
                    known = proxy.recorded.get(key)
                if proxy.delay is None or known is None:
                    status, answer = proxy.forward("POST", self.path, body)
                    with proxy.lock:
                        proxy.recorded.setdefault(key, (status, answer))
                        proxy.misses += proxy.delay is not None
                else:
                    status, answer = known
                    with proxy.lock:
                        proxy.replays += 1
                if proxy.delay:  # the remote API's latency, on no core of this machine
                    time.sleep(max(0.0, proxy.delay - (time.perf_counter() - started)))
                self._send(status, answer)

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def forward(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=600)
        headers = {"Content-Type": "application/json"} if body else {}
        connection.request(method, path, body=body or None, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.server.shutdown()


def data(out: Path, rows: int) -> dict[str, str]:
    train = read_jsonl(DATA_DIR / "twitter" / "train.jsonl")
    paths = {
        "train": write_jsonl_path(out / "train.jsonl", train[64:]),
        "dev": write_jsonl_path(out / "dev.jsonl", train[:64]),
        "test": write_jsonl_path(
            out / "test.jsonl", read_jsonl(DATA_DIR / "twitter" / "test.jsonl")[:64]
        ),
    }
    return {**paths, "train_size": rows}


def write_jsonl_path(path: Path, rows: list[dict[str, Any]]) -> str:
    write_jsonl(path, rows)
    return str(path)


def run(out: Path, name: str, paths: dict[str, Any], assistant: dict[str, Any]) -> dict[str, Any]:
    from gpta.config import build_config
    from gpta.run import train

    config = build_config(
        {
            "output_dir": str(out / name),
            "seed": 0,
            "data": {
                **{k: paths[k] for k in ("train", "dev", "test")},
                "train_size": paths["train_size"],
                "description": DATASETS["twitter"].description,
            },
            "assistant": {"cache": False, "library": False, "candidates": 3, **assistant},
        },
        source="ta_latency",
    )
    started = time.perf_counter()
    result = train(config, overwrite=True, quiet=True)
    wall = time.perf_counter() - started
    metrics = json.loads((result.run_dir / "metrics.json").read_text(encoding="utf-8"))
    seconds = {"train": 0.0, "eval": 0.0, "ta_wait": 0.0, "screen": 0.0, "ta": 0.0}
    for entry in metrics["rounds"]:
        for key in seconds:
            seconds[key] += float(entry["seconds"].get(key, 0.0))
    base = seconds["train"] + seconds["eval"]
    return {
        "run": name,
        "ratio": round(metrics["loop_seconds"] / base, 3),
        "loop_seconds": metrics["loop_seconds"],
        "train_eval_seconds": round(base, 2),
        "screen_seconds": round(seconds["screen"], 2),
        "ta_wait_seconds": round(seconds["ta_wait"], 2),
        "ta_seconds_in_rounds": round(seconds["ta"], 2),
        "run_wall_seconds": round(wall, 2),
        "rounds": len(metrics["rounds"]),
        "ta_requests": metrics["ta_requests"],
        "dev_curve": [r["dev_score"] for r in metrics["rounds"]],
        "test": metrics["test"]["accuracy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delays", type=float, nargs="+", default=[2.0, 10.0])
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--local", action="store_true", help="also the bundled local TA")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ta_latency.json"))
    args = parser.parse_args()
    if any(delay <= 0 for delay in args.delays) or args.rows < 8:
        parser.error("--delays take seconds > 0 (a remote answer is never instant) and --rows >= 8")
    import torch

    os.environ.setdefault("OPENAI_API_KEY", "not-needed")
    work = Path(tempfile.mkdtemp(prefix="gpta-ta-latency-"))
    paths = data(work / "data", args.rows)
    process, upstream = start_llama_server(work / "server.log")
    proxy = ReplayProxy(upstream.removesuffix("/v1"))
    remote = {"backend": "openai", "base_url": proxy.url, "model": "smollm2"}
    runs = []
    try:
        proxy.delay = None
        recorded = run(work, "record", paths, remote)
        print(f"recorded {len(proxy.recorded)} answers", file=sys.stderr)
        for delay in args.delays:
            proxy.delay, proxy.misses, proxy.replays = delay, 0, 0
            row = run(work, f"replay-{delay:g}s", paths, remote)
            row.update(delay_seconds=delay, replays=proxy.replays, misses=proxy.misses)
            row["same_as_record"] = row["dev_curve"] == recorded["dev_curve"]
            runs.append(row)
            print(json.dumps(row), file=sys.stderr)
    finally:
        proxy.close()
        stop_process(process)
    if args.local:
        runs.append({**run(work, "local-sync", paths, {"backend": "local"}), "delay_seconds": None})
        print(json.dumps(runs[-1]), file=sys.stderr)
    report = {
        "machine": describe("cpu"),
        "torch_threads": torch.get_num_threads(),
        "train_rows": args.rows,
        "target": "ratio <= 1.10 at 2 s and 10 s",
        "runs": runs,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
