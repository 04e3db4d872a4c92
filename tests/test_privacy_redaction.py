"""Each redaction pattern with values it must replace and look-alikes it must leave."""

from __future__ import annotations

import pytest

from gpta.privacy.redaction import Redactor, luhn_ok, redact

POSITIVE = [
    ("email", "mail john.doe+news@example.co.uk today", "mail [EMAIL] today"),
    ("email", "Reach A_B@mail-server.example.org.", "Reach [EMAIL]."),
    ("url", "see https://x.org/a?b=1 now", "see [URL] now"),
    ("url", "at www.example.com/page, then", "at [URL] then"),
    ("url", "visit shop.example.com/sale today", "visit [URL] today"),
    ("url", "go to http://10.0.0.1:8080/admin", "go to [URL]"),
    ("ip", "from 192.168.1.20 again", "from [IP] again"),
    ("ip", "host 8.8.8.8.", "host [IP]."),
    ("ip", "v6 2001:0db8:85a3:0000:0000:8a2e:0370:7334 up", "v6 [IP] up"),
    ("ip", "v6 fe80::1ff:fe23:4567:890a up", "v6 [IP] up"),
    ("card", "card 4111 1111 1111 1111 declined", "card [CARD] declined"),
    ("card", "card 5500-0000-0000-0004 ok", "card [CARD] ok"),
    ("card", "card 4111111111111111", "card [CARD]"),
    ("number", "iban-ish 1234 5678 9012 3456 x", "iban-ish [NUMBER] x"),
    ("number", "account 98765432 closed", "account [NUMBER] closed"),
    ("phone", "call +44 20 7946 0958 now", "call [PHONE] now"),
    ("phone", "call (555) 123-4567 now", "call [PHONE] now"),
    ("phone", "call 555-123-4567 now", "call [PHONE] now"),
    ("phone", "call 555.123.4567 now", "call [PHONE] now"),
    ("phone", "call +1-202-555-0143", "call [PHONE]"),
    ("phone", "call +4915112345678 now", "call [PHONE] now"),
    ("handle", "thanks @bob_99 and @Alice!", "thanks [HANDLE] and [HANDLE]!"),
    ("handle", "@united lost my bag", "[HANDLE] lost my bag"),
]

NEGATIVE = [
    "the 2019-2020 season",
    "on 2023-01-15 at 12:30:45",
    "it costs $1,299.99 or 12.50 each",
    "version 1.2.3 of the app",
    "rated 4/5, room 1204, zip 90210",
    "e.g. this, i.e. that, etc.",
    "score 3-2 in the 90th minute",
    "Node.js and file.txt are fine",
    "we met at 10.30 and left at 11.45",
    "an @ sign alone, and a@b is not a handle",
    "the year 1999 and 123456 items",
]


@pytest.mark.parametrize(("kind", "text", "expected"), POSITIVE)
def test_pattern_replaces_value_with_typed_placeholder(kind, text, expected):
    result = Redactor().redact(text)
    assert result.text == expected
    assert result.counts.get(kind, 0) >= 1


@pytest.mark.parametrize("text", NEGATIVE)
def test_look_alikes_are_left_alone(text):
    result = Redactor().redact(text)
    assert result.text == text
    assert result.counts == {}


def test_user_names_are_whole_word_and_case_insensitive():
    redactor = Redactor(["Jane Smith", "Bob", " "])
    result = redactor.redact("jane smith met BOB and Bobby; Bob's car")
    assert result.text == "[NAME] met [NAME] and Bobby; [NAME]'s car"
    assert result.counts == {"name": 3}
    assert redact("Bobby stays", ["Bob"]) == "Bobby stays"


def test_name_with_regex_characters_is_literal():
    assert redact("Dr. A.B. (Jr) said hi; Dr Ax", ["A.B. (Jr)"]) == "Dr. [NAME] said hi; Dr Ax"


def test_several_kinds_in_one_text():
    text = "Hi, I'm Jane (jane@corp.com, +1 415 555 2671) from 10.1.2.3 - see corp.com/jobs @corp"
    result = Redactor(["Jane"]).redact(text)
    assert result.text == "Hi, I'm [NAME] ([EMAIL], [PHONE]) from [IP] - see [URL] [HANDLE]"
    for value in ("jane", "corp.com", "415", "10.1.2.3", "@corp"):
        assert value not in result.text.lower()


def test_luhn():
    assert luhn_ok("4111111111111111")
    assert luhn_ok("5500000000000004")
    assert not luhn_ok("4111111111111112")
