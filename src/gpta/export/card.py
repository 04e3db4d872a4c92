"""The model card (``README.md``) of an export, written with huggingface_hub's ``ModelCard``.

Every format gets the same body: what the model is, its labels and prefix, how to load the
folder, how the run trained it (task, rows, rounds, how the prefix and the round were
selected), its measured dev/test metrics and what the teaching assistant saw (read from the
run's exposure ledger by :func:`gpta.privacy.audit.audit_run`). The ``hub`` format adds the
Hub's YAML metadata (``ModelCardData``): library_name, pipeline_tag, base_model, tags and
the run's measured metrics as a ``model-index``. Numbers come from the run directory
(metrics.json, splits.json, exposure.jsonl), never from anywhere else; local paths are
reduced to file names, and no token or key is read or written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gpta.export.source import ExportSource
from gpta.fileio import write_json

CARD_FILE = "README.md"
# base_model on the Hub for gpta's bundled encoders (the metadata wants a Hub id)
HUB_IDS = {"bundled:minilm": "sentence-transformers/all-MiniLM-L6-v2"}
TAGS = ["gpta", "sentence-transformers", "text-classification"]
# metrics.json key -> (Hub metric type, its name in the card, metric args)
CARD_METRICS = {
    "accuracy": ("accuracy", "accuracy", None),
    "macro_f1": ("f1", "macro-F1", {"average": "macro"}),
}


def hub_base_model(name: str | None) -> str | None:
    """The Hub id of the run's base model, or None for a local folder (not a Hub id)."""
    if not name:
        return None
    if name in HUB_IDS:
        return HUB_IDS[name]
    if name.startswith(("bundled:", "fetched:", "/", ".", "~")) or Path(name).exists():
        return None
    return name if name.count("/") == 1 else None


def _data_names(source: ExportSource) -> dict[str, str]:
    """Split -> the file name its rows came from (never the whole local path)."""
    names = {}
    for split, entry in source.splits.items():
        if isinstance(entry, dict) and isinstance(entry.get("source"), str):
            names[split] = Path(entry["source"]).name
    return names


def _rows(source: ExportSource) -> dict[str, int]:
    return {
        split: int(entry["rows"])
        for split, entry in source.splits.items()
        if isinstance(entry, dict) and isinstance(entry.get("rows"), int)
    }


def measured_metrics(source: ExportSource) -> dict[str, dict[str, float]]:
    """Split -> metric -> value: the saved model's dev/test numbers from the run's metrics.json
    (the manifest's copy when metrics.json is missing)."""
    found: dict[str, dict[str, float]] = {}
    for split in ("dev", "test"):
        values = source.metrics.get(split)
        if not isinstance(values, dict):
            values = (source.manifest.metrics or {}).get(split)
        if not isinstance(values, dict):
            continue
        numbers = {
            key: float(values[key])
            for key in CARD_METRICS
            if isinstance(values.get(key), int | float) and not isinstance(values.get(key), bool)
        }
        if numbers:
            found[split] = numbers
    return found


def card_data(source: ExportSource, name: str) -> Any:
    """The Hub metadata (``ModelCardData``) of the hub format."""
    from huggingface_hub import EvalResult, ModelCardData

    files = _data_names(source)
    dataset = ", ".join(f"{split}: {file}" for split, file in files.items()) or "the run's data"
    results = [
        EvalResult(
            task_type="text-classification",
            task_name="Text classification",
            dataset_type="custom",
            dataset_name=f"gpta run data ({dataset})",
            dataset_split=split,
            metric_type=CARD_METRICS[key][0],
            metric_name=f"{split} {CARD_METRICS[key][1]}",
            metric_args=CARD_METRICS[key][2],
            metric_value=value,
        )
        for split, numbers in measured_metrics(source).items()
        for key, value in numbers.items()
    ]
    return ModelCardData(
        model_name=name,
        library_name="sentence-transformers",
        pipeline_tag="text-classification",
        base_model=hub_base_model(source.manifest.base_model),
        tags=TAGS,
        metrics=sorted({CARD_METRICS[k][0] for n in measured_metrics(source).values() for k in n}),
        eval_results=results or None,
    )


