"""Binary figures of merit for the Obuchowski-Rockette MRMC analysis.

Why: ophthalmic AI-assistance studies report each reader's sensitivity and specificity, not an AUC.
A reading is positive when ``rating >= threshold`` or, without a threshold, when the reader's 0/1
``call`` is 1. Every binary figure of merit is the mean of a per-case score over the cases that
enter it: sensitivity = positive calls over diseased cases, specificity = negative calls over
non-diseased cases, ``pc`` (accuracy) = calls that agree with truth over all cases, and
``percent_correct`` = the 0/1 ``correct`` column over all cases. The jackknife leaves out only the
cases that enter the figure of merit (MRMCaov's convention; Smith, Hillis & Pesce, J. Stat. Softw.),
which for a mean of ``m`` values gives the sample covariance divided by ``m``. The OR machinery
itself is in :mod:`study.analysis.stats.mrmc`; the U-statistic covariance in :mod:`study.analysis.stats.ustat`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BINARY_FOMS", "POPULATIONS", "case_scores", "mean_estimate", "mean_jackknife", "positive_calls"]

BINARY_FOMS = ("sensitivity", "specificity", "pc")
POPULATIONS = {
    "auc": "all cases (diseased x non-diseased pairs)",
    "sensitivity": "diseased cases (truth = 1)",
    "specificity": "non-diseased cases (truth = 0)",
    "pc": "all cases",
    "percent_correct": "all cases",
}


def positive_calls(values: np.ndarray, threshold: float | None) -> np.ndarray:
    """0/1 positive calls: ``rating >= threshold``, or the 0/1 call itself when threshold is None.

    Unread cells (NaN) stay NaN so incomplete designs keep their holes.
    """
    values = np.asarray(values, dtype=float)
    if threshold is None:
        return values
    return np.where(np.isnan(values), np.nan, (values >= threshold).astype(float))


def case_scores(fom: str, positive: np.ndarray, truth: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-case score (same shape as ``positive``) and the boolean mask of cases that enter ``fom``."""
    positive = np.asarray(positive, dtype=float)
    c = positive.shape[-1]
    if fom == "percent_correct":
        return positive, np.ones(c, dtype=bool)
    truth = np.asarray(truth)
    if fom == "sensitivity":
        return positive, truth == 1
    if fom == "specificity":
        return 1.0 - positive, truth == 0
    if fom == "pc":
        return np.where(np.isnan(positive), np.nan, (positive == truth).astype(float)), np.ones(c, dtype=bool)
    raise ValueError(f"{fom!r} is not a binary figure of merit; choose one of {[*BINARY_FOMS, 'percent_correct']}.")


def mean_estimate(scores: np.ndarray, enters: np.ndarray) -> np.ndarray:
    """Mean score over the entering cases (cases on the last axis)."""
    return scores[..., enters].mean(axis=-1)


def mean_jackknife(scores: np.ndarray, enters: np.ndarray) -> np.ndarray:
    """Leave-one-out means over the entering cases only: shape ``(..., enters.sum())``."""
    z = scores[..., enters]
    m = z.shape[-1]
    if m < 2:
        raise ValueError(f"only {m} case(s) enter this figure of merit; the jackknife needs at least 2.")
    return (z.sum(axis=-1, keepdims=True) - z) / (m - 1)
