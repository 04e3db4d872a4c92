"""Inference with the saved prefix and no LLM: ``load_pipeline`` and ``gpta predict``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpta.downstream.artifact import find_model_dir, read_manifest
from gpta.downstream.device import resolve_device
from gpta.downstream.inference import run_classifier
from gpta.tasks.classification import ClassificationTask


@dataclass(frozen=True)
class Prediction:
    """One row's predicted label, its probability, and every class's probability."""

    label: Any  # as in the training data (a string or an int)
    score: float
    probabilities: dict[str, float]


class ClassificationPipeline:
    """A fine-tuned classifier and the fixed prefix it was trained with."""

    def __init__(self, model_dir: str | Path, *, device: str = "auto", batch_size: int = 64):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.model_dir = find_model_dir(model_dir)
        self.manifest = read_manifest(self.model_dir)
        self.prefix: str = self.manifest["prefix"]
        self.task = ClassificationTask(
            text_column=self.manifest["text_column"],
            label_column=self.manifest["label_column"],
            labels=self.manifest["labels"],
            max_length=self.manifest["max_length"],
        )
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.model = AutoModelForSequenceClassification.from_pretrained(self.model_dir)
        self.model.to(resolve_device(device)).eval()
        self.batch_size = batch_size

    def predict_ids(self, texts: Sequence[str]) -> list[int]:
        """Class ids, as the training-time evaluation computes them."""
        return run_classifier(
            self.model,
            self.tokenizer,
            self.task,
            list(texts),
            self.prefix,
            batch_size=self.batch_size,
        ).predictions

    def __call__(self, texts: str | Sequence[str]) -> list[Prediction]:
        """Predict labels for one text or many."""
        if isinstance(texts, str):
            texts = [texts]
        output = run_classifier(
            self.model,
            self.tokenizer,
            self.task,
            list(texts),
            self.prefix,
            batch_size=self.batch_size,
        )
        names = self.task.label_names
        predictions = []
        for row in output.probabilities.tolist():
            best = max(range(len(row)), key=row.__getitem__)
            predictions.append(
                Prediction(
                    label=self.task.labels[best],
                    score=row[best],
                    probabilities={n: p for n, p in zip(names, row, strict=True)},
                )
            )
        return predictions


def load_pipeline(path: str | Path, *, device: str = "auto") -> ClassificationPipeline:
    """Load a run directory or model directory for inference (no LLM is loaded)."""
    return ClassificationPipeline(path, device=device)
