"""The leak guard: verbatim runs of a row's words are found, everything else passes; rows
and requests are compared after one normalisation (HTML, NFKC, case, invisible characters,
combining marks, look-alike characters, bidi overrides, punctuation, spacing)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpta.privacy.guard import LeakGuard, word_tokens
from gpta.privacy.normalize import normalize_text, word_spans

ROWS = [
    ("t:line 1", ["The waiter ignored us for an hour and then brought the wrong order", "neg"]),
    ("t:line 2", ["Lovely staff, clean rooms and a great breakfast every single morning", "pos"]),
    ("t:line 3", ["short row", "neg"]),
    ("t:line 4", ["Mail me at jane@corp.com about the broken shower in room 12, it leaks", "neg"]),
]


def _user(text: str) -> list[dict]:
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]


@pytest.fixture
def guard() -> LeakGuard:
    return LeakGuard(ROWS, n=8)


def test_words_are_casefolded_word_runs():
    assert word_tokens("Don't STOP, it's 9am!") == ["dont", "stop", "its", "9am"]


def test_clean_request_passes(guard):
    assert guard.check(_user("Hotel reviews labelled pos or neg. Write an instruction.")) is None


def test_pasted_row_is_found_despite_case_and_punctuation(guard):
    text = "Data: reviews such as 'lovely STAFF; clean rooms and a great breakfast, every day'."
    report = guard.check(_user(text))
    assert report is not None
    assert report.row_ids == ["t:line 2"]
    assert report.windows == 2  # 'lovely .. breakfast' and 'staff .. every'
    index, first, end = report.spans[0]
    assert index == 1 and text[first:end].lower().startswith("lovely staff")


def test_seven_words_pass_eight_block(guard):
    assert guard.check(_user("ignored us for an hour and then")) is None  # 7 words
    report = guard.check(_user("ignored us for an hour and then brought"))  # 8 words
    assert report is not None and report.row_ids == ["t:line 1"]


def test_n_is_configurable():
    strict = LeakGuard(ROWS, n=4)
    assert strict.check(_user("for an hour and")).row_ids == ["t:line 1"]
    with pytest.raises(ValueError):
        LeakGuard(ROWS, n=1)


def test_windows_do_not_span_fields_or_rows(guard):
    # end of row 1 + start of row 2: each side shorter than 8 words
    assert guard.check(_user("then brought the wrong order lovely staff clean rooms")) is None


def test_allowed_exemplar_passes_but_its_unredacted_form_does_not(guard):
    redacted = "Mail me at [EMAIL] about the broken shower in room 12, it leaks"
    assert guard.check(_user(redacted)).row_ids == ["t:line 4"]
    guard.allow([redacted])
    assert guard.check(_user(f"Example: {redacted}")) is None
    # the raw row carries the address: its windows around it were never allowed
    report = guard.check(_user("Mail me at jane@corp.com about the broken shower"))
    assert report is not None and report.row_ids == ["t:line 4"]
    # other rows stay protected
    assert guard.check(_user("The waiter ignored us for an hour and then")).row_ids == ["t:line 1"]


def test_rows_in_several_messages_are_all_reported(guard):
    messages = [
        {"role": "system", "content": "The waiter ignored us for an hour and then brought it"},
        {"role": "user", "content": "a great breakfast every single morning, clean rooms and a"},
        {"role": "user", "content": "Lovely staff, clean rooms and a great breakfast"},
    ]
    report = guard.check(messages)
    assert report.row_ids == ["t:line 1", "t:line 2"]
    assert report.spans[0][0] == 0 and report.spans[1][0] == 2
    assert "2 training row(s)" in report.summary()


def test_empty_index_passes_everything():
    guard = LeakGuard([("a", ["too short"])], n=8)
    assert guard.windows == 0
    assert guard.check(_user("too short, and anything else at all of any length")) is None


def test_duplicate_rows_all_named():
    text = "the same eight words appear in both of these rows"
    guard = LeakGuard([("a", [text]), ("b", [text]), ("c", ["unrelated"])], n=8)
    assert guard.check(_user(text)).row_ids == ["a", "b"]


# --- normalisation: a row copied as displayed is the row as stored -------------------------
ESCAPED = (
    "Tom &amp; Jerry&#39;s &quot;cheese&quot; heist &lt;3 was, &amp; remains, the best "
    "&quot;cartoon&quot; of my childhood &amp; yours"
)
DISPLAYED = (
    'Tom & Jerry\'s "cheese" heist <3 was, & remains, the best "cartoon" of my childhood & yours'
)


@pytest.mark.parametrize(
    ("stored", "pasted"),
    [
        (ESCAPED, DISPLAYED),  # the file holds entities, the user pastes what a browser shows
        (DISPLAYED, ESCAPED),
        (ESCAPED.replace("&amp;", "&amp;amp;"), DISPLAYED),  # escaped twice
        (
            DISPLAYED,
            "ＴＯＭ ＆ ＪＥＲＲＹ’Ｓ “ＣＨＥＥＳＥ” HEIST <3 WAS, & REMAINS, THE BEST",
        ),
        (DISPLAYED, "tom—jerrys... cheese!!! heist <3; was (& remains) the best cartoon, of my?"),
        (
            DISPLAYED,
            "Tom\u200b & Jer\u00adry's cheese\u00a0heist <3 was & remains the best car\u200dtoon",
        ),
        (
            "The film was great.<br /><br />The ending made me cry like a baby",
            "The film was great. The ending made me cry like a baby",
        ),
        (
            "Straße nach Köln war sehr voll und der Zug kam viel zu spät an",
            "STRASSE nach KÖLN war sehr voll und der zug kam viel zu spät an",
        ),
        (
            "ﬁnal ﬂight of the day was delayed by three hours again",
            "final flight of the day was delayed by three hours again",
        ),
    ],
)
def test_a_row_copied_as_displayed_is_found(stored, pasted):
    guard = LeakGuard([("t:line 1", [stored])], n=8)
    report = guard.check(_user(f"Data like: {pasted}"))
    assert report is not None and report.row_ids == ["t:line 1"]


def test_the_old_raw_text_comparison_would_have_missed_it():
    # the same check on the words without normalisation: the variants share no 8-word run
    import re

    def raw(text):
        return re.findall(r"\w+", text.casefold())

    stored, pasted = raw(ESCAPED), raw(DISPLAYED)
    windows = {tuple(stored[i : i + 8]) for i in range(len(stored) - 7)}
    assert not any(tuple(pasted[i : i + 8]) in windows for i in range(len(pasted) - 7))
    assert word_tokens(ESCAPED) == word_tokens(DISPLAYED)


# hypothesis: whatever a display does to a row, the guard still finds it
# letters whose upper and lower case fold back to themselves (not Turkish dotless i, say)
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789éüßøçñαβγδσωжщя"
_WORDS = st.text(alphabet=_LETTERS, min_size=1, max_size=8)
_FULLWIDTH = {
    c: chr(ord(c) + 0xFEE0)
    for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
}


@st.composite
def _displayed(draw):
    """A row of words, and the same row as some display shows it."""
    words = draw(st.lists(_WORDS, min_size=8, max_size=20))
    out = []
    for word in words:
        word = draw(st.sampled_from([word, word.upper(), word.lower(), word.title()]))
        if draw(st.booleans()):
            word = "".join(_FULLWIDTH.get(c, c) for c in word)
        if draw(st.booleans()) and len(word) > 1:  # an invisible character inside the word
            cut = draw(st.integers(1, len(word) - 1))
            word = (
                word[:cut] + draw(st.sampled_from(["\u200b", "\u00ad", "\u2060", "'"])) + word[cut:]
            )
        out.append(word)
        out.append(
            draw(
                st.sampled_from(
                    [
                        " ",
                        "  ",
                        "\n",
                        "\u00a0",
                        ", ",
                        " — ",
                        "... ",
                        " & ",
                        " &amp; ",
                        "&nbsp;",
                        " <br/> ",
                        "; ",
                        " “",
                        "” ",
                    ]
                )
            )
        )
    return " ".join(words), "".join(out)


@settings(max_examples=300, deadline=None)
@given(_displayed())
def test_normalisation_undoes_what_a_display_does(pair):
    stored, shown = pair
    assert normalize_text(shown) == normalize_text(stored)
    guard = LeakGuard([("row", [stored])], n=8)
    report = guard.check(_user(f"copied: {shown}"))
    assert report is not None and report.row_ids == ["row"]


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_normalisation_is_idempotent_and_spans_match_the_words(text):
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert [w for w, _, _ in word_spans(text)] == word_tokens(text) == once.split()
    for _, start, end in word_spans(text):
        assert 0 <= start < end <= len(text)


# --- look-alikes and invisible characters (issue 28) -----------------------------------------


def test_every_lookalike_of_an_ascii_letter_or_digit_reads_as_it():
    """Each look-alike Unicode's confusables data lists for an ASCII letter or digit (1,359
    of them: Cyrillic, Greek, Cherokee, mathematical, ...) folds to what that character
    folds to, inside a word, in either case of the word around it."""
    import string

    from confusable_homoglyphs.confusables import confusables_data

    checked = 0
    for char in string.ascii_letters + string.digits:
        for glyph in confusables_data.get(char, []):
            shape = glyph["c"].replace("\u200e", "")
            for around in ("xx{}xx", "XX{}XX"):
                assert normalize_text(around.format(shape)) == normalize_text(
                    around.format(char)
                ), (char, shape, glyph["n"])
            checked += 1
    assert checked > 1000


@pytest.mark.parametrize(
    "disguise",
    [
        lambda t: "".join(c + "\ufe0f" for c in t),  # a variation selector after each character
        lambda t: "".join(c + "\U000e0101" for c in t),  # a supplementary variation selector
        lambda t: "\u200d".join(t),  # zero-width joiners
        lambda t: "".join(c + "\U000e0041" for c in t),  # tag characters
        lambda t: "".join(c + "\u0301\u0324" for c in t),  # combining marks on every letter
        lambda t: t.replace(" ", "\u3164"),  # Hangul fillers (drawn as blanks) for spaces
        lambda t: "\u202e" + t[::-1] + "\u202c",  # stored backwards, drawn right to left
        lambda t: " ".join(f"\u202e{w[::-1]}\u202c" for w in t.split()),
        lambda t: t.translate(str.maketrans("aceopxyiABCEHKMOPTX", "асеорхуіАВСЕНКМОРТХ")),
        lambda t: t.translate(str.maketrans("aoivnABEHIKMNOPTXYZ", "αοινηΑΒΕΗΙΚΜΝΟΡΤΧΥΖ")),
        lambda t: t.replace("l", "1").replace("o", "0").replace("m", "rn").replace("I", "|"),
    ],
)
def test_a_row_disguised_for_a_program_is_found(guard, disguise):
    text = disguise("The waiter ignored us for an hour and then brought the wrong order")
    report = guard.check(_user(text))
    assert report is not None and report.row_ids == ["t:line 1"]


def test_genuine_text_in_another_alphabet_is_not_a_copy():
    russian = LeakGuard(
        [("r:1", ["Официант не обращал на нас внимания целый час и принёс не тот заказ"])], n=8
    )
    # the same meaning in other words, and the English row: neither copies the Russian row
    other_words = "Целый час официант нас не замечал, а потом перепутал заказ"
    assert russian.check(_user(other_words)) is None
    assert russian.check(_user(ROWS[0][1][0])) is None
    # the row itself, without its accents, or with Latin look-alikes where they exist: a copy
    for copy in (
        "официант не обращал на нас внимания целый час и принес не тот заказ",
        "Oфициaнт нe oбpaщaл нa нac внимaния цeлый чac и пpинёc нe тoт зaкaз",
    ):
        assert russian.check(_user(copy)).row_ids == ["r:1"]
