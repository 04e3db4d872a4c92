"""The saved model's manifest (``gpta.json``): a typed, versioned record of what it was trained for.

One flat record for every task family: the fields every saved model has (``task``,
``prefix``, ``max_length``), then each family's own, present only for that family (a
family checks its own fields when it is rebuilt: :meth:`Manifest.require`). Values are
checked strictly (a number written as text is refused, not converted).

Versions: ``format_version`` is :data:`FORMAT_VERSION` in every file written now. Files
written before the field existed (gpta 0.1.0 before this change) hold no version and are
read as version 1, which they are: no field changed when the number was added. A
file with a higher version was written by a newer gpta and is refused with a hint to
upgrade; a field this gpta does not know is refused the same way (a newer gpta, or a file
not written by gpta), never ignored: a saved model is only served as it was trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, ValidationError

from gpta.config import TaskName
from gpta.errors import GptaUserError
from gpta.limits import CLASSES, PREFIX_CHARS

FORMAT_VERSION = 1  # raise it when a field changes meaning or is removed

T = TypeVar("T")

DAMAGED_HINT = (
    "this file is written by `gpta train`; restore the one it wrote, or train the run again"
)
_NEWER = (
    "upgrade gpta (pip install -U gpta) to serve this model; if no newer gpta wrote the file, "
    "it was not written by `gpta train`: restore the one it wrote, or train the run again"
)


class Manifest(BaseModel):
    """What ``gpta predict``/``gpta eval`` need to serve a saved model exactly as trained."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    format_version: int = FORMAT_VERSION
    # every saved model
    task: TaskName
    prefix: str
    max_length: int
    text_column: str | None = None
    label_column: str | None = None
    input_columns: list[str] | None = None  # the columns a row must fill to be predicted
    base_model: str | None = None
    best_round: int | None = None
    metrics: dict[str, Any] | None = None  # the saved round's metrics per split (free-form)
    predict_prefixes: list[str] | None = None  # prefix variety: probabilities averaged over these
    versions: dict[str, str] | None = None  # library versions of the run (reproducibility)
    # classification (and its head: gpta.tasks.heads)
    labels: list[str | int | float | bool] | None = None
    head: str | None = None
    label_names: list[str] | None = None
    label_words: dict[str, str] | None = None
    label_words_source: str | None = None
    template: str | None = None
    scoring: str | None = None
    slot: str | None = None
    # QA and multiple choice
    question_column: str | None = None
    options_column: str | None = None
    doc_stride: int | None = None
    num_choices: int | None = None
    # summarization
    architecture: str | None = None
    max_target_length: int | None = None
    max_new_tokens: int | None = None
    num_beams: int | None = None

    def require(self, *names: str) -> None:
        """A family's own fields: ``KeyError`` naming the first of ``names`` the file lacks."""
        for name in names:
            if getattr(self, name) is None:
                raise KeyError(name)

    def fields(self) -> dict[str, Any]:
        """The fields the file holds (JSON-able), e.g. a head's own (``head_from_manifest``)."""
        return self.model_dump(exclude_none=True)


def required(value: T | None, name: str) -> T:
    """The value of a family's own field ``name`` (after :meth:`Manifest.require`):
    ``KeyError`` naming it when the file lacks it."""
    if value is None:
        raise KeyError(name)
    return value


def parse_manifest(data: Any, path: Path) -> Manifest:
    """``data`` (the JSON of the file at ``path``) as a :class:`Manifest`, or a
    :class:`GptaUserError` naming the file, the field and how to fix it."""
    if not isinstance(data, dict):
        raise GptaUserError(f"{path} is not a JSON object", hint=DAMAGED_HINT)
    version = data.get("format_version", 1)
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise GptaUserError(
            f"{path} is format_version {version}, written by a newer gpta; this gpta reads up "
            f"to format_version {FORMAT_VERSION}",
            hint=_NEWER,
        )
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as err:
        raise _user_error(err, data, path) from None
    if manifest.format_version < 1:
        raise GptaUserError(
            f"{path}: format_version {manifest.format_version} is not one gpta writes",
            hint=DAMAGED_HINT,
        )
    _check_sizes(manifest, path)
    _check_labels(manifest, path)
    return manifest


def _check_sizes(manifest: Manifest, path: Path) -> None:
    """The prefixes and the label set within their bounds (:mod:`gpta.limits`): a
    hand-edited file is refused here, before a model is loaded."""
    prefix_limit = PREFIX_CHARS.value()
    named = [("prefix", manifest.prefix)]
    named += [(f"predict_prefixes[{i}]", p) for i, p in enumerate(manifest.predict_prefixes or [])]
    for field, prefix in named:
        if len(prefix) > prefix_limit:
            raise PREFIX_CHARS.error(
                f"{path}, field {field!r}",
                f"a prefix of {len(prefix):,} characters",
                prefix_limit,
                fix="restore the prefix gpta wrote (metrics.json of the run holds it)",
            )
    class_limit = CLASSES.value()
    if manifest.labels is not None and len(manifest.labels) > class_limit:
        raise CLASSES.error(
            f"{path}, field 'labels'",
            f"{len(manifest.labels):,} labels",
            class_limit,
            fix=DAMAGED_HINT,
        )


def _check_labels(manifest: Manifest, path: Path) -> None:
    """A classifier's labels as training writes them: at least two, none twice, and as many
    label names (when given) as labels."""
    labels = manifest.labels
    if labels is None:
        return
    if len(labels) < 2:
        raise GptaUserError(
            f"{path}: 'labels' holds {len(labels)} label(s); a classifier has at least two",
            hint=DAMAGED_HINT,
        )
    keys = [(type(label).__name__, label) for label in labels]
    if len(set(keys)) < len(keys):
        raise GptaUserError(f"{path}: 'labels' names a label twice", hint=DAMAGED_HINT)
    names = manifest.label_names
    if names is not None and len(names) != len(labels):
        raise GptaUserError(
            f"{path}: 'label_names' holds {len(names)} names for {len(labels)} labels",
            hint=DAMAGED_HINT,
        )


def _user_error(err: ValidationError, data: dict[str, Any], path: Path) -> GptaUserError:
    """The first problem pydantic found, told as the old checks told it."""
    problem = err.errors()[0]
    key = str(problem["loc"][0]) if problem["loc"] else "?"
    kind = problem["type"]
    if kind == "missing":
        return GptaUserError(f"{path} has no {key!r} field", hint=DAMAGED_HINT)
    if kind == "extra_forbidden":
        return GptaUserError(f"{path} holds a field gpta does not know: {key!r}", hint=_NEWER)
    if key == "task" and kind == "literal_error":
        return GptaUserError(
            f"{path} names an unknown task {data['task']!r}",
            hint=f"known tasks: {', '.join(get_args(TaskName))}",
        )
    value = data.get(key)
    return GptaUserError(
        f"{path} holds a {type(value).__name__} in {key!r}: {problem['msg'].lower()}",
        hint=DAMAGED_HINT,
    )
