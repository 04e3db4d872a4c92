"""YAML as gpta reads it: PyYAML's safe loader with aliases refused.

An alias (``*name``) makes the loaded value share the anchored node, so nine lines of
aliases of aliases expand to billions of values: a 2 kB "billion laughs" file took 46 s and
3.7 GB before its error. gpta's configs never need an alias (each option is written once),
so the loader refuses the first one it meets, before anything is expanded. Anchors alone
(``&name`` with no alias) are harmless and still read. The loader is PyYAML's own
:class:`yaml.SafeLoader` with one step changed, not a parser of our own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gpta.limits import CONFIG_BYTES, read_stream_bounded


class AliasRefused(yaml.YAMLError):
    """The document uses an alias (``*name``): refused, nothing was expanded."""

    def __init__(self, anchor: str, line: int) -> None:
        super().__init__(
            f"line {line}: an alias (*{anchor}) refers back to another part of the file; "
            "gpta reads no aliases (a few nested ones can expand to billions of values): "
            "write the value out where it is used"
        )
        self.anchor = anchor
        self.line = line
        self.problem = f"an alias (*{anchor}) at line {line}; gpta reads no aliases"


class NoAliasLoader(yaml.SafeLoader):
    """:class:`yaml.SafeLoader` that raises :class:`AliasRefused` at the first alias."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise AliasRefused(str(event.anchor), event.start_mark.line + 1)
        return super().compose_node(parent, index)


def safe_load(text: str) -> Any:
    """``yaml.safe_load(text)`` with aliases refused (:class:`AliasRefused`, a
    ``yaml.YAMLError``, so every caller's ``except yaml.YAMLError`` covers it)."""
    return yaml.load(text, Loader=NoAliasLoader)


def load_file(path: str | Path, *, what: str = "YAML file") -> Any:
    """The YAML file at ``path`` read within :data:`gpta.limits.CONFIG_BYTES` (a larger file
    is a :class:`GptaUserError` naming the bound), loaded by :func:`safe_load`. Reading
    errors stay what they were (``OSError``, ``UnicodeDecodeError``) for the caller to handle."""
    with open(path, "rb") as handle:
        data = read_stream_bounded(handle, name=f"{what} {path}", bound=CONFIG_BYTES)
    return safe_load(data.decode("utf-8"))
