"""The ``sentence-transformers`` format: a plain SentenceTransformer whose output is the logits.

Modules: ``Transformer`` (the fine-tuned encoder, ``max_seq_length`` = the run's
``max_length``) -> ``Pooling`` (gpta's pooling mode) -> ``Normalize`` (only where gpta
normalises) -> ``Dense(hidden, num_labels, activation_function=Identity)`` holding the pooled
head's weight and bias. That is :class:`gpta.modeling.pooled.PooledClassifier` layer by layer:
its head is one ``torch.nn.Linear`` on the pooled vector (no dropout, no scaling), so
``SentenceTransformer(folder).encode(texts)`` returns the class logits in label order and a
softmax over them gives ``gpta predict``'s probabilities.

The prefix: gpta's model input is the string ``prefix + " " + text`` (one segment,
:func:`gpta.tasks.heads.sequence.join_prefix`), so it is a sentence-transformers *prompt*:
``prompts`` holds ``prefix + " "`` under ``classification`` (the ``default_prompt_name``, so
``encode`` adds it by itself) and under ``query`` and ``document`` (so ``encode_query`` and
``encode_document`` read the same input). Pooling includes the prompt's tokens, as gpta does.

Weights are written as safetensors (no pickle); ``labels.json`` names the classes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gpta.export.source import ExportSource
from gpta.fileio import write_json

LABELS_FILE = "labels.json"
DEFAULT_PROMPT = "classification"


def labels_record(source: ExportSource) -> dict[str, Any]:
    """``labels.json``: the class names in output order (and the values as in the data)."""
    record: dict[str, Any] = {
        "labels": source.label_names,
        "output": "encode() returns one logit per label, in this order; softmax gives the "
        "probabilities",
    }
    if source.label_values != source.label_names:
        record["label_values"] = source.label_values
    return record


def build_model(source: ExportSource) -> Any:
    """The :class:`sentence_transformers.SentenceTransformer` of the run's model (on CPU)."""
    import torch
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer

    try:  # sentence-transformers 6 (what this was written and measured with)
        from sentence_transformers.sentence_transformer.modules import (
            Dense,
            Normalize,
            Pooling,
            Transformer,
        )
    except ImportError:  # the same modules before 6
        from sentence_transformers.models import (  # type: ignore[import-not-found,no-redef]
            Dense,
            Normalize,
            Pooling,
            Transformer,
        )

    from gpta.modeling.pooled import HEAD_WEIGHTS

    transformer = Transformer(str(source.model_dir), max_seq_length=source.max_length)
    if hasattr(transformer, "get_embedding_dimension"):
        hidden = transformer.get_embedding_dimension()
    else:  # before sentence-transformers 6
        hidden = transformer.get_word_embedding_dimension()
    modules: list[torch.nn.Module] = [
        transformer,
        Pooling(hidden, pooling_mode=source.pooling.mode),
    ]
    if source.pooling.normalize:
        modules.append(Normalize())
    head = load_file(str(source.model_dir / HEAD_WEIGHTS))
    dense = Dense(
        hidden,
        len(source.label_names),
        bias=True,
        activation_function=torch.nn.Identity(),
        init_weight=head["weight"].float(),
        init_bias=head["bias"].float(),
    )
    modules.append(dense)
    prompts = (
        {name: source.prompt for name in (DEFAULT_PROMPT, "query", "document")}
        if source.prompt
        else {}
    )
    return SentenceTransformer(
        modules=modules,
        device="cpu",
        prompts=prompts,
        default_prompt_name=DEFAULT_PROMPT if prompts else None,
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No loading or saving bars, no sentence-transformers note on the default prompt."""
    from gpta.modeling.loading import quiet_loading

    log = logging.getLogger("sentence_transformers")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with quiet_loading():
            yield
    finally:
        log.setLevel(level)


def write_sentence_transformers(source: ExportSource, folder: Path) -> None:
    """Write the sentence-transformers folder of ``source`` into ``folder`` (no model card:
    :func:`gpta.export.card.write_card` writes it)."""
    with _quiet():
        model = build_model(source)
        model.save(str(folder), safe_serialization=True, create_model_card=False)
    write_json(folder / LABELS_FILE, labels_record(source))
