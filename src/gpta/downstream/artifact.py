"""The saved model: a Hugging Face folder plus ``gpta.json`` (task, labels, prefix, metrics)."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from gpta.errors import GptaUserError

MANIFEST = "gpta.json"


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
    """Write ``gpta.json`` next to the weights."""
    body = {**manifest, "versions": library_versions()}
    (Path(directory) / MANIFEST).write_text(
        json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def find_model_dir(path: str | Path) -> Path:
    """Accept a run directory (``RUN/model``) or a model directory."""
    path = Path(path)
    for candidate in (path, path / "model"):
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


_DAMAGED = "this file is written by `gpta train`; restore the one it wrote, or train the run again"


def read_manifest(model_dir: str | Path) -> dict[str, Any]:
    """Read ``gpta.json``, checked for the fields every task needs (``task``, ``prefix``,
    ``max_length``; the task's own fields are checked when it is rebuilt)."""
    path = Path(model_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # unreadable, not UTF-8, not JSON
        raise GptaUserError(f"{path} could not be read: {err}", hint=_DAMAGED) from None
    if not isinstance(manifest, dict):
        raise GptaUserError(f"{path} is not a JSON object", hint=_DAMAGED)
    expected = {"task": str, "prefix": str, "max_length": int}
    for key, kind in expected.items():
        value = manifest.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            problem = (
                f"has no {key!r} field"
                if key not in manifest
                else f"holds a {type(value).__name__} in {key!r}, not a {kind.__name__}"
            )
            raise GptaUserError(f"{path} {problem}", hint=_DAMAGED)
    for key in ("text_column", "label_column", "question_column", "options_column"):
        if key in manifest and not isinstance(manifest[key], str):
            raise GptaUserError(f"{path}: {key!r} is not a text", hint=_DAMAGED)
    for key in ("predict_prefixes", "input_columns"):
        texts = manifest.get(key)
        if texts is not None and not (
            isinstance(texts, list) and all(isinstance(t, str) for t in texts)
        ):
            raise GptaUserError(f"{path}: {key!r} is not a list of texts", hint=_DAMAGED)
    return manifest
