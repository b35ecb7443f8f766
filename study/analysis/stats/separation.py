"""Is a binary outcome separated by the fixed-effects design? (Albert and Anderson 1984; Konis 2007)

Why a test and not a look at the estimates: with (quasi-)complete separation the maximum-likelihood
estimate of some coefficient is infinite, and an optimiser stops wherever its tolerance says, with a
huge estimate and a huge or tiny SE that look like numbers. Separation exists exactly when some
direction d of the coefficients never lowers the linear predictor of a success nor raises that of a
failure, and changes at least one: X_i d >= 0 where y_i = 1, X_i d <= 0 where y_i = 0, not all 0.
That is a linear programme over the distinct rows of X (few in a reader study: condition x level
cells), as in Konis's safeBinaryRegression and Kosmidis's detectseparation.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

__all__ = ["is_separated"]


def is_separated(X: np.ndarray, y: np.ndarray, tol: float = 1e-7) -> bool:
    """True when the 0/1 outcome ``y`` is completely or quasi-completely separated by the columns of ``X``."""
    X, y = np.asarray(X, float), np.asarray(y, float)
    rows, inverse = np.unique(X, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    ones = np.bincount(inverse, weights=y, minlength=len(rows))
    total = np.bincount(inverse, minlength=len(rows))
    mixed = (ones > 0) & (ones < total)
    sign = np.where(ones == total, 1.0, -1.0)  # pure rows: +1 all successes, -1 all failures
    pure = ~mixed
    if not pure.any():
        return False
    # maximise sum over pure rows of sign * x'd  subject to  sign * x'd >= 0 (pure), x'd = 0 (mixed), |d| <= 1
    c = -(sign[pure, None] * rows[pure]).sum(axis=0)
    res = optimize.linprog(
        c,
        A_ub=-(sign[pure, None] * rows[pure]),
        b_ub=np.zeros(int(pure.sum())),
        A_eq=rows[mixed] if mixed.any() else None,
        b_eq=np.zeros(int(mixed.sum())) if mixed.any() else None,
        bounds=[(-1.0, 1.0)] * X.shape[1],
        method="highs",
    )
    return bool(res.status == 0 and -res.fun > tol)
