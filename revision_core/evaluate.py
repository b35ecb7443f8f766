"""AUROC with DeLong confidence intervals, ROC points and the paired DeLong test.

Follows pROC's conventions (Mann-Whitney kernel with ties counted 1/2, placement values, sample
variances with denominator n - 1) so that results can be checked against published pROC output.
Higher scores mean "more likely positive"; the direction is never guessed from the data, because an
auto-flipped AUC would hide a model that ranks cases backwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
from scipy.stats import norm

__all__ = [
    "AUCResult",
    "PairedResult",
    "auroc",
    "delong_covariance",
    "auroc_ci",
    "paired_delong",
    "roc_curve_points",
    "evaluate_scores",
]


@dataclass(frozen=True)
class AUCResult:
    """One AUC with its DeLong variance and confidence interval."""

    auc: float
    variance: float
    ci: tuple[float, float]


@dataclass(frozen=True)
class PairedResult:
    """Paired DeLong comparison of two scores on the same cases (difference is a - b)."""

    auc_a: float
    auc_b: float
    diff: float
    z: float
    p: float
    ci: tuple[float, float]


# --------------------------------------------------------------------------- validation


def _check_labels(y_true, name: str = "y_true") -> np.ndarray:
    """Return labels as a bool array, refusing anything that is not exactly 0/1."""
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {y.shape}")
    if y.size == 0:
        raise ValueError(f"{name} is empty")
    if y.dtype == bool:
        return y
    if not np.issubdtype(y.dtype, np.number):
        raise ValueError(f"{name} must contain only 0/1 labels, got dtype {y.dtype}")
    yf = y.astype(float)
    if np.isnan(yf).any():
        raise ValueError(f"{name} contains NaN; labels must be 0 or 1 (drop unlabelled cases first)")
    bad = ~np.isin(yf, (0.0, 1.0))
    if bad.any():
        examples = sorted(set(yf[bad].tolist()))[:5]
        raise ValueError(f"{name} must contain only 0/1 labels; found other values {examples}")
    return yf == 1.0


def _check_scores(scores, n: int, name: str = "scores") -> np.ndarray:
    """Return scores as a float (k, n) array, refusing NaN/inf and length mismatches."""
    s = np.asarray(scores, dtype=float)
    if s.ndim == 1:
        s = s[None, :]
    if s.ndim != 2:
        raise ValueError(f"{name} must have shape (n,) or (k, n), got {np.shape(scores)}")
    if s.shape[1] != n:
        raise ValueError(
            f"{name} has {s.shape[1]} cases but the labels have {n}; they must have the same length"
        )
    if not np.isfinite(s).all():
        raise ValueError(f"{name} contains NaN or infinite values; every case needs a finite score")
    return s


def _split(y_true, scores, name: str = "scores"):
    y = _check_labels(y_true)
    s = _check_scores(scores, y.size, name)
    m, n = int(y.sum()), int((~y).sum())
    if m == 0 or n == 0:
        which = "positive" if m == 0 else "negative"
        raise ValueError(f"AUC is undefined: the labels contain no {which} cases")
    return s[:, y], s[:, ~y]


# --------------------------------------------------------------------------- core


def _midranks(x: np.ndarray) -> np.ndarray:
    """Midranks (1-based, ties get the average rank) along the last axis, via sorting."""
    k, n = x.shape
    order = np.argsort(x, axis=1, kind="mergesort")
    xs = np.take_along_axis(x, order, axis=1)
    ranks = np.empty((k, n), dtype=float)
    for r in range(k):  # k is the number of score vectors, small; each row is fully vectorised
        row = xs[r]
        new = np.empty(n, dtype=bool)
        new[0] = True
        new[1:] = row[1:] != row[:-1]
        starts = np.flatnonzero(new)
        ends = np.append(starts[1:], n)  # exclusive
        mean_rank = (starts + 1 + ends) / 2.0  # average of ranks starts+1 .. ends
        sorted_ranks = np.repeat(mean_rank, ends - starts)
        ranks[r, order[r]] = sorted_ranks
    return ranks


def _placements(pos: np.ndarray, neg: np.ndarray):
    """AUCs and placement values (V10 for positives, V01 for negatives), Sun & Xu (2014)."""
    m, n = pos.shape[1], neg.shape[1]
    tx = _midranks(pos)
    ty = _midranks(neg)
    tz = _midranks(np.concatenate([pos, neg], axis=1))
    auc = tz[:, :m].sum(axis=1) / (m * n) - (m + 1.0) / (2.0 * n)
    v10 = (tz[:, :m] - tx) / n  # fraction of negatives below each positive (ties 1/2)
    v01 = 1.0 - (tz[:, m:] - ty) / m  # fraction of positives above each negative (ties 1/2)
    return auc, v10, v01


def placement_values(y_true, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUCs (k,), V10 placements (k, positives) and V01 placements (k, negatives) of a (k, n) score
    matrix: the building blocks of DeLong's variance and of the MRMC jackknife."""
    return _placements(*_split(y_true, scores))


def auroc(y_true, scores) -> float:
    """Mann-Whitney AUC (ties 1/2) of one score vector; no variance, so 1 case per class is enough."""
    s = np.asarray(scores, dtype=float)
    if s.ndim != 1:
        raise ValueError(f"scores must be one-dimensional, got shape {s.shape}")
    pos, neg = _split(y_true, s)
    return float(_placements(pos, neg)[0][0])


