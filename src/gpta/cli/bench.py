"""``gpta bench``: the benchmark suite of a source checkout (``python -m benchmarks``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gpta.errors import GptaUserError


def _benchmarks_root() -> Path | None:
    """The source checkout holding ``benchmarks/``: the current directory, or the checkout
    this package was installed from (``pip install -e .``)."""
    import gpta

    for root in (Path.cwd(), Path(gpta.__file__).resolve().parents[2]):
        if (root / "benchmarks" / "__main__.py").is_file():
            return root
    return None


@click.command(
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
