"""Size bounds on everything gpta reads, in one place, and reading within them.

Every input a user (or a server) controls is checked against a bound *before* it is read
whole: a file's size before its bytes, a line's length while it is read, a TA answer's bytes
while they arrive. Going over a bound is a :class:`GptaUserError` that names the input, the
bound and the environment variable that raises it (docs/input-bounds.md lists them all).

Decision: the bounds are raised with environment variables (``GPTA_MAX_...``), not config
options. They guard the machine, not the experiment: a run's result never depends on them
(an input within every bound is read exactly as before), so they do not belong in the run's
recorded config.yaml; and one mechanism then covers the inputs read before any config
exists (the config file itself, ``gpta predict``'s stdin).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from gpta.errors import GptaUserError

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


@dataclass(frozen=True)
class Bound:
    """One size bound: its environment variable, its default and its unit."""

    env: str
    default: int
    unit: str  # "bytes", "characters", "tokens", "labels"

    def value(self) -> int:
        """The bound in force: ``$env`` when set (a whole number above 0), else the default."""
        raw = os.environ.get(self.env, "").strip()
        if not raw:
            return self.default
        try:
            value = int(raw.replace(",", "").replace("_", ""))
        except ValueError:
            value = 0
        if value < 1:
            raise GptaUserError(
                f"{self.env}={raw!r} is not a whole number of {self.unit} above 0",
                hint=f"set {self.env} to a number such as {self.default} (the default), "
                f"or unset it",
            )
        return value

    def raise_hint(self, extra: str = "") -> str:
        """How to raise this bound (and, with ``extra``, the other way out)."""
        now = self.value()
        how = f"raise the bound with {self.env}=N (now {now:,} {self.unit}; e.g. "
        how += f"export {self.env}={now * 4})"
        return f"{extra}, or {how}" if extra else how

    def error(
        self, subject: str, size: str, limit: int, *, fix: str = "", unit: str | None = None
    ) -> GptaUserError:
        """``subject`` holds ``size``, over ``limit`` (this bound's value, or one derived from
        it in ``unit``): the user error to raise."""
        return GptaUserError(
            f"{subject}: {size}; gpta reads at most {limit:,} {unit or self.unit} ({self.env})",
            hint=self.raise_hint(fix),
        )


#: a data file (CSV, TSV, JSONL, Parquet uncompressed, a datasets split), predict's input
DATA_BYTES = Bound("GPTA_MAX_DATA_BYTES", 1 * GIB, "bytes")
#: one line of a data file (a JSONL row; a physical line of CSV/TSV; predict's input)
LINE_BYTES = Bound("GPTA_MAX_LINE_BYTES", 16 * MIB, "bytes a line")
#: a config file, a --set value, a run's config.yaml, a saved model's gpta.json
CONFIG_BYTES = Bound("GPTA_MAX_CONFIG_BYTES", 1 * MIB, "bytes")
#: the dataset description the TA reads (gpta's estimate: ~3 characters a token)
DESCRIPTION_TOKENS = Bound("GPTA_MAX_DESCRIPTION_TOKENS", 4096, "tokens")
#: a description file is read up to this many bytes a token of DESCRIPTION_TOKENS
DESCRIPTION_BYTES_PER_TOKEN = 16
#: one HTTP response body of an OpenAI-compatible server
RESPONSE_BYTES = Bound("GPTA_MAX_RESPONSE_BYTES", 8 * MIB, "bytes")
#: one TA completion, as kept (ledger, history, cache, prompts)
ANSWER_CHARS = Bound("GPTA_MAX_ANSWER_CHARS", 100_000, "characters")
#: a saved prefix (prefix library entry, warm start, gpta.json)
PREFIX_CHARS = Bound("GPTA_MAX_PREFIX_CHARS", 32_768, "characters")
#: the classes of a classification task
CLASSES = Bound("GPTA_MAX_CLASSES", 1000, "labels")
#: no server's token count for one request is believed above this (not raisable: the
#: largest context windows hold a few million tokens)
MAX_TOKENS_PER_CALL = 10**9

BOUNDS = (
    DATA_BYTES,
    LINE_BYTES,
    CONFIG_BYTES,
    DESCRIPTION_TOKENS,
    RESPONSE_BYTES,
    ANSWER_CHARS,
    PREFIX_CHARS,
    CLASSES,
)

_CHUNK = 1 * MIB


def read_file_bounded(
    path: str | Path,
    *,
    what: str,
    bound: Bound = DATA_BYTES,
    limit: int | None = None,
    lines: Bound | None = None,
    fix: str = "",
) -> bytes:
    """The bytes of the file at ``path``, read in chunks and never more than the bound.

    A regular file larger than the bound is refused from its size alone, before a byte is
    read; anything else (a FIFO, ``/dev/zero``, a ``/proc`` file whose size says 0) is read
    in chunks and refused as soon as it passes the bound. With ``lines``, a line longer
    than that bound is refused too, naming the line. ``what`` names the input in messages
    (``"data file"``); ``limit`` overrides ``bound.value()`` (a derived bound); ``fix`` is the
    other way out the hint offers (``"split the file"``).

    Raises:
        GptaUserError: over a bound, or unreadable (``OSError``, named with the path).
    """
    limit = bound.value() if limit is None else limit
    try:
        with open(path, "rb") as handle:
            return read_stream_bounded(
                handle, name=f"{what} {path}", bound=bound, limit=limit, lines=lines, fix=fix
            )
    except IsADirectoryError:
        raise GptaUserError(
            f"{what} {path} is a directory, not a file", hint="pass the file itself"
        ) from None
    except FileNotFoundError:
        raise GptaUserError(f"{what} not found: {path}", hint="check the path") from None
    except OSError as err:
        raise GptaUserError(
            f"{what} {path} could not be read ({err.strerror or err})",
            hint="check the file's permissions",
        ) from None


def read_stream_bounded(
    handle: BinaryIO,
    *,
    name: str,
    bound: Bound = DATA_BYTES,
    limit: int | None = None,
    lines: Bound | None = None,
    fix: str = "",
) -> bytes:
    """Read ``handle`` to its end in chunks, refusing it once it passes ``bound`` (or a line
    passes ``lines``); a regular file over the bound is refused from its size, unread.
    ``name`` names it in messages (``"stdin"``)."""
    limit = bound.value() if limit is None else limit
    size = _regular_size(handle)
    if size is not None and size > limit:
        raise bound.error(name, f"{size:,} bytes", limit, fix=fix, unit="bytes")
    gauge = _LineGauge(name, lines) if lines is not None else None
    chunks: list[bytes] = []
    total = 0
    # in chunks, so that a bound stops the read early (a 10 GB line of a file under a raised
    # GPTA_MAX_DATA_BYTES is refused at GPTA_MAX_LINE_BYTES, not after 10 GB are in memory);
    # the chunks and their join hold twice the bytes for a moment, no more than decoding them
    # into text does afterwards
    while True:
        chunk = handle.read(min(_CHUNK, limit + 1 - total))
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise bound.error(name, f"more than {limit:,} bytes", limit, fix=fix, unit="bytes")
        if gauge is not None:
            gauge.feed(chunk)
        chunks.append(chunk)
    return b"".join(chunks)


def _regular_size(handle: BinaryIO) -> int | None:
    """The size of the regular file behind ``handle``; None for anything else (a pipe, a
    device, an in-memory stream), whose size says nothing of what reading it yields."""
    try:
        info = os.fstat(handle.fileno())
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


class _LineGauge:
    """Fed a stream's chunks in order; raises once a line passes ``lines``.

    Only newline positions are looked at (``bytes.find`` and ``count``, in C): a line of the
    chunk is measured one by one only when the chunk's first and last newlines are further
    apart than the bound, which no chunk of a bound above the chunk size can be."""

    def __init__(self, name: str, lines: Bound) -> None:
        self.name, self.bound, self.limit = name, lines, lines.value()
        self.line, self.open = 1, 0  # the line being read, and its bytes so far

    def _refuse(self, line: int) -> GptaUserError:
        return self.bound.error(
            f"{self.name}, line {line}",
            f"longer than {self.limit:,} bytes",
            self.limit,
            fix="check that this is the file you meant (text with one row a line)",
        )

    def feed(self, chunk: bytes) -> None:
        first = chunk.find(b"\n")
        if first < 0:
            self.open += len(chunk)
            if self.open > self.limit:
                raise self._refuse(self.line)
            return
        if self.open + first > self.limit:
            raise self._refuse(self.line)
        last = chunk.rfind(b"\n")
        if last - first - 1 > self.limit:  # a line between them may be too long: measure each
            line, start = self.line + 1, first + 1
            while start <= last:
                end = chunk.find(b"\n", start)
                if end - start > self.limit:
                    raise self._refuse(line)
                line, start = line + 1, end + 1
        self.line += chunk.count(b"\n")
        self.open = len(chunk) - last - 1
        if self.open > self.limit:
            raise self._refuse(self.line)