def delong_covariance(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    """AUC vector (k,) and k x k DeLong covariance for scores of shape (n,) or (k, n).

    Needs at least two positives and two negatives for the sample variances to exist.
    """
    pos, neg = _split(y_true, scores)
    m, n = pos.shape[1], neg.shape[1]
    if m < 2 or n < 2:
        raise ValueError(
            f"DeLong variance needs at least 2 positive and 2 negative cases (got {m} and {n})"
        )
    auc, v10, v01 = _placements(pos, neg)
    s10 = np.atleast_2d(np.cov(v10, ddof=1))
    s01 = np.atleast_2d(np.cov(v01, ddof=1))
    return auc, s10 / m + s01 / n


def _z(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    return float(norm.ppf(0.5 + level / 2.0))


def auroc_ci(y_true, scores, level: float = 0.95) -> AUCResult:
    """AUC with a DeLong CI as pROC's ci.auc(method="delong"): auc +/- z*sd, clipped to [0, 1]."""
    s = np.asarray(scores, dtype=float)
    if s.ndim != 1:
        raise ValueError(f"scores must be one-dimensional, got shape {s.shape}")
    auc, cov = delong_covariance(y_true, s)
    a, v = float(auc[0]), float(cov[0, 0])
    half = _z(level) * math.sqrt(max(v, 0.0))
    return AUCResult(auc=a, variance=v, ci=(max(0.0, a - half), min(1.0, a + half)))


def paired_delong(y_true, scores_a, scores_b, level: float = 0.95) -> PairedResult:
    """Paired DeLong test of AUC(a) - AUC(b), as pROC's roc.test(method="delong", paired=TRUE)."""
    y = _check_labels(y_true)
    a = _check_scores(scores_a, y.size, "scores_a")
    b = _check_scores(scores_b, y.size, "scores_b")
    if a.shape[0] != 1 or b.shape[0] != 1:
        raise ValueError("scores_a and scores_b must each be one-dimensional")
    auc, cov = delong_covariance(y, np.vstack([a, b]))
    diff = float(auc[0] - auc[1])
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    if var <= 0.0:
        # Identical rankings: no evidence of a difference (pROC would report NaN here).
        z, p, half = 0.0, 1.0, 0.0
    else:
        sd = math.sqrt(var)
        z = diff / sd
        p = float(2.0 * norm.sf(abs(z)))
        half = _z(level) * sd
    return PairedResult(
        auc_a=float(auc[0]), auc_b=float(auc[1]), diff=diff, z=z, p=p,
        ci=(diff - half, diff + half),
    )


def roc_curve_points(y_true, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empirical ROC curve: (fpr, tpr, thresholds) from (0, 0) at +inf to (1, 1).

    A case is called positive when score >= threshold; tied scores move together, so the
    trapezoidal area under these points equals the Mann-Whitney AUC.
    """
    y = _check_labels(y_true)
    s = _check_scores(scores, y.size)[0]
    m, n = int(y.sum()), int((~y).sum())
    if m == 0 or n == 0:
        which = "positive" if m == 0 else "negative"
        raise ValueError(f"ROC curve is undefined: the labels contain no {which} cases")
    order = np.argsort(-s, kind="mergesort")
    ss, ys = s[order], y[order]
    last_of_tie = np.append(ss[1:] != ss[:-1], True)
    tp = np.cumsum(ys)[last_of_tie]
    fp = np.cumsum(~ys)[last_of_tie]
    thr = ss[last_of_tie]
    fpr = np.concatenate([[0.0], fp / n])
    tpr = np.concatenate([[0.0], tp / m])
    thresholds = np.concatenate([[np.inf], thr])
    return fpr, tpr, thresholds


def evaluate_scores(
    labels: Mapping[str, "np.ndarray"],
    scores: Mapping[str, "np.ndarray"],
    level: float = 0.95,
) -> dict:
    """Per-finding AUROC with DeLong CI plus the mean over findings, as plain JSON types.

    A finding whose labels lack positives or negatives gets auc None and a note, and is left out
    of the mean rather than failing the whole evaluation.
    """
    missing = [f for f in labels if f not in scores]
    if missing:
        raise ValueError(f"no scores given for finding(s) {missing}")
    extra = [f for f in scores if f not in labels]
    if extra:
        raise ValueError(f"scores given for finding(s) without labels: {extra}")
    out: dict = {}
    aucs = []
    for finding, lab in labels.items():
        try:
            y = _check_labels(lab, f"labels[{finding!r}]")
            s = _check_scores(scores[finding], y.size, f"scores[{finding!r}]")[0]
        except ValueError as exc:
            raise ValueError(f"finding {finding!r}: {exc}") from None
        n_pos, n_neg = int(y.sum()), int((~y).sum())
        entry: dict = {"auc": None, "ci": None, "n_pos": n_pos, "n_neg": n_neg}
        if n_pos == 0 or n_neg == 0:
            which = "positive" if n_pos == 0 else "negative"
            entry["note"] = f"no {which} cases, so AUROC is undefined; excluded from the mean"
        elif n_pos < 2 or n_neg < 2:
            a = auroc(y, s)
            entry["auc"] = a
            entry["note"] = "fewer than 2 positive or negative cases: no DeLong CI"
            aucs.append(a)
        else:
            r = auroc_ci(y, s, level)
            entry["auc"] = r.auc
            entry["ci"] = [r.ci[0], r.ci[1]]
            aucs.append(r.auc)
        out[finding] = entry
    mean = float(np.mean(aucs)) if aucs else None
    return {"mean_auroc": mean, "auroc": out}
