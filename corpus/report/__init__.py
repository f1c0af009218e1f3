"""Audit reports: `report.html` (self-contained, plots embedded) and `datasheet.md` from a run folder."""

from corpus.report.build import build_report, find_run_parts

__all__ = ["build_report", "find_run_parts"]
