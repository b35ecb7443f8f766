"""Quadratic-weighted kappa agrees with scikit-learn; bootstrap CIs bracket the estimate."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from study.analysis.agreement import qwk_between_readers, qwk_vs_reference, quadratic_weighted_kappa


@pytest.mark.parametrize("seed", range(5))
def test_qwk_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 5, 80)
    answer = np.clip(truth + rng.integers(-2, 3, 80) * (rng.random(80) < 0.4), 0, 4)
    expected = cohen_kappa_score(answer, truth, weights="quadratic", labels=list(range(5)))
    assert quadratic_weighted_kappa(answer, truth) == pytest.approx(expected, abs=1e-12)
    # grades with a gap (no 2s anywhere): still Cohen's kappa over the full grade scale
    a2, t2 = np.where(answer == 2, 3, answer), np.where(truth == 2, 1, truth)
    assert quadratic_weighted_kappa(a2, t2) == pytest.approx(
        cohen_kappa_score(a2, t2, weights="quadratic", labels=list(range(5))), abs=1e-12)


def test_qwk_undefined_and_perfect():
    assert quadratic_weighted_kappa([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert np.isnan(quadratic_weighted_kappa([2, 2], [2, 2]))


def _reads(noise: dict, n_readers=5, n_cases=40, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 5, n_cases)
    rows = []
    for cond, p in noise.items():
        for r in range(n_readers):
            for c in range(n_cases):
                g = truth[c] if rng.random() > p else int(np.clip(truth[c] + rng.choice([-2, -1, 1, 2]), 0, 4))
                rows.append({"reader": f"r{r}", "level": "a" if r < 3 else "b", "case": f"c{c}", "condition": cond,
                             "answer_grade": g, "truth_grade": truth[c]})
    df = pd.DataFrame(rows)
    df["condition"] = pd.Categorical(df["condition"], categories=list(noise))
    df["level"] = pd.Categorical(df["level"], categories=["a", "b"])
    return df


def test_vs_reference_and_between_readers():
    df = _reads({"unaided": 0.6, "ai": 0.15})
    ref = qwk_vs_reference(df, n_boot=200, seed=1)
    for _, row in ref.iterrows():
        part = df[(df.condition == row.condition) & ((df.level == row.level) if row.level != "all" else True)]
        assert row.qwk == pytest.approx(cohen_kappa_score(part.answer_grade, part.truth_grade, weights="quadratic",
                                                          labels=list(range(5))))
        assert row.ci_low <= row.qwk <= row.ci_high
    overall = ref[ref.level == "all"].set_index("condition")
    assert overall.loc["ai", "qwk"] > overall.loc["unaided", "qwk"]
    diff = ref.attrs["differences"].set_index(["condition", "level"]).loc[("ai", "all")]
    assert diff.ci_low > 0 and diff.difference == pytest.approx(overall.loc["ai", "qwk"] - overall.loc["unaided", "qwk"])
    between_all = qwk_between_readers(df, n_boot=200, seed=1)
    between = between_all[between_all.level == "all"].set_index("condition")
    sub = df[df.condition == "ai"].pivot(index="reader", columns="case", values="answer_grade")
    pairs = [cohen_kappa_score(sub.iloc[i], sub.iloc[j], weights="quadratic", labels=list(range(5)))
             for i in range(5) for j in range(i + 1, 5)]
    assert between.loc["ai", "mean_pairwise_qwk"] == pytest.approx(np.mean(pairs))
    assert between.loc["ai", "n_pairs"] == 10
    assert between.loc["ai", "ci_low"] <= between.loc["ai", "mean_pairwise_qwk"] <= between.loc["ai", "ci_high"]
    assert between.loc["ai", "mean_pairwise_qwk"] > between.loc["unaided", "mean_pairwise_qwk"]


def test_qwk_by_hand():
    # reader 0,1,2 vs reference 0,2,2: observed mean squared distance 1/3; chance-expected
    # var(x) + var(y) + (mean x - mean y)^2 = 2/3 + 8/9 + 1/9 = 15/9; kappa = 1 - (1/3) / (15/9) = 0.8.
    # Cohen's table gives the same: sum w*O = 1/3, sum w*E = (1/3)(8/3) + (1/3)(1) + (1/3)(4/3) = 15/9.
    assert quadratic_weighted_kappa([0, 1, 2], [0, 2, 2]) == pytest.approx(0.8, abs=1e-15)
    # complete reversal of a symmetric scale: kappa = -1
    assert quadratic_weighted_kappa([0, 1, 2], [2, 1, 0]) == pytest.approx(-1.0)


def test_bootstrap_weights_equal_qwk_of_resampled_reads():
    """The one-matrix-product bootstrap equals kappa recomputed on explicitly resampled cases."""
    from study.analysis.agreement import _case_weights, _weighted_qwk

    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 5, 30), rng.integers(0, 5, 30)
    W = _case_weights(pd.Index(range(30)), 20, seed=4)
    fast = _weighted_qwk(x.astype(float), y.astype(float), W)
    for b in range(20):
        idx = np.repeat(np.arange(30), W[b].astype(int))
        assert fast[b] == pytest.approx(cohen_kappa_score(x[idx], y[idx], weights="quadratic", labels=list(range(5))))


def test_between_readers_by_level():
    df = _reads({"unaided": 0.6, "ai": 0.15})
    b = qwk_between_readers(df, n_boot=100, seed=2).set_index(["condition", "level"])
    sub = df[df.condition == "unaided"].pivot(index="reader", columns="case", values="answer_grade")
    k = lambda i, j: cohen_kappa_score(sub.loc[i], sub.loc[j], weights="quadratic", labels=list(range(5)))  # noqa: E731
    a_pairs = [k("r0", "r1"), k("r0", "r2"), k("r1", "r2")]
    assert b.loc[("unaided", "a"), "n_pairs"] == 3 and b.loc[("unaided", "b"), "n_pairs"] == 1
    assert b.loc[("unaided", "a"), "mean_pairwise_qwk"] == pytest.approx(np.mean(a_pairs))
    assert b.loc[("unaided", "b"), "mean_pairwise_qwk"] == pytest.approx(k("r3", "r4"))
    assert b.loc[("unaided", "all"), "n_pairs"] == 10
    for _, row in b.iterrows():
        assert row.ci_low <= row.mean_pairwise_qwk <= row.ci_high


def test_patient_bootstrap_resamples_both_eyes_together():
    from study.analysis.agreement import ordinal_agreement

    one_eye = _reads({"unaided": 0.5, "ai": 0.2}, n_cases=30, seed=4)
    # the fellow eye is graded exactly like the first: perfectly correlated photographs of one patient
    df = pd.concat([one_eye.assign(patient=one_eye.case),
                    one_eye.assign(patient=one_eye.case, case=one_eye.case + "-OS")], ignore_index=True)
    for col, cats in (("condition", ["unaided", "ai"]), ("level", ["a", "b"])):
        df[col] = pd.Categorical(df[col].astype(str), categories=cats)
    by_patient = ordinal_agreement(df, n_boot=400, seed=1)  # auto: the reads have a patient column
    by_case = ordinal_agreement(df, n_boot=400, seed=1, cluster=None)
    assert (by_patient.resampled, by_patient.n_units) == ("patient", 30)
    assert (by_case.resampled, by_case.n_units) == ("case", 60)
    p = by_patient.vs_reference.set_index(["condition", "level"]).loc[("ai", "all")]
    c = by_case.vs_reference.set_index(["condition", "level"]).loc[("ai", "all")]
    assert p.qwk == c.qwk  # same point estimate; only the resampling unit differs
    # two identical eyes carry the information of one: the patient CI is ~sqrt(2) wider
    assert (p.ci_high - p.ci_low) > 1.2 * (c.ci_high - c.ci_low)
    d = json.loads(json.dumps(by_patient.to_dict()))
    assert d["ci"] == {"method": "percentile bootstrap", "resampled": "patient", "n_units": 30, "n_boot": 400,
                       "alpha": 0.05, "seed": 1}
    assert {r["level"] for r in d["between_readers"]} == {"all", "a", "b"}
    assert "patients" in d["method"]
    with pytest.raises(ValueError, match="exactly one 'patient'"):
        ordinal_agreement(df.assign(patient=np.arange(len(df)) % 7), n_boot=10)


def test_every_comparison_of_three_arms_has_its_kappa_difference():
    """Issue 19: each aided arm against unaided and the aided arms against each other, on the same draws."""
    df = _reads({"unaided": 0.6, "ai": 0.3, "ai_saliency": 0.1})
    ref = qwk_vs_reference(df, n_boot=200, seed=1)
    diffs = ref.attrs["differences"]
    overall = ref[ref.level == "all"].set_index("condition")["qwk"]
    got = diffs[diffs.level == "all"].set_index(["condition", "reference"])["difference"]
    assert list(got.index) == [("ai", "unaided"), ("ai_saliency", "unaided"), ("ai_saliency", "ai")]
    for (cond, against), d in got.items():
        assert d == pytest.approx(overall[cond] - overall[against])
    row = diffs[(diffs.level == "all") & (diffs.condition == "ai_saliency") & (diffs.reference == "ai")].iloc[0]
    assert row.ci_low < row.difference < row.ci_high
