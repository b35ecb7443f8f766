"""Unbiased U-statistic covariance (Gallas; MRMCaov ``unbiased``; iMRMC): closed forms by hand, exact
unbiasedness by enumeration on fully crossed, incompletely read and split-plot designs, and exact
identities with DeLong and the jackknife on Van Dyke."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from study.analysis.stats import ustat
from study.analysis.stats.mrmc import (
    binary_mrmc_analysis,
    delong_covariance,
    empirical_auc,
    load_crossed,
    mrmc_analysis,
)

from tests.conftest import needs_reference



# ------------------------------------------------------------------------------------------
# A 2-reader, 3 + 3 case design by hand
# ------------------------------------------------------------------------------------------


def test_tiny_design_by_hand():
    # Diseased cases 1-3, non-diseased 4-6. Kernel psi(p, n) = 1 if x_p > x_n, 1/2 if tied.
    truth = np.array([1, 1, 1, 0, 0, 0])
    x = np.array([[3, 3, 1, 2, 2, 2],   # reader A: kernel rows [1 1 1], [1 1 1], [0 0 0]
                  [3, 1, 2, 1, 2, 0]], float)  # reader B: rows [1 1 1], [.5 0 1], [1 .5 1]
    # AUC A = 6/9, AUC B = 7/9.
    # A's kernel depends on p only, so its AUC is the proportion of [1, 1, 0]; the unbiased
    # variance of a mean is the sample variance / m = (1/3) / 3 = 1/9.
    # In general Var = [n^2 A + m^2 B + mn theta^2 - Q] / (m(m-1)n(n-1)) with A, B the sums of
    # squared deviations of the placements V10 = rows/n, V01 = cols/m, Q = sum psi^2. For B:
    # V10 = [1, 1/2, 5/6], V01 = [5/6, 1/2, 1], theta = 7/9, A = B = 42/324, Q = 6.5:
    # Var = [9 * 42/324 * 2 + 9 * 49/81 - 6.5] / 36 = (7/3 + 49/9 - 13/2) / 36 = 23/648.
    # Cov(A, B) = T/N - T_d/N_d: T = 6 * 7 = 42 over N = 81 pairs of pairs; pairs sharing a case:
    # rows 3*3 + 3*1.5 + 0 = 13.5, cols 2*2.5 + 2*1.5 + 2*3 = 14, both 3 + 1.5 + 0 = 4.5, so
    # T_shared = 13.5 + 14 - 4.5 = 23; N_d = 81 - 27 - 27 + 9 = 36: Cov = 42/81 - 19/36 = -1/108.
    np.testing.assert_allclose(ustat.auc_estimate(x, truth), [6 / 9, 7 / 9], rtol=1e-15)
    np.testing.assert_allclose(ustat.auc_covariance(x, truth), [[1 / 9, -1 / 108], [-1 / 108, 23 / 648]],
                               rtol=1e-12)
    # Binary: calls [1 1 0] and [1 0 1] on diseased: sample covariance / 3 = (-1/6)/3.
    calls = np.array([[1, 1, 0, 0, 0, 0], [1, 0, 1, 1, 0, 0]], float)
    np.testing.assert_allclose(ustat.mean_covariance(calls, truth == 1),
                               [[1 / 9, -1 / 18], [-1 / 18, 1 / 9]], rtol=1e-12)


# ------------------------------------------------------------------------------------------
# Exact unbiasedness: enumerate every outcome of a small discrete two-reader model
# ------------------------------------------------------------------------------------------

# Joint (reader A, reader B) ratings of one case with probabilities; ties across classes on purpose.
DISEASED = [((2, 2), 0.5), ((1, 2), 0.3), ((1, 0), 0.2)]
HEALTHY = [((0, 0), 0.4), ((1, 1), 0.3), ((2, 0), 0.3)]
SMALL = ([((2, 2), 0.6), ((1, 0), 0.4)], [((0, 0), 0.5), ((1, 1), 0.5)])  # for the 8-case design


def _enumerate(truth: np.ndarray, read: np.ndarray, estimate, covariance):
    """Exact E[estimator] and the true covariance of the estimates over all outcomes."""
    diseased, healthy = SMALL if len(truth) > 6 else (DISEASED, HEALTHY)
    dists = [diseased if t else healthy for t in truth]
    first = np.zeros(2)
    second = np.zeros((2, 2))
    mean_est = np.zeros((2, 2))
    for outcome in itertools.product(*dists):
        prob = math.prod(p for _, p in outcome)
        x = np.array([v for v, _ in outcome], float).T  # (2 readers, c)
        x = np.where(read, x, np.nan)
        a = estimate(x)
        first += prob * a
        second += prob * np.outer(a, a)
        mean_est += prob * covariance(x)
    return mean_est, second - np.outer(first, first)


@pytest.mark.parametrize(
    "design",
    [
        # fully crossed: 3 diseased + 2 non-diseased
        ([1, 1, 1, 0, 0], [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1]]),
        # incompletely read: reader B skipped diseased case 1 and non-diseased case 5
        ([1, 1, 1, 0, 0, 0], [[1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 0]]),
        # split plot: the readers share no case (covariance 0)
        ([1, 1, 0, 0, 1, 1, 0, 0], [[1, 1, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1]]),
    ],
    ids=["crossed", "incomplete", "split-plot"],
)
def test_auc_covariance_is_exactly_unbiased(design):
    truth, read = np.array(design[0]), np.array(design[1], bool)
    expected, true = _enumerate(truth, read, lambda x: ustat.auc_estimate(x, truth),
                                lambda x: ustat.auc_covariance(x, truth))
    np.testing.assert_allclose(expected, true, rtol=1e-12, atol=1e-13)  # true: E[AA'] - E[A]E[A']
    assert true[0, 0] > 0 and true[1, 1] > 0
    if not (read[0] & read[1]).any():
        assert expected[0, 1] == 0 and true[0, 1] == pytest.approx(0, abs=1e-13)


def test_proportion_covariance_is_exactly_unbiased():
    # sensitivity at "rating >= 2" on an incompletely read design
    truth = np.array([1, 1, 1, 1, 0])
    read = np.array([[1, 1, 1, 0, 1], [0, 1, 1, 1, 1]], bool)
    enters = truth == 1

    def calls(x):
        return np.where(np.isnan(x), np.nan, (x >= 2).astype(float))

    expected, true = _enumerate(truth, read, lambda x: ustat.mean_estimate(calls(x), enters),
                                lambda x: ustat.mean_covariance(calls(x), enters))
    np.testing.assert_allclose(expected, true, rtol=1e-12, atol=1e-13)
    assert true[0, 1] > 0


# ------------------------------------------------------------------------------------------
# Van Dyke: exact identities with MRMCaov's formula, DeLong and the jackknife
# ------------------------------------------------------------------------------------------


def _vd_matrix(vandyke):
    d = load_crossed(vandyke, "rating", needs_truth=True)
    return d.values.reshape(-1, d.values.shape[-1]), d.truth


def _kernels(x, truth):
    pos, neg = x[:, truth == 1], x[:, truth == 0]
    return (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])


@needs_reference
def test_fully_crossed_matches_mrmcaov_balanced_formula(vandyke):
    # MRMCaov's unbiased_balanced() (R/unbiased.R), written out independently:
    # delta = (mn)^2 / (m(m-1)n(n-1));
    # cov = [(1 - delta) S S' + delta (R'R + C'C - K'K)] / (mn)^2.
    x, truth = _vd_matrix(vandyke)
    k = _kernels(x, truth)
    m, n = k.shape[1], k.shape[2]
    delta = (m * n) ** 2 / (m * (m - 1) * n * (n - 1))
    s = k.sum(axis=(1, 2))[:, None]
    rows, cols, flat = k.sum(axis=2), k.sum(axis=1), k.reshape(len(k), -1)
    mrmcaov = ((1 - delta) * (s @ s.T) + delta * (rows @ rows.T + cols @ cols.T - flat @ flat.T)) / (m * n) ** 2
    # both subtract two numbers of size AUC^2 ~ 1, so agreement is to ~1e-16 absolute
    np.testing.assert_allclose(ustat.auc_covariance(x, truth), mrmcaov, rtol=1e-10, atol=1e-15)


@needs_reference
def test_unbiased_is_delong_minus_the_interaction_term(vandyke):
    # Exact identity on a fully crossed design (derived in ustat's terms): with the two-way
    # decomposition psi = theta + (V10 - theta) + (V01 - theta) + e,
    #   Cov_unbiased(x, y) = Cov_DeLong(x, y) - sum_pn e^x_pn e^y_pn / (m(m-1)n(n-1)),
    # so for one reader the unbiased variance is DeLong's minus a non-negative term.
    x, truth = _vd_matrix(vandyke)
    k = _kernels(x, truth)
    m, n = k.shape[1], k.shape[2]
    e = (k - k.mean(axis=2, keepdims=True) - k.mean(axis=1, keepdims=True) + k.mean(axis=(1, 2), keepdims=True))
    e = e.reshape(len(k), -1)
    unbiased = ustat.auc_covariance(x, truth)
    np.testing.assert_allclose(unbiased, delong_covariance(x, truth) - e @ e.T / (m * (m - 1) * n * (n - 1)),
                               rtol=1e-10, atol=1e-15)
    assert (np.diag(unbiased) < np.diag(delong_covariance(x, truth))).all()


@needs_reference
def test_vandyke_unbiased_reproduces_mrmcaov(vandyke):
    # MRMCaov's published VanDyke output with cov = unbiased (Smith & Hillis, MRMCaov JSS
    # manuscript, docs/jss/MRMCaov.tex in the MRMCaov repository), printed to 7 significant digits.
    res = mrmc_analysis(vandyke, covariance="unbiased")
    c, r = res.components, res.rrrc
    rel = 1e-6
    assert c.var_r == pytest.approx(0.0015365290, rel=rel)
    assert c.var_tr == pytest.approx(0.0002077588, rel=rel)
    assert c.var_error == pytest.approx(0.0007883925, rel=rel)
    assert (c.cov1, c.cov2, c.cov3) == pytest.approx((0.0003416706, 0.0003390650, 0.0002356148), rel=rel)
    assert r.denominator == pytest.approx(0.001068281, rel=rel)
    assert (r.F, r.ddf, r.p) == pytest.approx((4.489614, 15.03418, 0.0511618), rel=rel)
    assert r.se == pytest.approx(0.02067154, rel=rel)
    assert r.ci == pytest.approx((-0.0878519409, 0.0002512968), rel=rel)
    m1, m2 = r.per_modality[1], r.per_modality[2]
    assert (m1.se, m2.se) == pytest.approx((0.0330712, 0.0214912), rel=rel)
    assert (m1.df, m2.df) == pytest.approx((12.58802, 12.53391), rel=rel)
    assert m1.ci == pytest.approx((0.8253526, 0.9687214), rel=rel)
    assert m2.ci == pytest.approx((0.8942323, 0.9874424), rel=rel)
    # iMRMC's U-statistic variance over random readers and cases equals the OR RRRC variance with
    # unbiased covariances whenever no truncation max(Cov2 - Cov3, 0), max(Cov2, 0) binds (here);
    # only the degrees of freedom differ (BDG vs Hillis).
    assert res.bdg["comparisons"][0]["se"] == pytest.approx(r.se, rel=1e-12)
    assert res.bdg["per_modality"]["1"]["se"] == pytest.approx(m1.se, rel=1e-12)
    assert res.bdg["per_modality"]["2"]["se"] == pytest.approx(m2.se, rel=1e-12)


@needs_reference
def test_unbiased_or_analysis_on_vandyke(vandyke):
    res = mrmc_analysis(vandyke, covariance="unbiased")
    jk = mrmc_analysis(vandyke)
    np.testing.assert_allclose(res.theta, jk.theta, rtol=1e-14)  # same AUCs
    assert res.covariance == "unbiased" and res.to_dict()["fully_crossed"]
    # OR machinery unchanged: the RRRC test from the unbiased components by Hillis's formulas
    c = res.components
    den = c.ms_tr + 5 * max(c.cov2 - c.cov3, 0)
    assert res.rrrc.F == pytest.approx(c.ms_t / den, rel=1e-12)
    assert res.rrrc.ddf == pytest.approx(den**2 / c.ms_tr**2 * 4, rel=1e-12)
    # smaller than the (upward-biased) DeLong variance, close to it with 114 cases
    dl = mrmc_analysis(vandyke, covariance="delong").components
    assert c.var_error < dl.var_error and c.var_error == pytest.approx(dl.var_error, rel=0.05)


@needs_reference
def test_binary_unbiased_equals_jackknife_on_a_crossed_design(vandyke):
    # For a proportion over m cases both are the sample covariance / m, so the MRMCaov sensitivity
    # numbers are reproduced with the unbiased covariance too.
    jk = binary_mrmc_analysis(vandyke, fom="sensitivity", threshold=3)
    ub = binary_mrmc_analysis(vandyke, fom="sensitivity", threshold=3, covariance="unbiased")
    np.testing.assert_allclose(ub.cov_matrix, jk.cov_matrix, rtol=1e-12, atol=1e-17)
    assert ub.rrrc.F == pytest.approx(6.689493, rel=1e-6)
    assert ub.rrrc.ddf == pytest.approx(15.71732, rel=1e-6)


# ------------------------------------------------------------------------------------------
# Designs that are not fully crossed, through the OR analysis
# ------------------------------------------------------------------------------------------


@needs_reference
def test_incomplete_design(vandyke):
    rng = np.random.default_rng(14)
    kept = vandyke[rng.random(len(vandyke)) > 0.15]
    with pytest.raises(ValueError, match="not fully crossed.*covariance='unbiased'"):
        mrmc_analysis(kept)
    res = mrmc_analysis(kept, covariance="unbiased")
    assert res.n_readings == len(kept) and not res.to_dict()["fully_crossed"]
    for (i, m), (j, r) in itertools.product(enumerate(res.modalities), enumerate(res.readers)):
        own = kept[(kept["modality"] == m) & (kept["reader"] == r)]
        auc = empirical_auc(own["rating"].to_numpy(float)[None], own["truth"].to_numpy())[0]
        assert res.theta[i, j] == pytest.approx(auc, rel=1e-14)
    assert math.isfinite(res.rrrc.p) and 0 < res.rrrc.p < 1
    # MRMCaov's unbiased_default()/get_cov() (R/unbiased.R) for partly read designs, written out
    # with its delta: ((1 - delta) Sx Sy + delta (shared rows + shared cols - shared cells)) / nxny.
    d = load_crossed(kept, "rating", needs_truth=True, complete=False)
    x, truth = d.values.reshape(10, -1), d.truth
    for i, j in ((0, 0), (0, 1), (2, 7), (9, 4)):
        gx, gy = [x[g, :] for g in (i, j)]
        rx = {s: ~np.isnan(g) & (truth == s) for g, s in ((gx, 1), (gx, 0))}
        ry = {s: ~np.isnan(g) & (truth == s) for g, s in ((gy, 1), (gy, 0))}
        kx, ky = _kernels(gx[None], truth)[0], _kernels(gy[None], truth)[0]
        kx = kx * rx[1][truth == 1][:, None] * rx[0][truth == 0][None]
        ky = ky * ry[1][truth == 1][:, None] * ry[0][truth == 0][None]
        sp, sn = (rx[1] & ry[1])[truth == 1], (rx[0] & ry[0])[truth == 0]
        mx, nx, my, ny = rx[1].sum(), rx[0].sum(), ry[1].sum(), ry[0].sum()
        nxny = mx * nx * my * ny
        delta = nxny / (nxny - mx * sn.sum() * my - nx * sp.sum() * ny + sp.sum() * sn.sum())
        shared = ((kx.sum(1) * ky.sum(1))[sp].sum() + (kx.sum(0) * ky.sum(0))[sn].sum()
                  - (kx * ky)[np.ix_(sp, sn)].sum())
        mrmcaov = ((1 - delta) * kx.sum() * ky.sum() + delta * shared) / nxny
        assert res.cov_matrix[i, j] == pytest.approx(mrmcaov, rel=1e-9, abs=1e-15)


@needs_reference
def test_nested_designs_reproduce_mrmcaov_jackknife(vandyke):
    # MRMCaov's published VanDyke analyses of its case2 (cases nested within readers) and case3
    # (cases nested within tests) codings, jackknife covariance (MRMCaov JSS manuscript): every
    # case id is left out once and a reader who did not read it keeps the full estimate.
    case2 = vandyke.assign(case=vandyke["reader"].astype(str) + "." + vandyke["case"].astype(str))
    case3 = vandyke.assign(case=vandyke["modality"].astype(str) + "." + vandyke["case"].astype(str))
    with pytest.raises(ValueError, match="incomplete=True"):
        mrmc_analysis(case2)
    rel = 1e-6
    r2 = mrmc_analysis(case2, incomplete=True)
    c = r2.components
    assert (c.var_r, c.var_tr, c.var_error, c.cov1) == pytest.approx(
        (1.293517e-03, 9.213005e-05, 8.079682e-04, 3.490676e-04), rel=rel)
    assert c.cov2 == pytest.approx(0, abs=1e-20) and c.cov3 == pytest.approx(0, abs=1e-20)
    assert (r2.rrrc.F, r2.rrrc.ddf, r2.rrrc.p) == pytest.approx((8.704, 4, 0.04195875), rel=rel)
    r3 = mrmc_analysis(case3, incomplete=True)
    c = r3.components
    assert (c.var_r, c.var_tr, c.var_error, c.cov2) == pytest.approx(
        (1.642585e-03, 9.078969e-05, 8.058382e-04, 3.455973e-04), rel=rel)
    assert c.cov1 == pytest.approx(0, abs=1e-20) and c.cov3 == pytest.approx(0, abs=1e-20)
    r = r3.rrrc
    assert (r.F, r.ddf, r.p, r.se) == pytest.approx((2.104491, 68.42325, 0.1514363, 0.03019283), rel=rel)
    assert r.ci == pytest.approx((-0.10404242, 0.01644178), rel=rel)
    m1, m2 = r.per_modality[1], r.per_modality[2]
    assert (m1.se, m2.se, m1.df, m2.df) == pytest.approx((0.03320586, 0.02158730, 12.79430, 12.75962), rel=rel)
    assert not r3.to_dict()["fully_crossed"] and r3.n_cases == 228


@needs_reference
def test_split_plot_design(vandyke):
    # Readers 1-2 read half the cases of each class, readers 3-5 the other half, in both modalities.
    order = vandyke.drop_duplicates("case").sort_values("case")
    half = set(order[order["truth"] == 1]["case"][::2]) | set(order[order["truth"] == 0]["case"][::2])
    first, in_half = vandyke["reader"].isin([1, 2]), vandyke["case"].isin(half)
    split = vandyke[(first & in_half) | (~first & ~in_half)]
    res = mrmc_analysis(split, covariance="unbiased")
    c4 = res.cov_matrix.reshape(2, 5, 2, 5)
    assert np.all(c4[:, :2, :, 2:] == 0) and np.all(c4[:, 2:, :, :2] == 0)  # no shared case
    assert (c4[0, 0, 1, 0] != 0) and res.n_readings == len(split)
    sens = binary_mrmc_analysis(split, fom="sensitivity", threshold=3, covariance="unbiased")
    assert np.all(sens.cov_matrix.reshape(2, 5, 2, 5)[:, :2, :, 2:] == 0)
    assert 0 < sens.rrrc.p < 1


def test_unbiased_needs_two_cases_of_each_kind_per_reader():
    rows = [{"reader": r, "modality": m, "case": k, "truth": int(k > 3), "rating": (k * r + m) % 5}
            for r in (1, 2) for m in (1, 2) for k in range(1, 7)]
    df = pd.DataFrame(rows)
    short = df[~((df["reader"] == 2) & (df["modality"] == 1) & df["case"].isin([4, 5]))]
    with pytest.raises(ValueError, match=r"\(2, 1\) read fewer than 2 diseased"):
        mrmc_analysis(short, covariance="unbiased")


# ------------------------------------------------------------------------------------------
# iMRMC's random-reader variance (BCK moments) and BDG degrees of freedom
# ------------------------------------------------------------------------------------------


def _brute_moments(xa, xb, truth):
    """M1-M8 by classifying every pair of (reader, diseased, non-diseased) triples."""
    pos, neg = np.flatnonzero(truth == 1), np.flatnonzero(truth == 0)

    def psi(x, j, p, n):
        return 1.0 if x[j, p] > x[j, n] else 0.5 if x[j, p] == x[j, n] else 0.0

    share = {(True, True): 0, (False, True): 1, (True, False): 2, (False, False): 3}  # (same p, same n)
    sums, counts = np.zeros(8), np.zeros(8)
    for j, k in itertools.product(range(xa.shape[0]), repeat=2):
        for p, n, q, o in itertools.product(pos, neg, pos, neg):
            cls = 4 * (j != k) + share[(p == q, n == o)]
            sums[cls] += psi(xa, j, p, n) * psi(xb, k, q, o)
            counts[cls] += 1
    return sums / counts


def test_moments_by_brute_force_and_bck_recomposes_the_variance():
    rng = np.random.default_rng(7)
    truth = np.array([1, 1, 1, 0, 0, 0, 0])
    xa, xb = rng.integers(0, 4, size=(3, 7)).astype(float), rng.integers(0, 4, size=(3, 7)).astype(float)
    for a, b in ((xa, xa), (xa, xb)):
        np.testing.assert_allclose(ustat.auc_moments(a, b, truth), _brute_moments(a, b, truth), rtol=1e-13)
    # Gallas (2006): Var = sum c_k M_k - M8 with c_k the shares of each class of pairs of pairs;
    # the BCK coefficients of 1/n0 ... 1/(n0 n1 r) must add back to it.
    r, n1, n0 = 3, 3, 4
    mom = ustat.auc_moments(xa, xa, truth)
    fr, fn0, fn1 = (1 / r, 1 - 1 / r), (1 / n0, 1 - 1 / n0), (1 / n1, 1 - 1 / n1)
    # class order within a reader block: (same p & n), (same n only), (same p only), (neither)
    shares = [fr[i] * fn0[a] * fn1[b] for i in (0, 1) for a, b in ((0, 0), (0, 1), (1, 0), (1, 1))]
    gallas = float(np.dot(shares, mom) - mom[7])
    total, _ = ustat.bdg_variance_df(ustat.bck_components(mom), r, n0, n1)
    assert total == pytest.approx(gallas, rel=1e-12)
    # and sum c_k M_k is the squared reader-averaged AUC itself
    assert float(np.dot(shares, mom)) == pytest.approx(ustat.auc_estimate(xa, truth).mean() ** 2, rel=1e-12)


@needs_reference
def test_bdg_variance_is_or_case_variance_plus_reader_variance(vandyke):
    # iMRMC's variance of a reader average = mean of the unbiased OR covariance block (case
    # sampling, readers fixed) + (M4 - M8)/r (readers), exactly.
    res = mrmc_analysis(vandyke, covariance="unbiased")
    d = load_crossed(vandyke, "rating", needs_truth=True)
    c4 = res.cov_matrix.reshape(2, 5, 2, 5)
    bck = {(a, b): ustat.bck_components(ustat.auc_moments(d.values[a], d.values[b], d.truth))
           for a, b in ((0, 0), (1, 1), (0, 1))}
    for a, label in enumerate(("1", "2")):
        est = res.bdg["per_modality"][label]
        assert est["var"] == pytest.approx(c4[a, :, a, :].mean() + bck[a, a][3] / 5, rel=1e-10)
        assert est["df"] > 4
    cmp = res.bdg["comparisons"][0]
    case_part = c4[0, :, 0, :].mean() + c4[1, :, 1, :].mean() - 2 * c4[0, :, 1, :].mean()
    reader_part = (bck[0, 0][3] + bck[1, 1][3] - 2 * bck[0, 1][3]) / 5
    assert cmp["var"] == pytest.approx(case_part + reader_part, rel=1e-10)
    assert cmp["diff"] == pytest.approx(-0.0438003220612, rel=1e-9)
    # BDG df (Obuchowski, Gallas & Hillis 2012) from the BCK parts, written out
    b, (r, n0, n1) = np.array(cmp["bck"]), (5, 69, 45)
    terms = b / np.array([n0, n1, n0 * n1, r, n0 * r, n1 * r, n0 * n1 * r])
    df = terms.sum() ** 2 / (terms[[3, 4, 5, 6]].sum() ** 2 / (r - 1) + terms[[0, 2, 4, 6]].sum() ** 2 / (n0 - 1)
                             + terms[[1, 2, 5, 6]].sum() ** 2 / (n1 - 1))
    assert cmp["df"] == pytest.approx(df, rel=1e-12)
    assert res.to_dict()["bdg"] is res.bdg
    assert mrmc_analysis(vandyke).bdg is None  # only with the unbiased covariance


def test_proportion_moments_by_brute_force():
    rng = np.random.default_rng(8)
    za, zb = rng.integers(0, 2, size=(3, 6)).astype(float), rng.integers(0, 2, size=(3, 6)).astype(float)
    enters = np.array([1, 1, 0, 1, 1, 1], bool)
    sums, counts = np.zeros(4), np.zeros(4)
    for j, k in itertools.product(range(3), repeat=2):
        for p, q in itertools.product(np.flatnonzero(enters), repeat=2):
            cls = 2 * (j != k) + (p != q)
            sums[cls] += za[j, p] * zb[k, q]
            counts[cls] += 1
    np.testing.assert_allclose(ustat.mean_moments(za, zb, enters), sums / counts, rtol=1e-13)
    # the 1/n, 1/r, 1/(nr) coefficients add back to the mean squared minus the "nothing shared" moment
    mom = ustat.mean_moments(za, za, enters)
    total, _ = ustat.mean_bdg_variance_df(ustat.mean_bck_components(mom), 3, 5)
    assert total == pytest.approx(ustat.mean_estimate(za, enters).mean() ** 2 - mom[3], rel=1e-12)


@needs_reference
def test_sensitivity_bdg_equals_or_variance_and_mrmcaov_se(vandyke):
    res = binary_mrmc_analysis(vandyke, fom="sensitivity", threshold=3, covariance="unbiased")
    assert res.bdg["bck_terms"] == ["1/n", "1/r", "1/(n r)"]
    cmp = res.bdg["comparisons"][0]
    assert cmp["se"] == pytest.approx(0.03780451, rel=1e-6)  # MRMCaov's published RRRC SE
    assert cmp["se"] == pytest.approx(res.rrrc.se, rel=1e-12) and cmp["df"] != pytest.approx(res.rrrc.ddf)
    for m in (1, 2):
        assert res.bdg["per_modality"][str(m)]["se"] == pytest.approx(res.rrrc.per_modality[m].se, rel=1e-12)
