"""``gpta cache``: the TA response cache (info, clear); a ``--path`` must be gpta's cache."""

from __future__ import annotations

from pathlib import Path

import click

from gpta.errors import GptaUserError


@click.group()
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
