"""The commands at the machine's boundary: a trained model sent out (``gpta export``, the
Hub), what a run sent to the TA (``gpta audit``), and one round-trip to the TA before a
run (``gpta llm-check``, whose body is :mod:`gpta.cli.llm_check`)."""

from __future__ import annotations

import json
import sys

import click

from gpta.config import parse_overrides
from gpta.errors import GptaUserError
from gpta.export import FORMATS as EXPORT_FORMATS


@click.command(name="export", context_settings={"max_content_width": 100})
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


@click.command()
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


@click.command(name="llm-check")
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
    from gpta.cli.llm_check import check_llm
    from gpta.config import load_config

    config = load_config(config_path, parse_overrides(sets))
    report = check_llm(config)
    for key, value in report.items():
        click.echo(f"{key}: {value}")
    if not report["ok"]:
        sys.exit(1)