def _usage(source: ExportSource, fmt: str, name: str) -> str:
    labels = json.dumps(source.label_names, ensure_ascii=False)
    if fmt == "onnx":
        return f"""```python
import json

import numpy as np
import onnxruntime
from transformers import AutoTokenizer

folder = "{name}"
config = json.load(open(f"{{folder}}/gpta_onnx.json", encoding="utf-8"))
tokenizer = AutoTokenizer.from_pretrained(folder)
session = onnxruntime.InferenceSession(f"{{folder}}/model.onnx", providers=["CPUExecutionProvider"])

def model_input(text):
    prefix = config["prefix"]
    return prefix + config["separator"] + text if prefix else text

texts = ["an example text"]
batch = tokenizer([model_input(t) for t in texts], truncation=True,
                  max_length=config["max_length"], padding=True, return_tensors="np")
feed = {{name: batch[name].astype(np.int64) for name in config["inputs"]}}
(probabilities,) = session.run(["probabilities"], feed)
print([config["labels"][i] for i in probabilities.argmax(-1)])
```"""
    return f"""```python
from sentence_transformers import SentenceTransformer

model = SentenceTransformer("{name}")
logits = model.encode(["an example text"], convert_to_tensor=True)  # the prefix is added by itself
probabilities = logits.softmax(dim=-1)
labels = {labels}  # also in labels.json
print([labels[i] for i in probabilities.argmax(dim=-1).tolist()])
```"""


def _prefix_text(source: ExportSource, fmt: str) -> str:
    if not source.prefix:
        return (
            "The model was trained and is served **without a prefix**: the input is the text alone."
        )
    how = (
        "`gpta_onnx.json` holds it (`prefix`, `separator`): put it before each text yourself, "
        "as in the snippet above; the graph only sees token ids."
        if fmt == "onnx"
        else "`config_sentence_transformers.json` holds it as the default prompt "
        "(`prompts.classification`, also `query` and `document`), so `encode` adds it by "
        'itself; `encode(texts, prompt="")` would leave it out and change the predictions.'
    )
    return (
        "Every text is read after this prefix (the instruction the run trained with and "
        'selected), joined by one space: `prefix + " " + text`.\n\n'
        f"```text\n{source.prefix}\n```\n\n{how}"
    )


