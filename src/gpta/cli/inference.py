"""``gpta predict`` and ``gpta eval``: a trained model on new rows. The rows are read and
checked before the model loads; predict's ``--output`` is checked before anything is read
and written atomically."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from gpta.config import DEVICES
from gpta.data import DATA_FORMATS
from gpta.errors import GptaUserError


def _read_rows(source: str, fmt: str | None, text_column: str) -> tuple[list[dict], list[str]]:
    """Rows to predict and their locations, from a file or stdin."""
    from gpta.data import read_input

    table = read_input(source, fmt=fmt, text_column=text_column, what="--input")
    return table.rows, table.locations


def _rename(rows: list[dict], renames: dict[str, str | None]) -> list[dict]:
    """Map user column names onto the ones the model was trained with."""
    renames = {trained: given for trained, given in renames.items() if given}
    if not renames:
        return rows
    present = set().union(*(row.keys() for row in rows)) if rows else set()
    for given in renames.values():
        if given not in present:
            raise GptaUserError(
                f"column {given!r} is not in the input (columns: {sorted(present)})",
                hint="check --text-column / --label-column",
            )
    return [
        {**row, **{trained: row.get(given) for trained, given in renames.items()}} for row in rows
    ]


def _cap_rows(
    rows: list[dict], where: list[str], manifest: dict[str, Any], source: str, *, labelled: bool
) -> None:
    """Over-long texts cut before tokenising (one warning), or a cell that must not be cut
    refused, as in training (:meth:`gpta.tasks.base.Task.cap_rows`)."""
    from gpta.data import Table
    from gpta.progress import warn
    from gpta.tasks import cap_task_rows

    message = cap_task_rows(
        Table(source, rows, where),
        family=manifest["task"],
        text_column=manifest.get("text_column", "text"),
        label_column=manifest.get("label_column", "label") if labelled else None,
        question_column=manifest.get("question_column", "question"),
        options_column=manifest.get("options_column", "options"),
        max_length=manifest["max_length"],
    )
    if message:
        warn(message)


def _saved_manifest(model_path: str) -> dict[str, Any]:
    """The fields of the run's gpta.json, checked (no model is loaded)."""
    from gpta.downstream.artifact import find_model_dir, read_manifest

    return read_manifest(find_model_dir(model_path)).fields()


def _check_rows(rows: list[dict], where: list[str], columns: list[str], source: str) -> None:
    for row, location in zip(rows, where, strict=True):
        for column in columns:
            if row.get(column) in (None, ""):
                raise GptaUserError(
                    f"{source}, {location}: no value in column {column!r}",
                    hint="name the column with --text-column / --label-column",
                )


# what `predict --input` reads: one file of a training format (not a datasets folder or a
# hub name; auto is the default when no format is given), or text lines
_INPUT_FORMATS = ("text", *(f for f in DATA_FORMATS if f not in ("auto", "datasets", "hub")))


@click.command()
@click.option("--model", "model_path", required=True, help="Run directory or its model/ folder.")
@click.option(
    "--input",
    "source",
    required=True,
    help="File (CSV/TSV/JSONL/Parquet/text) or - for stdin (one text per line).",
)
@click.option(
    "--input-format",
    type=click.Choice(_INPUT_FORMATS),
    default=None,
    help="Default: from the file extension; text for stdin.",
)
@click.option("--text-column", default=None, help="Default: the column used in training.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write JSONL here instead of stdout.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an existing --output file that is not one gpta predict wrote.",
)
@click.option("--device", type=click.Choice(DEVICES), default="auto")
def predict(
    model_path: str,
    source: str,
    input_format: str | None,
    text_column: str | None,
    output: str | None,
    overwrite: bool,
    device: str,
) -> None:
    """Predict with a trained model and its saved prefix (no LLM is loaded)."""
    from gpta.downstream.pipeline import load_pipeline

    if output:  # before the model loads; the input is never replaced by its predictions
        _check_output(output, source, overwrite=overwrite)
    manifest = _saved_manifest(model_path)  # the rows are read and checked before the model
    trained_text = manifest.get("text_column", "text")
    rows, where = _read_rows(source, input_format, text_column or trained_text)
    rows = _rename(rows, {trained_text: text_column})
    _check_rows(rows, where, manifest.get("input_columns", [trained_text]), source)
    _cap_rows(rows, where, manifest, source, labelled=False)
    pipeline = load_pipeline(model_path, device=device)
    pipeline.task.check_rows(rows, where, source, labelled=False)  # the family's own checks
    predictions = pipeline(rows)
    lines = [
        json.dumps({"row": w, **p}, ensure_ascii=False)
        for w, p in zip(where, predictions, strict=True)
    ]
    text = "\n".join(lines) + ("\n" if lines else "")
    if output:
        _write_output(output, text)
    else:
        sys.stdout.write(text)


