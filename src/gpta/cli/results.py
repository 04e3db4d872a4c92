"""What finished runs leave: ``gpta report`` (a run's page and figures, or several runs
compared) and ``gpta prefixes`` (the library of every run's best prefix)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from gpta.errors import GptaUserError


@click.command()
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


@click.group()
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
