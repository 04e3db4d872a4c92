"""What an export reads from a run directory, and the one case it exports.

A run directory (``gpta train``'s ``--output-dir``) holds ``model/`` (``gpta.json``, the
encoder's Hugging Face folder, ``pooled_head.json`` and ``pooled_head.safetensors``),
``metrics.json``, ``splits.json`` and ``exposure.jsonl``. Exported: task ``classification``
with head ``sequence`` over a sentence-transformers encoder (the pooled head, gpta's
default), served with one prefix. Everything else is refused with the reason (docs/export.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpta import run_files
from gpta.downstream.artifact import read_manifest
from gpta.errors import GptaUserError
from gpta.fileio import read_json_record
from gpta.manifest import Manifest
from gpta.modeling.pooled import HEAD_CONFIG, HEAD_WEIGHTS, POOLING_MODES, Pooling
from gpta.tasks.heads.sequence import PREFIX_SEPARATOR, join_prefix

SUPPORTED = (
    "classification runs with the pooled sequence head (model.head: sequence over a "
    "sentence-transformers encoder such as bundled:minilm, the default)"
)


@dataclass(frozen=True)
class ExportSource:
    """A run's model as the exporters need it: where it is, its manifest, pooling and labels."""

    run_dir: Path
    model_dir: Path
    manifest: Manifest
    pooling: Pooling
    label_values: list[Any]  # as in the data (str, int, ...), in class-id order
    label_names: list[str]  # the same as strings: the names predictions use
    metrics: dict[str, Any] = field(default_factory=dict)  # the run's metrics.json ({} if none)
    splits: dict[str, Any] = field(default_factory=dict)  # the run's splits.json ({} if none)

    @property
    def prefix(self) -> str:
        """The prefix every prediction is made with ('' for none)."""
        return self.manifest.prefix

    @property
    def prompt(self) -> str:
        """What goes before a text: the prefix and its separator ('' without a prefix), so
        that ``prompt + text == join_prefix(prefix, text)``."""
        return f"{self.prefix}{PREFIX_SEPARATOR}" if self.prefix else ""

    @property
    def max_length(self) -> int:
        """Tokens the model reads (prefix, text and special tokens); the text is cut at its end."""
        return self.manifest.max_length

    def model_input(self, text: str) -> str:
        """The string gpta tokenizes for ``text`` (prefix, separator, text)."""
        return join_prefix(self.prefix, text)


def _refuse(what: str, where: Path) -> GptaUserError:
    return GptaUserError(
        f"RUN {where}: {what}; gpta export supports {SUPPORTED}",
        hint="export a run trained with the default head (see docs/export.md); other models "
        "are served with `gpta predict`",
    )


def find_run(run: str | Path) -> tuple[Path, Path]:
    """``(run_dir, model_dir)`` for a run directory (or its ``model/`` folder)."""
    path = Path(run)
    if not path.exists():
        raise GptaUserError(
            f"RUN {path} does not exist", hint="pass the run directory `gpta train` wrote"
        )
    if not path.is_dir():
        raise GptaUserError(
            f"RUN {path} is a file, not a run directory",
            hint="pass the run directory `gpta train` wrote (its --output-dir)",
        )
    if (path / run_files.MODEL_MANIFEST).is_file():
        return path, path / run_files.MODEL
    if (path / run_files.MANIFEST).is_file() and path.name == run_files.MODEL:
        return path.parent, path
    raise GptaUserError(
        f"RUN {path} holds no trained model ({run_files.MODEL_MANIFEST} is missing)",
        hint="pass the run directory `gpta train` wrote (its --output-dir); a run that has not "
        "finished its first round has no model yet",
    )


def read_source(run: str | Path) -> ExportSource:
    """The run's model, checked to be the exported case; a :class:`GptaUserError` otherwise."""
    run_dir, model_dir = find_run(run)
    manifest = read_manifest(model_dir)
    where = model_dir / run_files.MANIFEST
    if manifest.task != "classification":
        raise _refuse(f"the model is a {manifest.task} model", where)
    head = manifest.head or "sequence"
    if head != "sequence":
        raise _refuse(f"the model uses the {head} head", where)
    if manifest.predict_prefixes:
        raise _refuse(
            f"it predicts with {len(manifest.predict_prefixes)} prefixes, averaging their "
            "probabilities (training.augment_predict: mean), which one exported model with one "
            "prefix does not reproduce",
            where,
        )
    head_file = model_dir / HEAD_CONFIG
    if not head_file.is_file():
        raise _refuse(
            f"the model has no {HEAD_CONFIG}: its encoder "
            f"({manifest.base_model or 'unknown'}) is not a sentence-transformers model, so it "
            "was trained with a plain [CLS] classification head",
            where,
        )
    if not (model_dir / HEAD_WEIGHTS).is_file():
        raise GptaUserError(
            f"RUN {run_dir}: {model_dir / HEAD_WEIGHTS} is missing",
            hint="the model folder is damaged; restore it, or train the run again",
        )
    head_config = read_json_record(head_file) or {}
    mode, normalize = head_config.get("pooling"), head_config.get("normalize")
    if mode not in POOLING_MODES or not isinstance(normalize, bool):
        raise GptaUserError(
            f"{head_file} does not name a pooling gpta writes "
            f"(pooling: {mode!r}, normalize: {normalize!r})",
            hint="restore the file `gpta train` wrote, or train the run again",
        )
    values = list(manifest.labels or [])
    names = [str(v) for v in values]
    if head_config.get("labels") != names:
        raise GptaUserError(
            f"{head_file} and {where} name different labels",
            hint="restore the files `gpta train` wrote, or train the run again",
        )
    return ExportSource(
        run_dir=run_dir,
        model_dir=model_dir,
        manifest=manifest,
        pooling=Pooling(mode, normalize),
        label_values=values,
        label_names=names,
        metrics=read_json_record(run_dir / run_files.METRICS) or {},
        splits=read_json_record(run_dir / run_files.SPLITS) or {},
    )
