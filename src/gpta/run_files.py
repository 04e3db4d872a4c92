"""The names of what gpta writes in a run folder: one place for every module that writes or
reads a run (the run itself, its folder's marker and overwrite, the report, the export, the
TA's tools, the privacy audit, the prefix library).

A run folder holds, at its top: the resolved ``config.yaml``, ``splits.json`` (which rows
each split got), ``history.jsonl`` (the rounds and the TA's proposals), ``exposure.jsonl``
(the ledger of what the TA was shown), ``exemplars.jsonl``, ``cards.json``,
``metrics.json`` (written last: a run with it has finished), ``predictions/`` (one
``SPLIT.jsonl`` a split), ``model/`` (the best model and its manifest ``gpta.json``),
``checkpoints/`` (each ``checkpoint-N/`` with ``gpta_state.json``), ``report/``, ``logs/``
(TensorBoard), and the marker ``.gpta-run.json``.
"""

from __future__ import annotations

CONFIG = "config.yaml"
SPLITS = "splits.json"
HISTORY = "history.jsonl"
EXPOSURE = "exposure.jsonl"
EXEMPLARS = "exemplars.jsonl"
CARDS = "cards.json"
METRICS = "metrics.json"
PREDICTIONS = "predictions"
MODEL = "model"
MANIFEST = "gpta.json"  # in a saved model's folder (model/)
MODEL_MANIFEST = f"{MODEL}/{MANIFEST}"
CHECKPOINTS = "checkpoints"
STATE_FILE = "gpta_state.json"  # in each checkpoints/checkpoint-N/
REPORT = "report"
LOGS = "logs"  # TensorBoard's event files (training.report_to: tensorboard)
RUN_MARKER = ".gpta-run.json"
# The run that `--overwrite` replaces (gpta's files of it, moved here) until the new run
# has finished; put back if the new run fails before its first complete round.
PREVIOUS = ".gpta-previous"


def predictions_file(split: str) -> str:
    """Where a split's predictions are, relative to the run folder."""
    return f"{PREDICTIONS}/{split}.jsonl"
