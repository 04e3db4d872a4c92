"""The ``gpta`` command: demo, train, predict, eval.

User mistakes (:class:`GptaUserError`, bad options) print one message and exit
with status 2; there is no traceback for them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml

from gpta.errors import GptaUserError


def _size(value: str) -> int | float:
    """``64`` is a row count, ``0.25`` a fraction."""
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is neither a row count nor a fraction") from None


# flag, config path, type, help. One table, so the flags and the config file cannot drift.
TRAIN_OPTIONS: list[tuple[str, str, Any, str]] = [
    (
        "--train",
        "data.train",
        str,
        "Training data: CSV, TSV, JSONL, Parquet, datasets folder or hub name.",
    ),
    ("--dev", "data.dev", str, "Dev data (default: a stratified split of train)."),
    ("--test", "data.test", str, "Test data (default: a stratified split of train)."),
    (
        "--format",
        "data.format",
        click.Choice(["auto", "csv", "tsv", "jsonl", "parquet", "datasets", "hub"]),
        "Input format.",
    ),
    ("--text-column", "data.text_column", str, "Column holding the text."),
    ("--label-column", "data.label_column", str, "Column holding the label."),
    ("--description", "data.description", str, "Dataset description the TA reads."),
    ("--description-file", "data.description_file", str, "File holding the description."),
    (
        "--train-size",
        "data.train_size",
        _size,
        "Low-resource sampling: rows (64) or fraction (0.25).",
    ),
    ("--dev-fraction", "data.dev_fraction", float, "Share of train split off as dev."),
    ("--test-fraction", "data.test_fraction", float, "Share of train split off as test."),
    ("--model", "model.name_or_path", str, "Downstream model id/folder or bundled:minilm."),
    ("--max-length", "model.max_length", int, "Max input tokens, prefix included."),
    ("--rounds", "training.rounds", int, "Synergy rounds."),
    ("--epochs-per-round", "training.epochs_per_round", int, "Epochs per round."),
    (
        "--steps-per-round",
        "training.steps_per_round",
        int,
        "Optimizer steps per round (overrides epochs).",
    ),
    ("--learning-rate", "training.learning_rate", float, "Learning rate."),
    ("--batch-size", "training.batch_size", int, "Training batch size."),
    ("--candidates", "assistant.candidates", int, "TA proposals per round (K)."),
    ("--ta-model", "assistant.model", str, "TA model id/folder or bundled:smollm2."),
    ("--max-prefix-tokens", "assistant.max_prefix_tokens", int, "Cap on prefix tokens."),
    ("--screen-size", "assistant.screen_size", int, "Dev rows used to screen candidates."),
    ("--seed", "seed", int, "Random seed."),
    ("--output-dir", "output_dir", str, "Run directory."),
    ("--device", "device", click.Choice(["auto", "cpu", "cuda", "mps"]), "Device."),
]


def _train_options(func: Callable) -> Callable:
    for flag, dotted, kind, help_text in reversed(TRAIN_OPTIONS):
        func = click.option(
            flag, dotted.replace(".", "__"), type=kind, default=None, help=f"{help_text} [{dotted}]"
        )(func)
    return func


def _parse_set(items: tuple[str, ...]) -> dict[str, Any]:
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise GptaUserError(f"--set {item!r}: expected KEY=VALUE, e.g. --set training.rounds=5")
        overrides[key.strip()] = yaml.safe_load(value) if value else ""
    return overrides


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gpta")
def cli() -> None:
    """GPTA: fine-tune a small model with an LLM teaching assistant writing its prefix."""


@cli.command()
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
@click.option("-q", "--quiet", is_flag=True, help="Print only the final table.")
def train(
    config_path: str | None, sets: tuple[str, ...], overwrite: bool, quiet: bool, **flags: Any
) -> None:
    """Train a downstream model with GPTA."""
    from gpta.config import load_config
    from gpta.run import train as run_train

    overrides = _parse_set(sets)
    overrides.update({k.replace("__", "."): v for k, v in flags.items() if v is not None})
    config = load_config(config_path, overrides)
    run_train(config, overwrite=overwrite, quiet=quiet)


@cli.command()
@click.option("--output-dir", default="runs/demo", show_default=True, help="Run directory.")
@click.option("--rounds", default=3, show_default=True, help="Synergy rounds.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the final table.")
def demo(output_dir: str, rounds: int, quiet: bool) -> None:
    """GPTA on the bundled demo reviews with the bundled models (offline, a few minutes)."""
    from gpta.config import build_config
    from gpta.demo_dataset import write_demo_dataset
    from gpta.run import train as run_train

    data_dir = Path(output_dir) / "data"
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
            "assistant": {"candidates": 4, "screen_size": 48},
        },
        source="gpta demo",
    )
    run_train(config, overwrite=True, quiet=quiet)


def _read_inputs(source: str, fmt: str | None, text_column: str) -> tuple[list[str], list[str]]:
    """Texts to predict and their row locations, from a file or stdin."""
    from gpta.data import read_table, require_columns, require_text

    if source == "-":
        lines = sys.stdin.read().splitlines()
        if fmt in (None, "text"):
            texts = [line for line in lines if line.strip()]
            return texts, [f"line {i + 1}" for i, line in enumerate(lines) if line.strip()]
        if fmt != "jsonl":
            raise GptaUserError(f"--input-format {fmt}: stdin takes text or jsonl")
        texts, where = [], []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise GptaUserError(f"stdin, line {number}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get(text_column), str):
                raise GptaUserError(
                    f"stdin, line {number}: no text in column {text_column!r}",
                    hint="use --text-column to name the text field",
                )
            texts.append(row[text_column])
            where.append(f"line {number}")
        return texts, where
    if fmt == "text":
        path = Path(source)
        if not path.is_file():
            raise GptaUserError(f"--input: file not found: {source}")
        lines = path.read_text(encoding="utf-8").splitlines()
        return [ln for ln in lines if ln.strip()], [
            f"line {i + 1}" for i, ln in enumerate(lines) if ln.strip()
        ]
    table = read_table(source, fmt=fmt or "auto")
    require_columns(table, [text_column], option="--text-column")
    require_text(table, text_column)
    return table.column(text_column), table.locations


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
    type=click.Choice(["text", "csv", "tsv", "jsonl", "parquet"]),
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
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto")
def predict(
    model_path: str,
    source: str,
    input_format: str | None,
    text_column: str | None,
    output: str | None,
    device: str,
) -> None:
    """Predict with a trained model and its saved prefix (no LLM is loaded)."""
    from gpta.downstream.pipeline import load_pipeline

    pipeline = load_pipeline(model_path, device=device)
    texts, where = _read_inputs(source, input_format, text_column or pipeline.task.text_column)
    predictions = pipeline(texts)
    lines = [
        json.dumps(
            {
                "row": w,
                "label": p.label,
                "score": round(p.score, 6),
                "probabilities": {k: round(v, 6) for k, v in p.probabilities.items()},
            },
            ensure_ascii=False,
        )
        for w, p in zip(where, predictions, strict=True)
    ]
    text = "\n".join(lines) + ("\n" if lines else "")
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


@cli.command(name="eval")
@click.option("--model", "model_path", required=True, help="Run directory or its model/ folder.")
@click.option("--data", "source", required=True, help="Labelled CSV/TSV/JSONL/Parquet file.")
@click.option("--text-column", default=None, help="Default: the column used in training.")
@click.option("--label-column", default=None, help="Default: the column used in training.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto")
def evaluate(
    model_path: str, source: str, text_column: str | None, label_column: str | None, device: str
) -> None:
    """Score a trained model on labelled data; prints metrics as JSON."""
    from gpta.data import read_table, require_columns, require_text
    from gpta.downstream.pipeline import load_pipeline

    pipeline = load_pipeline(model_path, device=device)
    task = pipeline.task
    text_column = text_column or task.text_column
    label_column = label_column or task.label_column
    table = read_table(source)
    require_columns(table, [text_column], option="--text-column")
    require_columns(table, [label_column], option="--label-column")
    require_text(table, text_column)
    task.label_column = label_column
    references = task.label_ids(table)
    predictions = pipeline.predict_ids(table.column(text_column))
    metrics = {
        "rows": len(table),
        "prefix": pipeline.prefix,
        **task.metrics(predictions, references),
    }
    click.echo(json.dumps(metrics, indent=2, ensure_ascii=False))


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors exit 2 with one message, never a traceback."""
    try:
        cli.main(args=argv, prog_name="gpta", standalone_mode=False)
    except GptaUserError as err:
        click.echo(f"error: {err.message}", err=True)
        if err.hint:
            click.echo(f"  fix: {err.hint}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
