"""Reading tables and datasets, validating them, splitting and sampling rows.

Everything here is task-agnostic: a :class:`Table` is a list of rows (one dict
per row) plus, for every row, a human-readable location ("line 12", "row 3")
that error messages use to point at the exact place in the user's file.

Sources that :func:`read_table` understands:

* ``.csv`` / ``.tsv`` files (read with pandas, types inferred, empty cells stay ``""``);
* ``.jsonl`` / ``.ndjson`` files, and ``.json`` files that are line-delimited;
* ``.parquet`` / ``.pq`` files;
* a directory written by ``datasets``' ``save_to_disk`` (a ``Dataset`` or a ``DatasetDict``);
* a Hugging Face Hub dataset id such as ``imdb`` or ``stanfordnlp/sst2`` (or ``hub:NAME``).

Locations are ``"line N"`` (the 1-based physical line in the file where the
row starts) for JSONL, CSV and TSV files, and ``"row N"`` (1-based) for
Parquet files and ``datasets`` data. For a CSV/TSV file whose line numbers
cannot be recovered (a field longer than Python's csv limit, or an unusual
layout where Python's csv module and pandas disagree), the locations fall back
to ``"row N"``, the 1-based data row with the header excluded.
"""

from __future__ import annotations

import csv
import io
import json
import numbers
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from gpta.errors import GptaUserError
from gpta.limits import DATA_BYTES, LINE_BYTES, read_file_bounded, read_stream_bounded

# The input formats read_table reads ("auto": by the file's suffix); the config's data.format,
# the CLI's --format and predict's --input-format offer these.
DataFormat = Literal["auto", "csv", "tsv", "jsonl", "parquet", "datasets", "hub"]
DATA_FORMATS: tuple[str, ...] = get_args(DataFormat)

if TYPE_CHECKING:
    import datasets

_EXTENSION_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_HUB_PREFIX = "hub:"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_DEV_SPLIT_NAMES = ("validation", "dev", "valid", "val")
_BIG_FILE_FIX = "sample or split the file (data.train_size reads all rows, then samples)"
_PANDAS_LINE = re.compile(r"\bline (\d+)\b")
_JSON_KINDS = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
}


@dataclass
class Table:
    """Rows read from one source, with per-row locations for error messages.

    Attributes:
        source: human name of where the rows came from, e.g. ``"data/train.csv"``
            or ``"hub:imdb[train]"``.
        rows: one dict per row, mapping column name to a plain Python value.
        locations: for each row, where it is in the source (``"line 12"`` or ``"row 12"``).
        unsampled: rows that a low-resource sample (``data.train_size``) left out of the
            rows it was drawn from; 0 when the table holds them all.
    """

    source: str
    rows: list[dict[str, Any]]
    locations: list[str] = field(default_factory=list)
    unsampled: int = 0

    def __post_init__(self) -> None:
        if not self.locations:
            self.locations = [f"row {i}" for i in range(1, len(self.rows) + 1)]
        if len(self.locations) != len(self.rows):
            raise ValueError(
                f"Table {self.source!r}: {len(self.rows)} rows but {len(self.locations)} locations"
            )

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def columns(self) -> list[str]:
        """Column names in order of first appearance (rows of a JSONL file may differ)."""
        seen: dict[str, None] = {}
        for row in self.rows:
            seen.update(dict.fromkeys(row))
        return list(seen)

    def column(self, name: str) -> list[Any]:
        """The values of column ``name``, one per row; a user error if any row lacks it."""
        require_columns(self, [name])
        return [row[name] for row in self.rows]

    def select(self, indices: Sequence[int]) -> Table:
        """A new table with the rows at ``indices`` (in that order), keeping their locations."""
        return Table(
            source=self.source,
            rows=[self.rows[i] for i in indices],
            locations=[self.locations[i] for i in indices],
        )


# --------------------------------------------------------------------------- reading


def read_table(source: str | Path, *, fmt: str = "auto", split: str | None = None) -> Table:
    """Read one table from a file, a ``save_to_disk`` folder or a Hub dataset.

    Args:
        source: a file path, a directory written by ``datasets.save_to_disk``, or a
            Hugging Face Hub dataset id (``"imdb"``, ``"user/name"``, or ``"hub:NAME"``).
        fmt: one of ``"auto"``, ``"csv"``, ``"tsv"``, ``"jsonl"``, ``"parquet"``,
            ``"datasets"``, ``"hub"``. ``"auto"`` decides by file extension, treats a
            directory as a ``datasets`` folder, and a name that is not an existing path
            but looks like a Hub id as a Hub dataset.
        split: which split to take from a ``DatasetDict`` folder or a Hub dataset. When
            ``None`` and there is exactly one split, that one is used.

    Raises:
        GptaUserError: the source is missing, unreadable, not UTF-8, malformed or empty.
    """
    kind = _resolve_format(source, fmt)
    if kind == "hub":
        return _read_hub(_hub_name(source), split)
    path = Path(source)
    if kind == "datasets":
        return _read_disk(path, split)
    if kind == "parquet":
        table = _read_parquet(path)
    elif kind in ("csv", "tsv"):
        table = _read_delimited(path, sep="," if kind == "csv" else "\t")
    else:
        table = _read_jsonl(path, must_be_lines=kind == "json")
    _require_rows(table)
    return table


