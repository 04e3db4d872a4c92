"""Text as a reader sees it: the character folding the leak guard compares rows and requests in.

Built once per process (about half a second) from two maintained tables, not written here:

* Unicode's confusables data (UTS #39, ``confusables.txt``), as shipped by the
  ``confusable-homoglyphs`` package: Cyrillic ``а``, Greek ``ν``, Cherokee ``Ꭺ``,
  mathematical ``𝐚`` and thousands more look-alikes;
* the character properties of the ``regex`` package (kept at the current Unicode version):
  every Default_Ignorable_Code_Point (variation selectors, zero-width characters, soft
  hyphen, tag characters, Hangul fillers, ...), every format character (Cf) and every
  combining mark (Mn, Me: accents, and marks stacked on letters to disguise them) is dropped.

:func:`reader_form` runs, in order: a character that looks like ASCII letters becomes them,
in its own case (Greek ``ν`` -> ``v``, ``Ν`` -> ``N``, long ``ſ`` -> ``f``); NFKC; again
(NFKC can uncover one); case folding; NFKC; then one table: dropped characters deleted, and
every remaining look-alike folded to one representative of its class.

Why two steps: UTS #39's look-alikes are case-sensitive (``Ν`` looks like ``N``, ``ν`` like
``v``) and the guard is case-insensitive. Mapping to ASCII before case folding keeps what
the reader saw. The classes of the table are closed under case (``В`` looks like ``B``, so
``в`` folds with ``b``), but the closure chains (``Β``-``β``-``ß`` ...) until unrelated
letters meet, so one rule bounds it: two classes that each hold a different ASCII letter
or digit are never joined, except where UTS #39 itself says two ASCII characters look alike
(``I``, ``l``, ``1`` and ``|``; ``0`` and ``O``; ``rn`` and ``m``). So genuine text in another
alphabet keeps its letters apart but for look-alikes (Russian ``с`` and Latin ``c`` are one
letter to the guard, ``ж`` stays ``ж``) and matches a row only when it copies one. The
price: a row in Greek or Cyrillic copied with its case changed can escape where upper and
lower case look like different Latin letters (``Η``/``η``: ``H``/``n``).

A letter that looks like ASCII punctuation (Lisu ``ꓸ`` for ``.``) becomes it, a symbol that
looks like an ASCII letter (``∣`` for ``l``) becomes that letter; whitespace is never
touched, so a word ends where the reader sees it end; the Hangul fillers, default-ignorable
but drawn as a blank, are spaces. Right-to-left overrides are applied first
(:func:`display_order`): ``\u202eolleh\u202c`` is drawn, and read, as ``hello``.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata

import regex

_APOSTROPHES = "'\u2018\u2019\u02bc\u02bb`\u00b4\u2032\uff07"
# default-ignorable, yet drawn as a blank the width of a letter: a reader sees a space
_BLANKS = "\u115f\u1160\u3164\uffa0"  # the Hangul fillers
_LRO, _RLO, _PDF = "\u202d", "\u202e", "\u202c"
_PARAGRAPH_ENDS = "\n\r\u0085\u2029"
_MAX_DEPTH = 125  # the Unicode bidi algorithm's; deeper overrides are ignored
_DROPPED = regex.compile(r"[\p{Default_Ignorable_Code_Point}\p{Cf}\p{Mn}\p{Me}]")
_DECOMPOSES = regex.compile(r"\p{NFD_Quick_Check=No}")
_CASED = regex.compile(r"\p{Changes_When_Casefolded}")
_WORD = regex.compile(r"[^\W_]")
_ANCHOR = regex.compile(r"[a-z0-9]+")  # ASCII letters and digits, after case folding
_ASCII_WORD = regex.compile(r"[A-Za-z0-9]+")
_LRM = "\u200e"  # the data writes right-to-left characters between two of these
_TRIES = 4  # values are folded until they stop changing; two rounds suffice in practice


def _all_characters() -> str:
    return "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c < 0xE000)


@functools.cache
def dropped() -> frozenset[str]:
    """Characters a reader does not see or reads through, and apostrophes: deleted."""
    found = frozenset(_DROPPED.findall(_all_characters())) | frozenset(_APOSTROPHES)
    return found - frozenset(_BLANKS)


@functools.cache
def _pairs() -> tuple[tuple[str, str], ...]:
    """UTS #39's look-alike pairs, each both ways round (the package stores them so)."""
    from confusable_homoglyphs.confusables import confusables_data

    return tuple(
        (key.replace(_LRM, ""), glyph["c"].replace(_LRM, ""))
        for key, glyphs in confusables_data.items()
        for glyph in glyphs
    )