# a line of `gpta predict` output is short: its row's place and the prediction, not the row
_MAX_PREDICTION_LINE = 1 << 20


def _is_prediction_file(path: Path) -> bool:
    """Whether ``path`` holds what ``gpta predict`` writes (or nothing): every line a JSON
    object whose first key is "row". Read a line at a time (at most 1 MiB each)."""
    try:
        with path.open("rb") as handle:
            while line := handle.readline(_MAX_PREDICTION_LINE + 1):
                if len(line) > _MAX_PREDICTION_LINE:
                    return False
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except (ValueError, RecursionError):
                    return False
                if not isinstance(row, dict) or next(iter(row), None) != "row":
                    return False
    except OSError:
        return False
    return True


def _check_output(output: str, source: str, *, overwrite: bool) -> None:
    """``--output`` may be written: not a folder, not the input, and not a file of the
    user's (one that is not gpta's predictions) unless ``overwrite``."""
    from gpta.fileio import check_file_writable, same_file

    check_file_writable(output, "--output")
    if source != "-" and same_file(source, output):
        raise GptaUserError(
            f"--output {output} is the --input file: the predictions would replace the "
            "rows they are made from",
            hint="write the predictions to another file",
        )
    path = Path(output)
    if path.is_file() and not overwrite and not _is_prediction_file(path):
        raise GptaUserError(
            f"--output {output} exists and is not a file gpta predict wrote: the predictions "
            "would replace it",
            hint="give another --output, or pass --overwrite to replace it",
        )


def _write_output(output: str, text: str) -> None:
    """A file atomically (a reader, or a crash, sees the old file or the new one), through
    a link to its target (the link stays); a device or a pipe (/dev/null, /dev/stdout) is
    written to, never replaced."""
    from gpta.fileio import write_text_atomic

    path = Path(output)
    if path.exists() and not path.is_file():
        try:
            with path.open("w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as err:
            raise GptaUserError(
                f"--output {output} could not be written ({err.strerror or err})",
                hint="choose another --output",
            ) from None
        return
    write_text_atomic(path.resolve() if path.is_symlink() else path, text, "--output")


@click.command(name="eval")
@click.option("--model", "model_path", required=True, help="Run directory or its model/ folder.")
@click.option("--data", "source", required=True, help="Labelled CSV/TSV/JSONL/Parquet file.")
@click.option("--text-column", default=None, help="Default: the column used in training.")
@click.option("--label-column", default=None, help="Default: the column used in training.")
@click.option("--device", type=click.Choice(DEVICES), default="auto")
def evaluate(
    model_path: str, source: str, text_column: str | None, label_column: str | None, device: str
) -> None:
    """Score a trained model on labelled data; prints metrics as JSON."""
    from gpta.data import read_table
    from gpta.downstream.pipeline import load_pipeline

    manifest = _saved_manifest(model_path)  # the rows are read and checked before the model
    table = read_table(source)
    trained_text = manifest.get("text_column", "text")
    trained_label = manifest.get("label_column", "label")
    if (text_column or trained_text) == (label_column or trained_label):  # docs/meaning.md
        raise GptaUserError(
            f"--text-column and --label-column both name the column "
            f"{text_column or trained_text!r}: the model would read the answer it must produce",
            hint="give the column of the texts and the column of the labels",
        )
    rows = _rename(table.rows, {trained_text: text_column, trained_label: label_column})
    _check_rows(
        rows,
        table.locations,
        [*manifest.get("input_columns", [trained_text]), trained_label],
        source,
    )
    _cap_rows(rows, table.locations, manifest, source, labelled=True)
    pipeline = load_pipeline(model_path, device=device)
    pipeline.task.check_rows(rows, table.locations, source, labelled=True)  # the family's own
    evaluation = pipeline.evaluate(rows)
    metrics = {"rows": len(rows), "prefix": pipeline.prefix, **evaluation.metrics}
    click.echo(json.dumps(metrics, indent=2, ensure_ascii=False))
