"""Funder report: a self-contained HTML page plus PNG/SVG charts per as-of date.

>>> from circulate.report import render_report, ReportResult
"""

from circulate.report.render import ReportResult, render_report

__all__ = ["ReportResult", "render_report"]
