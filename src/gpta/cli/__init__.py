"""The ``gpta`` command: demo, train, predict, eval, ... and ``bench`` (the benchmarks).

User mistakes (:class:`GptaUserError`, bad options) print one message and exit
with status 2; there is no traceback for them.

This module holds the click group, the registration of every command and :func:`main`;
each command lives in the module of its job (train_flags, training, inference, boundary,
cache, teaching_assistant, results, bench), and none of them imports this one.
"""

from __future__ import annotations

import sys

import click

from gpta.cli import bench, boundary, cache, inference, results, teaching_assistant, training
from gpta.cli.train_flags import TRAIN_FLAGS, flag_type, name_list
from gpta.errors import GptaUserError

__all__ = ["TRAIN_FLAGS", "cli", "flag_type", "main", "name_list"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gpta")
def cli() -> None:
    """GPTA: fine-tune a small model with an LLM teaching assistant writing its prefix."""


for _command in (
    training.train,
    training.demo,
    inference.predict,
    inference.evaluate,
    boundary.export_command,
    boundary.audit,
    boundary.llm_check,
    cache.cache,
    teaching_assistant.models,
    teaching_assistant.assistant,
    results.report,
    results.prefixes,
    bench.bench,
):
    cli.add_command(_command)


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
