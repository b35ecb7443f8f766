"""Unbiased U-statistic covariance of reader x modality figures of merit, for any reading design.

Why: split-plot studies and readers who stop early leave holes that the jackknife cannot handle.
Each figure of merit is a U-statistic: the AUC averages the kernel ``psi(x_p, x_n)`` (1, 1/2 for a
tie, 0) over the diseased x non-diseased pairs a reader read; a binary figure of merit averages a
per-case score over the cases it read. For two groups x, y (modality x reader),
``E[A_x A_y]`` is estimated by the plain product and ``E[A_x] E[A_y]`` without bias by the mean of
the kernel products over pairs that share no case, so ``Cov = T/N - T_d/N_d`` (T: all kernel
products, N their number; T_d, N_d: those sharing no case) is unbiased whatever the overlap; with no
shared case it is 0 (MRMCaov's ``unbiased()``). On fully crossed data the same moments give iMRMC's
variance over random readers and cases (BCK decomposition) and its BDG degrees of freedom.
References: Gallas (2006) Acad. Radiol. 13:353; Gallas, Pennello & Myers (2007) JOSA A 24:B70;
Gallas et al. (2009) Commun. Stat. 38:2586; Obuchowski, Gallas & Hillis (2012) Acad. Radiol. 19:1508.
"""

from __future__ import annotations

import numpy as np

__all__ = ["auc_covariance", "auc_estimate", "mean_covariance", "mean_estimate"]


