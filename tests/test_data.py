"""Tests for gpta.data: reading tables, validation, splits and sampling."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import datasets
import pandas as pd
import pytest

from gpta.data import (
    Table,
    read_input,
    read_splits,
    read_table,
    require_columns,
    require_text,
    sample_rows,
    stratified_split,
)
from gpta.errors import GptaUserError

ROWS = [
    {"text": "a fine film", "label": 1},
    {"text": "dull, and too long", "label": 0},
    {"text": 'she said "wow"', "label": 1},
]


def labelled_table(counts: dict[str, int]) -> Table:
    """A table whose "label" column has ``counts[label]`` rows of each label, interleaved."""
    labels = [label for label, n in counts.items() for _ in range(n)]
    labels = labels[::2] + labels[1::2]
    rows = [{"text": f"text {i}", "label": label} for i, label in enumerate(labels)]
    return Table(source="mem", rows=rows, locations=[f"row {i + 1}" for i in range(len(rows))])


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def error_text(excinfo: pytest.ExceptionInfo[GptaUserError]) -> str:
    return str(excinfo.value)


# --------------------------------------------------------------------------- formats


def test_csv_round_trip_keeps_types_and_physical_lines(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    pd.DataFrame(ROWS).to_csv(path, index=False)
    table = read_table(path)
    assert table.rows == ROWS
    assert all(type(row["label"]) is int for row in table.rows)
    assert table.locations == ["line 2", "line 3", "line 4"]
    assert table.source == str(path)


def test_csv_locations_follow_multiline_fields_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text('text,label\n"two\nlines",1\n\nlast,0\n', encoding="utf-8")
    table = read_table(path)
    assert table.column("text") == ["two\nlines", "last"]
    assert table.locations == ["line 2", "line 5"]


def test_csv_empty_cells_stay_empty_strings(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("text,note\nhello,\nNA,x\n", encoding="utf-8")
    table = read_table(path)
    assert table.rows == [{"text": "hello", "note": ""}, {"text": "NA", "note": "x"}]


def test_csv_with_utf8_bom(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_bytes("\ufefftext,label\ncafé,1\n".encode())
    table = read_table(path)
    assert table.columns == ["text", "label"]
    assert table.rows == [{"text": "café", "label": 1}]


def test_tsv_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    pd.DataFrame(ROWS).to_csv(path, sep="\t", index=False)
    table = read_table(path)
    assert table.rows == ROWS
    assert table.locations == ["line 2", "line 3", "line 4"]


def test_jsonl_round_trip_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    lines = [json.dumps(ROWS[0]), "", json.dumps(ROWS[1]), "   ", json.dumps(ROWS[2])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    table = read_table(path)
    assert table.rows == ROWS
    assert table.locations == ["line 1", "line 3", "line 5"]


def test_jsonl_keeps_line_separator_characters_inside_strings(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "a\u2028b"}\n{"text": "c"}\n', encoding="utf-8")
    table = read_table(path)
    assert table.column("text") == ["a\u2028b", "c"]
    assert table.locations == ["line 1", "line 2"]


def test_line_delimited_json_extension_is_read_as_jsonl(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.json", ROWS)
    assert read_table(path).rows == ROWS


def test_json_document_is_rejected_with_hint(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text(json.dumps(ROWS, indent=2), encoding="utf-8")
    with pytest.raises(GptaUserError, match="not JSON Lines") as excinfo:
        read_table(path)
    assert str(path) in error_text(excinfo)
    assert ".jsonl" in (excinfo.value.hint or "")


def test_parquet_round_trip_gives_plain_python_values(tmp_path: Path) -> None:
    path = tmp_path / "train.parquet"
    pd.DataFrame(ROWS).to_parquet(path, index=False)
    table = read_table(path)
    assert table.rows == ROWS
    assert all(type(row["label"]) is int for row in table.rows)
    assert table.locations == ["row 1", "row 2", "row 3"]


def test_explicit_format_overrides_extension(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.txt", ROWS)
    assert read_table(path, fmt="jsonl").rows == ROWS
    with pytest.raises(GptaUserError, match=r"extension \.txt"):
        read_table(path)


def test_unknown_format_option(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", ROWS)
    with pytest.raises(GptaUserError, match="unknown data format 'xml'"):
        read_table(path, fmt="xml")


def test_dataset_folder_round_trip(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    datasets.Dataset.from_list(ROWS).save_to_disk(str(folder))
    table = read_table(folder)
    assert table.rows == ROWS
    assert table.locations == ["row 1", "row 2", "row 3"]


def save_dataset_dict(folder: Path, splits: dict[str, list[dict]]) -> Path:
    dataset_dict = datasets.DatasetDict(
        {name: datasets.Dataset.from_list(rows) for name, rows in splits.items()}
    )
    dataset_dict.save_to_disk(str(folder))
    return folder


def test_dataset_dict_folder_picks_the_split(tmp_path: Path) -> None:
    folder = save_dataset_dict(tmp_path / "dd", {"train": ROWS[:2], "test": ROWS[2:]})
    table = read_table(folder, split="test")
    assert table.rows == ROWS[2:]
    assert table.source == f"{folder}[test]"


def test_dataset_dict_folder_unknown_split_lists_available(tmp_path: Path) -> None:
    folder = save_dataset_dict(tmp_path / "dd", {"train": ROWS[:2], "test": ROWS[2:]})
    with pytest.raises(GptaUserError, match="no split 'dev'") as excinfo:
        read_table(folder, split="dev")
    assert "available splits: train, test" in error_text(excinfo)
    with pytest.raises(GptaUserError, match="several splits"):
        read_table(folder)


def test_directory_that_is_not_a_dataset(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(GptaUserError, match="not a datasets save_to_disk folder"):
        read_table(tmp_path / "plain")


# --------------------------------------------------------------------------- read_splits


def test_read_splits_from_dataset_dict_folder_maps_validation_to_dev(tmp_path: Path) -> None:
    folder = save_dataset_dict(
        tmp_path / "dd",
        {"train": ROWS[:1], "validation": ROWS[1:2], "test": ROWS[2:], "extra": ROWS},
    )
    splits = read_splits(folder)
    assert set(splits) == {"train", "dev", "test"}
    assert splits["dev"].rows == ROWS[1:2]
    assert splits["test"].source == f"{folder}[test]"


def test_read_splits_from_files_leaves_missing_splits_out(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", ROWS[:2])
    test = write_jsonl(tmp_path / "test.jsonl", ROWS[2:])
    splits = read_splits(train, test=test)
    assert set(splits) == {"train", "test"}
    assert splits["train"].rows == ROWS[:2]
    assert splits["test"].rows == ROWS[2:]


def test_read_splits_takes_train_of_dataset_dict_when_files_are_given(tmp_path: Path) -> None:
    folder = save_dataset_dict(tmp_path / "dd", {"train": ROWS[:2], "test": ROWS[2:]})
    dev = write_jsonl(tmp_path / "dev.jsonl", ROWS[:1])
    splits = read_splits(folder, dev=dev)
    assert set(splits) == {"train", "dev"}
    assert splits["train"].rows == ROWS[:2]


def test_read_splits_from_hub_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_load_dataset(name: str, split: str | None = None) -> datasets.DatasetDict:
        calls.append((name, split))
        return datasets.DatasetDict(
            {"train": datasets.Dataset.from_list(ROWS[:2]), "dev": datasets.Dataset.from_list(ROWS)}
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    splits = read_splits("someone/reviews")
    assert calls == [("someone/reviews", None)]
    assert set(splits) == {"train", "dev"}
    assert splits["train"].source == "hub:someone/reviews[train]"
    assert splits["dev"].rows == ROWS


def test_hub_failure_offline_explains(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline_load_dataset(name: str, split: str | None = None) -> None:
        raise ConnectionError(f"Couldn't reach '{name}' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline_load_dataset)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(GptaUserError, match="someone/reviews") as excinfo:
        read_table("someone/reviews", split="train")
    assert "HF_HUB_OFFLINE" in (excinfo.value.hint or "")
    assert "nothing is downloaded" in (excinfo.value.hint or "")


# --------------------------------------------------------------------------- file errors


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(GptaUserError, match="file not found") as excinfo:
        read_table(path)
    assert str(path) in error_text(excinfo)


def test_malformed_jsonl_names_line(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "ok"}\n\n{"text": "broken",}\n{"text": "ok"}\n', encoding="utf-8")
    with pytest.raises(GptaUserError) as excinfo:
        read_table(path)
    assert error_text(excinfo).startswith(f"{path}, line 3: invalid JSON")


def test_jsonl_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "ok"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(GptaUserError, match=r"line 2: expected a JSON object, got an array"):
        read_table(path)


def test_stdin_and_text_input_are_read_by_the_one_reader(tmp_path, monkeypatch) -> None:
    import io
    import sys

    stdin = '{"text": "ok"}\n\n{"text": "a\u2028b"}\n[1]\n'
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    with pytest.raises(GptaUserError, match=r"^stdin, line 4: expected a JSON object, got an"):
        read_input("-", fmt="jsonl", text_column="text", what="--input")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode()[:-4])))
    table = read_input("-", fmt="jsonl", text_column="text", what="--input")
    assert table.rows == [{"text": "ok"}, {"text": "a\u2028b"}]
    assert table.locations == ["line 1", "line 3"]
    lines = tmp_path / "in.txt"
    lines.write_text("first\n\n  \nsecond\n", encoding="utf-8")
    table = read_input(str(lines), fmt="text", text_column="review", what="--input")
    assert (table.rows, table.locations) == (
        [{"review": "first"}, {"review": "second"}],
        ["line 1", "line 4"],
    )
    with pytest.raises(GptaUserError, match=r"^--input: file not found: "):
        read_input(str(tmp_path / "nope.txt"), fmt="text", text_column="text", what="--input")


def test_empty_files_are_errors(tmp_path: Path) -> None:
    empty_jsonl = tmp_path / "a.jsonl"
    empty_jsonl.write_text("\n\n", encoding="utf-8")
    header_only = tmp_path / "b.csv"
    header_only.write_text("text,label\n", encoding="utf-8")
    for path in (empty_jsonl, header_only):
        with pytest.raises(GptaUserError, match="has no rows") as excinfo:
            read_table(path)
        assert str(path) in error_text(excinfo)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("train.csv", b"text,label\nfine,1\nalso fine,0\ncaf\xe9,1\n"),
        ("train.tsv", b"text\tlabel\nfine\t1\nalso fine\t0\ncaf\xe9\t1\n"),
        ("train.jsonl", b'{"text": "fine"}\n\n{"text": "caf\xe9"}\n'),
    ],
)
def test_non_utf8_names_line(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    expected_line = 4 if name.endswith("sv") else 3
    with pytest.raises(GptaUserError) as excinfo:
        read_table(path)
    assert error_text(excinfo).startswith(f"{path}, line {expected_line}: not valid UTF-8")
    assert "UTF-8" in (excinfo.value.hint or "")


def test_malformed_csv_names_line(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("text,label\nok,1\nok,2\ntoo,many,fields\n", encoding="utf-8")
    with pytest.raises(GptaUserError) as excinfo:
        read_table(path)
    assert error_text(excinfo).startswith(f"{path}, line 4: malformed CSV")


def test_duplicate_csv_header(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("text,text\na,b\n", encoding="utf-8")
    with pytest.raises(GptaUserError, match="column 'text' appears more than once"):
        read_table(path)


def test_bad_parquet(tmp_path: Path) -> None:
    path = tmp_path / "train.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(GptaUserError, match="cannot read as Parquet") as excinfo:
        read_table(path)
    assert str(path) in error_text(excinfo)


# --------------------------------------------------------------------------- validation


def test_unknown_column_lists_available_and_option(tmp_path: Path) -> None:
    table = read_table(write_jsonl(tmp_path / "train.jsonl", ROWS))
    with pytest.raises(GptaUserError) as excinfo:
        require_columns(table, ["sentence"], option="data.text_column")
    message = error_text(excinfo)
    assert "'sentence'" in message
    assert str(tmp_path / "train.jsonl") in message
    assert "available columns: 'text', 'label'" in message
    assert "data.text_column" in (excinfo.value.hint or "")


def test_column_missing_in_one_jsonl_row_names_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [ROWS[0], {"label": 0}, ROWS[2]])
    table = read_table(path)
    with pytest.raises(GptaUserError, match=r"line 2: the row has no 'text' field"):
        require_columns(table, ["text", "label"])
    with pytest.raises(GptaUserError, match="line 2"):
        table.column("text")


def test_require_columns_passes_when_present(tmp_path: Path) -> None:
    table = read_table(write_jsonl(tmp_path / "train.jsonl", ROWS))
    require_columns(table, ["text", "label"])
    assert table.column("label") == [1, 0, 1]


def test_require_text_names_empty_row(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("text,label\nfine,1\n   ,0\n", encoding="utf-8")
    table = read_table(path)
    with pytest.raises(GptaUserError) as excinfo:
        require_text(table, "text")
    assert error_text(excinfo).startswith(f"{path}, line 3: column 'text' has empty text")


def test_require_text_names_non_string(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [ROWS[0], ROWS[1], {"text": 7, "label": 0}])
    table = read_table(path)
    with pytest.raises(GptaUserError, match=r"line 3: column 'text' has not a string \(got int\)"):
        require_text(table, "text")
    require_text(table.select([0, 1]), "text")


def test_select_keeps_locations(tmp_path: Path) -> None:
    table = read_table(write_jsonl(tmp_path / "train.jsonl", ROWS))
    picked = table.select([2, 0])
    assert picked.rows == [ROWS[2], ROWS[0]]
    assert picked.locations == ["line 3", "line 1"]
    assert len(picked) == 2


# --------------------------------------------------------------------------- splitting


def test_stratified_split_keeps_class_proportions() -> None:
    table = labelled_table({"pos": 60, "neg": 30, "neu": 10})
    rest, held = stratified_split(table, 0.2, seed=0, stratify=table.column("label"))
    assert len(held) == 20
    assert len(rest) == 80
    assert Counter(held.column("label")) == {"pos": 12, "neg": 6, "neu": 2}
    held_texts = set(held.column("text"))
    assert held_texts.isdisjoint(rest.column("text"))
    assert len(held_texts | set(rest.column("text"))) == 100


def test_stratified_split_is_seeded() -> None:
    table = labelled_table({"pos": 60, "neg": 40})
    labels = table.column("label")
    first = stratified_split(table, 0.25, seed=3, stratify=labels)[1].column("text")
    again = stratified_split(table, 0.25, seed=3, stratify=labels)[1].column("text")
    other = stratified_split(table, 0.25, seed=4, stratify=labels)[1].column("text")
    assert first == again
    assert first != other


def test_split_keeps_original_row_order() -> None:
    table = labelled_table({"pos": 30, "neg": 30})
    rest, held = stratified_split(table, 0.3, seed=1, stratify=None)
    positions = {text: i for i, text in enumerate(table.column("text"))}
    for part in (rest, held):
        order = [positions[text] for text in part.column("text")]
        assert order == sorted(order)
    assert len(held) == 18


def test_stratified_split_falls_back_when_a_class_has_one_row() -> None:
    table = labelled_table({"pos": 20, "neg": 10, "rare": 1})
    rest, held = stratified_split(table, 0.2, seed=0, stratify=table.column("label"))
    assert Counter(held.column("label")) == {"pos": 4, "neg": 2}
    assert "rare" in rest.column("label")
    again = stratified_split(table, 0.2, seed=0, stratify=table.column("label"))[1]
    assert again.rows == held.rows


def test_stratified_split_falls_back_when_held_out_is_smaller_than_classes() -> None:
    table = labelled_table({label: 3 for label in "abcdefghij"})
    rest, held = stratified_split(table, 0.1, seed=0, stratify=table.column("label"))
    assert Counter(held.column("label")) == dict.fromkeys("abcdefghij", 1)
    assert len(rest) == 20


def test_split_where_every_class_is_a_singleton_still_holds_rows_out() -> None:
    table = labelled_table({label: 1 for label in "abcdef"})
    rest, held = stratified_split(table, 0.3, seed=0, stratify=table.column("label"))
    assert len(held) == 2
    assert len(rest) == 4


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1])
def test_split_rejects_bad_fraction(fraction: float) -> None:
    table = labelled_table({"pos": 5, "neg": 5})
    with pytest.raises(GptaUserError, match=f"fraction {fraction!r}"):
        stratified_split(table, fraction, seed=0, stratify=None)


def test_split_rejects_single_row_table() -> None:
    table = labelled_table({"pos": 1})
    with pytest.raises(GptaUserError, match="too few to split"):
        stratified_split(table, 0.5, seed=0, stratify=None)


# --------------------------------------------------------------------------- sampling


def test_sample_by_count_keeps_every_class_and_proportions() -> None:
    table = labelled_table({"pos": 700, "neg": 280, "rare": 20})
    sample = sample_rows(table, 100, seed=0, stratify=table.column("label"))
    assert Counter(sample.column("label")) == {"pos": 70, "neg": 28, "rare": 2}


def test_sample_keeps_a_row_of_every_class_when_size_allows() -> None:
    table = labelled_table({"pos": 900, "neg": 95, "x": 3, "y": 1, "z": 1})
    sample = sample_rows(table, 10, seed=5, stratify=table.column("label"))
    counts = Counter(sample.column("label"))
    assert len(sample) == 10
    assert set(counts) == {"pos", "neg", "x", "y", "z"}
    assert counts["pos"] == max(counts.values())


def test_sample_by_fraction_is_seeded_and_ordered() -> None:
    table = labelled_table({"pos": 60, "neg": 30, "neu": 10})
    labels = table.column("label")
    sample = sample_rows(table, 0.1, seed=1, stratify=labels)
    assert Counter(sample.column("label")) == {"pos": 6, "neg": 3, "neu": 1}
    assert sample.rows == sample_rows(table, 0.1, seed=1, stratify=labels).rows
    assert sample.rows != sample_rows(table, 0.1, seed=2, stratify=labels).rows
    positions = [int(location.split()[1]) for location in sample.locations]
    assert positions == sorted(positions)


def test_sample_whole_table_and_unstratified() -> None:
    table = labelled_table({"pos": 6, "neg": 4})
    assert sample_rows(table, 1.0, seed=0, stratify=None).rows == table.rows
    assert sample_rows(table, 10, seed=0, stratify=table.column("label")).rows == table.rows
    plain = sample_rows(table, 3, seed=0, stratify=None)
    assert len(plain) == 3
    assert plain.rows == sample_rows(table, 3, seed=0, stratify=None).rows


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (0, "must be a positive number"),
        (-3, "must be a positive number"),
        (0.0, "must be a positive number"),
        (1.5, "fraction above 1"),
        (11, "sample size 11 is larger than mem, which has 10 rows"),
        (True, "must be a positive number"),
    ],
)
def test_sample_rejects_bad_sizes(size: float, message: str) -> None:
    table = labelled_table({"pos": 6, "neg": 4})
    with pytest.raises(GptaUserError, match=message):
        sample_rows(table, size, seed=0, stratify=table.column("label"))


class CountedLabel:
    """A label that counts every hash and comparison made of it (the per-row work)."""

    calls = 0

    def __init__(self, name: str) -> None:
        self.name = name

    def __hash__(self) -> int:
        CountedLabel.calls += 1
        return hash(self.name)

    def __eq__(self, other: object) -> bool:
        CountedLabel.calls += 1
        return isinstance(other, CountedLabel) and self.name == other.name


def test_sampling_and_splitting_100k_rows_reads_each_label_a_few_times() -> None:
    # The work is counted, not timed (a wall-clock bound fails on a busy machine): a few
    # passes over the labels at most. A scan per class would be 60 per row, a quadratic
    # one about 10^5 per row.
    table = labelled_table({f"class{i}": 1000 + 37 * i for i in range(60)})
    for row in table.rows:  # a new object per row: dict lookups compare, not just hash
        row["label"] = CountedLabel(row["label"])
    labels = table.column("label")
    CountedLabel.calls = 0
    sample = sample_rows(table, 0.05, seed=0, stratify=labels)
    rest, held = stratified_split(table, 0.1, seed=0, stratify=labels)
    assert 0 < CountedLabel.calls <= 6 * len(table)
    assert len(set(sample.column("label"))) == 60
    assert len(rest) + len(held) == len(table)


# --- long rows are capped before tokenising (issue 18: one 50 MB row took 8 GB) ------------


def test_long_text_is_cut_once_with_one_warning_naming_the_rows():
    from gpta.data import MIN_TEXT_CHARS, cap_task_rows, text_char_cap

    assert text_char_cap(128) == MIN_TEXT_CHARS and text_char_cap(1024) == 64 * 1024
    long = "word " * 10_000  # 50,000 characters
    table = Table("t.jsonl", [{"text": long, "label": "a"}, {"text": "short", "label": "b"}])
    message = cap_task_rows(
        table, family="classification", text_column="text", label_column="label", max_length=128
    )
    assert table.rows[0]["text"] == long[:MIN_TEXT_CHARS] and table.rows[1]["text"] == "short"
    assert "t.jsonl" in message and "row 1" in message and "20,000" in message
    assert (
        cap_task_rows(  # nothing left to cut: no warning
            table, family="classification", text_column="text", label_column="label", max_length=128
        )
        is None
    )


@pytest.mark.parametrize(
    ("family", "row", "column"),
    [
        ("qa", {"context": "c" * 1_000_001, "question": "q?"}, "context"),
        ("qa", {"context": "c", "question": "q" * 20_001}, "question"),
        (
            "multiple_choice",
            {"article": "a", "question": "q", "options": ["o" * 20_001]},
            "options",
        ),
        ("classification", {"text": "t", "label": "l" * 20_001}, "label"),
        ("summarization", {"document": "d", "summary": "s" * 20_001}, "summary"),
    ],
)
def test_cells_whose_end_matters_are_refused_naming_the_row(family, row, column):
    from gpta.data import cap_task_rows

    text, label = {
        "qa": ("context", None),
        "multiple_choice": ("article", "answer"),
        "classification": ("text", "label"),
        "summarization": ("document", "summary"),
    }[family]
    table = Table("d.jsonl", [row], ["line 7"])
    with pytest.raises(GptaUserError) as err:
        cap_task_rows(table, family=family, text_column=text, label_column=label, max_length=128)
    assert "d.jsonl, line 7" in err.value.message and repr(column) in err.value.message
    assert err.value.hint


def test_load_data_cuts_a_long_row_before_anything_tokenises_it(tmp_path, capsys):
    from gpta.config import build_config
    from gpta.run import load_data

    rows = [{"text": f"row {i}", "label": "ab"[i % 2]} for i in range(20)]
    rows[3]["text"] = "x" * 300_000
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    tables = load_data(build_config({"data": {"train": str(path)}}))
    lengths = [len(r["text"]) for t in tables.values() for r in t.rows]
    assert max(lengths) == 20_000 and sum(len(t) for t in tables.values()) == 20
    assert "line 4" in capsys.readouterr().err
