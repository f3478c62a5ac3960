"""The manager's receivables report: a stage of its own, after serving.

Dunning engines call the service; credit managers read this report. It reads the book through
the same stages (ingest, point-in-time features, the champion models and the engine's
decisions) and writes one self-contained HTML file: :func:`build_report` gathers the figures
(:mod:`paycadence.report.build`), :mod:`paycadence.report.html` renders them with the template
(:mod:`paycadence.report.template`) and the charts (:mod:`paycadence.report.charts`).
docs/report.md explains every part.
"""

from paycadence.report.build import ReportData, ReportResult, build_report, check_report_path

__all__ = ["ReportData", "ReportResult", "build_report", "check_report_path"]
