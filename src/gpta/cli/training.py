"""``gpta train`` and ``gpta demo``: a run end to end, from flags and a config or from the
bundled demo data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from gpta.cli.train_flags import _refuse_conflicts, _train_options
from gpta.config import parse_overrides
from gpta.errors import GptaUserError

if TYPE_CHECKING:
    from gpta.progress import LogFormat


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


@click.command(context_settings={"max_content_width": 100})  # long option help: use the width
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


@click.command()
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
