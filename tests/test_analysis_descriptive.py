"""Wilson CIs against statsmodels; two-way cluster bootstrap: seeded, fast, covers the truth."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from statsmodels.stats.proportion import proportion_confint

from study.analysis.descriptive import accuracy_table, bootstrap_differences, sensitivity_specificity, wilson_ci
from study.analysis.reads import load_reads
from study.analysis.stats.simulated_study import simulate_reader_study
from study.analysis.simulated_reads import simulate_reads


def test_wilson_matches_statsmodels():
    k = np.array([0, 1, 7, 50, 99, 100, 233])
    n = np.array([10, 10, 20, 100, 100, 100, 300])
    lo, hi = wilson_ci(k, n)
    ref_lo, ref_hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    np.testing.assert_allclose(lo, ref_lo, atol=1e-12)
    np.testing.assert_allclose(hi, ref_hi, atol=1e-12)
    lo, hi = wilson_ci(7, 20, alpha=0.1)
    assert (lo, hi) == pytest.approx(proportion_confint(7, 20, alpha=0.1, method="wilson"), abs=1e-12)


def test_accuracy_table_counts_and_cis():
    df = load_reads(simulate_reads(n_readers=6, n_cases=30, seed=3))
    t = accuracy_table(df)
    assert set(t["level"]) == {"all", "consultant", "fellow", "resident"}
    for row in t.itertuples():
        sub = df[df["condition"] == row.condition]
        if row.level != "all":
            sub = sub[sub["level"] == row.level]
        assert row.n == len(sub) and row.correct == sub["correct"].sum()
        assert (row.ci_low, row.ci_high) == pytest.approx(proportion_confint(row.correct, row.n, method="wilson"))


def test_sensitivity_specificity_by_hand():
    df = pd.DataFrame({"reader": list("aaaabbbb"), "level": ["j"] * 4 + ["s"] * 4, "case": list("wxyz") * 2,
                       "condition": ["unaided", "ai"] * 4, "correct": 1,
                       "answer_dr": [1, 1, 0, 0, 1, 0, 0, 1], "truth_dr": [1, 1, 0, 0] * 2})
    t = sensitivity_specificity(load_reads(df)).set_index(["finding", "measure", "condition", "level"])
    assert t.loc[("dr", "sensitivity", "unaided", "all"), "estimate"] == 1.0  # rows 0, 4 (w) both 1
    assert t.loc[("dr", "sensitivity", "ai", "all"), "estimate"] == 0.5  # rows 1, 5 (x): 1, 0
    assert t.loc[("dr", "specificity", "ai", "s"), "estimate"] == 0.0  # row 7: called 1 on a negative


def _true_difference(levels, base, level_shift, effect, reader_sd, case_sd, n=400_000, seed=1):
    rng = np.random.default_rng(seed)
    b = rng.normal(0, reader_sd, n) + rng.normal(0, case_sd, n)
    diffs = [expit(base + level_shift[lv] + effect + b).mean() - expit(base + level_shift[lv] + b).mean() for lv in levels]
    return float(np.mean(diffs))


def test_bootstrap_seeded_fast_and_covers_truth():
    levels = ("junior", "intermediate", "senior")
    df = load_reads(simulate_reader_study(seed=5).rename(columns={"experience": "level"}))  # 33 x 300 x 2
    t0 = time.perf_counter()
    a = bootstrap_differences(df, n_boot=1000, seed=11)
    assert time.perf_counter() - t0 < 10
    b = bootstrap_differences(df, n_boot=1000, seed=11)
    pd.testing.assert_frame_equal(a, b)
    c = bootstrap_differences(df, n_boot=1000, seed=12)
    assert not np.allclose(a["ci_low"], c["ci_low"])
    overall = a[a["level"] == "all"].iloc[0]
    assert overall["difference"] == pytest.approx(
        df[df.condition == "aided"].correct.mean() - df[df.condition == "unaided"].correct.mean())
    truth = _true_difference(levels, 0.8, {lv: 0.2 * i for i, lv in enumerate(levels)}, 0.4, 0.3, 1.0)
    assert overall["ci_low"] < truth < overall["ci_high"]
    assert overall["ci_low"] < overall["difference"] < overall["ci_high"]
    # per-level intervals are wider than the overall one (fewer readers)
    assert (a[a["level"] != "all"]["ci_high"] - a[a["level"] != "all"]["ci_low"]).min() > overall["ci_high"] - overall["ci_low"]


def test_bootstrap_coverage_small_studies():
    """Across 20 simulated studies the 95% interval covers the true difference at least 16 times."""
    levels = ("junior", "senior")
    shift = {"junior": 0.0, "senior": 0.3}
    truth = _true_difference(levels, 0.5, shift, 0.5, 0.4, 1.0)
    covered = 0
    for s in range(20):
        sim = simulate_reader_study(n_readers=10, n_cases=80, effect_log_odds=0.5, reader_sd=0.4, levels=levels,
                                    seed=100 + s, baseline_log_odds=0.5, level_log_odds=shift)
        t = bootstrap_differences(load_reads(sim.rename(columns={"experience": "level"})), n_boot=400, seed=s)
        row = t[t["level"] == "all"].iloc[0]
        covered += row["ci_low"] <= truth <= row["ci_high"]
    assert covered >= 16
