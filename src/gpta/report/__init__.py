"""Reports of finished runs: figures (matplotlib) and one self-contained HTML page (jinja2)."""

from gpta.report.data import RunData, load_run
from gpta.report.page import write_report

__all__ = ["RunData", "load_run", "write_report"]