def read_splits(
    train: str | Path,
    dev: str | Path | None = None,
    test: str | Path | None = None,
    *,
    fmt: str = "auto",
) -> dict[str, Table]:
    """Read the train / dev / test tables; the keys present are the splits found.

    When only ``train`` is given and it is a ``DatasetDict`` folder or a Hub dataset,
    its ``train`` split becomes "train", its ``validation`` (or ``dev``, ``valid``,
    ``val``) split becomes "dev" and its ``test`` split becomes "test", whichever
    exist. Otherwise each given source is read with :func:`read_table`; a ``DatasetDict``
    or Hub source given together with ``dev``/``test`` contributes its ``train`` split.
    Splits that are not available are simply absent: making a dev set from train is
    the caller's job (see :func:`stratified_split`).
    """
    kind = _resolve_format(train, fmt)
    if kind in ("datasets", "hub"):
        wanted = ("train",) if dev is not None or test is not None else ("train", "dev", "test")
        tables = _dataset_splits(train, kind, wanted)
    else:
        tables = {"train": read_table(train, fmt=fmt)}
    if dev is not None:
        tables["dev"] = read_table(dev, fmt=fmt)
    if test is not None:
        tables["test"] = read_table(test, fmt=fmt)
    return tables


def _dataset_splits(source: str | Path, kind: str, wanted: Sequence[str]) -> dict[str, Table]:
    """The ``wanted`` splits (of train / dev / test) of a datasets folder or Hub dataset."""
    if kind == "hub":
        name = _hub_name(source)
        loaded, label = _load_hub(name, split=None), f"{_HUB_PREFIX}{name}"
    else:
        loaded, label = _load_disk(Path(source)), str(source)
    if not _is_dataset_dict(loaded):
        tables = {"train": _table_from_loaded(loaded, label, None)}
    else:
        names = _split_names(loaded, label)
        tables = {
            key: _table_from_loaded(loaded, label, names[key]) for key in wanted if key in names
        }
    for table in tables.values():
        _require_rows(table)
    return tables


def _split_names(dataset_dict: datasets.DatasetDict, label: str) -> dict[str, str]:
    """Which split of ``dataset_dict`` is train, dev and test (dev and test if present)."""
    available = list(dataset_dict)
    if "train" not in available:
        raise GptaUserError(
            f"{label} has no 'train' split (available splits: {', '.join(available)})",
            hint="use a dataset with a 'train' split, or give the train data as its own file",
        )
    names = {"train": "train"}
    dev = next((name for name in _DEV_SPLIT_NAMES if name in available), None)
    if dev is not None:
        names["dev"] = dev
    if "test" in available:
        names["test"] = "test"
    return names


# --------------------------------------------------------------------------- formats


def _resolve_format(source: str | Path, fmt: str) -> str:
    """The concrete reader for ``source``: csv, tsv, jsonl, json, parquet, datasets or hub."""
    if fmt not in DATA_FORMATS:
        raise GptaUserError(
            f"unknown data format {fmt!r} for {source}",
            hint=f"use one of: {', '.join(DATA_FORMATS)}",
        )
    if fmt == "hub" or (isinstance(source, str) and source.startswith(_HUB_PREFIX)):
        return "hub"
    path = Path(source)
    if fmt == "datasets":
        return "datasets"
    if fmt != "auto":
        return fmt
    if path.is_dir():
        return "datasets"
    if path.exists():
        return _format_from_extension(path)
    if isinstance(source, str) and not path.suffix and _HUB_ID.match(source):
        return "hub"
    raise GptaUserError(
        f"file not found: {source}",
        hint="check the path (relative paths are resolved from the current directory)",
    )


def _format_from_extension(path: Path) -> str:
    kind = _EXTENSION_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise GptaUserError(
            f"cannot tell the format of {path} from its extension {path.suffix or '(none)'}",
            hint="use a .csv, .tsv, .jsonl, .parquet file or a datasets folder, "
            "or set the format explicitly",
        )
    return kind


