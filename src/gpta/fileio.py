"""Writing files without losing the user's: folders checked before anything is written,
files replaced atomically (a temporary file beside the target, then a rename).

Every failure is a :class:`GptaUserError` naming the path and the option it came from.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gpta.errors import GptaUserError


def check_dir_creatable(path: str | Path, option: str, *, fix: str | None = None) -> None:
    """Fail unless ``path`` is a folder or could be created; nothing is written.

    A file in its place, a file among its parents or a parent without write permission
    is named with the ``option`` that gave the path; ``fix`` replaces the default advice.
    """
    path = Path(path)
    hint = fix or f"choose another {option}"
    if path.exists() and not path.is_dir():
        raise GptaUserError(
            f"{option} {path} is a file, not a folder", hint=fix or f"{hint}, or move the file away"
        )
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise GptaUserError(
            f"{option} {path} cannot be created: {ancestor} is a file, not a folder", hint=hint
        )
    if not path.exists() and not os.access(ancestor, os.W_OK | os.X_OK):
        raise GptaUserError(
            f"{option} {path} cannot be created: no permission to write in {ancestor}",
            hint=hint,
        )


def make_dir(path: str | Path, option: str, *, fix: str | None = None) -> Path:
    """``mkdir -p path``, with a failure named after ``option``."""
    path = Path(path)
    check_dir_creatable(path, option, fix=fix)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GptaUserError(
            f"{option} {path} cannot be created ({err.strerror or err})",
            hint=fix or f"choose another {option}",
        ) from None
    return path


def check_file_writable(path: str | Path, option: str) -> None:
    """Fail unless a file could be written at ``path`` (its folder is made when written)."""
    path = Path(path)
    if path.is_dir():
        raise GptaUserError(
            f"{option} {path} is a folder, not a file", hint=f"give {option} a file name"
        )
    check_dir_creatable(
        path.parent, f"the folder of {option} {path}:", fix=f"give {option} another path"
    )


def write_text_atomic(path: str | Path, text: str, option: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it and a rename: a reader
    (or a crash) sees the old file or the new one, never half of one."""
    path = Path(path)
    check_file_writable(path, option)
    make_dir(path.parent, f"the folder of {option} {path}:", fix=f"give {option} another path")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise GptaUserError(
            f"{option} {path} could not be written ({err.strerror or err})",
            hint=f"choose another {option}",
        ) from None


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when ``a`` and ``b`` are one file (through links, ``..`` or relative paths)."""
    a, b = Path(a), Path(b)
    with contextlib.suppress(OSError):
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


# A write that fails for one of these is the disk's doing, not a bug: said in one line.
_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)
# torch's checkpoint writer reports a short write without its errno
_TORCH_WRITE_FAILED = ("unexpected pos", "file write failed", "iostream error")


def disk_write_error(err: BaseException) -> str | None:
    """Why a write failed, when the disk is to blame: full, over quota, read-only, or a file
    too large (an ``OSError`` with that errno, or a library's error that wraps one:
    safetensors says "No space left on device (os error 28)", torch's writer "unexpected
    pos"); None for any other error. Follows the exception's cause and context."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _DISK_ERRNOS:
            return os.strerror(current.errno)
        text = str(current)
        for code in _DISK_ERRNOS:
            if os.strerror(code) in text or f"os error {code})" in text:
                return os.strerror(code)
        if isinstance(current, RuntimeError) and any(s in text for s in _TORCH_WRITE_FAILED):
            detail = text.rpartition("] . ")[2][:120]  # after torch's "[enforce fail at ...]"
            return f"a write failed part-way (torch's checkpoint writer: {detail})"
        current = current.__cause__ or current.__context__
    return None


def read_json_record(path: Path, max_bytes: int = 16 * 2**20) -> dict[str, Any] | None:
    """A small JSON object gpta wrote, or None (missing, a link, over ``max_bytes``,
    unreadable, not an object)."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > max_bytes:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def object_at(record: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``record[key]`` when it is a JSON object (a dict), else an empty dict: a section of a
    file gpta wrote, read without trusting its shape."""
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def replace_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it and a rename; an
    ``OSError`` (a full disk) propagates as it is, with no temporary file left."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """``payload`` as indented UTF-8 JSON, non-ASCII kept as written: every JSON file gpta writes
    for a reader (splits.json, metrics.json, gpta.json, cards.json, the exported labels)."""
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
