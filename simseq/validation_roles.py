"""What a published result in a scenario's ``validation:`` section is to a run.

Either a validation check, or a calibration target: the model was solved to match it, so
agreeing with it validates nothing (it is drawn hollow and left out of the MAPE). Kept
apart from ``simseq.validation`` so that the plot process (``simseq.forked_plot``) can
draw validation.png without importing the estimators, SciPy and numba.
"""

ROLE_VALIDATION = "validation"
ROLE_TARGET = "calibration target"
