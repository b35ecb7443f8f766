"""Quadratic-weighted kappa agrees with scikit-learn; bootstrap CIs bracket the estimate."""

from __future__ import annotations

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
    between = qwk_between_readers(df, n_boot=200, seed=1).set_index("condition")
    sub = df[df.condition == "ai"].pivot(index="reader", columns="case", values="answer_grade")
    pairs = [cohen_kappa_score(sub.iloc[i], sub.iloc[j], weights="quadratic", labels=list(range(5)))
             for i in range(5) for j in range(i + 1, 5)]
    assert between.loc["ai", "mean_pairwise_qwk"] == pytest.approx(np.mean(pairs))
    assert between.loc["ai", "n_pairs"] == 10
    assert between.loc["ai", "ci_low"] <= between.loc["ai", "mean_pairwise_qwk"] <= between.loc["ai", "ci_high"]
    assert between.loc["ai", "mean_pairwise_qwk"] > between.loc["unaided", "mean_pairwise_qwk"]
