"""Simulation-based power for the AI effect in the crossed-random-effects GLMM.

Why simulation: closed-form MRMC sample-size formulas assume AUC-type figures of merit and do not
cover the primary analysis (a binomial GLMM with reader and case intercepts). Each simulated
study comes from :func:`simulate_reader_study` and is analysed with :func:`fit_glmm` exactly as
the real data will be; power is the share of studies whose Wald test of ``condition[T.aided]``
in ``correct ~ condition + level`` rejects at ``alpha``.

For the analytic Obuchowski-Rockette sizing from a pilot (RRRC, FRRC, RRFC; RJafroc's method) see
:mod:`study.analysis.stats.mrmc_sizing`; this simulation sizes the GLMM that is the primary analysis here.

Expected accuracies are population-averaged (what a reader study reports), so they are converted
to the conditional log-odds the simulator needs by integrating over the reader and case
intercepts (Gauss-Hermite).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.special import expit

from study.analysis.stats.glmm import fit_glmm
from study.analysis.stats.simulated_study import simulate_reader_study

__all__ = ["marginal_to_conditional", "power_table"]

_NODES, _W = np.polynomial.hermite_e.hermegauss(40)
_W = _W / np.sqrt(2 * np.pi)


def _marginal(eta: float, sd: float) -> float:
    return float(_W @ expit(eta + sd * _NODES))


def marginal_to_conditional(p: float, sd: float) -> float:
    """Log-odds eta with E[expit(eta + b)] = p for b ~ N(0, sd^2)."""
    if not 0 < p < 1:
        raise ValueError(f"accuracy must be strictly between 0 and 1, got {p}")
    return float(optimize.brentq(lambda e: _marginal(e, sd) - p, -30, 30))


def power_table(
    unaided_accuracy: Mapping[str, float],
    gain: float,
    gain_scale: str = "pp",
    reader_sd: float = 0.3,
    case_sd: float = 1.0,
    readers: Sequence[int] = (12, 24, 36),
    cases: Sequence[int] = (100, 200, 300),
    alpha: float = 0.05,
    n_sim: int = 20,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Power for each (readers, cases) combination; columns readers, cases, power, mc_se, n_sim, n_failed.

    ``unaided_accuracy`` maps each experience level (in study order) to its expected unaided
    accuracy (0-1); ``gain`` is the AI effect, in percentage points added to every level
    (``gain_scale="pp"``) or as a common log-odds shift (``"log_odds"``). Readers are split
    evenly over the levels. ``progress(done, total)`` is called after each simulated study.
    Fits that fail count as non-rejections and are reported in ``n_failed``.
    """
    if gain_scale not in ("pp", "log_odds"):
        raise ValueError("gain_scale must be 'pp' or 'log_odds'")
    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1")
    if n_sim < 1:
        raise ValueError("n_sim must be at least 1")
    levels = list(unaided_accuracy)
    if not levels:
        raise ValueError("unaided_accuracy must name at least one level")
    if min(readers) < 2 * len(levels) or min(cases) < 2:
        raise ValueError(f"need at least two readers per level ({2 * len(levels)}) and two cases")
    sd = float(np.hypot(reader_sd, case_sd))
    eta0 = {lev: marginal_to_conditional(float(p), sd) for lev, p in unaided_accuracy.items()}
    if gain_scale == "pp":
        effect = {}
        for lev, p in unaided_accuracy.items():
            target = float(p) + gain / 100.0
            if not 0 < target < 1:
                raise ValueError(f"unaided accuracy {p} plus gain {gain} pp for {lev!r} leaves (0, 1)")
            effect[lev] = marginal_to_conditional(target, sd) - eta0[lev]
    else:
        effect = {lev: float(gain) for lev in levels}
    base = eta0[levels[0]]
    level_shift = {lev: eta0[lev] - base for lev in levels}
    formula = "correct ~ condition + level" if len(levels) > 1 else "correct ~ condition"
    total = len(readers) * len(cases) * n_sim
    done = 0
    rng = np.random.default_rng(seed)
    rows = []
    for r in readers:
        for c in cases:
            rejections = failures = 0
            for _ in range(n_sim):
                sim = simulate_reader_study(
                    n_readers=int(r), n_cases=int(c), effect_log_odds=effect, reader_sd=reader_sd, case_sd=case_sd,
                    levels=levels, seed=int(rng.integers(2**31)), baseline_log_odds=base, level_log_odds=level_shift,
                ).rename(columns={"experience": "level"})
                try:
                    fit = fit_glmm(formula, sim, reference_levels={"level": levels[0]})
                    p = float(fit.fixed_effects.set_index("term").loc["condition[T.aided]", "p"])
                    rejections += bool(p < alpha)
                except (ValueError, np.linalg.LinAlgError, KeyError):
                    failures += 1
                done += 1
                if progress is not None:
                    progress(done, total)
            power = rejections / n_sim
            rows.append({"readers": int(r), "cases": int(c), "power": power,
                         "mc_se": float(np.sqrt(power * (1 - power) / n_sim)), "n_sim": int(n_sim),
                         "n_failed": int(failures)})
    return pd.DataFrame(rows)