@functools.cache
def _to_ascii() -> dict[int, str | None]:
    """A visible non-ASCII character -> the ASCII letters it looks like, case kept.

    A non-ASCII character paired with an ASCII string is that string's look-alike (UTS
    #39's prototypes are never the look-alike of an ASCII character but for ASCII ones)."""
    drop = dropped()
    table: dict[int, str | None] = {}
    for source, prototype in _pairs():
        if (
            len(source) == 1
            and not source.isascii()
            and source not in drop
            and _ASCII_WORD.fullmatch(prototype)
        ):
            table[ord(source)] = prototype
    return table


@functools.cache
def _early() -> dict[int, str | None]:
    """:func:`_to_ascii`, and dropped characters deleted before case folding can turn one
    into a letter (U+0345, a combining mark, case-folds to ``ι``)."""
    gone = dropped() | _vanishing()
    return {**{ord(c): None for c in gone}, **_to_ascii(), **_blanks()}


@functools.cache
def _apostrophe_letters() -> re.Pattern[str]:
    """Letters UTS #39 calls look-alikes of dropped characters (Hebrew yod, Canadian ᑊ, like
    an apostrophe), where they stand between two ASCII letters or digits (don\u05d9t): there
    they are the apostrophe, elsewhere letters of their alphabet."""
    drop = dropped()
    letters = {
        source
        for source, prototype in _pairs()
        if len(source) == 1
        and len(prototype) == 1
        and prototype in drop
        and unicodedata.category(source) in ("Lu", "Ll", "Lt", "Lo")
    }
    inner = "".join(sorted(letters)) or "\x00"
    return re.compile(f"(?<=[a-z0-9])[{re.escape(inner)}]+(?=[a-z0-9])")


@functools.cache
def _vanishing() -> frozenset[str]:
    """Visible characters UTS #39 calls look-alikes of dropped ones (Greek tonos and
    Armenian ՝ of an apostrophe, modifier letters of accents): dropped too, before NFKC
    (which turns the tonos into a space and an accent). Not the letters of an alphabet
    (Hebrew yod looks like an apostrophe, and is a letter)."""
    drop = dropped()
    return frozenset(
        source
        for source, prototype in _pairs()
        if len(source) == 1
        and len(prototype) == 1
        and prototype in drop
        and source not in drop
        and source not in _BLANKS
        and not source.isspace()
        and unicodedata.category(source) not in ("Lu", "Ll", "Lt", "Lo")
    )


def _blanks() -> dict[int, str]:
    return {ord(c): " " for c in _BLANKS}


def _strip(text: str, drop: frozenset[str]) -> str:
    return "".join(c for c in text if c not in drop)


def _before_table(text: str) -> str:
    """:func:`reader_form` up to the table."""
    early = _early()
    text = unicodedata.normalize("NFKC", text.translate(early)).translate(early)
    return unicodedata.normalize("NFKC", text.casefold())


@functools.cache
def _late() -> dict[int, str]:
    """:func:`_to_ascii` for what case folding made (``Σ`` -> ``σ``, which looks like ``o``;
    ``Γ`` -> ``γ``, like ``y``): in the table, ahead of the classes."""
    return {code: letters.casefold() for code, letters in _to_ascii().items() if letters}


def _prefold(text: str, drop: frozenset[str]) -> str:
    """What the table sees of ``text``, decomposed, dropped characters and marks gone,
    ASCII look-alikes that case folding made mapped."""
    text = _strip(unicodedata.normalize("NFD", _before_table(text)), drop)
    return _strip(unicodedata.normalize("NFD", text.translate(_late())), drop)


def _is_word(text: str) -> bool:
    return all(_WORD.match(c) for c in text)


def _is_anchor(text: str) -> bool:
    return _ANCHOR.fullmatch(text) is not None


class _Classes:
    """Union-find over look-alike strings that never joins two ASCII-holding classes
    unless told to."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.anchors: dict[str, frozenset[str]] = {}

    def find(self, x: str) -> str:
        root = x
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while self.parent.get(x, x) != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str, *, force: bool = False) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        aa = self.anchors.get(ra, frozenset({ra}) if _is_anchor(ra) else frozenset())
        ab = self.anchors.get(rb, frozenset({rb}) if _is_anchor(rb) else frozenset())
        if aa and ab and not force:
            return  # would make two different ASCII letters one
        self.parent[ra] = rb
        self.parent.setdefault(rb, rb)
        self.anchors[rb] = aa | ab

    def members(self) -> list[list[str]]:
        out: dict[str, list[str]] = {}
        for x in list(self.parent):
            out.setdefault(self.find(x), []).append(x)
        return list(out.values())


def _representative(members: list[str]) -> str:
    """A class's fold: an ASCII letter if it has one, else an ASCII digit, else an ASCII
    string (``ꜳ`` reads as ``aa``), else its smallest character."""
    singles = sorted(m for m in members if len(m) == 1)
    for pick in (str.isalpha, str.isdigit):
        ascii_ones = [m for m in singles if m.isascii() and pick(m)]
        if ascii_ones:
            return ascii_ones[0]
    strings = sorted((len(m), m) for m in members if len(m) > 1 and m.isascii())
    if strings:
        return strings[0][1]
    return singles[0] if singles else min(members)


@functools.cache
def fold_table() -> tuple[dict[int, str | None], tuple[tuple[str, str], ...]]:
    """(``str.translate`` table, ``str.replace`` pairs applied after it, longest first),
    for text that :func:`_before_table` has made."""
    drop = dropped()
    everything = _all_characters()  # 4 MB: not kept
    classes = _Classes()
    separators: dict[str, str] = {}  # a letter that looks like ASCII punctuation
    letter_like: dict[str, str] = {}  # a symbol that looks like a letter
    later: list[tuple[str, str]] = []
    spelled: dict[str, str] = {}  # one letter that looks like several
    for source, prototype in _pairs():
        a, b = _prefold(source, drop), _prefold(prototype, drop)
        if not a or not b or a == b or (len(a) > 1 and len(b) > 1):
            continue
        if any(c.isspace() for c in a + b):
            continue
        word_a, word_b = _is_word(a), _is_word(b)
        if word_a and word_b:
            if source.isascii() and prototype.isascii():
                classes.union(a, b, force=True)  # UTS #39's own ASCII look-alikes
            elif len(a) == 1 and len(b) == 1:  # not ß with "ss": that is case, not looks
                later.append((a, b))
            elif len(a) == 1 and source not in "ßẞ":  # ы looks like ƅi (ß is "ss" by case)
                spelled[a] = b
        elif len(a) == 1 and word_a != word_b:
            (letter_like if word_b else separators)[a] = b
    # case: В looks like B, so в folds with b (the rule above bounds where that leads)
    for char in _CASED.findall(everything):
        lower = char.casefold()
        if lower != char:
            a, b = _prefold(char, drop), _prefold(lower, drop)
            if a != b and len(a) == 1 and len(b) == 1 and _is_word(a) and _is_word(b):
                later.append((a, b))
    for a, b in later:
        classes.union(a, b)
    table: dict[int, str | None] = {ord(c): None for c in drop | _vanishing()}
    table.update(_blanks())
    replacements: list[tuple[str, str]] = []
    rep_of: dict[str, str] = {}
    for members in classes.members():
        rep = _representative(members)
        for member in members:
            rep_of[member] = rep
            if member == rep:
                continue
            if len(member) == 1:
                table[ord(member)] = rep
            elif member.isascii():
                replacements.append((member, rep))  # "rn" reads as "m"
    for char, letters in spelled.items():
        if char not in rep_of:
            table[ord(char)] = letters
    for char, letter in letter_like.items():  # the data holds each pair both ways round:
        if char not in rep_of and letter in rep_of and rep_of[letter].isascii():
            table[ord(char)] = rep_of[letter]  # only a symbol like an ASCII letter
    for char, mark in separators.items():
        if char not in rep_of and mark.isascii():
            table[ord(char)] = mark  # only a letter like ASCII punctuation
    table.update(_late())
    # precomposed letters (é, ǖ, Å): their parts' fold, marks dropped
    for char in _DECOMPOSES.findall(everything):
        code = ord(char)
        if code in table or 0xAC00 <= code <= 0xD7A3:  # Hangul syllables: jamo, no marks
            continue
        decomposed = unicodedata.normalize("NFD", char)
        parts = _strip(decomposed, drop)
        if parts and parts != decomposed:
            table[code] = unicodedata.normalize("NFC", parts)
    # every value folded as far as it goes, so that folding twice is folding once
    for code, value in list(table.items()):
        for _ in range(_TRIES):
            folded = value.translate(table) if value else value
            if folded == value:
                break
            value = folded
        table[code] = value or None
    # "rn" is looked for after the table has folded its letters
    pairs = {(old.translate(table), new.translate(table)) for old, new in replacements}
    ordered = sorted((pair for pair in pairs if pair[0] != pair[1]), key=lambda p: -len(p[0]))
    return table, tuple(ordered)


def display_order(text: str) -> str:
    """``text`` with its bidi overrides applied as a display draws them: what follows a
    right-to-left override (U+202E) up to its pop (U+202C) or the end of the paragraph is
    drawn reversed, so ``\u202eolleh\u202c`` reads ``hello``; a left-to-right override
    (U+202D) inside one stays a block in reading order. The controls themselves go. (Only
    the overrides: embeddings and isolates do not reorder the letters of one script.)"""
    if _RLO not in text:
        return text
    frames: list[tuple[str | None, list[tuple[str, bool]]]] = [(None, [])]

    def close() -> None:
        direction, pieces = frames.pop()
        if direction == "R":
            pieces = [(p if block else p[::-1], block) for p, block in reversed(pieces)]
        frames[-1][1].append(("".join(p for p, _ in pieces), True))

    for char in text:
        if char in (_LRO, _RLO):
            if len(frames) <= _MAX_DEPTH:
                frames.append(("R" if char == _RLO else "L", []))
        elif char == _PDF:
            if len(frames) > 1:
                close()
        else:
            if char in _PARAGRAPH_ENDS:
                while len(frames) > 1:
                    close()
            pieces = frames[-1][1]
            if pieces and not pieces[-1][1]:
                pieces[-1] = (pieces[-1][0] + char, False)
            else:
                pieces.append((char, False))
    while len(frames) > 1:
        close()
    return "".join(p for p, _ in frames[0][1])


def reader_form(text: str) -> str:
    """``text`` as the leak guard compares it, character by character: bidi overrides
    applied, look-alikes folded, NFKC, case folded, what a reader does not see deleted (see
    the module's docstring)."""
    # NFKC and the look-alike step leave ASCII as it is: case folding alone, much faster
    text = text.casefold() if text.isascii() else _before_table(display_order(text))
    table, replacements = fold_table()
    text = text.translate(table)
    if not text.isascii():
        text = _apostrophe_letters().sub("", text)
    for old, new in replacements:
        if old in text:
            text = text.replace(old, new)
    return text
