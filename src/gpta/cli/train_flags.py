"""``gpta train``'s flags, made from the config fields they set, and the refusal of an
option given twice with different values (a flag and a ``--set``, or two ``--set``)."""

from __future__ import annotations

from collections.abc import Callable
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import click

from gpta.config import config_field
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


def name_list(value: str) -> list[str]:
    """``tensorboard,mlflow`` -> ``["tensorboard", "mlflow"]``."""
    return [name.strip() for name in value.split(",") if name.strip()]


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
