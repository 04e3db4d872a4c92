"""Load the downstream classifier and its tokenizer."""

from __future__ import annotations

from typing import Any

from gpta.bundled import resolve_model_path
from gpta.errors import GptaUserError


def load_classifier(name_or_path: str, labels: list[str]) -> tuple[Any, Any]:
    """A sequence-classification model with a fresh head for ``labels``, and its tokenizer."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = resolve_model_path(name_or_path)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the fresh head is expected; its load report is noise
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(
            path,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            ignore_mismatched_sizes=True,
        )
    except OSError as err:
        raise GptaUserError(
            f"model.name_or_path: could not load {name_or_path!r} ({err})",
            hint="give a local model folder, a model id already in the Hugging Face cache, "
            "or 'bundled:minilm'",
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer
