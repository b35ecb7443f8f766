"""Jackknife over patients for the OR-MRMC analysis when a patient contributes several cases.

Why: both eyes (or several photographs) of one patient are correlated; treating them as independent
cases under-states the variance of every figure of merit. Each pseudo-value here leaves out one
patient and all of their cases, and the covariance is ``(g-1)/g`` times the sum of cross-products of
the deviations over the ``g`` patients (the grouped jackknife; Obuchowski 1997 Biometrics 53:567 uses
the same clustering for the AUC). For a binary figure of merit only patients with a case that enters
it are left out (MRMCaov's convention for cases). With one case per patient this is exactly the case
jackknife of :mod:`study.analysis.stats.mrmc`; unread cells (NaN) are allowed, a reader who did not read
the patient keeping their full estimate, which is MRMCaov's jackknife for nested and partly read designs.
"""

from __future__ import annotations

import numpy as np

__all__ = ["auc_cluster_jackknife", "mean_cluster_jackknife"]


def _one_hot(codes: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes)
    return (codes[:, None] == np.arange(int(codes.max()) + 1)[None, :]).astype(float)


def auc_cluster_jackknife(values: np.ndarray, truth: np.ndarray, cluster: np.ndarray) -> np.ndarray:
    """Leave-one-patient-out AUCs, shape ``(..., g)``, for ratings ``(..., c)`` (NaN = not read) and
    patient codes 0..g-1; the kernel sums give each one without recomputing an AUC."""
    values, truth = np.asarray(values, float), np.asarray(truth)
    lead = values.shape[:-1]
    flat = values.reshape(-1, values.shape[-1])
    read = ~np.isnan(flat)
    pos, neg = flat[:, truth == 1], flat[:, truth == 0]
    rp, rn = read[:, truth == 1].astype(float), read[:, truth == 0].astype(float)
    with np.errstate(invalid="ignore"):
        kern = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])
    kern = np.where((rp[:, :, None] > 0) & (rn[:, None, :] > 0), kern, 0.0)
    onehot = _one_hot(np.asarray(cluster))
    g = onehot.shape[1]
    gp, gn = onehot[truth == 1], onehot[truth == 0]
    m_left = rp.sum(axis=1, keepdims=True) - rp @ gp
    n_left = rn.sum(axis=1, keepdims=True) - rn @ gn
    if (m_left < 1).any() or (n_left < 1).any():
        raise ValueError("leaving out one patient removes every diseased or every non-diseased case a reader "
                         "read; the jackknife over patients needs cases of both kinds from at least 2 patients.")
    total = kern.sum(axis=(1, 2))[:, None]
    rows = kern.sum(axis=2) @ gp
    cols = kern.sum(axis=1) @ gn
    block = ((kern @ gn) * gp[None]).sum(axis=1)
    out = (total - rows - cols + block) / (m_left * n_left)
    return out.reshape(*lead, g)


def mean_cluster_jackknife(scores: np.ndarray, enters: np.ndarray, cluster: np.ndarray) -> np.ndarray:
    """Leave-one-patient-out means over entering cases (NaN = not read), shape ``(..., g')`` for the g'
    patients with at least one entering case."""
    z = np.asarray(scores, float)[..., enters]
    read = ~np.isnan(z)
    z0 = np.where(read, z, 0.0)
    onehot = _one_hot(np.asarray(cluster))[enters]
    onehot = onehot[:, onehot.sum(axis=0) > 0]
    left = read.sum(axis=-1, keepdims=True) - read.astype(float) @ onehot
    if onehot.shape[1] < 2 or (left < 1).any():
        raise ValueError("the cases that enter this figure of merit come from fewer than 2 patients (for some "
                         "reader); the jackknife over patients needs at least 2.")
    return (z0.sum(axis=-1, keepdims=True) - z0 @ onehot) / left
