"""The leak guard: no request may carry a verbatim run of a training row's words.

Before a request is sent, its text is cut into word n-grams (``n`` = ``privacy.guard_ngram``,
default 8 consecutive word tokens) and each is looked up in a hash index of every n-gram of
every text field of every row the run read (train, dev and test: all of it is the user's
data). A hit that is not part of an allowed, redacted exemplar blocks the request.

Rows and requests are compared as the words :func:`gpta.privacy.normalize.word_tokens`
leaves (HTML tags and entities, apostrophes, invisible characters and combining marks, NFKC,
case, look-alike characters, punctuation and spacing are normalised away), so a row copied
as displayed (``&`` where the file has ``&amp;``, full-width letters, other quotes) or
disguised for a program but not for a reader (a variation selector after every character,
Cyrillic look-alikes) still matches. The index is built
once: token ids (a dict vocabulary, packed in an array), one 64-bit hash per window (random
per-token values times random per-position multipliers, summed modulo 2**64, vectorised in
numpy), sorted, with the window's position next to it. A lookup is a ``searchsorted`` per
request; a hash hit is confirmed token by token, so a hash collision can never block a
request. Rows shorter than ``n`` words cannot be matched; that
is the price of not flagging every common phrase.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from gpta.chat.base import Message
from gpta.privacy.normalize import word_spans, word_tokens

__all__ = ["LeakGuard", "LeakReport", "word_tokens"]

_SEED = 0x6770_7461  # fixed: hashes are only compared within one process


class _Vocabulary(dict[str, int]):
    """word -> id; an unseen word gets the next id."""

    def __missing__(self, word: str) -> int:
        self[word] = value = len(self)
        return value


@dataclass(frozen=True)
class LeakReport:
    """Why a request was blocked: which rows, how many windows, and where (no text)."""

    row_ids: list[str]
    windows: int
    spans: list[tuple[int, int, int]]  # (message index, first char, end char) per row, first hit

    def summary(self) -> str:
        shown = ", ".join(self.row_ids[:5]) + (" ..." if len(self.row_ids) > 5 else "")
        return (
            f"{self.windows} run(s) of words copied from {len(self.row_ids)} "
            f"training row(s): {shown}"
        )


class LeakGuard:
    """An n-gram hash index over row texts; :meth:`check` finds verbatim overlap."""

    def __init__(self, rows: Iterable[tuple[str, Sequence[str]]], *, n: int = 8) -> None:
        """``rows``: (row id, the row's text fields). Built once (see benchmarks/leak_guard.py)."""
        if n < 2:
            raise ValueError("the guard's n-gram length must be at least 2")
        self.n = n
        self.row_ids: list[str] = []
        vocab = _Vocabulary()
        lookup = vocab.__getitem__  # C-speed for known words; __missing__ adds a new one
        ids = array("q")  # token ids of every segment, back to back; no str kept per token
        seg_starts: list[int] = []
        seg_rows: list[int] = []
        for row_id, fields in rows:
            index = len(self.row_ids)
            self.row_ids.append(row_id)
            for text in fields:
                tokens = word_tokens(text)
                if len(tokens) >= n:
                    seg_starts.append(len(ids))
                    seg_rows.append(index)
                    ids.extend(map(lookup, tokens))
        self._vocab = dict(vocab)
        words = ids  # for the segment ends below
        self._tokens = np.frombuffer(ids, dtype=np.int64) if len(ids) else np.zeros(0, np.int64)
        rng = np.random.default_rng(_SEED)
        self._token_values = rng.integers(0, 2**63, size=len(vocab) + 1, dtype=np.uint64)
        self._multipliers = rng.integers(0, 2**63, size=n, dtype=np.uint64) * np.uint64(2) + 1
        self._seg_starts = np.asarray(seg_starts, dtype=np.int64)
        self._seg_rows = np.asarray(seg_rows, dtype=np.int64)
        seg_ends = np.append(self._seg_starts[1:], len(words)).astype(np.int64)
        hashes = self._window_hashes(self._tokens)
        if len(hashes):
            ends = np.repeat(seg_ends, seg_ends - self._seg_starts)[: len(hashes)]
            positions = np.nonzero(np.arange(len(hashes)) + n <= ends)[0]
        else:
            positions = np.zeros(0, dtype=np.int64)
        order = np.argsort(hashes[positions], kind="stable")
        self._positions = positions[order]
        self._hashes = hashes[self._positions]
        self._allowed = np.zeros(0, dtype=np.uint64)

    # --- building blocks -----------------------------------------------------------------
    @property
    def windows(self) -> int:
        """How many n-gram windows the index holds."""
        return len(self._hashes)

    def _window_hashes(self, ids: np.ndarray) -> np.ndarray:
        count = len(ids) - self.n + 1
        if count <= 0:
            return np.zeros(0, dtype=np.uint64)
        values = self._token_values[ids]
        hashes = np.zeros(count, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(self.n):
                hashes += values[j : j + count] * self._multipliers[j]
        return hashes

    def _ids(self, tokens: list[str]) -> np.ndarray:
        unknown = len(self._token_values) - 1
        return np.fromiter((self._vocab.get(t, unknown) for t in tokens), np.int64, len(tokens))

    def _query(self, text: str) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """Words of ``text``, their ids, window hashes, and which windows could be in the index."""
        words = word_tokens(text)
        ids = self._ids(words)
        hashes = self._window_hashes(ids)
        known = np.ones(len(hashes), dtype=bool)
        unknown = len(self._token_values) - 1
        for position in np.flatnonzero(ids == unknown).tolist():  # an unseen word: no copy
            known[max(0, position - self.n + 1) : position + 1] = False
        return words, ids, hashes, known

    # --- the policy's allowance ----------------------------------------------------------
    def allow(self, texts: Iterable[str]) -> None:
        """Word runs of these texts (the redacted exemplars) may be sent."""
        allowed = [self._window_hashes(self._ids(word_tokens(text))) for text in texts]
        joined = np.concatenate([self._allowed, *allowed]) if allowed else self._allowed
        self._allowed = np.unique(joined)

    # --- the check -----------------------------------------------------------------------
    def check_text(self, text: str) -> tuple[dict[int, tuple[int, int]], int]:
        """Rows (by index) whose word runs ``text`` copies, with the first copied span
        (first char, end char) of each, and how many of ``text``'s windows are copies."""
        if not len(self._hashes):
            return {}, 0
        words, ids, hashes, candidate = self._query(text)
        if not len(hashes):
            return {}, 0
        if len(self._allowed):
            candidate &= ~np.isin(hashes, self._allowed)
        queries = np.flatnonzero(candidate)
        left = np.searchsorted(self._hashes, hashes[queries], side="left")
        right = np.searchsorted(self._hashes, hashes[queries], side="right")
        counts = right - left
        if not counts.any():
            return {}, 0
        # every (query window, indexed window) pair with the same hash, checked at once
        pair_query = np.repeat(queries, counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        pair_start = self._positions[np.repeat(left, counts) + offsets]
        steps = np.arange(self.n)
        same = (self._tokens[pair_start[:, None] + steps] == ids[pair_query[:, None] + steps]).all(
            axis=1
        )  # a hash collision is not a copy
        pair_query, pair_start = pair_query[same], pair_start[same]
        segments = np.searchsorted(self._seg_starts, pair_start, side="right") - 1
        pair_row = self._seg_rows[segments]
        spans = word_spans(text)  # only on a hit: where in the original text each word is
        if [w for w, _, _ in spans] != words:  # cannot happen (a tested property); be safe
            spans = [(w, 0, len(text)) for w in words]
        found: dict[int, tuple[int, int]] = {}
        for q, row in zip(pair_query.tolist(), pair_row.tolist(), strict=True):
            if row not in found:  # pairs come in query order: the first copied span
                found[row] = (spans[q][1], spans[q + self.n - 1][2])
        copied = len(np.unique(pair_query))
        return found, copied

    def check(self, messages: list[Message]) -> LeakReport | None:
        """None when the request copies no row beyond the allowance, else what it copies."""
        rows: dict[int, tuple[int, int, int]] = {}
        windows = 0
        for index, message in enumerate(messages):
            found, copied = self.check_text(message.get("content", ""))
            windows += copied
            for row, (first, end) in found.items():
                rows.setdefault(row, (index, first, end))
        if not rows:
            return None
        ordered = sorted(rows)
        return LeakReport(
            row_ids=[self.row_ids[r] for r in ordered],
            windows=windows,
            spans=[rows[r] for r in ordered],
        )
