"""Task families: how a prefix joins the input, what is scored, how outputs decode."""

from gpta.tasks.classification import ClassificationTask

__all__ = ["ClassificationTask"]
