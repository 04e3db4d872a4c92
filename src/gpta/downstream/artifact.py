"""The saved model: a Hugging Face folder plus ``gpta.json`` (task, labels, prefix, metrics).

The manifest's fields and versions are :class:`gpta.manifest.Manifest`; here it is written
and read.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from gpta.errors import GptaUserError
from gpta.fileio import write_json
from gpta.limits import CONFIG_BYTES, read_stream_bounded
from gpta.manifest import DAMAGED_HINT, FORMAT_VERSION, Manifest, parse_manifest
from gpta.run_files import MANIFEST, MODEL


def library_versions() -> dict[str, str]:
    """Versions that matter for reproducing a run."""
    import torch
    import transformers

    from gpta._version import __version__

    return {
        "gpta": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def save_model(model: Any, tokenizer: Any, directory: str | Path) -> None:
    """Write model weights and tokenizer in Hugging Face format."""
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def write_manifest(directory: str | Path, manifest: dict[str, Any]) -> None:
    """Write ``gpta.json`` next to the weights, at the current ``format_version``; checked
    as it will be read (a bug, never a user error, if it does not pass)."""
    body = {"format_version": FORMAT_VERSION, **manifest, "versions": library_versions()}
    Manifest.model_validate(body)
    write_json(Path(directory) / MANIFEST, body)


def find_model_dir(path: str | Path) -> Path:
    """Accept a run directory (``RUN/model``) or a model directory."""
    path = Path(path)
    for candidate in (path, path / MODEL):
        if (candidate / MANIFEST).is_file():
            return candidate
    if not path.exists():
        raise GptaUserError(
            f"--model: {path} does not exist",
            hint="pass a run directory written by `gpta train`, or its model/",
        )
    raise GptaUserError(
        f"--model: {path} holds no {MANIFEST}",
        hint="pass a run directory written by `gpta train` (or its model/ folder); "
        "a run that has not finished its first round has no model yet",
    )


def read_manifest(model_dir: str | Path) -> Manifest:
    """Read ``gpta.json``: the fields every task needs (``task``, ``prefix``, ``max_length``)
    and the type of every field it holds are checked, an unknown field or a newer
    ``format_version`` is refused (see :mod:`gpta.manifest`); the task's own fields are
    checked when it is rebuilt."""
    path = Path(model_dir) / MANIFEST
    try:
        with path.open("rb") as handle:  # a hand-edited file is read within its bound
            raw = read_stream_bounded(handle, name=str(path), bound=CONFIG_BYTES)
        data = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError) as err:  # unreadable, not UTF-8, not JSON
        raise GptaUserError(f"{path} could not be read: {err}", hint=DAMAGED_HINT) from None
    return parse_manifest(data, path)
