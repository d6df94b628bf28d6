"""Reports: HTML + CSV + plots built from results folders, never from models or attacks.

``kit/`` is what every page shares (reading tables and run logs, provenance, paired statistics,
baseline pairing, labels, rendering); ``legacy`` fills the facts a folder written by 0.3 does not record;
the pages are ``build`` (a sweep's results folders), ``study`` and ``transfer``, each a list of sections
(a function and its ``templates/PAGE_SECTION.html.j2`` partial).
"""
from .build import build_report

__all__ = ["build_report"]
