"""The teaching assistant (TA): prompts, proposals, parsing, history."""

from gpta.assistant.history import History, RoundRecord
from gpta.assistant.prompts import ScoredPrefix, TaskBrief
from gpta.assistant.teacher import ProposalBatch, TeachingAssistant

__all__ = [
    "History",
    "ProposalBatch",
    "RoundRecord",
    "ScoredPrefix",
    "TaskBrief",
    "TeachingAssistant",
]
