"""The exposure ledger: an append-only, hash-chained record of every byte sent to an LLM.

Each request is written *before* it is sent, with flush and fsync, so a crash right after a
send cannot lose it. The response is appended when it arrives.

Events, one JSON object a line: ``policy`` (written at run start: the exposure policy, the
allowed exemplar row ids, the guard's n), ``request`` (the full messages exactly as sent,
their SHA-256, the row ids they carry, what the channel replaced in them, as counts),
``response``, ``error``, and ``blocked`` (a request the leak guard stopped, not sent: its
hash, size and ``copied_row_ids``, never its text). Every record is passed through
:func:`gpta.secrets.scrub_obj` first; a record that still held a secret-shaped
string is marked ``"scrubbed": true`` (the channel scrubs requests before they are sent,
so its request records never are: they hold what left the machine).

**Hash chain.** Every record carries ``prev`` (the ``hash`` of the record before it; 64
zeros for the first) and ``hash``: the SHA-256 of the record's canonical JSON (keys sorted,
no spaces, UTF-8) without its ``hash`` field, so the hash covers ``prev`` too. Editing,
deleting, inserting or reordering a record breaks the chain at that point; removing records
from the end is caught by the seal: the run's metrics.json records the final hash and the
number of records (:meth:`ExposureLedger.seal`). Anyone who can rewrite the files can also
recompute every hash and the seal: the chain shows careless or partial edits, it is not a
signature.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from gpta.chat.base import Message
from gpta.secrets import scrub_obj

GENESIS = "0" * 64


def messages_hash(messages: list[Message]) -> str:
    """A stable SHA-256 of a conversation."""
    blob = json.dumps(messages, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def canonical_json(record: dict[str, Any]) -> bytes:
    """The bytes a record's hash is taken over: sorted keys, no spaces, UTF-8."""
    return json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8"
    )


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 of the record without its own ``hash`` field (its ``prev`` included)."""
    return hashlib.sha256(
        canonical_json({k: v for k, v in record.items() if k != "hash"})
    ).hexdigest()


class ExposureLedger:
    """Appends hash-chained JSON lines to ``exposure.jsonl`` in the run directory.

    Opening an existing ledger (a resumed run) continues its chain. A last line cut short
    by a crash (no newline, not JSON) is removed first: it was never a whole record, and a
    request is only sent after its whole record is on disk.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._last = GENESIS
        self._records = 0
        last_id = 0
        if self.path.exists():
            self._drop_cut_tail()
            with self.path.open("rb") as handle:
                for raw in handle:
                    try:
                        record = json.loads(raw.decode("utf-8", "replace"))
                    except json.JSONDecodeError:
                        continue
                    if not isinstance(record, dict):
                        continue
                    self._records += 1
                    self._last = str(record.get("hash") or record_hash(record))
                    if record.get("event") in ("request", "blocked"):
                        value = record.get("id")
                        last_id = max(last_id, value if isinstance(value, int) else 0)
        self._next_id = last_id + 1

    def _drop_cut_tail(self) -> None:
        with self.path.open("rb+") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return
            handle.seek(max(0, size - 1))
            if handle.read(1) == b"\n":
                return
            handle.seek(max(0, size - 65536))
            tail = handle.read()
            start = size - len(tail) + tail.rfind(b"\n") + 1
            handle.seek(start)
            try:
                json.loads(handle.read().decode("utf-8"))
                complete = True
            except (UnicodeDecodeError, json.JSONDecodeError):
                complete = False
            if complete:  # a whole record whose newline was lost
                handle.seek(0, os.SEEK_END)
                handle.write(b"\n")
            else:
                handle.truncate(start)
            handle.flush()
            os.fsync(handle.fileno())

    def _append(self, record: dict[str, Any]) -> None:
        clean = scrub_obj(record)
        if clean != record:
            clean["scrubbed"] = True
        with self._lock:
            clean["prev"] = self._last
            clean["hash"] = record_hash(clean)
            line = json.dumps(clean, ensure_ascii=False) + "\n"
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            self._last = clean["hash"]
            self._records += 1

    def seal(self) -> dict[str, Any]:
        """The final hash and the number of records: the run writes them to metrics.json,
        and ``gpta audit`` compares them with the ledger (records removed from its end)."""
        with self._lock:
            return {"ledger_sha256": self._last, "ledger_records": self._records}

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
        """Record a request about to be sent; returns its id (``details``: e.g. the policy).

        The hash is taken over the messages as recorded. A caller that did not scrub them
        first (the channel always does) gets them scrubbed here and the record marked
        ``scrubbed``: it then does not hold exactly what was sent."""
        recorded = scrub_obj(messages)
        if recorded != messages:
            details["scrubbed"] = True
        messages = recorded
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
