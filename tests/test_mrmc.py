"""Obuchowski-Rockette/Hillis MRMC analysis against published output and hand-derived cases."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from study.analysis.stats.mrmc import (
    auc_jackknife,
    delong_covariance,
    empirical_auc,
    load_crossed,
    mrmc_analysis,
)

REPO = Path(__file__).resolve().parents[1]
from tests.conftest import REFERENCE, needs_reference

# Published OR-DBM MRMC 2.51 / RJafroc 3.6.1 / MRMCaov output for Van Dyke et al. (1993),
# copied from tests/data/README.md.
VD_AUC_1 = [0.919645732689, 0.858776167472, 0.9038647343, 0.973107890499, 0.829790660225]
VD_AUC_2 = [0.947826086957, 0.905314009662, 0.921739130435, 0.999355877617, 0.929951690821]
REL = 1e-9  # the table prints 12 significant digits; the brief asks for 1e-6


def _close(value, expected, rel=REL, abs_=0.0):
    return value == pytest.approx(expected, rel=rel, abs=abs_)



@pytest.fixture(scope="module")
def vd(vandyke):
    return mrmc_analysis(vandyke)


# ------------------------------------------------------------------------------------------
# Van Dyke: every published number
# ------------------------------------------------------------------------------------------


@needs_reference
def test_vandyke_reader_aucs_and_averages(vd):
    assert vd.modalities == (1, 2) and vd.readers == (1, 2, 3, 4, 5) and vd.n_cases == 114
    for j in range(5):
        assert _close(vd.theta[0, j], VD_AUC_1[j])
        assert _close(vd.theta[1, j], VD_AUC_2[j])
    assert _close(vd.per_modality[1], 0.897037037037)
    assert _close(vd.per_modality[2], 0.940837359098)
    assert _close(vd.rrrc.diff, -0.0438003220612)


@needs_reference
def test_vandyke_mean_squares_and_variance_components(vd):
    c = vd.components
    assert _close(c.ms_t, 0.00479617053166)
    assert _close(c.ms_r, 0.00383619998911)
    assert _close(c.ms_tr, 0.000551030621744)
    assert _close(c.var_r, 0.00153499934513)
    assert _close(c.var_tr, 0.000200402523581)
    assert _close(c.cov1, 0.000346613709441)
    assert _close(c.cov2, 0.000344074828861)
    assert _close(c.cov3, 0.000239028370892)
    assert _close(c.var_error, 0.000802288265572)


@needs_reference
def test_vandyke_rrrc(vd):
    r = vd.rrrc
    assert r.ndf == 1
    assert _close(r.F, 4.45631869316)
    assert _close(r.ddf, 15.2596745891)
    assert _close(r.p, 0.0516656858193)
    assert _close(r.se, 0.0207486183789)
    assert _close(r.ci[0], -0.0879594985666)
    assert _close(r.ci[1], 0.000358854444171)
    m1, m2 = r.per_modality[1], r.per_modality[2]
    assert _close(m1.se, 0.0331735969592) and _close(m2.se, 0.0215663683703)
    assert _close(m1.df, 12.7446475981) and _close(m2.df, 12.7101896416)


@needs_reference
def test_vandyke_frrc(vd):
    f = vd.frrc
    assert _close(f.chi2, 5.47595324248)
    assert _close(f.F, 5.47595324248) and math.isinf(f.ddf)  # F = chi2/(t-1) with ddf = inf
    assert _close(f.p, 0.0192798430708)
    assert _close(f.se, 0.0187174826086)
    # Single-modality FRRC lines of OR-DBM MRMC 2.51's VanDyke output (printed to 8 decimals),
    # as quoted in RJafroc's R/ORSummaryFRRC.R: SE 0.02428971 / 0.01677632,
    # CI (0.84943008, 0.94464399) / (0.90795637, 0.97371835).
    m1, m2 = f.per_modality[1], f.per_modality[2]
    assert m1.se == pytest.approx(0.02428971, abs=5e-9)
    assert m2.se == pytest.approx(0.01677632, abs=5e-9)
    assert m1.ci == pytest.approx((0.84943008, 0.94464399), abs=5e-9)
    assert m2.ci == pytest.approx((0.90795637, 0.97371835), abs=5e-9)
    # Per-reader differences are each reader's own AUC difference.
    assert [c.reader for c in f.per_reader] == [1, 2, 3, 4, 5]
    for j, c in enumerate(f.per_reader):
        assert _close(c.diff, VD_AUC_1[j] - VD_AUC_2[j], rel=1e-9, abs_=1e-12)
        assert c.se > 0 and c.ci[0] < c.diff < c.ci[1]


@needs_reference
def test_vandyke_rrfc(vd):
    r = vd.rrfc
    assert (r.ndf, r.ddf) == (1, 4)
    assert _close(r.F, 8.704)
    assert _close(r.p, 0.0419587524946)
    assert _close(r.se, 0.0148462873708)


@needs_reference
def test_vandyke_delong_covariance_rrrc(vandyke):
    r = mrmc_analysis(vandyke, covariance="delong").rrrc
    # printed as F = 4.484854, ddf = 15.06611, p = 0.05123303
    assert r.F == pytest.approx(4.484854, abs=5e-7)
    assert r.ddf == pytest.approx(15.06611, abs=5e-6)
    assert r.p == pytest.approx(0.05123303, abs=5e-9)


# ------------------------------------------------------------------------------------------
# Building blocks checked against independent computations / published pROC values
# ------------------------------------------------------------------------------------------


@needs_reference
def test_auc_matches_mann_whitney_and_jackknife_matches_brute_force(vandyke):
    data = load_crossed(vandyke, "rating", needs_truth=True)
    scores, truth = data.values.reshape(-1, data.values.shape[-1]), data.truth
    aucs = empirical_auc(scores, truth)
    for row, auc in zip(scores, aucs):  # scipy's U counts ties as 1/2
        u = stats.mannwhitneyu(row[truth == 1], row[truth == 0]).statistic
        assert auc == pytest.approx(u / (truth.sum() * (truth == 0).sum()), abs=1e-14)
    jk = auc_jackknife(scores, truth)
    for k in range(len(truth)):
        keep = np.arange(len(truth)) != k
        np.testing.assert_allclose(jk[:, k], empirical_auc(scores[:, keep], truth[keep]), atol=1e-13)


@needs_reference
def test_delong_covariance_reproduces_proc():
    asah = pd.read_csv(REFERENCE / "asah.csv")
    truth = asah["outcome_poor"].to_numpy()
    scores = asah[["wfns", "s100b", "ndka"]].to_numpy(dtype=float).T
    auc = empirical_auc(scores, truth)
    cov = delong_covariance(scores, truth)
    assert auc[0] == pytest.approx(0.823678861788618, abs=1e-12)
    assert auc[2] == pytest.approx(0.611957994579946, abs=1e-12)
    assert np.diag(cov) == pytest.approx([0.00146991470882363, 0.00266868245717244, 0.0031908105493913], abs=1e-14)
    assert cov[0, 2] == pytest.approx(-0.000532967856762438, abs=1e-14)
    assert cov[2, 1] == pytest.approx(-0.000756164938056579, abs=1e-14)
    assert cov[1, 0] == pytest.approx(0.00119615567376754, abs=1e-14)

    def z(a, b):
        return (auc[a] - auc[b]) / math.sqrt(cov[a, a] + cov[b, b] - 2 * cov[a, b])

    assert z(0, 1) == pytest.approx(2.20898359144091, abs=1e-10)
    assert z(0, 2) == pytest.approx(2.79777591868904, abs=1e-10)
    assert z(2, 1) == pytest.approx(-1.39077002573558, abs=1e-10)


# ------------------------------------------------------------------------------------------
# Franken: Cov2 < Cov3, so the max(Cov2 - Cov3, 0) truncation must act
# ------------------------------------------------------------------------------------------


@needs_reference
def test_franken_truncates_cov2_minus_cov3():
    res = mrmc_analysis(REFERENCE / "franken.csv")
    c, t, r = res.components, len(res.modalities), len(res.readers)
    assert (t, r, res.n_cases) == (2, 4, 100)
    assert c.cov2 < c.cov3  # the premise of this data set
    # With the truncation, r*max(Cov2-Cov3, 0) = 0: the RRRC denominator is MS(T*R) itself and
    # Hillis's ddf = den^2 / (MS(T*R)^2 / ((t-1)(r-1))) collapses to (t-1)(r-1) = 3, i.e. the
    # RRRC test coincides with the RRFC test. Without truncation the denominator would shrink.
    assert res.rrrc.denominator == c.ms_tr
    assert res.rrrc.denominator > c.ms_tr + r * (c.cov2 - c.cov3)
    assert res.rrrc.ddf == pytest.approx((t - 1) * (r - 1), rel=1e-12)
    assert res.rrrc.F == pytest.approx(c.ms_t / c.ms_tr, rel=1e-12)
    assert res.rrrc.p == pytest.approx(stats.f.sf(c.ms_t / c.ms_tr, t - 1, (t - 1) * (r - 1)), rel=1e-10)
    assert res.rrrc.p == pytest.approx(res.rrfc.p, rel=1e-10)
    assert res.rrrc.se == pytest.approx(math.sqrt(2 / r * c.ms_tr), rel=1e-12)
    # Same truncation in Var(T*R) and the FRRC denominator (OR-DBM MRMC / RJafroc convention).
    assert c.var_tr == pytest.approx(c.ms_tr - c.var_error + c.cov1, rel=1e-12)
    assert res.frrc.denominator == pytest.approx(c.var_error - c.cov1, rel=1e-12)
    assert c.var_r == pytest.approx((c.ms_r - c.var_error - (t - 1) * c.cov1 + c.cov2
                                     + (t - 1) * c.cov3 - c.var_tr) / t, rel=1e-12)


# ------------------------------------------------------------------------------------------
# Percent correct: a 2 x 2 x 4 study small enough to derive by hand
# ------------------------------------------------------------------------------------------


def _pc_study() -> pd.DataFrame:
    correct = {
        ("A", "M1"): [1, 1, 1, 0],  # 0.75, deviations d = [ .25,  .25,  .25, -.75]
        ("B", "M1"): [1, 0, 0, 0],  # 0.25, d = [ .75, -.25, -.25, -.25]
        ("A", "M2"): [1, 1, 1, 1],  # 1.00, d = 0
        ("B", "M2"): [1, 1, 0, 1],  # 0.75, d = [ .25,  .25, -.75,  .25]
    }
    rows = [
        {"reader": r, "modality": m, "case": k + 1, "correct": x}
        for (r, m), xs in correct.items()
        for k, x in enumerate(xs)
    ]
    return pd.DataFrame(rows)


def test_percent_correct_by_hand():
    # Leaving case k out of a proportion moves it by -(x_k - mean)/(c-1), so the jackknife
    # covariance (c-1)/c * sum(delta_x delta_y) = sum(d_x d_y) / (c (c-1)) = sum(d_x d_y) / 12.
    #   Var: M1A .75/12, M1B .75/12, M2A 0, M2B .75/12  -> Var(Error) = 3/64
    #   Cov1 (same reader):   (M1A,M2A) 0, (M1B,M2B) .25/12 = 1/48        -> Cov1 = 1/96
    #   Cov2 (same modality): (M1A,M1B) .25/12 = 1/48, (M2A,M2B) 0         -> Cov2 = 1/96
    #   Cov3 (neither):       (M1A,M2B) -.25/12 = -1/48, (M1B,M2A) 0       -> Cov3 = -1/96
    # theta = [[.75, .25], [1, .75]]: modality means .5, .875; reader means .875, .5; grand .6875
    #   MS(T) = 2 * 2 * .1875^2 = 9/64, MS(R) = 9/64, interaction residuals +-1/16 -> MS(T*R) = 1/64
    #   Var(T*R) = 1/64 - 3/64 + 1/96 + (1/96 + 1/96) = 0
    #   Var(R) = (9/64 - 3/64 - 1/96 + 1/96 - 1/96 - 0) / 2 = 1/24
    # RRRC: den = 1/64 + 2 * 1/48 = 11/192, F = (9/64)/(11/192) = 27/11,
    #   ddf = den^2 / (1/64)^2 = (11/3)^2 = 121/9, SE = sqrt(2/2 * 11/192)
    # FRRC: den = 3/64 - 1/96 + 1 * 1/48 = 11/192, chi2 = 27/11, p = erfc(sqrt(27/22))
    # RRFC: F = (9/64)/(1/64) = 9 on (1, 1) df; F(1,1) is a squared Cauchy, p = 1 - (2/pi) atan(3)
    res = mrmc_analysis(_pc_study(), fom="percent_correct")
    c = res.components
    np.testing.assert_allclose(res.theta, [[0.75, 0.25], [1.0, 0.75]])
    assert c.var_error == pytest.approx(3 / 64)
    assert c.cov1 == pytest.approx(1 / 96)
    assert c.cov2 == pytest.approx(1 / 96)
    assert c.cov3 == pytest.approx(-1 / 96)
    assert (c.ms_t, c.ms_r, c.ms_tr) == pytest.approx((9 / 64, 9 / 64, 1 / 64))
    assert c.var_tr == pytest.approx(0, abs=1e-15)
    assert c.var_r == pytest.approx(1 / 24)
    assert res.rrrc.diff == pytest.approx(-0.375)
    assert res.rrrc.F == pytest.approx(27 / 11)
    assert res.rrrc.ddf == pytest.approx(121 / 9)
    assert res.rrrc.se == pytest.approx(math.sqrt(11 / 192))
    assert res.frrc.chi2 == pytest.approx(27 / 11)
    assert res.frrc.p == pytest.approx(math.erfc(math.sqrt(27 / 22)))
    assert res.rrfc.F == pytest.approx(9)
    assert res.rrfc.p == pytest.approx(1 - 2 / math.pi * math.atan(3))
    d = res.to_dict()
    assert d["fom"] == "percent_correct" and d["covariance"] == "jackknife"
    assert d["percent_correct"]["per_modality"] == {"M1": 0.5, "M2": 0.875}


def test_percent_correct_rejects_delong():
    with pytest.raises(ValueError, match="DeLong"):
        mrmc_analysis(_pc_study(), fom="percent_correct", covariance="delong")


# ------------------------------------------------------------------------------------------
# Invariances and more than two modalities
# ------------------------------------------------------------------------------------------


@needs_reference
def test_row_order_and_labels_do_not_matter(vandyke, vd):
    shuffled = vandyke.sample(frac=1, random_state=0)
    relabelled = shuffled.assign(modality=shuffled["modality"].map({1: "b", 2: "a"}))
    res = mrmc_analysis(relabelled)  # "a" (= old 2) now sorts first, so the sign flips
    assert res.modalities == ("a", "b")
    assert res.rrrc.diff == pytest.approx(-vd.rrrc.diff, rel=1e-12)
    assert (res.rrrc.F, res.rrrc.ddf, res.rrrc.p) == pytest.approx((vd.rrrc.F, vd.rrrc.ddf, vd.rrrc.p), rel=1e-12)


@needs_reference
def test_three_modalities_give_all_pairwise_comparisons(vandyke):
    third = vandyke[vandyke["modality"] == 1].assign(modality=3)  # exact copy of modality 1
    res = mrmc_analysis(pd.concat([vandyke, third]))
    assert res.rrrc.ndf == 2 and res.rrrc.diff is None
    pairs = {c.modalities: c for c in res.rrrc.comparisons}
    assert set(pairs) == {(1, 2), (1, 3), (2, 3)}
    assert pairs[(1, 3)].diff == 0 and pairs[(1, 3)].p == pytest.approx(1)
    assert pairs[(2, 3)].diff == pytest.approx(-pairs[(1, 2)].diff, rel=1e-12)
    assert len(res.frrc.per_reader) == 5 * 3
    json.dumps(res.to_dict(), allow_nan=False)


# ------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------


def _tiny() -> pd.DataFrame:
    rows = [
        {"reader": r, "modality": m, "case": k, "truth": int(k > 2), "rating": (k + r + m) % 5}
        for r in (1, 2) for m in (1, 2) for k in (1, 2, 3, 4)
    ]
    return pd.DataFrame(rows)


def test_tiny_study_is_valid():
    assert mrmc_analysis(_tiny()).n_cases == 4


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.drop(columns="truth"), r"missing required column\(s\) \['truth'\]"),
        (lambda d: d.assign(truth=np.where((d["case"] == 3) & (d["reader"] == 2), 0, d["truth"])),
         r"case\(s\) 3 have different truth"),
        (lambda d: d.drop(index=d.index[(d["reader"] == 2) & (d["modality"] == 1) & (d["case"] == 4)]),
         r"not fully crossed: 1 .*\(2, 1, 4\)"),
        (lambda d: d[d["reader"] == 1], r"1 reader\(s\).*at least 2 readers"),
        (lambda d: d[d["modality"] == 2], r"1 modality\(ies\).*at least 2"),
        (lambda d: d.assign(truth=0), r"0 diseased \(truth=1\) and 4 non-diseased"),
        (lambda d: d.assign(truth=1), r"4 diseased \(truth=1\) and 0 non-diseased"),
        (lambda d: d.assign(truth=2), r"'truth' must be 0 or 1"),
        (lambda d: pd.concat([d, d.iloc[[0]]]), r"appear more than once"),
        (lambda d: d.assign(rating=d["rating"].astype(object).where(d.index != 5, "high")), r"'rating' must be numeric"),
        (lambda d: d.assign(rating=d["rating"].where(d.index != 5)), r"empty values"),
    ],
)
def test_validation_errors(mutate, message):
    with pytest.raises(ValueError, match=message):
        mrmc_analysis(mutate(_tiny()))


def test_bad_options():
    with pytest.raises(ValueError, match="unknown figure of merit"):
        mrmc_analysis(_tiny(), fom="sensitivity")
    with pytest.raises(ValueError, match="unknown covariance"):
        mrmc_analysis(_tiny(), covariance="bootstrap")
    with pytest.raises(ValueError, match=r"\['correct'\].* for fom='percent_correct'"):  # no 'correct' column for percent correct
        mrmc_analysis(_tiny(), fom="percent_correct")


# ------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "study", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


@needs_reference
def test_cli_json_delong():
    proc = _cli("mrmc", "--input", str(REFERENCE / "vandyke.csv"), "--covariance", "delong", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) >= {"auc", "rrrc", "frrc", "rrfc", "var_components", "covariance", "fom"}
    assert out["covariance"] == "delong" and out["fom"] == "auc"
    assert out["auc"]["per_reader"]["1"]["4"] == pytest.approx(0.973107890499, rel=REL)
    assert out["auc"]["per_modality"]["2"] == pytest.approx(0.940837359098, rel=REL)
    assert out["rrrc"]["F"] == pytest.approx(4.484854, abs=5e-7)
    assert out["rrrc"]["ddf"] == pytest.approx(15.06611, abs=5e-6)
    assert out["frrc"]["ddf"] is None  # infinite df written as null
    assert set(out["var_components"]) == {"var_r", "var_tr", "cov1", "cov2", "cov3", "var_error",
                                          "ms_t", "ms_r", "ms_tr"}
    assert set(out["rrrc"]) >= {"F", "ddf", "p", "diff", "se", "ci", "per_modality"}


@needs_reference
def test_cli_table():
    proc = _cli("mrmc", "--input", str(REFERENCE / "vandyke.csv"))
    assert proc.returncode == 0, proc.stderr
    assert "Random readers, random cases (RRRC)" in proc.stdout
    assert "F(1, 15.2597) = 4.456319" in proc.stdout


@pytest.mark.heavy
def test_cli_bad_input_exits_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.csv"
    _tiny().drop(columns="rating").to_csv(bad, index=False)
    proc = _cli("mrmc", "--input", str(bad), "--json")
    assert proc.returncode == 2
    assert "missing required column(s) ['rating']" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    missing = _cli("mrmc", "--input", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


@needs_reference
def test_identical_readers_give_infinite_hillis_ddf(vandyke):
    # Two copies of one reader: no reader x modality interaction, so MS(T*R) = 0 while
    # Cov2 - Cov3 = Var - Cov1 > 0. Hillis's ddf = den^2 / (MS(T*R)^2 / df) is then infinite and
    # the F(1, inf) p-value is the chi-square(1) tail of F.
    one = vandyke[vandyke["reader"] == 1]
    res = mrmc_analysis(pd.concat([one, one.assign(reader=2)]))
    assert res.components.ms_tr == 0
    assert math.isinf(res.rrrc.ddf) and res.rrrc.F > 0
    assert res.rrrc.p == pytest.approx(stats.chi2.sf(res.rrrc.F, 1), rel=1e-12)
    assert res.to_dict()["rrrc"]["ddf"] is None
