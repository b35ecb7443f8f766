"""Descriptive accuracy: Wilson intervals, per-finding sensitivity/specificity, bootstrap differences.

Why a cluster bootstrap for the differences: reads are correlated within readers and within
cases, so a binomial CI on pooled reads is far too narrow for aided - unaided. Resampling readers
(within experience level, keeping the design's level sizes) and cases independently (two-way
bootstrap) respects both sources of correlation without a model; the GLMM is the model-based
counterpart. All functions take the frame returned by :func:`study.analysis.reads.prepare_reads`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from study.analysis.reads import condition_pairs, findings

__all__ = ["wilson_ci", "accuracy_table", "sensitivity_specificity", "bootstrap_differences"]

ALL = "all"


def wilson_ci(k, n, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for k successes of n (vectorised; NaN where n == 0)."""
    k = np.asarray(k, float)
    n = np.asarray(n, float)
    z = stats.norm.ppf(1 - alpha / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return centre - half, centre + half


def _rate_table(df: pd.DataFrame, value: str, alpha: float) -> pd.DataFrame:
    """k/n, proportion and Wilson CI of a 0/1 column by condition x level plus per condition overall."""
    g = df.groupby(["condition", "level"], observed=True)[value].agg(["sum", "count"]).reset_index()
    g["level"] = g["level"].astype(str)
    tot = df.groupby("condition", observed=True)[value].agg(["sum", "count"]).reset_index()
    tot["level"] = ALL
    out = pd.concat([g, tot], ignore_index=True).rename(columns={"sum": "k", "count": "n"})
    out["condition"] = out["condition"].astype(str)
    out["k"] = out["k"].astype(int)
    out["n"] = out["n"].astype(int)
    out["estimate"] = out["k"] / out["n"]
    out["ci_low"], out["ci_high"] = wilson_ci(out["k"], out["n"], alpha)
    return out[["condition", "level", "k", "n", "estimate", "ci_low", "ci_high"]]


def accuracy_table(df: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Accuracy (proportion correct) with Wilson CIs by condition x level and per condition (level 'all').

    The Wilson CI treats reads as independent: it describes, it does not test.
    """
    return _rate_table(df, "correct", alpha).rename(columns={"k": "correct", "estimate": "accuracy"})


def sensitivity_specificity(df: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Sensitivity and specificity per finding by condition x level (and 'all').

    Findings come from ``answer_<f>``/``truth_<f>`` column pairs, plus ``abnormal`` from
    ``call``/``truth`` when present. Empty frame when there are none.
    """
    pairs = [(f, f"answer_{f}", f"truth_{f}") for f in findings(df)]
    if {"call", "truth"} <= set(df.columns):
        pairs.append(("abnormal", "call", "truth"))
    frames = []
    for name, ans, tru in pairs:
        sub = df[df[ans].notna() & df[tru].notna()].copy()
        if sub.empty:
            continue
        sub["_hit"] = pd.to_numeric(sub[ans]).astype(int)
        truth = pd.to_numeric(sub[tru]).astype(int)
        for measure, mask, col in (("sensitivity", truth == 1, "_hit"), ("specificity", truth == 0, "_neg")):
            part = sub[mask].copy()
            if part.empty:
                continue
            part["_neg"] = 1 - part["_hit"]
            t = _rate_table(part, col, alpha)
            t.insert(0, "measure", measure)
            t.insert(0, "finding", name)
            frames.append(t)
    if not frames:
        return pd.DataFrame(columns=["finding", "measure", "condition", "level", "k", "n", "estimate", "ci_low", "ci_high"])
    return pd.concat(frames, ignore_index=True)


def _matrices(df: pd.DataFrame, readers: pd.Index, cases: pd.Index, condition: str) -> tuple[np.ndarray, np.ndarray]:
    """Reader x case sums of correct and counts of reads in one condition."""
    sub = df[df["condition"] == condition]
    r = readers.get_indexer(sub["reader"])
    c = cases.get_indexer(sub["case"])
    S = np.zeros((len(readers), len(cases)))
    N = np.zeros_like(S)
    np.add.at(S, (r, c), sub["correct"].to_numpy(float))
    np.add.at(N, (r, c), 1.0)
    return S, N


def bootstrap_differences(
    df: pd.DataFrame, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> pd.DataFrame:
    """Accuracy differences of every comparison (each aided condition - unaided, and the aided conditions
    against each other: :func:`study.analysis.reads.condition_pairs`), overall and per level, with two-way
    cluster-bootstrap percentile CIs.

    Each replicate draws readers with replacement within each level (so level sizes are fixed)
    and cases with replacement, independently; accuracy is pooled over the replicate's reads.
    Vectorised as count-weight matrices: accuracy_b = sum(Wr S Wc) / sum(Wr N Wc).
    Columns: condition, reference, level, acc_reference, acc_condition, difference, se, ci_low, ci_high
    (proportions, not percent), n_boot, seed, readers (in the level: with one, the interval reflects the cases
    only), and ``degenerate``: why there is no interval (every replicate gives the same difference, or one of
    the two accuracies has no readings), else None.
    """
    if n_boot < 10:
        raise ValueError("n_boot must be at least 10")
    pairs = condition_pairs(df["condition"].cat.categories)
    if df.empty or not pairs:
        return pd.DataFrame(columns=["condition", "reference", "level", "acc_reference", "acc_condition", "difference",
                                     "se", "ci_low", "ci_high", "n_boot", "seed", "readers", "degenerate"])
    rng = np.random.default_rng(seed)
    readers = pd.Index(sorted(pd.unique(df["reader"])))
    cases = pd.Index(sorted(pd.unique(df["case"])))
    reader_level = df.drop_duplicates("reader").set_index("reader")["level"].astype(str).reindex(readers)
    levels = [str(x) for x in df["level"].cat.categories if (reader_level == str(x)).any()]
    Wr = np.zeros((n_boot, len(readers)))
    for lev in levels:
        idx = np.flatnonzero(reader_level.to_numpy() == lev)
        Wr[:, idx] = rng.multinomial(len(idx), np.full(len(idx), 1 / len(idx)), size=n_boot)
    Wc = rng.multinomial(len(cases), np.full(len(cases), 1 / len(cases)), size=n_boot).astype(float)
    masks = {ALL: np.ones(len(readers), bool)} | {lev: reader_level.to_numpy() == lev for lev in levels}

    mats = {c: _matrices(df, readers, cases, c) for c in map(str, df["condition"].cat.categories)}

    def acc(cond, mask):
        S, N = mats[cond]
        point = S[mask].sum() / N[mask].sum() if N[mask].sum() else np.nan
        W = Wr * mask
        with np.errstate(invalid="ignore", divide="ignore"):
            boot = ((W @ S) * Wc).sum(1) / ((W @ N) * Wc).sum(1)
        return point, boot

    rows = []
    for cond, ref in pairs:
        for lev, mask in masks.items():
            p0, b0 = acc(ref, mask)
            p1, b1 = acc(cond, mask)
            d = b1 - b0
            ok = np.isfinite(d)
            lo, hi = np.percentile(d[ok], [100 * alpha / 2, 100 * (1 - alpha / 2)]) if ok.sum() >= 2 else (np.nan,) * 2
            degenerate = None
            if not (np.isfinite(p0) and np.isfinite(p1)):
                degenerate = "no readings in one of the two conditions"
            elif not hi - lo > 1e-12:
                degenerate = ("every bootstrap replicate gives the same difference (the readers and cases vary too "
                              "little): no interval can be given")
            rows.append(
                {
                    "condition": cond,
                    "reference": ref,
                    "level": lev,
                    "acc_reference": float(p0),
                    "acc_condition": float(p1),
                    "difference": float(p1 - p0),
                    "se": float(np.std(d[ok], ddof=1)) if ok.sum() >= 2 and not degenerate else np.nan,
                    "ci_low": float(lo) if not degenerate else np.nan,
                    "ci_high": float(hi) if not degenerate else np.nan,
                    "n_boot": int(n_boot),
                    "seed": int(seed),
                    "readers": int(mask.sum()),
                    "degenerate": degenerate,
                }
            )
    return pd.DataFrame(rows)
