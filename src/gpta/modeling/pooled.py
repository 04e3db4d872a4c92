"""A classifier over a sentence-transformers model's own pooled embedding.

all-MiniLM-L6-v2 (and every sentence-transformers model) was trained to be read by
*mean pooling* of its token states, then L2-normalised: ``modules.json`` and
``1_Pooling/config.json`` in the model folder say so. Its [CLS] pooler (what
``AutoModelForSequenceClassification`` reads for BERT) was never trained for that, so a
new classifier there starts from a poor feature. :class:`PooledClassifier` reads the
pooling the folder declares and puts the linear head on that embedding.

The head can start as a linear probe (logistic regression on the frozen embeddings of
the training rows: :meth:`PooledClassifier.fit_probe`) before fine-tuning: LP-FT
(Kumar et al., 2022, "Fine-Tuning can Distort Pretrained Features"). Fine-tuning then
starts from the frozen-embedding baseline instead of from a random head.

A saved model is the encoder's Hugging Face folder plus ``pooled_head.json`` (pooling,
normalisation, labels) and ``pooled_head.safetensors`` (the linear layer).

Why not sentence-transformers' ``SentenceTransformer`` for the whole model: the rest of
gpta trains, checkpoints and shards a ``torch.nn.Module`` through the HF Trainer with
tokenizer-made batches; this module is the few lines of pooling that need, and
sentence-transformers' own folder format is what we read the pooling from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers.modeling_outputs import SequenceClassifierOutput

HEAD_CONFIG = "pooled_head.json"
HEAD_WEIGHTS = "pooled_head.safetensors"
POOLING_MODES = ("mean", "cls", "max")


@dataclass(frozen=True)
class Pooling:
    """How token states become one sentence vector."""

    mode: str  # mean | cls | max
    normalize: bool  # L2-normalise the pooled vector


def read_pooling(folder: str | Path) -> Pooling | None:
    """The pooling a sentence-transformers folder declares (``modules.json`` and its
    Pooling module's ``config.json``), or None when the folder is not one."""
    folder = Path(folder)
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return None
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    types = {str(m.get("type", "")).rsplit(".", 1)[-1]: m for m in modules if isinstance(m, dict)}
    if "Pooling" not in types:
        return None
    config_file = folder / str(types["Pooling"].get("path", "")) / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if config.get("pooling_mode_mean_tokens"):
        mode = "mean"
    elif config.get("pooling_mode_cls_token"):
        mode = "cls"
    elif config.get("pooling_mode_max_tokens"):
        mode = "max"
    else:  # weighted / last-token / sqrt-len modes: not read here, the plain recipe applies
        return None
    return Pooling(mode=mode, normalize="Normalize" in types)


def pool(states: torch.Tensor, attention_mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """One vector per row from ``(batch, tokens, hidden)`` states, padding ignored."""
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    if pooling.mode == "mean":
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    elif pooling.mode == "cls":
        pooled = states[:, 0]
    else:
        pooled = states.masked_fill(mask == 0, torch.finfo(states.dtype).min).max(1).values
    if pooling.normalize:
        pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
    return pooled


class PooledClassifier(torch.nn.Module):
    """Encoder -> the model's own pooling -> a linear layer over the labels."""

    def __init__(self, encoder: Any, pooling: Pooling, label_names: Sequence[str]) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.label_names = list(label_names)
        self.classifier = torch.nn.Linear(encoder.config.hidden_size, len(self.label_names))

    @property
    def config(self) -> Any:
        """The encoder's config (what code written for HF models reads)."""
        return self.encoder.config

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any) -> Any:
        """The pooled sentence vectors of a batch."""
        states = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, **kwargs
        ).last_hidden_state
        return pool(states, attention_mask, self.pooling)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        logits = self.classifier(self.embed(input_ids, attention_mask, **kwargs))
        loss = None
        if labels is not None:
            loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)

    @torch.no_grad()
    def fit_probe(
        self,
        batches: Sequence[Mapping[str, torch.Tensor]],
        labels: Sequence[int],
        *,
        weights: Sequence[float] | None = None,
    ) -> None:
        """Set the linear layer to logistic regression on the frozen pooled embeddings
        (scikit-learn, its defaults: L2, C=1). ``batches`` are tokenized inputs in row order;
        ``weights`` each row's sample weight (None: all 1)."""
        from sklearn.linear_model import LogisticRegression

        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        features = torch.cat(
            [
                self.embed(**{k: v.to(device) for k, v in b.items() if k != "labels"}).float().cpu()
                for b in batches
            ]
        ).numpy()
        self.train(was_training)
        present = sorted(set(labels))
        probe = LogisticRegression(max_iter=1000).fit(
            features, list(labels), **({"sample_weight": list(weights)} if weights else {})
        )
        weight = torch.zeros_like(self.classifier.weight, dtype=torch.float32)
        bias = torch.full_like(self.classifier.bias, -10.0, dtype=torch.float32)
        coef = torch.as_tensor(probe.coef_, dtype=torch.float32)
        intercept = torch.as_tensor(probe.intercept_, dtype=torch.float32)
        if len(present) == 2:  # scikit-learn keeps one row for two classes: split it evenly
            coef = torch.stack([-coef[0] / 2, coef[0] / 2])
            intercept = torch.stack([-intercept[0] / 2, intercept[0] / 2])
        for row, label in enumerate(present):  # a class absent from the rows keeps -10
            weight[label] = coef[row]
            bias[label] = intercept[row]
        self.classifier.weight.copy_(weight.to(self.classifier.weight.dtype))
        self.classifier.bias.copy_(bias.to(self.classifier.bias.dtype))

    # --- Hugging Face-style folders ------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, **kwargs: Any) -> None:
        """The encoder's folder plus the head's config and weights."""
        from safetensors.torch import save_file

        directory = Path(directory)
        self.encoder.save_pretrained(directory, **kwargs)
        head = {
            "pooling": self.pooling.mode,
            "normalize": self.pooling.normalize,
            "labels": self.label_names,
        }
        (directory / HEAD_CONFIG).write_text(json.dumps(head, indent=2) + "\n", encoding="utf-8")
        state = {k: v.detach().contiguous().cpu() for k, v in self.classifier.state_dict().items()}
        save_file(state, str(directory / HEAD_WEIGHTS))

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> PooledClassifier:
        """A model saved by :meth:`save_pretrained`."""
        from safetensors.torch import load_file
        from transformers import AutoModel

        directory = Path(directory)
        head = json.loads((directory / HEAD_CONFIG).read_text(encoding="utf-8"))
        encoder = AutoModel.from_pretrained(directory)
        model = cls(encoder, Pooling(head["pooling"], bool(head["normalize"])), head["labels"])
        model.classifier.load_state_dict(load_file(str(directory / HEAD_WEIGHTS)))
        return model


def is_pooled_folder(directory: str | Path) -> bool:
    """True for a folder saved by :meth:`PooledClassifier.save_pretrained`."""
    return (Path(directory) / HEAD_CONFIG).is_file()
