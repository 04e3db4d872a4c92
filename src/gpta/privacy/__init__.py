"""Everything sent to the teaching assistant passes through here and is recorded.

policy.py (what may leave: none or redacted exemplars; exemplar.py, one such row),
redaction.py (the patterns), guard.py (the n-gram leak guard; normalize.py and fold.py, text
as it compares it), channel.py (the only path to an LLM), ledger.py (exposure.jsonl),
secrets.py (keys never written), audit.py (``gpta audit``).
"""

from gpta.privacy.channel import ExposureChannel, RequestBlocked
from gpta.privacy.exemplar import Exemplar
from gpta.privacy.guard import LeakGuard, LeakReport
from gpta.privacy.ledger import ExposureLedger
from gpta.privacy.policy import Exposure, build_exposure, row_ids
from gpta.privacy.redaction import Redactor, redact

__all__ = [
    "Exemplar",
    "Exposure",
    "ExposureChannel",
    "ExposureLedger",
    "LeakGuard",
    "LeakReport",
    "Redactor",
    "RequestBlocked",
    "build_exposure",
    "redact",
    "row_ids",
]
