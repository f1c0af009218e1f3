"""Audit reports: `report.html` (self-contained, plots embedded), `datasheet.md`, a dataset card, JSON and
Markdown summaries from a run folder, and two runs side by side.

Modules: load (find and read a run's parts), facts (measure), plots, samples (excerpts with spans), html,
datasheet, card, markdown, compare; build ties them together.
"""

from corpus.report.build import FORMATS, build_report, compare_reports, find_run_parts

__all__ = ["FORMATS", "build_report", "compare_reports", "find_run_parts"]
