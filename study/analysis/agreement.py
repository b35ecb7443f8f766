"""Quadratic-weighted kappa for an ordinal primary question (e.g. an ICDR grade).

Why kappa and not only exact accuracy: a grade one step off is a smaller error than four steps
off; QWK weighs disagreements by the squared grade distance and corrects for chance. With grades
as numbers, QWK = 1 - mean((x - y)^2) / (var(x) + var(y) + (mean(x) - mean(y))^2) (population
moments), which equals Cohen's kappa with quadratic weights over any label set containing both
raters' grades; this closed form also takes case weights, so a bootstrap over cases is one matrix
product. CIs: percentile bootstrap resampling cases (readings are correlated within a case).

Inputs are :func:`study.analysis.reads.load_reads` frames with ``answer_grade`` and ``truth_grade``.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from study.analysis.descriptive import ALL
from study.analysis.reads import UNAIDED

__all__ = ["quadratic_weighted_kappa", "qwk_vs_reference", "qwk_between_readers", "qwk_summary"]


def _weighted_qwk(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """QWK of paired grades ``x``, ``y`` (n,) under weight rows ``w`` (b, n); NaN where undefined."""
    with np.errstate(invalid="ignore", divide="ignore"):
        total = w.sum(-1)
        mx, my = (w * x).sum(-1) / total, (w * y).sum(-1) / total
        vx = (w * x**2).sum(-1) / total - mx**2
        vy = (w * y**2).sum(-1) / total - my**2
        observed = (w * (x - y) ** 2).sum(-1) / total
        expected = vx + vy + (mx - my) ** 2
        out = 1 - observed / expected
    return np.where(expected > 1e-12, out, np.nan)


def quadratic_weighted_kappa(a, b) -> float:
    """Cohen's kappa with quadratic weights for two sequences of integer grades (NaN if undefined)."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("two equally long 1-d sequences of grades are needed")
    if not len(x):
        return float("nan")
    return float(_weighted_qwk(x, y, np.ones((1, len(x))))[0])


