"""Everything sent to the teaching assistant passes through here and is recorded."""

from gpta.privacy.channel import ExposureChannel
from gpta.privacy.ledger import ExposureLedger

__all__ = ["ExposureChannel", "ExposureLedger"]
