"""Small helpers shared by the task families."""

from __future__ import annotations

from typing import Any

from gpta.errors import GptaUserError


def load_tokenizer(name_or_path: str) -> Any:
    """The tokenizer of a model (bundled name, local folder or cached hub id), to validate
    input lengths before any model is loaded."""
    from transformers import AutoTokenizer

    from gpta.bundled import resolve_model_path

    try:
        return AutoTokenizer.from_pretrained(resolve_model_path(name_or_path))
    except OSError as err:
        raise GptaUserError(
            f"model.name_or_path: could not load the tokenizer of {name_or_path!r} ({err})",
            hint="give a local model folder, a model id already in the Hugging Face cache, "
            "or a bundled model (bundled:minilm)",
        ) from None
