"""Quadratic-weighted kappa for an ordinal primary question (e.g. an ICDR grade).

Why kappa and not only exact accuracy: a grade one step off is a smaller error than four steps
off; QWK weighs disagreements by the squared grade distance and corrects for chance. With grades
as numbers, QWK = 1 - mean((x - y)^2) / (var(x) + var(y) + (mean(x) - mean(y))^2) (population
moments), which equals Cohen's kappa with quadratic weights over any label set containing both
raters' grades; this closed form also takes case weights, so a bootstrap over cases is one matrix
product. CIs: percentile bootstrap resampling cases (readings are correlated within a case), or
whole patients with ``cluster="patient"`` when a patient's photographs (two eyes) are in the study,
since their grades are correlated too; all tables of one call share the same bootstrap draws, so
aided - unaided differences are paired. Between readers: mean QWK over reader pairs (within a
level: pairs of readers of that level) on the cases both read in that condition.

Inputs are :func:`study.analysis.reads.load_reads` frames with ``answer_grade`` and ``truth_grade``;
:func:`ordinal_agreement` returns every table as an :class:`AgreementResult` with ``to_dict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from study.analysis.descriptive import ALL
from study.analysis.reads import condition_pairs

__all__ = ["AgreementResult", "ordinal_agreement", "quadratic_weighted_kappa", "qwk_between_readers",
           "qwk_summary", "qwk_vs_reference"]


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


def _case_weights(cases: pd.Index, n_boot: int, seed: int, unit_of: np.ndarray | None = None) -> np.ndarray:
    """(n_boot, n_cases) multiplicities: cases resampled, or their clusters (``unit_of[i]`` = unit code)."""
    rng = np.random.default_rng(seed)
    if unit_of is None:
        return rng.multinomial(len(cases), np.full(len(cases), 1 / len(cases)), size=n_boot).astype(float)
    n_units = int(unit_of.max()) + 1
    units = rng.multinomial(n_units, np.full(n_units, 1 / n_units), size=n_boot).astype(float)
    return units[:, unit_of]


def _resampling(sub: pd.DataFrame, cases: pd.Index, cluster: str | None) -> tuple[np.ndarray | None, int]:
    """Unit code per case (None = the cases themselves) and the number of units."""
    if cluster is None or cluster == "case":
        return None, len(cases)
    if cluster not in sub.columns:
        raise ValueError(f"cluster column {cluster!r} is not in the reads; have {list(sub.columns)}")
    per_case = sub.groupby("case", observed=True)[cluster].agg(lambda v: v.dropna().unique().tolist())
    bad = [c for c, v in per_case.items() if len(v) != 1]
    if bad:
        raise ValueError(f"each case needs exactly one {cluster!r}; cases {bad[:5]} have none or several")
    codes, uniques = pd.factorize(per_case.reindex(cases).map(lambda v: v[0]), sort=True)
    return codes.astype(np.intp), len(uniques)


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


def qwk_vs_reference(df: pd.DataFrame, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
                     cluster: str | None = None) -> pd.DataFrame:
    """QWK of the readers' grades against the reference by condition x level (and 'all'), pooling reads,
    with the mean of per-reader QWKs and a bootstrap CI of the pooled value (resampling cases, or the
    ``cluster`` column's units, e.g. patients); plus the difference of every comparison of conditions
    (``study.analysis.reads.condition_pairs``: each aided condition - unaided, the aided conditions against each
    other; same bootstrap draws) in ``attrs["differences"]``."""
    sub = _graded(df)
    cols = ["condition", "level", "n_reads", "n_readers", "qwk", "ci_low", "ci_high", "mean_reader_qwk"]
    if sub.empty:
        return pd.DataFrame(columns=cols)
    cases = pd.Index(sorted(pd.unique(sub["case"])))
    W = _case_weights(cases, n_boot, seed, _resampling(sub, cases, cluster)[0])
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
    qwk = out.set_index(["condition", "level"])["qwk"]
    for cond, ref in condition_pairs(df["condition"].cat.categories):
        for lev in levels:
            if (cond, lev) not in boots or (ref, lev) not in boots:
                continue
            lo, hi = _ci(boots[(cond, lev)] - boots[(ref, lev)], alpha)
            diffs.append({"condition": cond, "reference": ref, "level": lev,
                          "difference": float(qwk[(cond, lev)] - qwk[(ref, lev)]), "ci_low": lo, "ci_high": hi})
    out.attrs["differences"] = pd.DataFrame(diffs, columns=["condition", "reference", "level", "difference", "ci_low",
                                                            "ci_high"])
    return out


def qwk_between_readers(df: pd.DataFrame, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
                        cluster: str | None = None) -> pd.DataFrame:
    """Mean pairwise QWK between readers per condition x level ('all': every pair of readers; a level:
    pairs of readers of that level), each pair over the cases both read in that condition, with a
    bootstrap CI (cases, or ``cluster`` units, resampled)."""
    sub = df[df["answer_grade"].notna()] if "answer_grade" in df.columns else df.iloc[:0]
    cols = ["condition", "level", "n_readers", "n_pairs", "mean_pairwise_qwk", "ci_low", "ci_high"]
    if sub.empty:
        return pd.DataFrame(columns=cols)
    cases = pd.Index(sorted(pd.unique(sub["case"])))
    W = _case_weights(cases, n_boot, seed, _resampling(sub, cases, cluster)[0])
    level_of = sub.drop_duplicates("reader").set_index("reader")["level"].astype(str) if "level" in sub else None
    levels = [ALL] + ([str(x) for x in df["level"].cat.categories] if level_of is not None else [])
    rows = []
    for cond in [str(c) for c in df["condition"].cat.categories]:
        part = sub[sub["condition"].astype(str) == cond].drop_duplicates(["reader", "case"])
        grid = part.pivot(index="reader", columns="case", values="answer_grade").reindex(columns=cases)
        G = grid.to_numpy(float)
        pair_k, pair_boot = {}, {}
        for i, j in combinations(range(len(G)), 2):
            both = np.isfinite(G[i]) & np.isfinite(G[j])
            if both.sum() < 2:
                continue
            x, y = G[i, both], G[j, both]
            k = quadratic_weighted_kappa(x, y)
            if np.isfinite(k):
                pair_k[(i, j)], pair_boot[(i, j)] = k, _weighted_qwk(x, y, W[:, both])
        for lev in levels:
            members = set(range(len(G))) if lev == ALL else {
                n for n, r in enumerate(grid.index) if level_of is not None and level_of.get(r) == lev}
            pairs = [p for p in pair_k if p[0] in members and p[1] in members]
            if not pairs:
                continue
            B = np.vstack([pair_boot[p] for p in pairs])
            with np.errstate(invalid="ignore", divide="ignore"):  # mean over the pairs defined in each draw
                ok = np.isfinite(B)
                boot = np.where(ok, B, 0.0).sum(0) / ok.sum(0)
            lo, hi = _ci(boot, alpha)
            rows.append({"condition": cond, "level": lev, "n_readers": len({r for p in pairs for r in p}),
                         "n_pairs": len(pairs), "mean_pairwise_qwk": float(np.mean([pair_k[p] for p in pairs])),
                         "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=cols)


def qwk_summary(df: pd.DataFrame, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
                cluster: str | None = None) -> dict:
    """Both QWK tables and the aided - unaided differences, for the report (DataFrames)."""
    ref = qwk_vs_reference(df, n_boot=n_boot, seed=seed, alpha=alpha, cluster=cluster)
    diffs = ref.attrs.get("differences", pd.DataFrame())
    ref.attrs = {}
    return {"vs_reference": ref, "differences": diffs,
            "between_readers": qwk_between_readers(df, n_boot=n_boot, seed=seed, alpha=alpha, cluster=cluster),
            "mean_grade_distance": _distance(df)}


def _records(frame: pd.DataFrame) -> list[dict]:
    out = []
    for row in frame.to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and not np.isfinite(v) else
                        v.item() if isinstance(v, np.generic) else v) for k, v in row.items()})
    return out


@dataclass
class AgreementResult:
    """Ordinal agreement tables (QWK) and how their CIs were made; ``to_dict`` is JSON-ready."""

    vs_reference: pd.DataFrame
    differences: pd.DataFrame
    between_readers: pd.DataFrame
    mean_grade_distance: pd.DataFrame
    resampled: str
    n_units: int
    n_boot: int
    alpha: float
    seed: int
    method: str = field(default="")

    def to_dict(self) -> dict:
        return {"vs_reference": _records(self.vs_reference), "differences": _records(self.differences),
                "between_readers": _records(self.between_readers),
                "mean_grade_distance": _records(self.mean_grade_distance),
                "ci": {"method": "percentile bootstrap", "resampled": self.resampled, "n_units": int(self.n_units),
                       "n_boot": int(self.n_boot), "alpha": float(self.alpha), "seed": int(self.seed)},
                "method": self.method}


def ordinal_agreement(df: pd.DataFrame, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
                      cluster: str | None = "auto") -> AgreementResult:
    """QWK against the reference and between readers, by condition and level, with bootstrap CIs.

    ``cluster="auto"`` resamples patients when the reads carry a ``patient`` column (two eyes of one
    patient are not independent), else cases; ``None``/"case" always resamples cases.
    """
    sub = _graded(df)
    if cluster == "auto":
        cluster = "patient" if "patient" in df.columns and df["patient"].notna().any() else None
    cases = pd.Index(sorted(pd.unique(sub["case"]))) if not sub.empty else pd.Index([])
    n_units = _resampling(sub, cases, cluster)[1] if len(cases) else 0
    tables = qwk_summary(df, n_boot=n_boot, seed=seed, alpha=alpha, cluster=cluster)
    unit = "patients" if cluster == "patient" else (f"{cluster} clusters" if cluster not in (None, "case") else "cases")
    method = (f"Quadratic-weighted kappa (Cohen's kappa with weights (i - j)^2) of grades; {100 * (1 - alpha):g}% "
              f"percentile bootstrap CIs from {n_boot} resamples of {n_units} {unit}, the same draws for every "
              "table so aided - unaided differences are paired.")
    return AgreementResult(**tables, resampled=cluster or "case", n_units=n_units, n_boot=n_boot, alpha=alpha,
                           seed=seed, method=method)


def _distance(df: pd.DataFrame) -> pd.DataFrame:
    sub = _graded(df)
    if sub.empty:
        return pd.DataFrame(columns=["condition", "mean_distance", "n"])
    d = (sub["answer_grade"] - sub["truth_grade"]).abs()
    g = d.groupby(sub["condition"].astype(str)).agg(["mean", "count"]).reset_index()
    return g.rename(columns={"mean": "mean_distance", "count": "n"})
