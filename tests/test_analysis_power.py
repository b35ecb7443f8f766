"""Simulation power: monotone in readers and cases; size near alpha under no effect."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from study.analysis.stats.glmm_power import marginal_to_conditional, power_table


def test_marginal_to_conditional_round_trip():
    eta = marginal_to_conditional(0.7, 1.2)
    rng = np.random.default_rng(0)
    assert expit(eta + rng.normal(0, 1.2, 400_000)).mean() == pytest.approx(0.7, abs=0.003)
    assert eta > np.log(0.7 / 0.3)  # population averaging pulls towards 0.5
    with pytest.raises(ValueError):
        marginal_to_conditional(1.0, 1.0)


@pytest.mark.heavy
def test_power_rises_with_readers_and_cases_and_reports_progress():
    calls = []
    t = power_table({"junior": 0.65, "senior": 0.75}, gain=5, readers=(4, 16), cases=(30, 200), n_sim=12,
                    seed=1, progress=lambda d, n: calls.append((d, n)))
    assert list(t.columns) == ["readers", "cases", "power", "mc_se", "n_sim", "n_failed"]
    p = t.set_index(["readers", "cases"])["power"]
    assert p[(16, 200)] > p[(4, 30)]
    assert p[(16, 200)] >= p[(4, 200)] and p[(16, 200)] >= p[(16, 30)]
    assert calls[-1] == (48, 48) and len(calls) == 48
    assert (t["mc_se"] <= 0.5 / np.sqrt(12) + 1e-12).all()


def test_power_bad_input():
    with pytest.raises(ValueError, match="leaves"):
        power_table({"a": 0.97}, gain=5)
    with pytest.raises(ValueError, match="two readers per level"):
        power_table({"a": 0.6, "b": 0.7}, gain=5, readers=(3,))


@pytest.mark.slow
def test_power_under_no_effect_is_near_alpha():
    t = power_table({"junior": 0.7, "senior": 0.75}, gain=0, readers=(12,), cases=(100,), n_sim=200, seed=3)
    assert t["power"].iloc[0] < 0.05 + 3 * np.sqrt(0.05 * 0.95 / 200)  # <= ~0.096
