"""Performance estimated without labels: confidence-based performance estimation (CBPE).

A binary classifier's scores are calibrated against a labelled reference once
(:mod:`metrics.estimation.calibration`, kept in the reference profile); a window then
counts its scores per calibration bin (:mod:`metrics.estimation.state`) and the expected
confusion matrix, ROC AUC and their sampling errors follow from those counts
(:mod:`metrics.estimation.expected`). The aggregate is
:func:`metrics.estimation.aggregate.estimated_performance`.

This package's ``__init__`` imports nothing: the reference profile imports the calibration
from here, and the aggregate imports the profile.
"""
