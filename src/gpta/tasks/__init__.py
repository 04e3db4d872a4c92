"""Task families: how a prefix joins the input, what is scored, how outputs decode.

``TASKS`` is the registry: one class per family, each implementing
:class:`gpta.tasks.base.Task` with ``from_config`` (build and validate for a run) and
``from_manifest`` (rebuild for a saved model).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpta.tasks.base import Evaluation, Screening, Task, TaskIO
from gpta.tasks.classification import ClassificationTask
from gpta.tasks.multiple_choice import MultipleChoiceTask
from gpta.tasks.qa import QATask
from gpta.tasks.summarization import SummarizationTask

if TYPE_CHECKING:
    from gpta.config import GptaConfig, TaskName
    from gpta.data import Table
    from gpta.manifest import Manifest

TASKS: dict[TaskName, type[Task]] = {
    "classification": ClassificationTask,
    "qa": QATask,
    "multiple_choice": MultipleChoiceTask,
    "summarization": SummarizationTask,
}


def build_task(config: GptaConfig, tables: dict[str, Table]) -> Task:
    """The configured task family, validated against every split."""
    return TASKS[config.task].from_config(config, tables)


def task_from_manifest(manifest: Manifest) -> Task:
    """Rebuild the task a saved model was trained for (its family is checked when the
    manifest is read: :mod:`gpta.manifest`)."""
    return TASKS[manifest.task].from_manifest(manifest)


__all__ = [
    "TASKS",
    "ClassificationTask",
    "Evaluation",
    "MultipleChoiceTask",
    "QATask",
    "Screening",
    "SummarizationTask",
    "Task",
    "TaskIO",
    "build_task",
    "task_from_manifest",
]
