"""When two label values are one class (docs/meaning.md, "Labels").

A label is compared by its *key*, the text a reader sees:

* a number by its shortest decimal text: ``1``, ``1.0``, a numpy int and the texts ``"1"``,
  ``"1.0"`` and ``"01"`` are one class (CSV files hold text, JSON Lines numbers: the same
  column reads either way);
  ``true``/``false`` and the texts ``"true"``/``"false"`` likewise;
* a text without what a reader cannot see: surrounding white space, invisible format
  characters (Unicode category Cf: zero-width spaces, a byte-order mark) and the difference
  between Unicode's composed and decomposed forms (NFC).

A class's value (what the manifest stores and predictions print) is the number when any of
its spellings is one, else the key. Spellings that are not their class's value are read as
it with a warning (:func:`read_labels`). Letter case and compatibility forms (full-width
letters, ligatures) are *not* folded: ``pos``, ``POS`` and ``ｐｏｓ`` may be one class written
carelessly or several classes, so gpta refuses the data and names the spellings and their
rows (:func:`read_labels`), rather than guess.
"""

from __future__ import annotations

import numbers
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gpta.errors import GptaUserError

__all__ = ["LabelIndex", "label_key", "label_values", "read_labels", "shown"]

_SHOWN_ROWS = 3  # rows named per spelling in a warning or an error
_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")  # ASCII digits only


def label_key(value: Any) -> str:
    """The text two labels are compared by (see the module doc)."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    if isinstance(value, str):
        text = unicodedata.normalize("NFC", value)
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf").strip()
        if len(text) <= 40 and _NUMBER.fullmatch(text):  # "1.0", "01", "+1": the number's key
            return label_key(float(text)) if not text.lstrip("+-").isdigit() else str(int(text))
        return text
    return str(value)


def _folded(key: str) -> str:
    """A key without letter case and compatibility forms (``ｐｏｓ``, ``POS`` and ``pos`` are
    alike): visible differences, which gpta refuses rather than merge."""
    return unicodedata.normalize("NFKC", key).casefold()


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _plain(value: Any) -> Any:
    """A number as a plain Python int or float (numpy's as Python's), a bool as a bool."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return int(number) if number.is_integer() else number
    return value


def _class_value(key: str, spellings: Iterable[Any]) -> Any:
    """A class's value: its first non-text spelling as a plain number, else its key."""
    for value in spellings:
        if not _is_text(value):
            return _plain(value)
    return key


def _ordered(values: Iterable[Any]) -> list[Any]:
    """Numbers in numeric order when every class is an int, else by their text."""
    values = list(values)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return sorted(values)
    return sorted(values, key=str)


def label_values(values: Iterable[Any]) -> list[Any]:
    """The classes of ``values``, one per key, in gpta's order (no checks, no warnings)."""
    spellings: dict[str, list[Any]] = {}
    for value in values:
        spellings.setdefault(label_key(value), []).append(value)
    return _ordered(_class_value(key, found) for key, found in spellings.items())


_UNSEEN = ("Cf", "Mn", "Me", "Zs", "Zl", "Zp", "Cc")  # invisible, combining, spaces


def shown(value: Any) -> str:
    """``repr(value)`` with what a reader cannot see written as ``\\uXXXX`` (repr already
    escapes most; a combining accent it leaves as is), so two spellings never print alike."""
    return "".join(
        f"\\u{ord(ch):04x}" if ch != " " and unicodedata.category(ch) in _UNSEEN else ch
        for ch in repr(value)
    )


@dataclass
class _Spelling:
    value: Any
    rows: int = 0
    where: list[str] = field(default_factory=list)

    def shown(self) -> str:
        first = ", ".join(self.where)
        more = ", ..." if self.rows > len(self.where) else ""
        rows = f"{self.rows} row{'s' if self.rows != 1 else ''}"
        return f"{shown(self.value)} ({rows}: {first}{more})"


def _spellings(
    columns: Sequence[tuple[str, Sequence[Any], Sequence[str]]],
) -> dict[str, dict[tuple[str, Any], _Spelling]]:
    """key -> each distinct spelling (by type and value) with its row count and first rows."""
    found: dict[str, dict[tuple[str, Any], _Spelling]] = {}
    for source, values, locations in columns:
        for value, where in zip(values, locations, strict=True):
            spelling = (type(value).__name__, value)
            entry = found.setdefault(label_key(value), {}).setdefault(spelling, _Spelling(value))
            entry.rows += 1
            if len(entry.where) < _SHOWN_ROWS:
                entry.where.append(f"{source} {where}")
    return found


