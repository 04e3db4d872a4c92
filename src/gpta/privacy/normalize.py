"""The one text normalisation the leak guard compares with, on both sides.

A data row and a request are compared as the words :func:`normalize_text` leaves, so a row
copied "as displayed" still matches the row "as stored", and a row disguised for a program
but not for a reader still matches the row: the index of the rows (built at run start, and
again by ``gpta audit --recheck``) and every request pass through this function and nothing
else. In order:

1. HTML tags (``<br />``, ``</p>``) become spaces;
2. HTML entities are unescaped (``&amp;`` -> ``&``, ``&#39;`` -> ``'``; repeated, so a
   doubly escaped ``&amp;amp;`` is ``&`` too);
3. characters that look like ASCII letters become them, in their case (Greek ``ν`` ->
   ``v``), then Unicode NFKC (full-width letters, ligatures, superscripts, mathematical
   alphabets, compatibility forms), then case folding (``Straße`` -> ``strasse``);
4. what a reader does not see or reads through is deleted: every Default_Ignorable_Code_Point
   (variation selectors, zero-width spaces and joiners, soft hyphens, tag characters, Hangul
   fillers), every format character (bidi marks, BOM) and every combining mark (accents:
   ``café`` and ``cafe`` are one word), and apostrophes (``don't``, ``don’t`` and ``dont``);
5. the remaining look-alikes are folded to one character (:mod:`gpta.privacy.fold`, from
   Unicode's confusables data): Cyrillic ``а``/``о``/``р``, ``1``, ``l``, ``I`` and ``|``,
   ``rn`` and ``m`` all read as one;
6. every character that is not a letter or digit (punctuation, symbols, emoji, ``_``)
   separates words, and whitespace is collapsed.

What it does not undo: paraphrase, spelling changes, transliteration (Russian written in
Latin letters), words split or joined differently (``e-mail`` vs ``email``), look-alikes that
take several characters for one beyond ``rn``. The words it returns are keys, not text:
``hello`` comes back as ``heiio`` (``l`` folded with ``i``).
"""

from __future__ import annotations

import html
import re

from gpta.privacy.fold import reader_form

_TAG = re.compile(r"</?[A-Za-z][^<>]{0,200}>")
_WORD = re.compile(r"[^\W_]+")  # letters and digits; everything else separates words
_CHUNK = re.compile(r"\S+")
_ALNUM = re.compile(r"[^\W_](?:.*[^\W_])?", re.DOTALL)  # first to last letter or digit


def _strip_tags(text: str) -> str:
    """HTML tags replaced by as many spaces (offsets into ``text`` stay valid)."""
    if "<" not in text:
        return text
    return _TAG.sub(lambda m: " " * len(m.group(0)), text)


def _words(text: str) -> list[str]:
    """Steps 2-6 on text whose tags are already gone."""
    for _ in range(3):  # &amp;amp; -> &amp; -> &
        if "&" not in text:
            break
        unescaped = html.unescape(text)
        if unescaped == text:
            break
        text = unescaped
    return _WORD.findall(reader_form(text))


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
    if "\u202e" in text:  # a right-to-left override moves words across chunks: the whole
        return [(word, 0, len(text)) for word in word_tokens(text)]  # text is the place
    spans: list[tuple[str, int, int]] = []
    for chunk in _CHUNK.finditer(_strip_tags(text)):
        words = _words(chunk.group(0))
        if words:
            start, end = chunk.span()
            inner = _ALNUM.search(chunk.group(0))
            if inner is not None:
                start, end = start + inner.start(), start + inner.end()
            spans.extend((word, start, end) for word in words)
    return spans
