"""Load a downstream model and its tokenizer, bundled or from the Hugging Face cache."""

from __future__ import annotations

from typing import Any

from gpta.bundled import resolve_model_path
from gpta.errors import GptaUserError


def load_pretrained(auto_class: Any, name_or_path: str, **model_kwargs: Any) -> tuple[Any, Any]:
    """``auto_class.from_pretrained`` (e.g. AutoModelForSequenceClassification) and the tokenizer.

    A freshly initialised task head is expected here, so transformers' load report about
    missing head weights is silenced.
    """
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = resolve_model_path(name_or_path)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # "Loading weights" bars are noise on every load
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = auto_class.from_pretrained(path, **model_kwargs)
    except OSError as err:
        raise GptaUserError(
            f"model.name_or_path: could not load {name_or_path!r} ({err})",
            hint="give a local model folder, a model id already in the Hugging Face cache, "
            "or a bundled model (bundled:minilm, bundled:smollm2)",
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer
