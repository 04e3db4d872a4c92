"""The one text normalisation the leak guard compares with, on both sides.

A data row and a request are compared as the words :func:`normalize_text` leaves, so a row
copied "as displayed" still matches the row "as stored": the index of the rows (built at run
start, and again by ``gpta audit --recheck``) and every request pass through this function
and nothing else. In order:

1. HTML tags (``<br />``, ``</p>``) become spaces;
2. HTML entities are unescaped (``&amp;`` -> ``&``, ``&#39;`` -> ``'``; repeated, so a
   doubly escaped ``&amp;amp;`` is ``&`` too);
3. apostrophes are dropped (``don't``, ``don’t`` and ``dont`` are one word) and invisible
   format characters (zero-width spaces and joiners, soft hyphens, bidi marks, BOM) removed;
4. Unicode NFKC (full-width letters, ligatures, superscripts, compatibility forms), then case
   folding (``Straße`` -> ``strasse``), then NFKC again;
5. every character that is not a letter or digit (punctuation, symbols, emoji, ``_``)
   separates words, and whitespace is collapsed.

What it does not undo: paraphrase, spelling changes, transliteration, accents removed
(``café`` and ``cafe`` differ), words split or joined differently (``e-mail`` vs ``email``).
"""

from __future__ import annotations

import functools
import html
import re
import sys
import unicodedata

_TAG = re.compile(r"</?[A-Za-z][^<>]{0,200}>")
_WORD = re.compile(r"[^\W_]+")  # letters and digits; everything else separates words
_CHUNK = re.compile(r"\S+")
_ALNUM = re.compile(r"[^\W_](?:.*[^\W_])?", re.DOTALL)  # first to last letter or digit
_APOSTROPHES = "'\u2018\u2019\u02bc\u02bb`\u00b4\u2032\uff07"


@functools.cache
def _dropped() -> dict[int, None]:
    """Apostrophes and every format (Cf) character: deleted, not turned into spaces."""
    drop = {ord(c): None for c in _APOSTROPHES}
    drop.update(
        (c, None) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf"
    )
    return drop


def _strip_tags(text: str) -> str:
    """HTML tags replaced by as many spaces (offsets into ``text`` stay valid)."""
    if "<" not in text:
        return text
    return _TAG.sub(lambda m: " " * len(m.group(0)), text)


def _words(text: str) -> list[str]:
    """Steps 2-5 on text whose tags are already gone."""
    for _ in range(3):  # &amp;amp; -> &amp; -> &
        if "&" not in text:
            break
        unescaped = html.unescape(text)
        if unescaped == text:
            break
        text = unescaped
    drop = _dropped()
    text = text.translate(drop)
    text = unicodedata.normalize("NFKC", text).casefold()
    text = unicodedata.normalize("NFKC", text).translate(drop)
    return _WORD.findall(text)


def normalize_text(text: str) -> str:
    """``text`` as the leak guard compares it: its words, normalised, one space apart."""
    return " ".join(_words(_strip_tags(text)))


def word_tokens(text: str) -> list[str]:
    """The words of :func:`normalize_text`, as a list."""
    return _words(_strip_tags(text))


def word_spans(text: str) -> list[tuple[str, int, int]]:
    """Each word of :func:`word_tokens` with the (start, end) in ``text`` of the
    whitespace-separated chunk it came from, less the chunk's leading and trailing
    punctuation (for telling the user *where* a copy is)."""
    spans = []
    for chunk in _CHUNK.finditer(_strip_tags(text)):
        words = _words(chunk.group(0))
        if words:
            start, end = chunk.span()
            inner = _ALNUM.search(chunk.group(0))
            if inner is not None:
                start, end = start + inner.start(), start + inner.end()
            spans.extend((word, start, end) for word in words)
    return spans