def _require_rows(table: Table) -> None:
    if not table.rows:
        raise GptaUserError(
            f"{table.source} has no rows",
            hint="add data rows to the file (a header line alone is not enough)",
        )


def _read_text(path: Path) -> str:
    """The file's text, checked to be UTF-8 (a leading BOM is accepted and dropped), read
    within :data:`gpta.limits.DATA_BYTES` and :data:`gpta.limits.LINE_BYTES`."""
    if path.is_dir():
        raise GptaUserError(
            f"{path} is a directory, not a file",
            hint="pass the data file itself, or use a datasets save_to_disk folder",
        )
    if not path.exists():
        raise GptaUserError(f"file not found: {path}", hint="check the path")
    data = read_file_bounded(
        path, what="data file", bound=DATA_BYTES, lines=LINE_BYTES, fix=_BIG_FILE_FIX
    )
    return decode_utf8(data, str(path))


def decode_utf8(data: bytes, name: str) -> str:
    """``data`` as text, checked to be UTF-8 (a leading BOM is dropped); a user error names
    ``name`` (a file, or stdin), the line and the byte otherwise."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise GptaUserError(
            f"{name}, line {line}: not valid UTF-8 (byte 0x{data[exc.start]:02x})",
            hint="re-save the file as UTF-8 (e.g. 'iconv -f latin1 -t utf-8 in.csv > out.csv' "
            "or choose UTF-8 when exporting from a spreadsheet)",
        ) from None


def read_input(source: str, *, fmt: str | None, text_column: str, what: str) -> Table:
    """The rows of an input to predict on: a file, or stdin (``source`` ``"-"``).

    Plain text (stdin's default, or ``fmt="text"``) is one row a non-blank line, its text
    in ``text_column``; stdin also takes ``fmt="jsonl"``. Any other file is read by
    :func:`read_table`. Text and stdin are read within :data:`gpta.limits.DATA_BYTES` and
    :data:`gpta.limits.LINE_BYTES`; ``what`` names the input in messages (``"--input"``).
    """
    if source != "-" and fmt != "text":
        return read_table(source, fmt=fmt or "auto")
    if source == "-":
        name, data = "stdin", _read_stdin()
    else:
        name, path = source, Path(source)
        if not path.is_file():
            raise GptaUserError(f"{what}: file not found: {source}", hint="check the path")
        data = read_file_bounded(path, what=what, lines=LINE_BYTES)
    text = decode_utf8(data, name)
    if fmt in (None, "text"):
        kept = [(i, line) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]
        return Table(
            source=name,
            rows=[{text_column: line} for _, line in kept],
            locations=[f"line {i}" for i, _ in kept],
        )
    if fmt != "jsonl":
        raise GptaUserError(f"--input-format {fmt}: stdin takes text or jsonl")
    return _jsonl_table(text, name)


def _read_stdin() -> bytes:
    """stdin's bytes, within :data:`gpta.limits.DATA_BYTES` and :data:`gpta.limits.LINE_BYTES`."""
    raw = getattr(sys.stdin, "buffer", None)
    if raw is None:  # a text-only stdin (an embedding program's): read within the bound
        raw = io.BytesIO(sys.stdin.read(DATA_BYTES.value() + 1).encode("utf-8"))
    return read_stream_bounded(raw, name="stdin", lines=LINE_BYTES)


# --------------------------------------------------------------------------- JSONL


def _read_jsonl(path: Path, *, must_be_lines: bool) -> Table:
    """Read JSON Lines: one object per line, blank lines skipped.

    ``must_be_lines`` is set for ``.json`` files, which are accepted only when
    line-delimited; a regular JSON document gets an error explaining the difference.
    """
    text = _read_text(path)
    if must_be_lines and not _looks_line_delimited(text.split("\n")):
        raise GptaUserError(
            f"{path} is a JSON document, not JSON Lines (one object per line)",
            hint="write one JSON object per line and name the file .jsonl, e.g. "
            "pandas.read_json(path).to_json('data.jsonl', orient='records', lines=True)",
        )
    return _jsonl_table(text, str(path))


def _jsonl_table(text: str, name: str) -> Table:
    """The rows of JSON Lines text read from ``name`` (a file, or stdin)."""
    rows: list[dict[str, Any]] = []
    locations: list[str] = []
    # not splitlines(): JSON strings may hold U+2028 etc.
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            rows.append(_parse_json_object(line, name, number))
            locations.append(f"line {number}")
    return Table(source=name, rows=rows, locations=locations)


def _looks_line_delimited(lines: Sequence[str]) -> bool:
    """True when the first non-blank line is, on its own, a JSON object."""
    first = next((line for line in lines if line.strip()), None)
    if first is None:
        return True  # an empty file: reported as "no rows"
    try:
        return isinstance(json.loads(first), dict)
    except json.JSONDecodeError:
        return False


def _parse_json_object(line: str, name: str, number: int) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise GptaUserError(
            f"{name}, line {number}: invalid JSON ({exc.msg} at column {exc.colno})",
            hint="each line must be one complete JSON object, e.g. "
            '{"text": "great film", "label": "pos"}',
        ) from None
    except RecursionError:
        raise GptaUserError(
            f"{name}, line {number}: JSON nested too deeply to read",
            hint="each line must be one flat JSON object of texts, numbers and short lists",
        ) from None
    if not isinstance(value, dict):
        raise GptaUserError(
            f"{name}, line {number}: expected a JSON object, got {_json_kind(value)}",
            hint='each line must be one JSON object with named fields, e.g. {"text": "..."}',
        )
    return value


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    return _JSON_KINDS.get(type(value), type(value).__name__)


# --------------------------------------------------------------------------- CSV / TSV


def _read_delimited(path: Path, *, sep: str) -> Table:
    """Read CSV or TSV with pandas: types inferred, empty cells kept as ``""``.

    Quoting follows the usual CSV rules (``"..."`` with doubled quotes inside) for
    both separators, which is what pandas and spreadsheets write.
    """
    import pandas as pd

    text = _read_text(path)
    header, lines = _record_lines(text, sep)
    _check_unique_header(header, path)
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise GptaUserError(f"{path} is empty", hint="add a header line and data rows") from None
    except pd.errors.ParserError as exc:
        raise _malformed_delimited(path, sep, exc) from None
    rows = frame.to_dict(orient="records")
    if lines is None or len(lines) != len(rows):
        locations = [f"row {i}" for i in range(1, len(rows) + 1)]
    else:
        locations = [f"line {n}" for n in lines]
    return Table(source=str(path), rows=[_plain_row(row) for row in rows], locations=locations)


def _record_lines(text: str, sep: str) -> tuple[list[str] | None, list[int] | None]:
    """The header and the physical line where each data record starts, via Python's csv.

    Blank lines are skipped, as pandas does. Returns ``(None, None)`` when the csv module
    cannot read the file (pandas then reports the problem, or locations use row numbers).
    """
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    header: list[str] | None = None
    starts: list[int] = []
    previous_end = 0
    try:
        for record in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            if header is None:
                header = record
            else:
                starts.append(start)
    except csv.Error:
        return None, None
    return header, starts


def _check_unique_header(header: Sequence[str] | None, path: Path) -> None:
    seen: set[str] = set()
    for name in header or ():
        if name in seen:
            raise GptaUserError(
                f"{path}: column {name!r} appears more than once in the header",
                hint="give every column a distinct name",
            )
        seen.add(name)


def _malformed_delimited(path: Path, sep: str, exc: Exception) -> GptaUserError:
    kind = "CSV" if sep == "," else "TSV"
    detail = str(exc).strip().removeprefix("Error tokenizing data. C error: ")
    match = _PANDAS_LINE.search(detail)
    where = f"{path}, line {match.group(1)}" if match else str(path)
    return GptaUserError(
        f"{where}: malformed {kind} ({detail})",
        hint="every line needs the same number of fields as the header; quote fields that "
        f"contain {'commas' if sep == ',' else 'tabs'}, quotes or line breaks",
    )


# --------------------------------------------------------------------------- Parquet


def _read_parquet(path: Path) -> Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.is_file():
        if path.exists():
            raise GptaUserError(
                f"{path} is not a regular file", hint="pass the Parquet file itself"
            )
        raise GptaUserError(f"file not found: {path}", hint="check the path")
    limit = DATA_BYTES.value()
    size = path.stat().st_size
    if size > limit:
        raise DATA_BYTES.error(f"data file {path}", f"{size:,} bytes", limit, fix=_BIG_FILE_FIX)
    try:
        # the uncompressed size, from the footer, before any column is read
        footer = pq.read_metadata(path)
        unpacked = sum(footer.row_group(i).total_byte_size for i in range(footer.num_row_groups))
        if unpacked > limit:
            raise DATA_BYTES.error(
                f"data file {path}", f"{unpacked:,} bytes uncompressed", limit, fix=_BIG_FILE_FIX
            )
        arrow_table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise GptaUserError(
            f"{path}: cannot read as Parquet ({exc})",
            hint="check that the file is a complete Parquet file, or convert it to CSV/JSONL",
        ) from None
    return Table(source=str(path), rows=arrow_table.to_pylist())


# --------------------------------------------------------------------------- datasets / Hub


def _read_disk(path: Path, split: str | None) -> Table:
    """One table from a save_to_disk folder (``split`` is ignored for a plain Dataset)."""
    loaded = _load_disk(path)
    table = _table_from_loaded(loaded, str(path), split)
    _require_rows(table)
    return table


def _load_disk(path: Path) -> datasets.Dataset | datasets.DatasetDict:
    import datasets

    if not path.is_dir():
        raise GptaUserError(
            f"datasets folder not found: {path}",
            hint="pass a directory written by Dataset.save_to_disk or DatasetDict.save_to_disk",
        )
    try:
        return datasets.load_from_disk(str(path))
    except FileNotFoundError:
        raise GptaUserError(
            f"{path} is a directory but not a datasets save_to_disk folder",
            hint="pass a data file (csv, tsv, jsonl, parquet) or a folder written by "
            "Dataset.save_to_disk / DatasetDict.save_to_disk",
        ) from None


def _read_hub(name: str, split: str | None) -> Table:
    loaded = _load_hub(name, split)
    label = _HUB_PREFIX + name if split is None else f"{_HUB_PREFIX}{name}[{split}]"
    table = _table_from_loaded(loaded, label, split)
    _require_rows(table)
    return table


def _hub_name(source: str | Path) -> str:
    return str(source).removeprefix(_HUB_PREFIX)


def _load_hub(name: str, split: str | None) -> datasets.Dataset | datasets.DatasetDict:
    """``datasets.load_dataset(name, split=split)`` with failures turned into user errors."""
    import datasets

    try:
        return datasets.load_dataset(name, split=split)
    except (OSError, ValueError, datasets.exceptions.DatasetsError) as exc:
        where = name if split is None else f"{name} (split {split!r})"
        raise GptaUserError(
            f"could not load dataset {where} from the Hugging Face Hub "
            f"(no local file or folder has that name): {exc}",
            hint=_hub_hint(name),
        ) from None


def _hub_hint(name: str) -> str:
    offline = [var for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if _env_flag(var)]
    if offline:
        return (
            f"{'/'.join(offline)}=1 is set, so nothing is downloaded and {name!r} must already "
            "be in the local Hugging Face cache; unset it to download, or pass a local file"
        )
    return (
        f"check the id (https://huggingface.co/datasets/{name}) and the split name, and that "
        "this machine can reach the Hub; or pass a local file (csv, tsv, jsonl, parquet)"
    )


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _is_dataset_dict(loaded: object) -> bool:
    import datasets

    return isinstance(loaded, datasets.DatasetDict)


def _table_from_loaded(
    loaded: datasets.Dataset | datasets.DatasetDict, label: str, split: str | None
) -> Table:
    """A :class:`Table` from a Dataset, or from one split of a DatasetDict.

    For a DatasetDict, ``split`` picks the split; ``None`` is fine when there is only one.
    """
    if not _is_dataset_dict(loaded):
        return _table_from_dataset(loaded, label)
    available = list(loaded)
    if split is None and len(available) == 1:
        split = available[0]
    if split is None:
        problem = "has several splits and none was chosen"
    elif split not in available:
        problem = f"has no split {split!r}"
    else:
        return _table_from_dataset(loaded[split], f"{label}[{split}]")
    raise GptaUserError(
        f"{label} {problem} (available splits: {', '.join(available)})",
        hint=f"choose one of the available splits, e.g. {available[0]!r}",
    )


def _table_from_dataset(dataset: datasets.Dataset, source: str) -> Table:
    limit = DATA_BYTES.value()
    size = dataset.data.nbytes  # Arrow's count of the split's buffers, nothing read yet
    if size > limit:
        raise DATA_BYTES.error(source, f"{size:,} bytes of data", limit, fix=_BIG_FILE_FIX)
    return Table(source=source, rows=dataset.to_list())


def _plain_row(row: dict[Any, Any]) -> dict[str, Any]:
    """A row with numpy scalars turned into plain Python values."""
    return {str(key): _plain(value) for key, value in row.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


# --------------------------------------------------------------------------- validation


def require_columns(table: Table, columns: Sequence[str], *, option: str | None = None) -> None:
    """Check that every row of ``table`` has each of ``columns``.

    Args:
        table: the table to check.
        columns: the column names that must be present.
        option: the configuration option that names the column (e.g.
            ``"data.text_column"``), mentioned in the hint when given.

    Raises:
        GptaUserError: naming the missing column, the table's source and the columns it
            has (or, when only some rows lack it, the first such row's location).
    """
    available = table.columns
    for name in columns:
        if name not in available:
            raise GptaUserError(
                f"{table.source}: no column {name!r} "
                f"(available columns: {', '.join(map(repr, available)) or 'none'})",
                hint=_column_hint(option, available),
            )
        missing_at = next((i for i, row in enumerate(table.rows) if name not in row), None)
        if missing_at is not None:
            raise GptaUserError(
                f"{table.source}, {table.locations[missing_at]}: the row has no {name!r} field",
                hint=f"add {name!r} to every row",
            )


def _column_hint(option: str | None, available: Sequence[str]) -> str:
    choices = f" ({', '.join(map(repr, available))})" if available else ""
    if option:
        return f"set {option} to one of the available columns{choices}, or rename the column"
    return f"rename the column in the file, or use one of the available columns{choices}"


def require_text(table: Table, column: str) -> None:
    """Check that every value in ``column`` is a string with non-whitespace content.

    Raises:
        GptaUserError: naming the source, the first bad row's location and the column,
            saying "empty text" or "not a string (got TYPE)".
    """
    require_columns(table, [column])
    for row, location in zip(table.rows, table.locations, strict=True):
        value = row[column]
        if not isinstance(value, str):
            problem = f"not a string (got {type(value).__name__})"
        elif not value.strip():
            problem = "empty text"
        else:
            continue
        raise GptaUserError(
            f"{table.source}, {location}: column {column!r} has {problem}",
            hint=f"fill in {column!r} with text on that row, or remove the row",
        )


# --------------------------------------------------------------------------- long rows

# A cell is cut (or refused) long before tokenising: tokenisers hold several objects per
# character, and one 50 MB row took 8 GB. No model reads past model.max_length tokens of the
# text, and real text averages well under 10 characters a token, so cutting the text at 64
# characters per token of max_length (at least 20,000) keeps all that a model reads of it
# (only a pathological cell, e.g. 100-character "words" that become one unknown token each,
# could lose tokens). Cells whose end matters are refused instead, naming the row: a QA
# context (the answer may be anywhere: every window of it is read, so its cap is fixed and
# larger), a question, the options, a label or a reference summary.
CHARS_PER_TOKEN = 64
MIN_TEXT_CHARS = 20_000
QA_CONTEXT_CHARS = 1_000_000


def text_char_cap(max_length: int) -> int:
    """The most characters of a text cell that are kept, for ``model.max_length`` tokens."""
    return max(MIN_TEXT_CHARS, CHARS_PER_TOKEN * max_length)


def _cell_chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list | tuple):
        return sum(len(v) for v in value if isinstance(v, str))
    return 0


def cap_long_cells(
    table: Table,
    *,
    cut: Sequence[str] = (),
    refuse: dict[str, tuple[int, str]] | None = None,
    max_chars: int,
    option: str = "model.max_length",
) -> list[str]:
    """Cut the string cells of the ``cut`` columns to ``max_chars`` characters (in place);
    refuse a cell of a ``refuse`` column (``{column: (limit, what it is)}``) longer than its
    limit with a user error naming the row. Returns the locations of the rows that were cut
    (the caller warns once)."""
    for column, (limit, what) in (refuse or {}).items():
        for row, where in zip(table.rows, table.locations, strict=True):
            size = _cell_chars(row.get(column))
            if size > limit:
                raise GptaUserError(
                    f"{table.source}, {where}: column {column!r} holds {size:,} characters; "
                    f"the most gpta reads in {what} is {limit:,}",
                    hint=f"shorten that row's {column!r} (or drop the row): cutting {what} "
                    "would change what it means",
                )
    cut_at: list[str] = []
    for column in cut:
        for row, where in zip(table.rows, table.locations, strict=True):
            value = row.get(column)
            if isinstance(value, str) and len(value) > max_chars:
                row[column] = value[:max_chars]
                cut_at.append(where)
    return cut_at


def long_cells_warning(source: str, column: str, cut_at: Sequence[str], max_chars: int) -> str:
    """The one warning for the rows :func:`cap_long_cells` cut."""
    shown = ", ".join(cut_at[:3]) + (f" and {len(cut_at) - 3} more" if len(cut_at) > 3 else "")
    return (
        f"{source}: {len(cut_at)} row(s) ({shown}) hold more than {max_chars:,} characters "
        f"in {column!r}; cut to {max_chars:,} before tokenising (the model reads at most "
        "model.max_length tokens of it, which lie well inside that)"
    )


def cap_task_rows(
    table: Table,
    *,
    family: str,
    text_column: str,
    label_column: str | None,
    question_column: str = "question",
    options_column: str = "options",
    max_length: int,
) -> str | None:
    """:func:`cap_long_cells` with each task family's rule (see the note above); the
    warning to print once when rows were cut, else None. ``label_column`` None: unlabelled
    rows (``gpta predict``)."""
    max_chars = text_char_cap(max_length)
    refuse: dict[str, tuple[int, str]] = {}
    cut: list[str] = []
    if family == "qa":
        refuse[text_column] = (QA_CONTEXT_CHARS, "a QA context")
        refuse[question_column] = (max_chars, "a question")
    else:
        cut.append(text_column)
    if family == "multiple_choice":
        refuse[question_column] = (max_chars, "a question")
        refuse[options_column] = (max_chars, "the options of a row")
    if label_column is not None and family != "qa":  # QA answers are checked by the task
        what = "a reference summary" if family == "summarization" else "a label"
        refuse[label_column] = (max_chars, what)
    cut_at = cap_long_cells(table, cut=cut, refuse=refuse, max_chars=max_chars)
    if not cut_at:
        return None
    return long_cells_warning(table.source, text_column, cut_at, max_chars)


# --------------------------------------------------------------------------- splitting


def stratified_split(
    table: Table, fraction: float, *, seed: int, stratify: Sequence[Any] | None
) -> tuple[Table, Table]:
    """Split ``table`` into ``(rest, held_out)`` with about ``fraction`` of rows held out.

    Rows are chosen with scikit-learn's ``train_test_split`` (seeded, so the same seed
    gives the same split), stratified by the per-row values in ``stratify`` (e.g. the
    labels) when given. Both parts keep the original row order.

    When exact stratification is impossible (a class with a single row, or fewer rows
    on either side than there are classes), a seeded per-class split is used instead:
    each class with at least 2 rows holds out ``round(fraction * count)`` of its rows,
    but at least 1 and never all of them; a class with a single row stays in ``rest``.
    (If that leaves nothing held out, e.g. when every class has one row, the split is
    done without stratification.) Stratification values must be hashable.

    Raises:
        GptaUserError: ``fraction`` is not strictly between 0 and 1, or the table has
            fewer than 2 rows.
    """
    _check_fraction(fraction, table)
    if len(table) < 2:
        raise GptaUserError(
            f"{table.source} has {len(table)} row(s): too few to split off a held-out part",
            hint="add rows, or provide the held-out data as its own file",
        )
    indices = np.arange(len(table))
    if stratify is None:
        rest, held = _random_split(indices, fraction, seed)
    else:
        codes = _class_codes(stratify, table)
        if _sklearn_can_stratify(codes, fraction):
            rest, held = _sklearn_split(indices, fraction, seed, codes)
        else:
            rest, held = _per_class_split(codes, fraction, seed)
            if len(held) == 0:
                rest, held = _random_split(indices, fraction, seed)
    return table.select(sorted(rest.tolist())), table.select(sorted(held.tolist()))


def _check_fraction(fraction: float, table: Table) -> None:
    valid = isinstance(fraction, numbers.Real) and not isinstance(fraction, bool)
    if not valid or not 0 < fraction < 1:
        raise GptaUserError(
            f"held-out fraction {fraction!r} for {table.source} must be between 0 and 1",
            hint="use a fraction such as 0.1 (10% of the rows held out)",
        )


def _class_codes(stratify: Sequence[Any], table: Table) -> np.ndarray:
    """Integer codes for the stratification values, in order of first appearance."""
    if len(stratify) != len(table):
        raise ValueError(
            f"stratify has {len(stratify)} values but {table.source} has {len(table)} rows"
        )
    codes: dict[Any, int] = {}
    out = []
    for value, where in zip(stratify, table.locations, strict=True):
        try:
            out.append(codes.setdefault(value, len(codes)))
        except TypeError:  # a list or an object where a label belongs
            raise GptaUserError(
                f"{table.source}, {where}: the label is {_json_kind(value)} ({value!r:.60}), "
                "not a text or a number",
                hint="give every row one label: a text such as 'positive' or a number",
            ) from None
    return np.array(out, dtype=np.int64)


def _held_out_size(n_rows: int, fraction: float) -> int:
    """Rows held out by scikit-learn for a float ``test_size`` (rounded up)."""
    return int(np.ceil(fraction * n_rows))


def _sklearn_can_stratify(codes: np.ndarray, fraction: float) -> bool:
    counts = np.bincount(codes)
    n_held = _held_out_size(len(codes), fraction)
    n_rest = len(codes) - n_held
    return bool(counts.min() >= 2 and min(n_held, n_rest) >= len(counts))


def _random_split(indices: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    n_held = min(_held_out_size(len(indices), fraction), len(indices) - 1)
    rest, held = train_test_split(indices, test_size=n_held, random_state=seed, shuffle=True)
    return rest, held


def _sklearn_split(
    indices: np.ndarray, fraction: float, seed: int, codes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    rest, held = train_test_split(
        indices, test_size=fraction, random_state=seed, shuffle=True, stratify=codes
    )
    return rest, held


def _per_class_split(
    codes: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Best-effort stratified split used when scikit-learn's is impossible."""
    rng = np.random.default_rng(seed)
    rest: list[np.ndarray] = []
    held: list[np.ndarray] = []
    for members in _members_by_class(codes):
        shuffled = rng.permutation(members)
        count = len(members)
        n_held = 0 if count < 2 else min(max(round(fraction * count), 1), count - 1)
        held.append(shuffled[:n_held])
        rest.append(shuffled[n_held:])
    return np.concatenate(rest), np.concatenate(held)


def _members_by_class(codes: np.ndarray) -> list[np.ndarray]:
    """Row indices of each class, classes in order of their codes."""
    order = np.argsort(codes, kind="stable")
    boundaries = np.cumsum(np.bincount(codes))[:-1]
    return np.split(order, boundaries)


# --------------------------------------------------------------------------- sampling


def sample_rows(
    table: Table, size: int | float, *, seed: int, stratify: Sequence[Any] | None
) -> Table:
    """A seeded sample of ``table`` for low-resource experiments.

    Args:
        table: the rows to sample from.
        size: an ``int`` number of rows (1 to ``len(table)``), or a ``float`` fraction in
            ``(0, 1]`` of the table (rounded, at least 1 row).
        seed: the random seed; the same seed gives the same rows.
        stratify: per-row class values (e.g. labels) or ``None`` for a plain random sample.

    With ``stratify``, each class gets a share proportional to its frequency (largest
    remainders decide the rounding, seeded ties), and when the sample has at least as
    many rows as there are classes every class keeps at least one row. The chosen rows
    keep their original order.

    Raises:
        GptaUserError: ``size`` is not positive, a fraction above 1, or more rows than
            the table has.
    """
    n_rows = _sample_size(table, size)
    rng = np.random.default_rng(seed)
    if stratify is None:
        chosen = rng.choice(len(table), size=n_rows, replace=False)
    else:
        chosen = _stratified_choice(_class_codes(stratify, table), n_rows, rng)
    return table.select(np.sort(chosen).tolist())


def _sample_size(table: Table, size: int | float) -> int:
    """The number of rows that ``size`` (a count or a fraction) asks for."""
    if isinstance(size, bool) or not isinstance(size, numbers.Real) or not size > 0:
        raise GptaUserError(
            f"sample size {size!r} for {table.source} must be a positive number",
            hint="use a row count such as 100, or a fraction such as 0.1",
        )
    if not isinstance(size, numbers.Integral):
        if size > 1:
            raise GptaUserError(
                f"sample size {size!r} for {table.source} is a fraction above 1",
                hint="use a fraction in (0, 1], or an integer such as "
                f"{int(size)} for a number of rows",
            )
        return max(1, round(size * len(table)))
    if size > len(table):
        raise GptaUserError(
            f"sample size {size} is larger than {table.source}, which has {len(table)} rows",
            hint=f"use a size of at most {len(table)}, or a fraction such as 0.5",
        )
    return int(size)


def _stratified_choice(codes: np.ndarray, n_rows: int, rng: np.random.Generator) -> np.ndarray:
    members = _members_by_class(codes)
    counts = np.array([len(m) for m in members])
    quotas = _allocate(counts, n_rows, rng)
    picks = [rng.permutation(m)[:q] for m, q in zip(members, quotas, strict=True)]
    return np.concatenate(picks)


def _allocate(counts: np.ndarray, n_rows: int, rng: np.random.Generator) -> np.ndarray:
    """Rows per class: proportional to ``counts``, summing to ``n_rows``.

    Each class gets the floor of its exact share, raised to 1 when ``n_rows`` allows one
    row per class. Missing rows then go to the largest remainders, and rows over
    ``n_rows`` (from the raise to 1) are taken back from the most over-served classes;
    ties are broken by a seeded shuffle.
    """
    exact = counts * n_rows / counts.sum()
    minimum = 1 if n_rows >= len(counts) else 0
    quotas = np.maximum(np.floor(exact).astype(np.int64), minimum)
    tiebreak = rng.permutation(len(counts))
    gap = n_rows - int(quotas.sum())
    while gap != 0:
        step = 1 if gap > 0 else -1
        remainders = exact - quotas
        for c in np.lexsort((tiebreak, -step * remainders)):
            can_move = quotas[c] < counts[c] if step > 0 else quotas[c] > minimum
            if gap != 0 and can_move:
                quotas[c] += step
                gap -= step
    return quotas
