"""Reports: HTML + CSV + plots built from sweep results."""
from .build import build_report

__all__ = ["build_report"]
