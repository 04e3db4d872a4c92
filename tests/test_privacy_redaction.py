"""Each redaction pattern with values it must replace and look-alikes it must leave."""

from __future__ import annotations

import pytest

from gpta.privacy.redaction import Redactor, iban_ok, luhn_ok, redact

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
    ("birth_date", "I was born on 12 March 1985 in Leeds", "I was born on [BIRTH_DATE] in Leeds"),
    ("birth_date", "DOB: 03/12/1985.", "DOB: [BIRTH_DATE]."),
    ("birth_date", "date of birth 1985-03-12", "date of birth [BIRTH_DATE]"),
    ("birth_date", "my birthday is March 12, 1985!", "my birthday is [BIRTH_DATE]!"),
    ("birth_date", "Born: 4th of July 76", "Born: [BIRTH_DATE]"),
    ("birth_date", "born in 1985", "born in [BIRTH_DATE]"),
    (
        "address",
        "send it to 221B Baker Street, London NW1 6XE please",
        "send it to [ADDRESS] please",
    ),
    ("address", "we live at 742 Evergreen Terrace, Springfield, IL 62704", "we live at [ADDRESS]"),
    ("address", "1600 Pennsylvania Avenue NW, Washington, DC 20500", "[ADDRESS]"),
    ("address", "at 350 5th Ave, Suite 3300, New York, NY 10118.", "at [ADDRESS]."),
    ("address", "write to P.O. Box 1234 today", "write to [ADDRESS] today"),
    ("address", "Hauptstraße 5, Berlin", "[ADDRESS], Berlin"),
    ("address", "au 12 rue de la Paix", "au [ADDRESS]"),
    ("postcode", "New York, NY 10118", "New York, [POSTCODE]"),
    ("postcode", "in Leeds LS1 4AP", "in Leeds [POSTCODE]"),
    ("postcode", "Ottawa K1A 0B1", "Ottawa [POSTCODE]"),
    ("iban", "IBAN DE89 3704 0044 0532 0130 00 thanks", "IBAN [IBAN] thanks"),
    ("iban", "pay GB82WEST12345698765432 now", "pay [IBAN] now"),
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
    "she turned 30 in March 2015",  # a date, but nothing says it is a birth date
    "born and raised in Texas",
    "we waited 20 minutes at the drive through",
    "room 12 on the 3rd floor, 2 blocks down the road",
    "on Saturday 14 June. A court heard the case",
    "the 5 best things in 2015",
    "DE89 is not an IBAN, nor is GB00 1234 5678",
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


def test_iban_check_digits():
    assert iban_ok("DE89 3704 0044 0532 0130 00")
    assert iban_ok("GB82WEST12345698765432")
    assert not iban_ok("DE88 3704 0044 0532 0130 00")  # one check digit off
    assert not iban_ok("GB82WEST1234")  # too short
