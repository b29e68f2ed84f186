"""The Streamlit dashboard: ``monitor dashboard`` runs ``dashboard/app.py``.

Pages read the results database only through the read-only, bounded queries of
:mod:`monitor.storage.dashboard`; :mod:`dashboard.charts` draws, and
:mod:`dashboard.views` lays each page out. Links are stable: ``/metric?metric=NAME``
(optionally ``&segment=...&stage=...``), and the alert messages' ``/?page=alerts&metric=...``.
"""