def _case_weights(cases: pd.Index, n_boot: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.multinomial(len(cases), np.full(len(cases), 1 / len(cases)), size=n_boot).astype(float)


def _ci(boot: np.ndarray, alpha: float) -> tuple[float, float]:
    boot = boot[np.isfinite(boot)]
    if len(boot) < 10:
        return float("nan"), float("nan")
    lo, hi = np.percentile(boot, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def _graded(df: pd.DataFrame) -> pd.DataFrame:
    if not {"answer_grade", "truth_grade"} <= set(df.columns):
        raise ValueError("weighted kappa needs answer_grade and truth_grade (an ordinal primary question)")
    return df[df["answer_grade"].notna() & df["truth_grade"].notna()]


def qwk_vs_reference(df: pd.DataFrame, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> pd.DataFrame:
    """QWK of the readers' grades against the reference by condition x level (and 'all'), pooling reads,
    with the mean of per-reader QWKs and a case-bootstrap CI of the pooled value; plus, per aided
    condition, the aided - unaided difference (same bootstrap draws)."""
    sub = _graded(df)
    cols = ["condition", "level", "n_reads", "n_readers", "qwk", "ci_low", "ci_high", "mean_reader_qwk"]
    if sub.empty:
        return pd.DataFrame(columns=cols)
    cases = pd.Index(sorted(pd.unique(sub["case"])))
    W = _case_weights(cases, n_boot, seed)
    levels = [ALL, *[str(x) for x in df["level"].cat.categories]]
    rows, boots = [], {}
    for cond in [str(c) for c in df["condition"].cat.categories]:
        for lev in levels:
            part = sub[(sub["condition"].astype(str) == cond) & ((sub["level"].astype(str) == lev) if lev != ALL else True)]
            if part.empty:
                continue
            x, y = part["answer_grade"].to_numpy(float), part["truth_grade"].to_numpy(float)
            w = W[:, cases.get_indexer(part["case"])]
            boot = _weighted_qwk(x, y, w)
            boots[(cond, lev)] = boot
            per_reader = [quadratic_weighted_kappa(g["answer_grade"], g["truth_grade"])
                          for _, g in part.groupby("reader")]
            lo, hi = _ci(boot, alpha)
            rows.append({"condition": cond, "level": lev, "n_reads": len(part), "n_readers": part["reader"].nunique(),
                         "qwk": quadratic_weighted_kappa(x, y), "ci_low": lo, "ci_high": hi,
                         "mean_reader_qwk": float(np.nanmean(per_reader)) if np.isfinite(per_reader).any() else np.nan})
    out = pd.DataFrame(rows, columns=cols)
    diffs = []
    for (cond, lev), boot in boots.items():
        if cond == UNAIDED or (UNAIDED, lev) not in boots:
            continue
        point = out.set_index(["condition", "level"]).loc[(cond, lev), "qwk"] - \
            out.set_index(["condition", "level"]).loc[(UNAIDED, lev), "qwk"]
        lo, hi = _ci(boot - boots[(UNAIDED, lev)], alpha)
        diffs.append({"condition": cond, "level": lev, "difference": float(point), "ci_low": lo, "ci_high": hi})
    out.attrs["differences"] = pd.DataFrame(diffs, columns=["condition", "level", "difference", "ci_low", "ci_high"])
    return out


def qwk_between_readers(df: pd.DataFrame, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> pd.DataFrame:
    """Mean pairwise QWK between readers per condition (pairs over the cases both read in that
    condition), with a case-bootstrap CI."""
    sub = df[df["answer_grade"].notna()] if "answer_grade" in df.columns else df.iloc[:0]
    cols = ["condition", "n_readers", "n_pairs", "mean_pairwise_qwk", "ci_low", "ci_high"]
    if sub.empty:
        return pd.DataFrame(columns=cols)
    cases = pd.Index(sorted(pd.unique(sub["case"])))
    W = _case_weights(cases, n_boot, seed)
    rows = []
    for cond in [str(c) for c in df["condition"].cat.categories]:
        part = sub[sub["condition"].astype(str) == cond].drop_duplicates(["reader", "case"])
        grid = part.pivot(index="reader", columns="case", values="answer_grade").reindex(columns=cases)
        G = grid.to_numpy(float)
        points, boot_sum, boot_n = [], np.zeros(n_boot), np.zeros(n_boot)
        for i, j in combinations(range(len(G)), 2):
            both = np.isfinite(G[i]) & np.isfinite(G[j])
            if both.sum() < 2:
                continue
            x, y = G[i, both], G[j, both]
            k = quadratic_weighted_kappa(x, y)
            if not np.isfinite(k):
                continue
            points.append(k)
            b = _weighted_qwk(x, y, W[:, both])
            ok = np.isfinite(b)
            boot_sum[ok] += b[ok]
            boot_n[ok] += 1
        if not points:
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            boot = boot_sum / boot_n
        lo, hi = _ci(boot, alpha)
        rows.append({"condition": cond, "n_readers": len(G), "n_pairs": len(points),
                     "mean_pairwise_qwk": float(np.mean(points)), "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=cols)


def qwk_summary(df: pd.DataFrame, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Both QWK tables and the aided - unaided differences, for the report."""
    ref = qwk_vs_reference(df, n_boot=n_boot, seed=seed, alpha=alpha)
    diffs = ref.attrs.get("differences", pd.DataFrame())
    ref.attrs = {}
    return {"vs_reference": ref, "differences": diffs,
            "between_readers": qwk_between_readers(df, n_boot=n_boot, seed=seed, alpha=alpha),
            "mean_grade_distance": _distance(df)}


def _distance(df: pd.DataFrame) -> pd.DataFrame:
    sub = _graded(df)
    if sub.empty:
        return pd.DataFrame(columns=["condition", "mean_distance", "n"])
    d = (sub["answer_grade"] - sub["truth_grade"]).abs()
    g = d.groupby(sub["condition"].astype(str)).agg(["mean", "count"]).reset_index()
    return g.rename(columns={"mean": "mean_distance", "count": "n"})
