"""Load a downstream model and its tokenizer, bundled or from the Hugging Face cache."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gpta.bundled import resolve_model_path
from gpta.errors import GptaUserError


@contextmanager
def quiet_loading() -> Iterator[None]:
    """No "Loading weights" bars and no load reports (a fresh task head is expected)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_pretrained(auto_class: Any, name_or_path: str, **model_kwargs: Any) -> tuple[Any, Any]:
    """``auto_class.from_pretrained`` (e.g. AutoModelForSequenceClassification) and the tokenizer.

    A freshly initialised task head is expected here, so transformers' load report about
    missing head weights is silenced.
    """
    from transformers import AutoTokenizer

    path = resolve_model_path(name_or_path)
    try:
        with quiet_loading():
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = auto_class.from_pretrained(path, **model_kwargs)
    except OSError as err:
        raise GptaUserError(
            f"model.name_or_path: could not load {name_or_path!r} ({err})",
            hint="give a local model folder, a model id already in the Hugging Face cache, "
            "or a bundled model (bundled:minilm, bundled:smollm2)",
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer
