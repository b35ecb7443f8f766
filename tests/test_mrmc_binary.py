"""Sensitivity, specificity and accuracy (pc) in the OR-MRMC analysis: MRMCaov's published Van Dyke
sensitivity analysis, and self-consistency of specificity and pc with it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from study.analysis.stats.mrmc import binary_mrmc_analysis, mrmc_analysis

from tests.conftest import REFERENCE, needs_reference
REL = 1e-6  # MRMCaov prints 7 significant digits



@pytest.fixture(scope="module")
def sens(vandyke):
    return binary_mrmc_analysis(vandyke, fom="sensitivity", threshold=3)


@needs_reference
def test_vandyke_sensitivity_reproduces_mrmcaov(sens):
    # tests/data/README.md: MRMCaov (Smith, Hillis & Pesce), positive when rating >= 3.
    assert sens.per_modality[1] == pytest.approx(0.8222222, rel=REL)
    assert sens.per_modality[2] == pytest.approx(0.92, rel=REL)
    r = sens.rrrc
    assert r.diff == pytest.approx(-0.09777778, rel=REL)
    assert r.se == pytest.approx(0.03780451, rel=REL)
    assert r.F == pytest.approx(6.689493, rel=REL)
    assert r.ddf == pytest.approx(15.71732, rel=REL)
    assert r.p == pytest.approx(0.02008822, rel=REL)
    assert r.ci == pytest.approx((-0.1780371, -0.0175185), rel=REL)
    c = sens.components
    assert c.cov1 == pytest.approx(0.0009943883, rel=REL)
    assert c.cov2 == pytest.approx(0.0010145903, rel=REL)
    assert c.cov3 == pytest.approx(0.0006604938, rel=REL)
    assert c.var_error == pytest.approx(0.0023681257, rel=REL)
    assert sens.n_fom_cases == 45 and sens.n_cases == 114
    # single-modality lines of the same MRMCaov output (JSS manuscript, docs/jss/MRMCaov.tex)
    m1, m2 = r.per_modality[1], r.per_modality[2]
    assert (m1.se, m2.se) == pytest.approx((0.05893747, 0.03741657), rel=REL)
    assert (m1.df, m2.df) == pytest.approx((14.456811, 7.575855), rel=REL)
    assert m1.ci == pytest.approx((0.6961876, 0.9482568), rel=REL)
    assert m2.ci[0] == pytest.approx(0.8328691, rel=REL)
    assert m2.ci[1] > 1  # MRMCaov prints min(upper, 1) = 1.0000000; we report the interval unclipped
    assert (sens.components.var_r, sens.components.var_tr) == pytest.approx((0.0049747475, 0.0007828283), rel=REL)


@needs_reference
def test_sensitivity_jackknife_runs_over_diseased_cases_only(vandyke, sens):
    # Leaving out a diseased case moves a proportion S by -(x_k - S)/(m-1), so the jackknife
    # covariance (m-1)/m * sum(dx dy) is the sample covariance over the m = 45 diseased cases / m;
    # its diagonal is S(1-S)/(m-1). Jackknifing over all 114 cases would give a different value.
    diseased = vandyke[vandyke["truth"] == 1].sort_values(["modality", "reader", "case"])
    x = (diseased["rating"].to_numpy() >= 3).reshape(10, 45).astype(float)
    np.testing.assert_allclose(sens.cov_matrix, np.cov(x, ddof=1) / 45, rtol=1e-12, atol=1e-16)
    s = sens.theta.ravel()
    np.testing.assert_allclose(np.diag(sens.cov_matrix), s * (1 - s) / 44, rtol=1e-12)


@needs_reference
def test_call_column_equals_threshold(vandyke, sens):
    calls = vandyke.assign(call=(vandyke["rating"] >= 3).astype(int)).drop(columns="rating")
    res = binary_mrmc_analysis(calls, fom="sensitivity")
    assert res.threshold is None and res.to_dict()["positive"] == "reader's call = 1"
    np.testing.assert_array_equal(res.theta, sens.theta)
    np.testing.assert_allclose(res.cov_matrix, sens.cov_matrix, rtol=0, atol=0)
    assert res.rrrc.p == sens.rrrc.p


def _mirror(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(truth=1 - df["truth"], rating=-df["rating"])


@needs_reference
def test_specificity_is_sensitivity_of_the_mirrored_study(vandyke):
    # Specificity at "rating >= 3" counts non-diseased cases rated <= 2. With truth flipped and
    # ratings negated those cases are the diseased ones and "rating <= 2" is "-rating >= -2".
    spec = binary_mrmc_analysis(vandyke, fom="specificity", threshold=3)
    mirror = binary_mrmc_analysis(_mirror(vandyke), fom="sensitivity", threshold=-2)
    assert spec.n_fom_cases == mirror.n_fom_cases == 69
    np.testing.assert_allclose(spec.theta, mirror.theta, rtol=0, atol=1e-15)
    np.testing.assert_allclose(spec.cov_matrix, mirror.cov_matrix, rtol=1e-12, atol=1e-18)
    for a, b in ((spec.rrrc, mirror.rrrc), (spec.frrc, mirror.frrc), (spec.rrfc, mirror.rrfc)):
        assert (a.F, a.ddf, a.p, a.diff, a.se) == pytest.approx((b.F, b.ddf, b.p, b.diff, b.se), rel=1e-10)
    # the same with the reader's call: spec(call) = sens(1 - call) with truth flipped
    calls = vandyke.assign(call=(vandyke["rating"] >= 3).astype(int))
    flipped = calls.assign(call=1 - calls["call"], truth=1 - calls["truth"])
    a = binary_mrmc_analysis(calls, fom="specificity")
    b = binary_mrmc_analysis(flipped, fom="sensitivity")
    assert (a.rrrc.F, a.rrrc.p) == pytest.approx((b.rrrc.F, b.rrrc.p), rel=1e-12)
    assert (a.rrrc.F, a.rrrc.p) == pytest.approx((spec.rrrc.F, spec.rrrc.p), rel=1e-12)


@needs_reference
def test_pc_is_the_case_weighted_mean_and_equals_percent_correct(vandyke, sens):
    spec = binary_mrmc_analysis(vandyke, fom="specificity", threshold=3)
    pc = binary_mrmc_analysis(vandyke, fom="pc", threshold=3)
    np.testing.assert_allclose(pc.theta, (45 * sens.theta + 69 * spec.theta) / 114, rtol=1e-12)
    # pc from calls is percent correct of correct = (call == truth), jackknifed over all 114 cases.
    correct = vandyke.assign(correct=((vandyke["rating"] >= 3) == (vandyke["truth"] == 1)).astype(int))
    ref = mrmc_analysis(correct.drop(columns=["truth", "rating"]), fom="percent_correct")
    np.testing.assert_allclose(pc.cov_matrix, ref.cov_matrix, rtol=1e-12, atol=1e-18)
    assert (pc.rrrc.F, pc.rrrc.ddf, pc.rrrc.p) == pytest.approx((ref.rrrc.F, ref.rrrc.ddf, ref.rrrc.p), rel=1e-10)
    assert pc.n_fom_cases == 114


def test_sensitivity_study_without_non_diseased_cases():
    # 2 readers x 2 modalities x 3 diseased cases; calls below. Sensitivity needs no non-diseased
    # case. Var of a proportion over m = 3 cases = sample variance / 3.
    calls = {("A", 1): [1, 1, 0], ("B", 1): [1, 0, 0], ("A", 2): [1, 1, 1], ("B", 2): [1, 1, 0]}
    rows = [{"reader": r, "modality": m, "case": k, "truth": 1, "call": x}
            for (r, m), xs in calls.items() for k, x in enumerate(xs)]
    res = binary_mrmc_analysis(pd.DataFrame(rows), fom="sensitivity")
    np.testing.assert_allclose(res.theta, [[2 / 3, 1 / 3], [1, 2 / 3]])
    # Var: (2/3)(1/3)/2 = 1/9 for every group but (A, 2) with 0 -> Var(Error) = 3/36 = 1/12
    assert res.components.var_error == pytest.approx(1 / 12)
    with pytest.raises(ValueError, match="fewer than 2 entering"):
        binary_mrmc_analysis(pd.DataFrame(rows), fom="specificity")


def test_options_and_errors():
    rows = [{"reader": r, "modality": m, "case": k, "truth": int(k > 2), "rating": (k + r + m) % 5}
            for r in (1, 2) for m in (1, 2) for k in (1, 2, 3, 4)]
    df = pd.DataFrame(rows)
    with pytest.raises(ValueError, match=r"threshold on the rating .* or a 0/1 'call' column"):
        binary_mrmc_analysis(df, fom="sensitivity")
    with pytest.raises(ValueError, match="DeLong covariance is defined for AUC only"):
        binary_mrmc_analysis(df, fom="sensitivity", threshold=2, covariance="delong")
    with pytest.raises(ValueError, match="unknown binary figure of merit"):
        binary_mrmc_analysis(df, fom="auc", threshold=2)
    with pytest.raises(ValueError, match="use binary_mrmc_analysis"):
        mrmc_analysis(df, fom="sensitivity")
    with pytest.raises(ValueError, match=r"'call' must be 0 or 1.*1 = positive"):
        binary_mrmc_analysis(df.assign(call=2), fom="pc")


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    """``python -m study`` in-process (the subprocess path is covered in test_mrmc.py)."""
    from study.cli import main

    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@needs_reference
def test_cli_sensitivity_json_and_table(capsys):
    vd = str(REFERENCE / "vandyke.csv")
    code, stdout, stderr = _cli(capsys, "mrmc", "--input", vd, "--fom", "sensitivity", "--threshold", "3", "--json")
    assert code == 0, stderr
    out = json.loads(stdout)
    assert out["fom"] == "sensitivity" and out["positive"] == "rating >= 3"
    assert out["population"].startswith("diseased") and out["n_fom_cases"] == 45
    assert out["rrrc"]["F"] == pytest.approx(6.689493, rel=REL)
    assert out["sensitivity"]["per_modality"]["2"] == pytest.approx(0.92, rel=REL)
    code, stdout, _ = _cli(capsys, "mrmc", "--input", vd, "--fom", "specificity", "--threshold", "3")
    assert code == 0 and "Specificity" in stdout and "non-diseased" in stdout
    code, _, stderr = _cli(capsys, "mrmc", "--input", vd, "--threshold", "3")
    assert code == 2 and "--threshold applies to" in stderr
