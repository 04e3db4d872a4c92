"""A persistent response cache for the teaching assistant (one SQLite file).

The key is a SHA-256 over everything that changes the answer: the backend's identity
(backend, base URL or weights folder, model), the messages, n, temperature, top_p, the
completion-token limit, the seed and the output schema when one is asked for (stored
answers keep how they were constrained: ``ChatResult.structured``). It never covers an API
key or a header, and the stored rows hold only the completions and their token counts.

Default file: ``<user cache dir>/gpta/llm-cache.sqlite`` (``GPTA_CACHE_DIR`` moves the cache
dir, ``GPTA_LLM_CACHE`` or ``assistant.cache_path`` name the file itself).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gpta.chat.base import (
    ChatModel,
    ChatResult,
    Message,
    Sampling,
    Usage,
    bound_answers,
    cache_identity,
)
from gpta.chat.structured import OutputSchema
from gpta.paths import llm_cache_path

CACHE_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    texts TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    seconds REAL NOT NULL,
    created REAL NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0
)
"""
# How a structured answer was constrained (ChatResult.structured); added to older files.
_STRUCTURED_COLUMN = "ALTER TABLE responses ADD COLUMN structured TEXT"


def cache_key(identity: dict[str, str], messages: list[Message], params: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of identity, messages and sampling parameters."""
    blob = json.dumps(
        {"v": CACHE_VERSION, "identity": identity, "messages": messages, "params": params},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CacheInfo:
    path: str
    exists: bool
    entries: int
    bytes: int
    hits: int
    models: dict[str, int]


class ResponseCache:
    """Thread-safe get/put of chat results in one SQLite file."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else llm_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        with self._lock, self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
            _add_structured_column(self._db)
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> ChatResult | None:
        with self._lock:
            row = self._db.execute(
                "SELECT texts, prompt_tokens, completion_tokens, seconds, structured "
                "FROM responses WHERE key = ?",
                (key,),
            ).fetchone()
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
            with self._db:
                self._db.execute("UPDATE responses SET hits = hits + 1 WHERE key = ?", (key,))
        texts, prompt_tokens, completion_tokens, seconds, structured = row
        return ChatResult(
            texts=json.loads(texts),
            usage=Usage(prompt_tokens, completion_tokens),
            seconds=seconds,
            cached=True,
            attempts=0,
            structured=structured,
        )

    def put(self, key: str, model: str, result: ChatResult) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, model, texts, prompt_tokens, "
                "completion_tokens, seconds, created, hits, structured) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
                (
                    key,
                    model,
                    json.dumps(result.texts, ensure_ascii=False),
                    result.usage.prompt_tokens,
                    result.usage.completion_tokens,
                    result.seconds,
                    time.time(),
                    result.structured,
                ),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _add_structured_column(db: sqlite3.Connection) -> None:
    columns = {row[1] for row in db.execute("PRAGMA table_info(responses)")}
    if "structured" not in columns:
        db.execute(_STRUCTURED_COLUMN)


def cache_info(path: str | Path | None = None) -> CacheInfo:
    """What the cache file holds (without creating it)."""
    path = Path(path) if path is not None else llm_cache_path()
    if not path.is_file():
        return CacheInfo(str(path), False, 0, 0, 0, {})
    db = sqlite3.connect(path)
    try:
        db.execute(_SCHEMA)
        entries, hits = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(hits), 0) FROM responses"
        ).fetchone()
        models = dict(db.execute("SELECT model, COUNT(*) FROM responses GROUP BY model").fetchall())
    finally:
        db.close()
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())
    return CacheInfo(str(path), True, entries, size, hits, models)


def clear_cache(path: str | Path | None = None) -> int:
    """Delete every cached response; returns how many there were."""
    path = Path(path) if path is not None else llm_cache_path()
    if not path.is_file():
        return 0
    db = sqlite3.connect(path)
    try:
        db.execute(_SCHEMA)
        (count,) = db.execute("SELECT COUNT(*) FROM responses").fetchone()
        with db:
            db.execute("DELETE FROM responses")
        db.execute("VACUUM")
    finally:
        db.close()
    return count


class CachedChatModel:
    """Wraps a backend: answers from the cache when it can, stores what the backend returns.

    Empty answers (every completion blank) are not stored, so a glitch is not replayed.
    """

    def __init__(self, inner: ChatModel, cache: ResponseCache) -> None:
        self.inner = inner
        self.cache = cache
        self.backend = inner.backend
        self.model_name = inner.model_name

    def __getattr__(self, name: str) -> Any:  # context_window, count_tokens, ...
        return getattr(self.inner, name)

    def chat(
        self,
        messages: list[Message],
        sampling: Sampling,
        *,
        schema: OutputSchema | None = None,
    ) -> ChatResult:
        params = sampling.as_dict()
        started = time.perf_counter()
        keyed = params if schema is None else {**params, "schema": json.loads(schema.key())}
        key = cache_key(cache_identity(self.inner), messages, keyed)
        hit = self.cache.get(key)
        if hit is not None:
            return replace(bound_answers(hit), seconds=time.perf_counter() - started)
        if schema is None:  # a backend (or a scripted test model) that knows no schemas
            result = self.inner.chat(messages, sampling)
        else:
            result = self.inner.chat(messages, sampling, schema=schema)
        from gpta.secrets import scrub_result  # an echoed API key is never stored

        result, _ = scrub_result(bound_answers(result))  # nor a runaway answer whole
        if any(text.strip() for text in result.texts) and len(result.texts) == sampling.n:
            self.cache.put(key, self.model_name, result)
        return result
