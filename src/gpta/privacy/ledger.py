"""The exposure ledger: an append-only record of every byte sent to an LLM.

Each request is written *before* it is sent, with flush and fsync, so a crash
right after a send cannot lose it. The response is appended when it arrives.

Events, one JSON object a line: ``policy`` (written once at run start: the exposure
policy, the allowed exemplar row ids, the guard's n), ``request`` (the full messages, their
SHA-256, the row ids they carry), ``response``, ``error``, and ``blocked`` (a request the
leak guard stopped, not sent: its hash, size and ``copied_row_ids``, never its text). Every record
is passed through :func:`gpta.privacy.secrets.scrub_obj` first; a record that held a
secret-shaped string is marked ``"scrubbed": true``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from gpta.llm.base import Message
from gpta.privacy.secrets import scrub_obj


def messages_hash(messages: list[Message]) -> str:
    """A stable SHA-256 of a conversation."""
    blob = json.dumps(messages, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


class ExposureLedger:
    """Appends JSON lines to ``exposure.jsonl`` in the run directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._next_id = self._count_requests() + 1

    def _count_requests(self) -> int:
        if not self.path.exists():
            return 0
        with self.path.open(encoding="utf-8") as handle:
            return sum(
                1 for line in handle if '"event": "request"' in line or '"event": "blocked"' in line
            )

    def _append(self, record: dict[str, Any]) -> None:
        clean = scrub_obj(record)
        if clean != record:
            clean["scrubbed"] = True
        line = json.dumps(clean, ensure_ascii=False) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def record_request(
        self,
        *,
        backend: str,
        model: str,
        messages: list[Message],
        row_ids: list[str],
        params: dict[str, Any],
        **details: Any,
    ) -> int:
        """Record a request about to be sent; returns its id (``details``: e.g. the policy)."""
        with self._lock:
            request_id = self._next_id
            self._next_id += 1
        self._append(
            {
                "event": "request",
                "id": request_id,
                "time": time.time(),
                "backend": backend,
                "model": model,
                "messages": messages,
                "sha256": messages_hash(messages),
                "chars": sum(len(m["content"]) for m in messages),
                "row_ids": row_ids,
                "params": params,
                **details,
            }
        )
        return request_id

    def record_policy(self, **policy: Any) -> None:
        """The exposure policy the run's requests are held to (once, before any request)."""
        self._append({"event": "policy", "time": time.time(), **policy})

    def record_block(
        self,
        *,
        backend: str,
        model: str,
        messages: list[Message],
        copied_row_ids: list[str],
        reason: str,
        **details: Any,
    ) -> int:
        """Record a request the leak guard stopped; it was not sent. Its text is not kept."""
        with self._lock:
            request_id = self._next_id
            self._next_id += 1
        self._append(
            {
                "event": "blocked",
                "id": request_id,
                "time": time.time(),
                "backend": backend,
                "model": model,
                "sha256": messages_hash(messages),
                "chars": sum(len(m["content"]) for m in messages),
                "copied_row_ids": copied_row_ids,
                "reason": reason,
                **details,
            }
        )
        return request_id

    def record_response(
        self,
        request_id: int,
        *,
        texts: list[str],
        usage: dict[str, int],
        seconds: float,
        **details: Any,
    ) -> None:
        """Record what came back for a request (``details``: cached, attempts, faults)."""
        self._append(
            {
                "event": "response",
                "id": request_id,
                "time": time.time(),
                "texts": texts,
                "usage": usage,
                "seconds": round(seconds, 4),
                **details,
            }
        )

    def record_error(self, request_id: int, error: str, **details: Any) -> None:
        """Record that a request failed."""
        self._append(
            {"event": "error", "id": request_id, "time": time.time(), "error": error, **details}
        )
