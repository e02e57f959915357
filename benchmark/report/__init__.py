"""`python -m benchmark report`: paper-style tables, significance tests, figures and a self-contained HTML page."""

from benchmark.report.build import build_report, default_out_dir

__all__ = ["build_report", "default_out_dir"]
