"""Tests for the hand-written demo sentiment dataset."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import pytest

from gpta import demo_dataset
from gpta.demo_dataset import (
    DESCRIPTION,
    LABELS,
    NEGATIVE,
    POSITIVE,
    demo_rows,
    write_demo_dataset,
)

URL_RE = re.compile(r"https?://|www\.|\b[\w-]+\.(?:com|org|net|io|co|uk|de)\b", re.IGNORECASE)
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
LONG_DIGITS_RE = re.compile(r"\d{7,}")


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def test_labels_constant() -> None:
    assert LABELS == ("negative", "positive")


def test_class_balance() -> None:
    assert len(POSITIVE) == 170
    assert len(NEGATIVE) == 170
    counts = Counter(row["label"] for row in demo_rows())
    assert counts == {"positive": 170, "negative": 170}


def test_texts_are_distinct_after_normalisation() -> None:
    normalised = [_normalise(text) for text in (*POSITIVE, *NEGATIVE)]
    duplicates = [text for text, n in Counter(normalised).items() if n > 1]
    assert duplicates == []


def test_texts_are_clean_strings() -> None:
    for text in (*POSITIVE, *NEGATIVE):
        assert isinstance(text, str)
        assert text == text.strip()
        assert "\n" not in text
        assert "  " not in text


@pytest.mark.parametrize("text", [*POSITIVE, *NEGATIVE])
def test_word_count_range(text: str) -> None:
    assert 4 <= len(text.split()) <= 50, text


def test_length_variety() -> None:
    lengths = [len(text.split()) for text in (*POSITIVE, *NEGATIVE)]
    assert min(lengths) <= 6
    assert max(lengths) >= 30


@pytest.mark.parametrize("text", [*POSITIVE, *NEGATIVE])
def test_no_personal_data(text: str) -> None:
    assert not URL_RE.search(text), text
    assert not EMAIL_RE.search(text), text
    assert not LONG_DIGITS_RE.search(text), text


def test_rows_cover_both_tuples_exactly() -> None:
    rows = demo_rows()
    assert len(rows) == 340
    assert all(set(row) == {"text", "label"} for row in rows)
    assert sorted(r["text"] for r in rows if r["label"] == "positive") == sorted(POSITIVE)
    assert sorted(r["text"] for r in rows if r["label"] == "negative") == sorted(NEGATIVE)


def test_rows_are_deterministic_and_interleaved() -> None:
    rows = demo_rows()
    assert rows == demo_rows()
    labels = [row["label"] for row in rows]
    # Not grouped by class: every prefix stays balanced to within one row.
    for end in range(1, len(labels) + 1):
        prefix = Counter(labels[:end])
        assert abs(prefix["positive"] - prefix["negative"]) <= 1
    # ...and not a trivially alternating pattern either.
    assert labels[0::2] != [labels[0]] * (len(labels) // 2)


def test_rows_are_fresh_copies() -> None:
    rows = demo_rows()
    rows[0]["label"] = "mutated"
    assert demo_rows()[0]["label"] in LABELS


def test_csv_round_trip(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "demo"
    csv_path = write_demo_dataset(target)
    assert csv_path == target / "reviews.csv"
    assert csv_path.is_file()

    with csv_path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["text", "label"]
        read_back = [dict(row) for row in reader]
    assert read_back == demo_rows()

    # The data must actually exercise CSV quoting.
    texts = [row["text"] for row in read_back]
    assert any("," in text for text in texts)
    assert any('"' in text for text in texts)


def test_csv_accepts_str_directory_and_overwrites(tmp_path: Path) -> None:
    first = write_demo_dataset(str(tmp_path))
    second = write_demo_dataset(str(tmp_path))
    assert first == second == tmp_path / "reviews.csv"
    with second.open(encoding="utf-8", newline="") as handle:
        assert len(list(csv.reader(handle))) == 341  # header + rows


def test_description_file_written(tmp_path: Path) -> None:
    write_demo_dataset(tmp_path)
    description_path = tmp_path / "description.txt"
    assert description_path.is_file()
    assert description_path.read_text(encoding="utf-8").strip() == DESCRIPTION.strip()


def test_description_content() -> None:
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", DESCRIPTION.strip()) if s]
    assert 2 <= len(sentences) <= 4
    lowered = DESCRIPTION.lower()
    assert "positive" in lowered
    assert "negative" in lowered
    assert "review" in lowered


def test_module_exports() -> None:
    for name in demo_dataset.__all__:
        assert hasattr(demo_dataset, name)