def _kernels(values: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kernel array (k, m, n), zero where a pair was not read by the group, and read indicators."""
    values, truth = np.atleast_2d(np.asarray(values, float)), np.asarray(truth)
    read = ~np.isnan(values)
    pos, neg = values[:, truth == 1], values[:, truth == 0]
    rp, rn = read[:, truth == 1], read[:, truth == 0]
    with np.errstate(invalid="ignore"):
        kern = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])
    kern = np.where(rp[:, :, None] & rn[:, None, :], kern, 0.0)
    return kern, rp.astype(float), rn.astype(float)


def auc_estimate(values: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Wilcoxon AUC of each row over the cases it read (NaN = not read)."""
    kern, rp, rn = _kernels(values, truth)
    return kern.sum(axis=(1, 2)) / (rp.sum(axis=1) * rn.sum(axis=1))


def auc_covariance(values: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Unbiased covariance matrix (k, k) of the AUCs of the rows of ``values`` (NaN = not read).

    Kernel products of pairs (p, n), (p', n') sharing a case: same p (row sums), same n (column
    sums), both (elementwise), combined by inclusion-exclusion.
    """
    kern, rp, rn = _kernels(values, truth)
    k = kern.shape[0]
    m, n = rp.sum(axis=1), rn.sum(axis=1)
    total = kern.sum(axis=(1, 2))
    rows, cols, flat = kern.sum(axis=2), kern.sum(axis=1), kern.reshape(k, -1)
    t_all = np.outer(total, total)
    t_shared = rows @ rows.T + cols @ cols.T - flat @ flat.T
    p_sh, n_sh = rp @ rp.T, rn @ rn.T
    n_all = np.outer(m * n, m * n)
    n_apart = n_all - np.outer(m, m) * n_sh - p_sh * np.outer(n, n) + p_sh * n_sh
    return t_all / n_all - (t_all - t_shared) / n_apart


def mean_estimate(scores: np.ndarray, enters: np.ndarray) -> np.ndarray:
    """Mean of each row's scores over the entering cases it read (NaN = not read)."""
    z = np.atleast_2d(np.asarray(scores, float))[:, enters]
    read = ~np.isnan(z)
    return np.where(read, z, 0.0).sum(axis=1) / read.sum(axis=1)


def mean_covariance(scores: np.ndarray, enters: np.ndarray) -> np.ndarray:
    """Unbiased covariance matrix (k, k) of row means over entering cases (NaN = not read).

    On a fully crossed design this is the sample covariance over cases divided by their number,
    which is exactly the jackknife covariance of a mean.
    """
    z = np.atleast_2d(np.asarray(scores, float))[:, enters]
    read = ~np.isnan(z)
    z0, r = np.where(read, z, 0.0), read.astype(float)
    m, total = r.sum(axis=1), z0.sum(axis=1)
    t_all = np.outer(total, total)
    n_all = np.outer(m, m)
    return t_all / n_all - (t_all - z0 @ z0.T) / (n_all - r @ r.T)


# --------------------------------------------------------------------------------------------
# iMRMC's random-reader total variance and BDG degrees of freedom (fully crossed AUC)
# --------------------------------------------------------------------------------------------

BCK_TERMS = ("1/n0", "1/n1", "1/(n0 n1)", "1/r", "1/(n0 r)", "1/(n1 r)", "1/(n0 n1 r)")


def auc_moments(values_a: np.ndarray, values_b: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Gallas's eight moments of AUC kernel products between modality a and b, (r, c) each.

    M1-M4: same reader; M5-M8: different readers; within each, (same diseased and non-diseased
    case), (same non-diseased only), (same diseased only), (no shared case). Unbiased averages.
    """
    ka, kb = _kernels(values_a, truth)[0], _kernels(values_b, truth)[0]
    r, m, n = ka.shape
    p_both = ka.reshape(r, -1) @ kb.reshape(r, -1).T
    p_pos = ka.sum(axis=2) @ kb.sum(axis=2).T  # same diseased case
    p_neg = ka.sum(axis=1) @ kb.sum(axis=1).T  # same non-diseased case
    p_all = np.outer(ka.sum(axis=(1, 2)), kb.sum(axis=(1, 2)))
    classes = (
        p_both / (m * n),
        (p_neg - p_both) / (n * m * (m - 1)),
        (p_pos - p_both) / (m * n * (n - 1)),
        (p_all - p_pos - p_neg + p_both) / (m * (m - 1) * n * (n - 1)),
    )
    same = np.eye(r, dtype=bool)
    return np.array([x[same].mean() for x in classes] + [x[~same].mean() for x in classes])


def bck_components(moments: np.ndarray) -> np.ndarray:
    """BCK coefficients of 1/n0, 1/n1, 1/(n0 n1), 1/r, 1/(n0 r), 1/(n1 r), 1/(n0 n1 r) (Gallas et al.
    2009), n0 = non-diseased, n1 = diseased cases, from the moments of :func:`auc_moments`."""
    m1, m2, m3, m4, m5, m6, m7, m8 = moments
    return np.array([
        m6 - m8,
        m7 - m8,
        m5 - m6 - m7 + m8,
        m4 - m8,
        m2 - m4 - m6 + m8,
        m3 - m4 - m7 + m8,
        m1 - m2 - m3 + m4 - m5 + m6 + m7 - m8,
    ])


def bdg_variance_df(bck: np.ndarray, r: int, n0: int, n1: int) -> tuple[float, float]:
    """Random-reader, random-case variance and its BDG degrees of freedom, as iMRMC computes them
    (Obuchowski, Gallas & Hillis 2012, Acad. Radiol. 19:1508): a Satterthwaite df from the reader,
    non-diseased and diseased parts of the BCK variance."""
    b = np.asarray(bck, float)
    terms = b / np.array([n0, n1, n0 * n1, r, n0 * r, n1 * r, n0 * n1 * r], float)
    total = float(terms.sum())
    s_neg = terms[[0, 2, 4, 6]].sum()
    s_pos = terms[[1, 2, 5, 6]].sum()
    s_rdr = terms[[3, 4, 5, 6]].sum()
    den = s_rdr**2 / (r - 1) + s_neg**2 / (n0 - 1) + s_pos**2 / (n1 - 1)
    return total, (float(total**2 / den) if den > 0 else float("inf"))


MEAN_BCK_TERMS = ("1/n", "1/r", "1/(n r)")


def mean_moments(scores_a: np.ndarray, scores_b: np.ndarray, enters: np.ndarray) -> np.ndarray:
    """The four moments of per-case score products between modality a and b, (r, c) each, over the
    entering cases: same reader (same case, other case), different readers (same case, other case)."""
    za, zb = np.asarray(scores_a, float)[:, enters], np.asarray(scores_b, float)[:, enters]
    m = za.shape[1]
    same_case = za @ zb.T / m
    other_case = (np.outer(za.sum(axis=1), zb.sum(axis=1)) - za @ zb.T) / (m * (m - 1))
    same = np.eye(za.shape[0], dtype=bool)
    return np.array([same_case[same].mean(), other_case[same].mean(),
                     same_case[~same].mean(), other_case[~same].mean()])


def mean_bck_components(moments: np.ndarray) -> np.ndarray:
    """Coefficients of 1/n, 1/r and 1/(n r) in the variance of a reader-averaged proportion
    (Gallas, Pennello & Myers 2007), n = entering cases, from :func:`mean_moments`."""
    m1, m2, m3, m4 = moments
    return np.array([m3 - m4, m2 - m4, m1 - m2 - m3 + m4])


def mean_bdg_variance_df(bck: np.ndarray, r: int, n: int) -> tuple[float, float]:
    """Random-reader, random-case variance of a reader-averaged proportion and its BDG-type df
    (the same Satterthwaite construction as :func:`bdg_variance_df`, with one kind of case)."""
    terms = np.asarray(bck, float) / np.array([n, r, n * r], float)
    total = float(terms.sum())
    s_case, s_rdr = terms[[0, 2]].sum(), terms[[1, 2]].sum()
    den = s_rdr**2 / (r - 1) + s_case**2 / (n - 1)
    return total, (float(total**2 / den) if den > 0 else float("inf"))
