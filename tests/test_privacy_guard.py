"""The leak guard: verbatim runs of a row's words are found, everything else passes."""

from __future__ import annotations

import pytest

from gpta.privacy.guard import LeakGuard, word_tokens

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
    assert word_tokens("Don't STOP, it's 9am!") == ["don", "t", "stop", "it", "s", "9am"]


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
