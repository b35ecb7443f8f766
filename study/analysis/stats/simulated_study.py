"""Simulated fully crossed reader studies with known effects.

One generator feeds the tests, the calibration benchmark and power calculations, so that
"the truth" in all of them is defined by the same model that ``fit_glmm`` estimates:
logit P(correct) = baseline + level + AI effect(level) * aided + reader + case.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.special import expit


def simulate_reader_study(
    n_readers: int = 33,
    n_cases: int = 300,
    effect_log_odds: float | Mapping[str, float] = 0.4,
    reader_sd: float = 0.3,
    case_sd: float = 1.0,
    levels: Sequence[str] = ("junior", "intermediate", "senior"),
    seed: int | None = 0,
    baseline_log_odds: float = 0.8,
    level_log_odds: Mapping[str, float] | None = None,
    log_time_sd: tuple[float, float, float] = (0.25, 0.35, 0.4),
    time_effect_log: float = -0.1,
) -> pd.DataFrame:
    """Every reader reads every case unaided and aided; readers are split evenly over ``levels``.

    ``effect_log_odds`` is the AI effect on the log-odds scale, either one number or a
    per-level mapping (an interaction). ``level_log_odds`` shifts accuracy by experience
    (default: evenly spaced 0, 0.2, 0.4, ...). A ``seconds`` column (log-normal with reader, case
    and residual SDs ``log_time_sd`` and AI effect ``time_effect_log``) supports the time model.
    Columns: reader, experience, case, condition, correct, seconds.
    """
    if n_readers < 1 or n_cases < 1:
        raise ValueError("n_readers and n_cases must be positive")
    levels = list(levels)
    if not levels:
        raise ValueError("levels must name at least one experience level")
    rng = np.random.default_rng(seed)
    if level_log_odds is None:
        level_log_odds = {lev: 0.2 * i for i, lev in enumerate(levels)}
    if isinstance(effect_log_odds, Mapping):
        effect = {lev: float(effect_log_odds[lev]) for lev in levels}
    else:
        effect = {lev: float(effect_log_odds) for lev in levels}

    reader_level = np.array([levels[i * len(levels) // n_readers] for i in range(n_readers)])
    b_reader = rng.normal(0.0, reader_sd, n_readers)
    b_case = rng.normal(0.0, case_sd, n_cases)
    t_reader = rng.normal(0.0, log_time_sd[0], n_readers)
    t_case = rng.normal(0.0, log_time_sd[1], n_cases)

    r = np.repeat(np.arange(n_readers), n_cases * 2)
    c = np.tile(np.repeat(np.arange(n_cases), 2), n_readers)
    aided = np.tile([0, 1], n_readers * n_cases)
    lev = reader_level[r]
    eta = (
        baseline_log_odds
        + np.array([level_log_odds.get(x, 0.0) for x in levels])[pd.Index(levels).get_indexer(lev)]
        + aided * np.array([effect[x] for x in levels])[pd.Index(levels).get_indexer(lev)]
        + b_reader[r]
        + b_case[c]
    )
    correct = (rng.random(len(eta)) < expit(eta)).astype(int)
    log_t = np.log(60.0) + time_effect_log * aided + t_reader[r] + t_case[c] + rng.normal(0, log_time_sd[2], len(eta))
    width = len(str(max(n_readers, n_cases)))
    return pd.DataFrame(
        {
            "reader": np.char.add("R", np.char.zfill(r.astype(str), width)),
            "experience": lev,
            "case": np.char.add("C", np.char.zfill(c.astype(str), width)),
            "condition": np.where(aided == 1, "aided", "unaided"),
            "correct": correct,
            "seconds": np.round(np.exp(log_t), 2),
        }
    )
