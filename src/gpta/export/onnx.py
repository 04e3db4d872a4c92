"""The ``onnx`` format: one graph from token ids to logits and probabilities.

``model.onnx`` takes ``input_ids`` and ``attention_mask`` (int64, ``(batch, sequence)``, both
axes dynamic) and returns ``logits`` and ``probabilities`` (float32, ``(batch, num_labels)``):
the encoder, gpta's pooling (padding ignored) and the pooled head, as
:class:`gpta.modeling.pooled.PooledClassifier` computes them. The tokenizer's files lie beside
it (``model_max_length`` = the run's ``max_length``); ``gpta_onnx.json`` says how a row
becomes the string to tokenize (the prefix, a space, the text), the truncation and the labels.

Exporter: ``torch.onnx.export(..., dynamo=True)``, torch's own (the ``torch.export`` based
exporter, the default since torch 2.9; the TorchScript one is deprecated). It needs ``onnx``
and ``onnxscript`` and nothing else, works offline and exports exactly the module gpta serves,
head included. optimum was not chosen: one more dependency whose releases trail transformers',
and it exports known architectures, not gpta's pooled head. The graph is checked with
onnxruntime against torch on the tracing inputs before the export is kept.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gpta.errors import GptaUserError
from gpta.export.source import ExportSource
from gpta.fileio import write_json
from gpta.tasks.heads.sequence import PREFIX_SEPARATOR

ONNX_FILE = "model.onnx"
CONFIG_FILE = "gpta_onnx.json"
INPUTS = ("input_ids", "attention_mask")
OUTPUTS = ("logits", "probabilities")
# the exported graph must give torch's numbers on the tracing inputs (float32, CPU)
CHECK_TOLERANCE = 1e-4


def _require_exporter() -> None:
    import importlib.util

    missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if not importlib.util.find_spec(m)]
    if missing:
        raise GptaUserError(
            f"--format onnx needs the package(s) {', '.join(missing)}, which are not installed",
            hint="pip install 'gpta[export]'",
        )


def preprocessing_config(source: ExportSource) -> dict[str, Any]:
    """``gpta_onnx.json``: what a caller does before the graph (and what the outputs mean)."""
    record: dict[str, Any] = {
        "format": "gpta-onnx",
        "format_version": 1,
        "model": ONNX_FILE,
        "prefix": source.prefix,
        "separator": PREFIX_SEPARATOR,
        "text_input": "prefix + separator + text when the prefix is not empty, else the text "
        "alone; tokenized as one segment with the tokenizer beside this file",
        "max_length": source.max_length,
        "truncation": "right: the end of the text is cut so that the tokens (special tokens "
        "included) number at most max_length",
        "padding": "right, with attention_mask 0 on padding",
        "inputs": list(INPUTS),
        "outputs": list(OUTPUTS),
        "labels": source.label_names,
        "pooling": {"mode": source.pooling.mode, "normalize": source.pooling.normalize},
    }
    if source.label_values != source.label_names:
        record["label_values"] = source.label_values
    return record


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """No exporter chatter on the console (optional torchvision ops it skips, axis renaming,
    deprecations inside torch): the export is checked against torch below instead."""
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        exporter_log.setLevel(level)


def _graph_module(model: Any) -> Any:
    import torch

    class Graph(torch.nn.Module):
        """input ids and mask -> (logits, probabilities) of the pooled classifier."""

        def __init__(self, classifier: Any) -> None:
            super().__init__()
            self.classifier = classifier

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor]:
            logits = self.classifier.classifier(self.classifier.embed(input_ids, attention_mask))
            return logits, logits.softmax(dim=-1)

    return Graph(model).eval()


def write_onnx(source: ExportSource, folder: Path) -> None:
    """Write ``model.onnx``, the tokenizer and ``gpta_onnx.json`` of ``source`` into ``folder``."""
    _require_exporter()
    import numpy as np
    import onnxruntime
    import torch
    from transformers import AutoTokenizer

    from gpta.modeling.loading import quiet_loading
    from gpta.modeling.pooled import PooledClassifier

    with quiet_loading():
        model = PooledClassifier.from_pretrained(source.model_dir).float().cpu().eval()
        tokenizer = AutoTokenizer.from_pretrained(str(source.model_dir))
    tokenizer.model_max_length = source.max_length
    # two rows of different lengths (padding in the traced batch), the run's own prefix
    texts = ["a short text", "a somewhat longer text, so that the first row is padded"]
    example = tokenizer(
        [source.model_input(t) for t in texts],
        truncation=True,
        max_length=source.max_length,
        padding=True,
        return_tensors="pt",
    )
    args = (example["input_ids"], example["attention_mask"])
    graph = _graph_module(model)
    dynamic = {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "sequence"},
    }
    path = folder / ONNX_FILE
    with torch.inference_mode(False), torch.no_grad(), _quiet_exporter():
        expected = [t.numpy() for t in graph(*args)]
        torch.onnx.export(
            graph,
            args,
            str(path),
            input_names=list(INPUTS),
            output_names=list(OUTPUTS),
            dynamic_shapes=dynamic,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(
        list(OUTPUTS), {k: v.numpy().astype(np.int64) for k, v in example.items() if k in INPUTS}
    )
    worst = max(float(np.abs(g - e).max()) for g, e in zip(got, expected, strict=True))
    if worst > CHECK_TOLERANCE:
        raise RuntimeError(
            f"the exported ONNX graph differs from the model by {worst:.2e} (more than "
            f"{CHECK_TOLERANCE}) on its tracing inputs"
        )
    tokenizer.save_pretrained(str(folder))
    write_json(folder / CONFIG_FILE, preprocessing_config(source))
