"""Task families: how a prefix joins the input, what is scored, how outputs decode.

``TASKS`` is the registry: one class per family, each implementing
:class:`gpta.tasks.base.Task` with ``from_config`` (build and validate for a run) and
``from_manifest`` (rebuild for a saved model).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpta.tasks.base import Columns, Evaluation, Screening, Task, TaskIO
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


def cap_task_rows(
    table: Table,
    *,
    family: TaskName,
    text_column: str,
    label_column: str | None,
    question_column: str = "question",
    options_column: str = "options",
    max_length: int,
) -> str | None:
    """:meth:`Task.cap_rows` of ``family`` with the columns named one by one (a saved
    model's manifest names them so); ``label_column`` None: unlabelled rows (``gpta
    predict``). The warning to print once when rows were cut, else None."""
    labelled = label_column is not None
    # unlabelled rows: the label column is never read
    columns = Columns(text_column, label_column or "", question_column, options_column)
    return TASKS[family].cap_rows(table, columns, max_length=max_length, labelled=labelled)


def task_from_manifest(manifest: Manifest) -> Task:
    """Rebuild the task a saved model was trained for (its family is checked when the
    manifest is read: :mod:`gpta.manifest`)."""
    return TASKS[manifest.task].from_manifest(manifest)


__all__ = [
    "TASKS",
    "ClassificationTask",
    "Columns",
    "Evaluation",
    "MultipleChoiceTask",
    "QATask",
    "Screening",
    "SummarizationTask",
    "Task",
    "TaskIO",
    "build_task",
    "cap_task_rows",
    "task_from_manifest",
]