def _training_text(source: ExportSource) -> str:
    metrics, manifest = source.metrics, source.manifest
    rows = _rows(source)
    files = _data_names(source)
    lines = [f"- Task: single-label text classification, {len(source.label_names)} labels."]
    if manifest.base_model:
        lines.append(
            f"- Base model: `{manifest.base_model}`"
            + (
                f" (`{hub_base_model(manifest.base_model)}` on the Hub)"
                if manifest.base_model in HUB_IDS
                else ""
            )
            + "."
        )
    if rows:
        parts = [
            f"{split} {n:,} rows" + (f" ({files[split]})" if split in files else "")
            for split, n in rows.items()
        ]
        lines.append("- Data: " + ", ".join(parts) + ".")
    trained = metrics.get("rounds_trained")
    if isinstance(trained, int):
        best = metrics.get("best_round", manifest.best_round)
        lines.append(f"- Rounds: {trained} trained; the saved model is round {best}.")
    selection = metrics.get("selection")
    if isinstance(selection, dict):
        prefix_mode = (selection.get("prefix") or {}).get("mode")
        round_mode = (selection.get("best_round") or {}).get("mode")
        lines.append(
            f"- Selection: prefix candidates screened by `{prefix_mode}`, the round "
            f"kept chosen by `{round_mode}`."
        )
        lines += [f"  - {line}" for line in selection.get("lines") or [] if isinstance(line, str)]
    cards = metrics.get("cards")
    if isinstance(cards, dict) and cards.get("source"):
        lines.append(
            f"- Class cards: source `{cards['source']}`, "
            f"{'adopted' if cards.get('adopted') else 'not adopted'}."
        )
    lines.append(
        f"- Pooling: {source.pooling.mode} of the token states"
        + (", L2-normalised" if source.pooling.normalize else "")
        + f"; a linear layer over it gives the logits. Inputs are cut to {source.max_length} "
        "tokens (the end of the text is cut)."
    )
    versions = manifest.versions or {}
    if versions:
        lines.append("- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".")
    return "\n".join(lines)


def _metrics_text(source: ExportSource) -> str:
    measured = measured_metrics(source)
    if not measured:
        return "The run directory records no dev or test metrics."
    header = "| split | " + " | ".join(CARD_METRICS[k][1] for k in CARD_METRICS) + " |"
    rule = "| --- |" + " --- |" * len(CARD_METRICS)
    rows = [
        f"| {split} | "
        + " | ".join(f"{numbers[k]:.4f}" if k in numbers else "" for k in CARD_METRICS)
        + " |"
        for split, numbers in measured.items()
    ]
    return "\n".join(
        [
            "Measured by `gpta train` on the run's dev and test rows with the saved model "
            "(metrics.json of the run):",
            "",
            header,
            rule,
            *rows,
        ]
    )


def exposure_text(run_dir: Path) -> str:
    """What the teaching assistant saw, from the run's exposure ledger (as ``gpta audit``
    reads it)."""
    from gpta.errors import GptaUserError
    from gpta.privacy.audit import audit_run

    try:
        report = audit_run(run_dir)
    except GptaUserError as err:
        return (
            f"The run's exposure ledger could not be read ({err.message}); what the "
            "teaching assistant saw is not stated here."
        )
    lines = [
        f"From the run's exposure ledger (`exposure.jsonl`, {report.records} record(s); "
        f"`gpta audit` reads it the same way):",
        "",
        f"- Exposure policy: `{report.exposure}`.",
        f"- Requests sent to the teaching assistant: {report.requests}"
        + (f" ({', '.join(report.backends)})" if report.backends else "")
        + ".",
    ]
    if not report.requests:
        lines.append("- Training rows sent: none (no request was sent).")
    elif report.rows_exposed:
        lines.append(
            f"- Training rows sent: {len(report.rows_exposed)} (by id; the policy "
            f"allows {len(report.allowed_row_ids)} redacted exemplar rows)."
        )
    else:
        lines.append(
            "- Training rows sent: none. The requests carried the task description "
            "and aggregate scores only."
        )
    if report.blocked:
        lines.append(f"- Requests the leak guard blocked (not sent): {report.blocked}.")
    if report.final_hash:
        seal = (
            "matches the seal in metrics.json"
            if report.sealed
            else "does not match a seal in metrics.json"
        )
        lines.append(f"- Ledger head hash (SHA-256 chain): `{report.final_hash}` ({seal}).")
    lines.append(f"- {report.verdict}")
    return "\n".join(lines)


def card_text(source: ExportSource, fmt: str, name: str) -> str:
    """The card's Markdown body."""
    labels = "\n".join(f"| {i} | {label} |" for i, label in enumerate(source.label_names))
    what = (
        "an ONNX graph (`model.onnx`: token ids to `logits` and `probabilities`) with its "
        "tokenizer and `gpta_onnx.json`"
        if fmt == "onnx"
        else "a sentence-transformers model whose output is the class logits "
        "(Transformer, Pooling, "
        + ("Normalize, " if source.pooling.normalize else "")
        + "Dense with identity activation holding the classifier)"
    )
    return f"""# {name}

A text classifier fine-tuned with gpta (a small model trained with an LLM teaching
assistant writing its prefix), exported by `gpta export --format {fmt}` as {what}.
It gives the same probabilities as `gpta predict` on the run it came from.

## Labels

Outputs are in this order (`labels.json`{", `gpta_onnx.json`" if fmt == "onnx" else ""}):

| id | label |
| --- | --- |
{labels}

## Prefix

{_prefix_text(source, fmt)}

## How to use

{_usage(source, fmt, name)}

## Training

{_training_text(source)}

## Evaluation

{_metrics_text(source)}

## What the teaching assistant saw

{exposure_text(source.run_dir)}
"""


def write_card(source: ExportSource, folder: Path, fmt: str, name: str) -> None:
    """Write ``README.md`` (and, for onnx, ``labels.json``) into ``folder``; the hub format's
    card carries the Hub metadata."""
    from huggingface_hub import ModelCard

    body = card_text(source, fmt, name)
    if fmt == "hub":  # the metadata block is huggingface_hub's own rendering of card_data
        card = ModelCard.from_template(
            card_data(source, name),
            template_str="---\n{{ card_data }}\n---\n\n{{ body }}",
            body=body,
        )
        card.save(folder / CARD_FILE)
    else:  # no metadata block: the body as it is
        (folder / CARD_FILE).write_text(body, encoding="utf-8")
    if fmt == "onnx":
        from gpta.export.sentence_transformers import LABELS_FILE, labels_record

        record = {
            **labels_record(source),
            "output": "model.onnx returns logits and probabilities, one per label, in this order",
        }
        write_json(folder / LABELS_FILE, record)