def _read_as(spelling: _Spelling, value: Any) -> str | None:
    """How a spelling read as class ``value`` is named in the warning; None when it is the
    class's own value (or a number read as a number: 1.0 as 1 changes nothing)."""
    if _is_text(spelling.value) and (not _is_text(value) or spelling.value != value):
        return f"{spelling.shown()} as {shown(value)}"
    return None


def _warning(column: str, normalised: list[str]) -> str | None:
    if not normalised:
        return None
    return (
        f"labels in column {column!r} written in more than one way were each read as one "
        "class (white space, invisible characters and numbers written as text do not make "
        f"a class; docs/meaning.md): {'; '.join(normalised)}"
    )


@dataclass(frozen=True)
class LabelReading:
    """The classes of a label column and the spellings read as another (for a warning)."""

    labels: list[Any]
    normalised: list[str]  # "' pos' (3 rows: ...) as 'pos'", one per spelling read otherwise

    def warning(self, column: str) -> str | None:
        """One warning naming every spelling read as another, or None."""
        return _warning(column, self.normalised)


def read_labels(
    columns: Sequence[tuple[str, Sequence[Any], Sequence[str]]], *, column: str
) -> LabelReading:
    """The classes of ``columns`` ((source, values, locations) per table) and the spellings
    read as another. Two spellings that differ only in letter case are a
    :class:`GptaUserError` naming both and their rows."""
    found = _spellings(columns)
    by_case: dict[str, list[str]] = {}
    for key in found:
        by_case.setdefault(_folded(key), []).append(key)
    for keys in by_case.values():
        if len(keys) > 1:
            shown = " and ".join("; ".join(s.shown() for s in found[key].values()) for key in keys)
            raise GptaUserError(
                f"labels in column {column!r} differ only in letter case or character form "
                f"(full-width, ligatures): {shown}; gpta will not guess whether they are one "
                "class or several",
                hint="write each class one way in the data (e.g. all lower case); classes "
                "that are really different need names that differ in more than case",
            )
    labels: dict[str, Any] = {}
    normalised: list[str] = []
    for key, spellings in found.items():
        value = _class_value(key, (s.value for s in spellings.values()))
        labels[key] = value
        normalised += filter(None, (_read_as(s, value) for s in spellings.values()))
    return LabelReading(_ordered(labels.values()), normalised)


class LabelIndex:
    """Class id of a label value by its key; a saved model's labels that share a key (a
    model trained before this rule) are matched by exact value first."""

    def __init__(self, labels: Sequence[Any]) -> None:
        self.labels = list(labels)
        self._by_key: dict[str, int] = {}
        self._exact: dict[tuple[str, Any], int] = {}
        for i, label in enumerate(self.labels):
            self._by_key.setdefault(label_key(label), i)
            self._exact[(type(label).__name__, label)] = i

    def get(self, value: Any) -> int | None:
        """The class id of ``value``, or None when no class has its key."""
        try:
            exact = self._exact.get((type(value).__name__, value))
        except TypeError:  # an unhashable value: no class
            return None
        return exact if exact is not None else self._by_key.get(label_key(value))

    def near_miss(self, value: Any) -> Any | None:
        """A known class whose key differs from ``value``'s only in letter case."""
        folded = _folded(label_key(value))
        for label in self.labels:
            if _folded(label_key(label)) == folded:
                return label
        return None

    def normalised_warning(
        self, values: Sequence[Any], locations: Sequence[str], source: str, *, column: str
    ) -> str | None:
        """The warning naming the labels of ``values`` read as a class written otherwise
        (``gpta eval``'s file against a saved model), or None; unknown labels are skipped
        (:meth:`get` is None: the caller refuses them)."""
        normalised: list[str] = []
        for spellings in _spellings([(source, values, locations)]).values():
            for spelling in spellings.values():
                found = self.get(spelling.value)
                if found is not None:
                    normalised += filter(None, [_read_as(spelling, self.labels[found])])
        return _warning(column, normalised)
