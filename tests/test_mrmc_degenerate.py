"""No claim from a degenerate variance (issue 19): where the OR statistics have nothing to test against, MRMC
gives no interval and no p-value (it used to print "95% CI +11.1 to +11.1, p = 1.5e-46"), the study analysis
says why in words, and the comparisons of several arms carry Holm-adjusted p-values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from study.analysis.stats.mrmc import SE_TOL, binary_mrmc_analysis, mrmc_analysis
from study.analysis.stats.multiplicity import holm
from tests.conftest import REFERENCE

VANDYKE = REFERENCE / "vandyke.csv"


def _identical_readers(n_readers: int, unaided_calls, aided_calls, truth) -> pd.DataFrame:
    rows = [(f"R{r}", m, f"C{c:02d}", t, call)
            for r in range(n_readers)
            for m, calls in (("unaided", unaided_calls), ("ai", aided_calls))
            for c, (t, call) in enumerate(zip(truth, calls))]
    return pd.DataFrame(rows, columns=["reader", "modality", "case", "truth", "call"])


def test_no_variance_no_interval_no_p():
    # 4 readers who read alike: every diseased case missed unaided and found aided. Each reader's sensitivity
    # difference is 100 points and no jackknife sample moves it: there is nothing to test it against.
    truth = [1] * 9 + [0] * 3
    df = _identical_readers(4, [0] * 12, [1] * 9 + [0] * 3, truth)
    res = binary_mrmc_analysis(df, fom="sensitivity")
    for test in (res.rrrc, res.frrc, res.rrfc):
        c = test.comparisons[0]
        assert c.diff == pytest.approx(1.0)  # ai - unaided (sorted labels)
        assert not c.se > SE_TOL and math.isnan(c.p) and all(math.isnan(x) for x in c.ci)
        assert math.isnan(test.p)
    d = res.to_dict()
    assert d["rrrc"]["comparisons"][0]["p"] is None and d["rrrc"]["comparisons"][0]["ci"] == [None, None]
    assert d["rrrc"]["comparisons"][0]["estimable"] is False


def test_two_readers_with_the_same_difference_have_no_fixed_case_test():
    # RRFC tests against the reader x modality interaction alone: two readers with the same difference have
    # none (it used to report a zero-width interval with p = 0); RRRC still has the cases' variance.
    rng = np.random.default_rng(3)
    truth = np.r_[np.ones(15, int), np.zeros(15, int)]
    un = (rng.random(30) < np.where(truth == 1, 0.6, 0.3)).astype(int)
    ai = un.copy()
    ai[:3] = 1 - ai[:3]  # the same three cases change for both readers
    df = _identical_readers(2, un, ai, truth)
    res = binary_mrmc_analysis(df, fom="sensitivity")
    assert math.isnan(res.rrfc.comparisons[0].p) and math.isnan(res.rrfc.p)
    assert res.rrrc.comparisons[0].se > SE_TOL and 0 < res.rrrc.comparisons[0].p < 1


@pytest.mark.skipif(not VANDYKE.exists(), reason=f"reference data not found at {REFERENCE}")
def test_published_results_are_unchanged_by_the_guard():
    res = mrmc_analysis(pd.read_csv(VANDYKE))
    assert res.rrrc.p == pytest.approx(0.0516656858193, rel=1e-9)  # OR-DBM MRMC / RJafroc / MRMCaov
    assert res.rrrc.comparisons[0].ci == pytest.approx((-0.0879594985666, 0.000358854444171), rel=1e-9)


def test_holm_equals_statsmodels():
    p = [0.01, 0.04, 0.03, 0.5, 0.0001]
    assert holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))
    assert holm([0.02, None, float("nan"), 0.03]) == [pytest.approx(0.04), None, None, pytest.approx(0.04)]
    assert holm([0.2]) == [0.2] and holm([]) == []


def test_study_mrmc_says_why_and_orients_and_adjusts():
    """The study's MRMC section: condition - reference for every pair, Holm over the pairs, words when degenerate."""
    from study.analysis.reads import prepare_reads
    from study.analysis.simulated_reads import shaped_reads
    from study.analysis.study_analysis import DEFAULTS, analyze_frame
    from dataclasses import replace

    df = prepare_reads(shaped_reads((3, 3), 24, n_arms=2, seed=4), level_order=["L0", "L1"])
    res = analyze_frame(df, replace(DEFAULTS, n_boot=50))
    comps = res["mrmc"]["auc"]["rrrc"]["comparisons"]
    assert [c["modalities"] for c in comps] == [["ai", "unaided"], ["ai_saliency", "unaided"], ["ai_saliency", "ai"]]
    per = res["mrmc"]["auc"]["auc"]["per_modality"]
    for c in comps:
        a, b = c["modalities"]
        assert c["diff"] == pytest.approx(per[a] - per[b])
        assert c["ci"][0] < c["diff"] < c["ci"][1]
    assert [c["p_holm"] for c in comps] == pytest.approx(holm([c["p"] for c in comps]))

    # readers who all read alike, every diseased case missed unaided and found aided: no test, and why
    same = shaped_reads((4,), 12, seed=1, p_correct=1.0)
    same["reference"] = same["case"].map(dict(zip(sorted(same["case"].unique()), ["dr"] * 9 + ["normal"] * 3)))
    same["answer"] = np.where(same["condition"] == "unaided", "normal", same["reference"])
    same["correct"] = (same["answer"] == same["reference"]).astype(int)
    res = analyze_frame(prepare_reads(same), replace(DEFAULTS, n_boot=50))
    sens = res["mrmc_binary"]["sensitivity"]
    c = sens["rrrc"]["comparisons"][0]
    assert c["diff"] == pytest.approx(1.0) and c["p"] is None and c["ci"] == [None, None]
    assert "sensitivities do not vary" in sens["degenerate"] and "no interval or p-value" in sens["degenerate"]
    assert "sensitivity" not in res["summary"]  # nothing claimed


def test_cli_prints_no_test_where_there_is_no_variance(tmp_path, capsys):
    from study.cli import main

    truth = [1] * 9 + [0] * 3
    csv = tmp_path / "same.csv"
    _identical_readers(4, [0] * 12, [1] * 9 + [0] * 3, truth).to_csv(csv, index=False)
    assert main(["mrmc", "--input", str(csv), "--fom", "sensitivity"]) == 0
    out = capsys.readouterr().out
    assert "no test: the variance to test against is zero" in out and "not estimable (no variance)" in out
    assert "nan" not in out.lower()
