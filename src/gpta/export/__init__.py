"""``gpta export``: a trained classifier as a folder other libraries open (docs/export.md).

- ``sentence-transformers``: Transformer -> Pooling -> [Normalize] -> Dense(identity) holding
  the pooled head; ``SentenceTransformer(folder).encode(texts)`` returns the class logits
  with the run's prefix added by the folder's default prompt (:mod:`.sentence_transformers`).
- ``onnx``: one ONNX graph, token ids -> logits and probabilities, the tokenizer beside it
  and the prefix in ``gpta_onnx.json`` (:mod:`.onnx`).
- ``hub``: the sentence-transformers folder with a Hub model card (:mod:`.card`); with
  ``push_to_hub`` it is uploaded (:mod:`.hub`).

Only the ``sequence`` head of a classification run over a sentence-transformers encoder (the
pooled head, the default) is exported (:mod:`.source`). The output folder is new, empty, or
one this command wrote before (:mod:`.folder`); nothing else is replaced.

This package sits above :mod:`gpta.downstream`, :mod:`gpta.modeling` and :mod:`gpta.privacy`;
nothing below imports it. Heavy libraries are imported when a format is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

ExportFormat = Literal["sentence-transformers", "onnx", "hub"]
FORMATS: tuple[ExportFormat, ...] = ("sentence-transformers", "onnx", "hub")


def export_run(
    run: str | Path,
    fmt: str,
    output: str | Path,
    *,
    push_to_hub: str | None = None,
    private: bool = False,
) -> Path:
    """Export the model of the run directory ``run`` as ``fmt`` into the folder ``output``
    (new, empty, or written by an earlier export); returns the folder. With ``push_to_hub``
    (a Hub repo id, ``fmt`` must be ``hub``) the folder is then uploaded there, the token
    coming from huggingface_hub's own login (``HF_TOKEN`` or ``hf auth login``).

    Raises :class:`gpta.errors.GptaUserError` for a path that is not a run, a run out of
    scope, an unknown format, an output folder that holds other files, or a failed upload.
    """
    from gpta.errors import GptaUserError
    from gpta.export.folder import ExportFolder
    from gpta.export.source import read_source

    if fmt not in FORMATS:
        raise GptaUserError(
            f"--format {fmt!r} is not an export format", hint=f"use one of: {', '.join(FORMATS)}"
        )
    if push_to_hub is not None and fmt != "hub":
        raise GptaUserError(
            f"--push-to-hub uploads the hub format, not --format {fmt}",
            hint="pass --format hub (or leave --format out) with --push-to-hub",
        )
    if push_to_hub is not None:
        from gpta.export.hub import check_repo_id

        check_repo_id(push_to_hub)
    folder = ExportFolder(Path(output), fmt)
    folder.check()  # before the model is loaded
    source = read_source(run)
    with folder.staging() as staging:
        if fmt == "onnx":
            from gpta.export.onnx import write_onnx

            write_onnx(source, staging)
        else:
            from gpta.export.sentence_transformers import write_sentence_transformers

            write_sentence_transformers(source, staging)
        from gpta.export.card import write_card

        write_card(source, staging, fmt, push_to_hub or folder.path.name)
    if push_to_hub is not None:
        from gpta.export.hub import push_folder

        push_folder(folder.path, push_to_hub, private=private)
    return folder.path


__all__ = ["FORMATS", "ExportFormat", "export_run"]
