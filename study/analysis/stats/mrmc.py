"""Obuchowski-Rockette (OR) multi-reader multi-case analysis with Hillis's degrees of freedom.

Why this module exists: the primary endpoint of a fully crossed reader study is the difference in
reader-averaged figure of merit between modalities, and regulators expect it analysed the way
OR-DBM MRMC / RJafroc / MRMCaov do. The conventions here are chosen so those programs' published
output for the Van Dyke data is reproduced exactly:

* empirical (Wilcoxon) AUC, ties counted 1/2, higher rating = more likely diseased;
* jackknife covariance over cases scaled as ``(c-1)**2 / c`` times the sample covariance of the
  leave-one-case-out figures of merit (Efron-Stein; RJafroc's ``varInflFactor``), or DeLong's
  structural-component covariance;
* RRRC denominator ``MS(T*R) + r * max(Cov2 - Cov3, 0)`` (Hillis 2007) with Hillis's ddf;
* the same truncation in ``Var(T*R)`` (hence ``Var(R)``) and in the FRRC denominator, as RJafroc
  does (Hillis 2011). OR-DBM MRMC 2.51 prints untruncated ``Var(T*R)``/``Var(R)`` and MRMCaov an
  untruncated FRRC denominator; all agree whenever ``Cov2 >= Cov3``;
* no claim from a variance that is zero: when a test's denominator or a standard error is zero (below
  ``SE_TOL``, rounding noise: every reader's difference identical and the cases adding no variance), its
  F, interval and p-value are undefined (NaN; null in ``to_dict``), never an interval of zero width with
  p = 0. The other programs divide by the rounding noise there.

The figure of merit is pluggable (:data:`FIGURES_OF_MERIT`): it only has to give the reader x
modality values and their leave-one-case-out values; the OR machinery is the same for all. Binary
figures of merit (sensitivity, specificity, pc) are in :mod:`study.analysis.stats.mrmc_binary`, the
unbiased U-statistic covariance for incomplete designs in :mod:`study.analysis.stats.ustat`, and the
jackknife over patients (``cluster``) in :mod:`study.analysis.stats.mrmc_patients`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from revision_core.evaluate import placement_values
from study.analysis.stats import mrmc_binary, mrmc_patients, ustat
from study.analysis.stats.table_io import read_table

__all__ = [
    "FIGURES_OF_MERIT",
    "COVARIANCE_METHODS",
    "Comparison",
    "CrossedData",
    "FigureOfMerit",
    "MRMCResult",
    "ModalityEstimate",
    "ORTest",
    "VarianceComponents",
    "BINARY_FIGURES_OF_MERIT",
    "auc_jackknife",
    "binary_mrmc_analysis",
    "delong_covariance",
    "empirical_auc",
    "load_crossed",
    "mrmc_analysis",
    "or_components",
]

COVARIANCE_METHODS = ("jackknife", "delong", "unbiased")
SE_TOL = 1e-9  # figures of merit lie in [0, 1]: a standard error below this is rounding noise, i.e. zero
_KEYS = ("reader", "modality", "case")


# --------------------------------------------------------------------------------------------
# Input: validation and the fully crossed array
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrossedData:
    """Fully crossed study as arrays, so each figure of merit can be computed with numpy."""

    modalities: tuple
    readers: tuple
    cases: tuple
    values: np.ndarray  # (t, r, c): ratings (AUC), 0/1 correct or 0/1 call; NaN = not read
    truth: np.ndarray | None  # (c,) 0/1, or None when the figure of merit needs no truth
    cluster: np.ndarray | None = None  # (c,) patient code 0..g-1 per case, when clustered
    clusters: tuple = ()  # patient labels, in code order

    @property
    def complete(self) -> bool:
        return not np.isnan(self.values).any()


def _sorted_labels(series: pd.Series) -> tuple:
    labels = [x.item() if isinstance(x, np.generic) else x for x in pd.unique(series)]
    try:
        return tuple(sorted(labels))
    except TypeError:  # mixed label types: order by their text
        return tuple(sorted(labels, key=str))


def _show(items: list, limit: int = 10) -> str:
    shown = ", ".join(str(x) for x in items[:limit])
    return shown + (f", ... and {len(items) - limit} more" if len(items) > limit else "")


_MEANING = {"truth": "diseased", "call": "positive (the reader calls it diseased)"}


def _require_binary(df: pd.DataFrame, column: str) -> pd.Series:
    values = pd.to_numeric(df[column], errors="coerce")
    bad = df.index[~values.isin([0, 1])].tolist()
    if bad:
        raise ValueError(
            f"column {column!r} must be 0 or 1 on every row; {len(bad)} row(s) are not "
            f"(first rows: {_show(bad, 5)}). Recode it as 1 = {_MEANING.get(column, 'correct')}, "
            "0 = otherwise."
        )
    return values.astype(int)


def load_crossed(
    data: pd.DataFrame | str | Path,
    value_column: str,
    needs_truth: bool,
    fom: str | None = None,
    *,
    complete: bool = True,
    cluster: str | None = None,
) -> CrossedData:
    """Validate a long-format study table and reshape it to ``(modality, reader, case)`` arrays.

    Raises ValueError saying what is wrong and how to fix it, because a silently unbalanced or
    mislabelled design would give a wrong p-value rather than an error. ``complete=False`` lets
    readers skip cases (unread cells are NaN); ``cluster`` names the patient column.
    """
    data = read_table(data, "input file")
    required = [*_KEYS, *(("truth",) if needs_truth else ()), value_column, *((cluster,) if cluster else ())]
    missing = [c for c in required if c not in data.columns]
    if missing:
        for_fom = "" if fom is None else f"for fom={fom!r} "
        raise ValueError(
            f"missing required column(s) {missing}; the input needs columns {', '.join(required)} "
            f"{for_fom}with one row per reader x modality x case."
        )
    df = data[required].reset_index(drop=True)
    if df.empty:
        raise ValueError("the input has no rows; it needs one row per reader x modality x case.")
    blank = df.index[df.isna().any(axis=1)].tolist()
    if blank:
        raise ValueError(
            f"{len(blank)} row(s) have empty values in {required} (first rows: {_show(blank, 5)}); "
            "fill them in or remove those rows (the design must stay fully crossed)."
        )

    if value_column in ("correct", "call"):
        values = _require_binary(df, value_column).to_numpy(dtype=float)
    else:
        values = pd.to_numeric(df[value_column], errors="coerce")
        bad = df.index[values.isna() | ~np.isfinite(values)].tolist()
        if bad:
            raise ValueError(
                f"column {value_column!r} must be numeric; {len(bad)} row(s) are not "
                f"(first rows: {_show(bad, 5)})."
            )
        values = values.to_numpy(dtype=float)

    dup = df.duplicated(list(_KEYS), keep=False)
    if dup.any():
        combos = df.loc[dup, list(_KEYS)].drop_duplicates().itertuples(index=False, name=None)
        combos = list(combos)
        raise ValueError(
            f"{len(combos)} reader x modality x case combination(s) appear more than once "
            f"(reader, modality, case): {_show(combos)}; keep exactly one rating per combination."
        )

    truth = None
    cases = _sorted_labels(df["case"])
    if needs_truth:
        tvals = _require_binary(df, "truth")
        per_case = tvals.groupby(df["case"]).nunique()
        inconsistent = per_case.index[per_case > 1].tolist()
        if inconsistent:
            raise ValueError(
                f"case(s) {_show(inconsistent)} have different truth on different rows; truth "
                "belongs to the case, so give each case one truth value (0/1) on all its rows."
            )
        truth = tvals.groupby(df["case"]).first().reindex(list(cases)).to_numpy(dtype=int)

    codes, clusters = None, ()
    if cluster:
        per_case = df.groupby("case")[cluster].nunique()
        split = per_case.index[per_case > 1].tolist()
        if split:
            raise ValueError(
                f"case(s) {_show(split)} belong to more than one {cluster!r} on different rows; a case "
                f"(one photograph) belongs to one patient, so give it the same {cluster!r} on all its rows."
            )
        owner = df.groupby("case")[cluster].first().reindex(list(cases))
        clusters = _sorted_labels(owner)
        codes = pd.Categorical(owner, categories=clusters).codes.astype(int)

    readers, modalities = _sorted_labels(df["reader"]), _sorted_labels(df["modality"])
    if len(readers) < 2:
        raise ValueError(
            f"found {len(readers)} reader(s) ({_show(list(readers))}); the OR analysis needs at "
            "least 2 readers to estimate reader variability."
        )
    if len(modalities) < 2:
        raise ValueError(
            f"found {len(modalities)} modality(ies) ({_show(list(modalities))}); the OR analysis "
            "compares modalities and needs at least 2."
        )

    m_idx = pd.Categorical(df["modality"], categories=modalities).codes
    r_idx = pd.Categorical(df["reader"], categories=readers).codes
    c_idx = pd.Categorical(df["case"], categories=cases).codes
    shape = (len(modalities), len(readers), len(cases))
    present = np.zeros(shape, dtype=bool)
    present[m_idx, r_idx, c_idx] = True
    if complete and not present.all():
        holes = [(readers[j], modalities[i], cases[k]) for i, j, k in np.argwhere(~present)]
        raise ValueError(
            f"the design is not fully crossed: {len(holes)} reader x modality x case "
            f"combination(s) are missing (reader, modality, case): {_show(holes)}. Every reader "
            "must read every case in every modality; add the missing readings or drop the "
            "incomplete cases/readers, or use covariance='unbiased' or incomplete=True (--incomplete), "
            "which analyse designs that are not fully crossed."
        )
    arr = np.full(shape, np.nan)
    arr[m_idx, r_idx, c_idx] = values

    if truth is not None and fom in (None, "auc"):
        n_pos, n_neg = int(truth.sum()), int(len(truth) - truth.sum())
        if n_pos < 2 or n_neg < 2:
            raise ValueError(
                f"found {n_pos} diseased (truth=1) and {n_neg} non-diseased (truth=0) case(s); "
                "AUC and its case-resampling covariance need at least 2 of each. Check the "
                "truth coding (1 = diseased) or add cases."
            )
    elif len(cases) < 2:
        raise ValueError("found fewer than 2 cases; the jackknife over cases needs at least 2.")
    return CrossedData(modalities, readers, cases, arr, truth, codes, clusters)


# --------------------------------------------------------------------------------------------
# Figures of merit
# --------------------------------------------------------------------------------------------


def _placements(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong placement values (revision_core.evaluate): V10 per diseased case, V01 per non-diseased
    case, for scores with any leading shape and cases on the last axis."""
    scores = np.asarray(scores, float)
    lead = scores.shape[:-1]
    _, v10, v01 = placement_values(np.asarray(truth), scores.reshape(-1, scores.shape[-1]))
    return v10.reshape(*lead, -1), v01.reshape(*lead, -1)


def empirical_auc(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Wilcoxon AUC (ties 1/2) of each row of ``scores`` (cases on the last axis)."""
    v10, _ = _placements(np.asarray(scores, float), np.asarray(truth))
    return v10.mean(axis=-1)


def auc_jackknife(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Leave-one-case-out AUCs, cases on the last axis in input order.

    Uses the placement identity (dropping diseased case k leaves ``(m*A - V10_k)/(m-1)``) instead
    of recomputing c AUCs, which keeps large studies fast.
    """
    scores, truth = np.asarray(scores, float), np.asarray(truth)
    v10, v01 = _placements(scores, truth)
    m, n = v10.shape[-1], v01.shape[-1]
    auc = v10.mean(axis=-1, keepdims=True)
    out = np.empty(scores.shape, dtype=float)
    out[..., truth == 1] = (m * auc - v10) / (m - 1)
    out[..., truth == 0] = (n * auc - v01) / (n - 1)
    return out


def delong_covariance(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """DeLong covariance of the AUCs of the rows of a ``(k, c)`` score matrix: S10/m + S01/n."""
    v10, v01 = _placements(np.asarray(scores, float), np.asarray(truth))
    s10 = np.atleast_2d(np.cov(v10, ddof=1))
    s01 = np.atleast_2d(np.cov(v01, ddof=1))
    return s10 / v10.shape[-1] + s01 / v01.shape[-1]


def _pc_jackknife(correct: np.ndarray, truth: np.ndarray | None) -> np.ndarray:
    c = correct.shape[-1]
    return (correct.sum(axis=-1, keepdims=True) - correct) / (c - 1)


@dataclass(frozen=True)
class FigureOfMerit:
    """What the OR machinery needs from a figure of merit; add one to FIGURES_OF_MERIT."""

    name: str
    value_column: str
    needs_truth: bool
    estimate: Callable[[np.ndarray, np.ndarray | None], np.ndarray]  # (t, r, c) -> (t, r)
    jackknife: Callable[[np.ndarray, np.ndarray | None], np.ndarray]  # (t, r, c) -> (t, r, c)
    delong: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None  # (k, c) -> (k, k)
    # For a mean over cases: (values, truth) -> (per-case scores, mask of cases that enter); None = AUC.
    scores: Callable[[np.ndarray, np.ndarray | None], tuple[np.ndarray, np.ndarray]] | None = None
    binary: bool = False  # values are 0/1 calls, or ratings cut at a threshold


def _mean_fom(name: str, value_column: str, needs_truth: bool, binary: bool) -> FigureOfMerit:
    def scores(x, truth):
        return mrmc_binary.case_scores(name, x, truth)

    return FigureOfMerit(
        name, value_column, needs_truth,
        estimate=lambda x, t: mrmc_binary.mean_estimate(*scores(x, t)),
        jackknife=lambda x, t: mrmc_binary.mean_jackknife(*scores(x, t)),
        scores=scores, binary=binary,
    )


FIGURES_OF_MERIT: dict[str, FigureOfMerit] = {
    "auc": FigureOfMerit("auc", "rating", True, empirical_auc, auc_jackknife, delong_covariance),
    "percent_correct": FigureOfMerit(
        "percent_correct", "correct", False, lambda x, _t: x.mean(axis=-1), _pc_jackknife,
        scores=lambda x, _t: mrmc_binary.case_scores("percent_correct", x, None),
    ),
}
# Kept apart so a binary figure of merit is always asked for with its threshold or call
# (:func:`binary_mrmc_analysis`).
BINARY_FIGURES_OF_MERIT: dict[str, FigureOfMerit] = {
    name: _mean_fom(name, "call", True, True) for name in mrmc_binary.BINARY_FOMS
}


def _jackknife_covariance(jk: np.ndarray) -> np.ndarray:
    """``(c-1)**2/c`` x sample covariance of leave-one-out values (OR-DBM MRMC, RJafroc)."""
    c = jk.shape[-1]
    flat = jk.reshape(-1, c)
    return np.atleast_2d(np.cov(flat, ddof=1)) * (c - 1) ** 2 / c


# --------------------------------------------------------------------------------------------
# OR variance components and tests
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VarianceComponents:
    """OR error covariances, mean squares and variance components as OR-DBM MRMC prints them."""

    var_error: float
    cov1: float
    cov2: float
    cov3: float
    ms_t: float
    ms_r: float
    ms_tr: float
    var_r: float
    var_tr: float


def _average_covariances(cov: np.ndarray, t: int, r: int) -> tuple[float, float, float, float]:
    """Var, Cov1 (same reader), Cov2 (same modality), Cov3 (neither), averaged over pairs."""
    c4 = cov.reshape(t, r, t, r)
    same_t = np.eye(t, dtype=bool)[:, None, :, None]
    same_r = np.eye(r, dtype=bool)[None, :, None, :]

    def mean(mask: np.ndarray) -> float:
        mask = np.broadcast_to(mask, c4.shape)
        return float(c4[mask].mean()) if mask.any() else 0.0

    return (
        mean(same_t & same_r),
        mean(~same_t & same_r),
        mean(same_t & ~same_r),
        mean(~same_t & ~same_r),
    )


def or_components(theta: np.ndarray, cov: np.ndarray) -> VarianceComponents:
    """Mean squares of the ``(t, r)`` figures of merit and OR variance components."""
    t, r = theta.shape
    var, cov1, cov2, cov3 = _average_covariances(cov, t, r)
    grand = theta.mean()
    mod_means, rdr_means = theta.mean(axis=1), theta.mean(axis=0)
    ms_t = r * float(((mod_means - grand) ** 2).sum()) / (t - 1)
    ms_r = t * float(((rdr_means - grand) ** 2).sum()) / (r - 1)
    resid = theta - mod_means[:, None] - rdr_means[None, :] + grand
    ms_tr = float((resid**2).sum()) / ((t - 1) * (r - 1))
    var_tr = ms_tr - var + cov1 + max(cov2 - cov3, 0.0)
    var_r = (ms_r - var - (t - 1) * cov1 + cov2 + (t - 1) * cov3 - var_tr) / t
    return VarianceComponents(var, cov1, cov2, cov3, ms_t, ms_r, ms_tr, var_r, var_tr)


@dataclass(frozen=True)
class Comparison:
    """Difference in reader-averaged (or one reader's) figure of merit, first minus second."""

    modalities: tuple
    diff: float
    se: float
    df: float  # math.inf: normal reference distribution
    ci: tuple[float, float]
    stat: float  # t (finite df) or z
    p: float
    reader: object = None


@dataclass(frozen=True)
class ModalityEstimate:
    """Reader-averaged figure of merit of one modality, from that modality's data only."""

    fom: float
    se: float
    df: float
    ci: tuple[float, float]


@dataclass(frozen=True)
class ORTest:
    """One of the three OR analyses (RRRC, FRRC, RRFC)."""

    F: float
    ndf: int
    ddf: float
    p: float
    denominator: float
    comparisons: list[Comparison]
    per_modality: dict
    chi2: float | None = None
    per_reader: list[Comparison] = field(default_factory=list)

    @property
    def diff(self) -> float | None:
        return self.comparisons[0].diff if len(self.comparisons) == 1 else None

    @property
    def se(self) -> float | None:
        return self.comparisons[0].se if len(self.comparisons) == 1 else None

    @property
    def ci(self) -> tuple[float, float] | None:
        return self.comparisons[0].ci if len(self.comparisons) == 1 else None


def _ratio(num: float, den: float) -> float:
    """num / den, undefined (NaN) when the denominator variance is zero (rounding noise included)."""
    return num / den if den > SE_TOL**2 else math.nan


def _satterthwaite(total: float, ms: float, df: float) -> float:
    """Hillis ddf ``total**2 / (ms**2 / df)``; infinite when the mean square is exactly 0."""
    if not total > 0:
        return math.nan
    return total**2 / (ms**2 / df) if ms > 0 else math.inf


def _f_sf(F: float, ndf: int, ddf: float) -> float:
    """Upper tail of F(ndf, ddf); ddf = inf is the chi-square limit (scipy returns nan there)."""
    if math.isnan(F) or math.isnan(ddf):
        return math.nan
    if math.isinf(ddf):
        return float(stats.chi2.sf(F * ndf, ndf))
    return float(stats.f.sf(F, ndf, ddf))


def _interval(est: float, se: float, df: float, alpha: float) -> tuple[tuple[float, float], float, float]:
    """(CI, statistic, two-sided p) of an estimate with ``se`` on ``df`` degrees of freedom; all undefined
    when ``se`` is zero (no variance to test against)."""
    if not se > SE_TOL:
        return (math.nan, math.nan), math.nan, math.nan
    dist = stats.norm if math.isinf(df) else stats.t(df)
    q = float(dist.ppf(1 - alpha / 2)) if not math.isnan(df) else math.nan
    stat = est / se
    p = float(2 * dist.sf(abs(stat))) if not math.isnan(df) and not math.isnan(stat) else math.nan
    return (est - q * se, est + q * se), stat, p


def _comparisons(means, labels, se: float, df: float, alpha: float, reader=None) -> list[Comparison]:
    out = []
    for a, b in combinations(range(len(labels)), 2):
        d = float(means[a] - means[b])
        ci, stat, p = _interval(d, se, df, alpha)
        out.append(Comparison((labels[a], labels[b]), d, se, df, ci, stat, p, reader))
    return out


def _rrrc(theta, comp, per_mod, labels, alpha) -> ORTest:
    t, r = theta.shape
    den = comp.ms_tr + r * max(comp.cov2 - comp.cov3, 0.0)
    ddf = _satterthwaite(den, comp.ms_tr, (t - 1) * (r - 1))
    F = _ratio(comp.ms_t, den)
    p = _f_sf(F, t - 1, ddf)
    se = math.sqrt(2 / r * den)
    single = {}
    for i, lab in enumerate(labels):
        ms_r, cov2 = per_mod[i]["ms_r"], max(per_mod[i]["cov2"], 0.0)
        se_i = math.sqrt(ms_r / r + cov2)
        df_i = _satterthwaite(ms_r + r * cov2, ms_r, r - 1)
        ci, _, _ = _interval(float(theta[i].mean()), se_i, df_i, alpha)
        single[lab] = ModalityEstimate(float(theta[i].mean()), se_i, df_i, ci)
    comps = _comparisons(theta.mean(axis=1), labels, se, ddf, alpha)
    return ORTest(F, t - 1, ddf, p, den, comps, single)


def _frrc(theta, comp, per_mod, per_rdr, labels, readers, alpha) -> ORTest:
    t, r = theta.shape
    den = comp.var_error - comp.cov1 + (r - 1) * max(comp.cov2 - comp.cov3, 0.0)
    chi2 = _ratio((t - 1) * comp.ms_t, den)
    p = float(stats.chi2.sf(chi2, t - 1))
    se = math.sqrt(max(2 / r * den, 0.0))
    single = {}
    for i, lab in enumerate(labels):
        se_i = math.sqrt((per_mod[i]["var"] + (r - 1) * max(per_mod[i]["cov2"], 0.0)) / r)
        ci, _, _ = _interval(float(theta[i].mean()), se_i, math.inf, alpha)
        single[lab] = ModalityEstimate(float(theta[i].mean()), se_i, math.inf, ci)
    per_reader = []
    for j, rdr in enumerate(readers):
        se_j = math.sqrt(max(2 * (per_rdr[j]["var"] - per_rdr[j]["cov1"]), 0.0))
        per_reader += _comparisons(theta[:, j], labels, se_j, math.inf, alpha, reader=rdr)
    comps = _comparisons(theta.mean(axis=1), labels, se, math.inf, alpha)
    return ORTest(chi2 / (t - 1), t - 1, math.inf, p, den, comps, single, chi2, per_reader)


def _rrfc(theta, comp, per_mod, labels, alpha) -> ORTest:
    t, r = theta.shape
    ddf = (t - 1) * (r - 1)
    F = _ratio(comp.ms_t, comp.ms_tr)
    p = _f_sf(F, t - 1, ddf)
    se = math.sqrt(2 / r * comp.ms_tr)
    single = {}
    for i, lab in enumerate(labels):
        se_i = math.sqrt(per_mod[i]["ms_r"] / r)
        ci, _, _ = _interval(float(theta[i].mean()), se_i, r - 1, alpha)
        single[lab] = ModalityEstimate(float(theta[i].mean()), se_i, float(r - 1), ci)
    comps = _comparisons(theta.mean(axis=1), labels, se, float(ddf), alpha)
    return ORTest(F, t - 1, float(ddf), p, comp.ms_tr, comps, single)


# --------------------------------------------------------------------------------------------
# Result and entry point
# --------------------------------------------------------------------------------------------


def _num(x):
    """JSON-safe float: infinite/undefined become null (inf df means a normal reference)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _key(label) -> str:
    return str(label.item() if hasattr(label, "item") else label)


def _comparison_dict(c: Comparison) -> dict:
    out = {
        "modalities": [_key(m) for m in c.modalities],
        "diff": _num(c.diff),
        "se": _num(c.se),
        "df": _num(c.df),
        "ci": [_num(v) for v in c.ci],
        "stat": _num(c.stat),
        "p": _num(c.p),
        "estimable": bool(c.se > SE_TOL),
    }
    if c.reader is not None:
        out["reader"] = _key(c.reader)
    return out


def _test_dict(test: ORTest) -> dict:
    single = {
        _key(m): {"fom": _num(e.fom), "se": _num(e.se), "df": _num(e.df), "ci": [_num(v) for v in e.ci]}
        for m, e in test.per_modality.items()
    }
    out = {
        "F": _num(test.F),
        "ndf": test.ndf,
        "ddf": _num(test.ddf),
        "p": _num(test.p),
        "denominator": _num(test.denominator),
        "diff": _num(test.diff),
        "se": _num(test.se),
        "ci": None if test.ci is None else [_num(v) for v in test.ci],
        "comparisons": [_comparison_dict(c) for c in test.comparisons],
        "per_modality": single,
    }
    if test.chi2 is not None:
        out["chi2"] = _num(test.chi2)
        out["per_reader"] = [_comparison_dict(c) for c in test.per_reader]
    return out


@dataclass(frozen=True)
class MRMCResult:
    """Everything an OR-DBM MRMC style report prints; ``to_dict`` is JSON-serialisable."""

    fom: str
    covariance: str
    modalities: tuple
    readers: tuple
    n_cases: int
    theta: np.ndarray  # (t, r) figure of merit per modality x reader
    cov_matrix: np.ndarray  # (t*r, t*r), modality-major
    components: VarianceComponents
    rrrc: ORTest
    frrc: ORTest
    rrfc: ORTest
    threshold: float | None = None  # binary FOMs: positive when rating >= threshold; None = the call
    cluster: str | None = None  # column whose levels (patients) the jackknife leaves out
    n_clusters: int | None = None
    n_fom_cases: int | None = None  # cases that enter the figure of merit (e.g. diseased for sensitivity)
    n_readings: int | None = None  # readings used; < t*r*n_cases for an incomplete design
    bdg: dict | None = None  # iMRMC-style U-statistic total variance with BDG df (unbiased, fully crossed)

    @property
    def per_modality(self) -> dict:
        return {m: float(v) for m, v in zip(self.modalities, self.theta.mean(axis=1))}

    def to_dict(self) -> dict:
        """Shape: {fom-name: {per_reader, per_modality}, rrrc, frrc, rrfc, var_components, ...}.

        Also: population and n_fom_cases (the cases the figure of merit is over), threshold and
        positive (binary figures of merit), cluster and n_clusters (jackknife over patients),
        n_readings and fully_crossed (the design), bdg (iMRMC-style analysis, or null).
        Infinite degrees of freedom (normal/chi-square reference) are written as null.
        """
        per_reader = {
            _key(m): {_key(r): float(self.theta[i, j]) for j, r in enumerate(self.readers)}
            for i, m in enumerate(self.modalities)
        }
        c = self.components
        return {
            self.fom: {
                "per_reader": per_reader,
                "per_modality": {_key(m): v for m, v in self.per_modality.items()},
            },
            "rrrc": _test_dict(self.rrrc),
            "frrc": _test_dict(self.frrc),
            "rrfc": _test_dict(self.rrfc),
            "var_components": {
                "var_r": c.var_r,
                "var_tr": c.var_tr,
                "cov1": c.cov1,
                "cov2": c.cov2,
                "cov3": c.cov3,
                "var_error": c.var_error,
                "ms_t": c.ms_t,
                "ms_r": c.ms_r,
                "ms_tr": c.ms_tr,
            },
            "covariance": self.covariance,
            "fom": self.fom,
            "n_readers": len(self.readers),
            "n_modalities": len(self.modalities),
            "n_cases": self.n_cases,
            "population": mrmc_binary.POPULATIONS.get(self.fom),
            "n_fom_cases": self.n_fom_cases,
            "threshold": _num(self.threshold),
            "positive": None if self.fom not in mrmc_binary.BINARY_FOMS else (
                "reader's call = 1" if self.threshold is None else f"rating >= {self.threshold:g}"),
            "cluster": self.cluster,
            "n_clusters": self.n_clusters,
            "n_readings": self.n_readings,
            "fully_crossed": None if self.n_readings is None else (
                self.n_readings == len(self.modalities) * len(self.readers) * self.n_cases),
            "bdg": self.bdg,
        }


def mrmc_analysis(
    data: pd.DataFrame | str | Path,
    *,
    fom: str = "auc",
    covariance: str = "jackknife",
    alpha: float = 0.05,
    cluster: str | None = None,
    incomplete: bool = False,
) -> MRMCResult:
    """Run the OR analysis (RRRC, FRRC, RRFC) on a long-format study.

    ``data`` has columns reader, modality, case and, for ``fom="auc"``, truth and rating; for
    ``fom="percent_correct"``, correct (0/1). ``covariance``: jackknife over cases (or over the
    levels of the ``cluster`` column, e.g. patients), DeLong (AUC), or the unbiased U-statistic,
    which also allows designs that are not fully crossed. ``incomplete=True`` lets the jackknife
    analyse such designs too (split-plot, nested, readers who skip cases): a reader keeps their full
    estimate when the left-out case is one they did not read (MRMCaov). Differences are
    first-minus-second modality in sorted label order. Raises ValueError on invalid input or options.
    Sensitivity, specificity and pc: :func:`binary_mrmc_analysis`.
    """
    if fom not in FIGURES_OF_MERIT:
        hint = f" (for {fom!r} use binary_mrmc_analysis)" if fom in BINARY_FIGURES_OF_MERIT else ""
        raise ValueError(f"unknown figure of merit {fom!r}; choose one of {sorted(FIGURES_OF_MERIT)}{hint}.")
    return _analysis(data, FIGURES_OF_MERIT[fom], covariance, alpha, None, cluster, incomplete)


def binary_mrmc_analysis(
    data: pd.DataFrame | str | Path,
    *,
    fom: str = "sensitivity",
    threshold: float | None = None,
    covariance: str = "jackknife",
    alpha: float = 0.05,
    cluster: str | None = None,
    incomplete: bool = False,
) -> MRMCResult:
    """OR analysis of sensitivity, specificity or pc (accuracy) from binary readings.

    A reading is positive when ``rating >= threshold``, or, with no threshold, when the 0/1 ``call``
    column is 1; ``truth`` is 1 for diseased cases. The jackknife runs over the cases that enter the
    figure of merit (diseased for sensitivity, non-diseased for specificity), as MRMCaov does.
    Other arguments as :func:`mrmc_analysis` (DeLong is for the AUC only).
    """
    if fom not in BINARY_FIGURES_OF_MERIT:
        raise ValueError(f"unknown binary figure of merit {fom!r}; choose one of {list(BINARY_FIGURES_OF_MERIT)}.")
    return _analysis(data, BINARY_FIGURES_OF_MERIT[fom], covariance, alpha, threshold, cluster, incomplete)


def _analysis(data, spec: FigureOfMerit, covariance: str, alpha: float, threshold, cluster,
              incomplete: bool = False) -> MRMCResult:
    fom = spec.name
    if covariance not in COVARIANCE_METHODS:
        raise ValueError(f"unknown covariance method {covariance!r}; choose one of {list(COVARIANCE_METHODS)}.")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}.")
    if covariance == "delong" and spec.delong is None:
        raise ValueError(
            f"DeLong covariance is defined for AUC only, not for fom={fom!r}; use "
            "covariance='jackknife' or 'unbiased'."
        )
    if cluster is not None and covariance != "jackknife":
        raise ValueError(
            f"the analysis by {cluster!r} uses the jackknife over {cluster!r}; use covariance='jackknife'."
        )
    data = read_table(data, "input file")
    value_column = spec.value_column
    if spec.binary:
        value_column = "rating" if threshold is not None else "call"
        if threshold is None and "call" not in data.columns:
            raise ValueError(
                f"fom={fom!r} needs a positive/negative reading: give a threshold on the rating "
                "(--threshold T: positive when rating >= T) or a 0/1 'call' column."
            )
    data = load_crossed(data, value_column, spec.needs_truth, fom,
                        complete=not (covariance == "unbiased" or (incomplete and covariance == "jackknife")),
                        cluster=cluster)
    values = mrmc_binary.positive_calls(data.values, threshold) if spec.binary else data.values
    t, r, c = values.shape
    truth = data.truth
    enters = np.ones(c, dtype=bool) if spec.scores is None else spec.scores(values, truth)[1]
    _check_reads(values, truth, enters, spec, data)

    flat = values.reshape(t * r, c)
    if spec.scores is None:
        theta = ustat.auc_estimate(flat, truth) if not data.complete else spec.estimate(values, truth)
    else:
        z = spec.scores(flat, truth)[0]
        theta = ustat.mean_estimate(z, enters) if not data.complete else spec.estimate(values, truth)
    theta = np.asarray(theta, dtype=float).reshape(t, r)

    if covariance == "unbiased":
        if spec.scores is None:
            cov = ustat.auc_covariance(flat, truth)
        else:
            cov = ustat.mean_covariance(z, enters)
    elif covariance == "delong":
        cov = spec.delong(flat, truth)
    elif cluster is None and data.complete:
        cov = _jackknife_covariance(spec.jackknife(values, truth))
    else:  # over patients, or over the cases of a design that is not fully crossed (MRMCaov's convention)
        codes = data.cluster if cluster is not None else np.arange(c)
        if spec.scores is None:
            jk = mrmc_patients.auc_cluster_jackknife(values, truth, codes)
        else:
            jk = mrmc_patients.mean_cluster_jackknife(spec.scores(values, truth)[0], enters, codes)
        cov = _jackknife_covariance(jk)
    bdg = None
    if covariance == "unbiased" and data.complete:
        bdg = _bdg(values, truth, spec, enters, data.modalities, alpha)
    return _or_result(theta, cov, data, alpha, fom=fom, covariance=covariance, threshold=threshold,
                      cluster=cluster, n_fom_cases=int(enters.sum()),
                      n_readings=int((~np.isnan(values)).sum()), bdg=bdg)


def _bdg(values: np.ndarray, truth: np.ndarray, spec: FigureOfMerit, enters: np.ndarray, labels: tuple,
         alpha: float) -> dict:
    """iMRMC's analysis beside OR's: U-statistic variance of reader-averaged figures of merit and
    their differences over random readers and cases, t reference with BDG df (continuous, not rounded)."""
    t, r, _ = values.shape
    if spec.scores is None:
        n1, n0 = int(truth.sum()), int((truth == 0).sum())
        bck = {(a, b): ustat.bck_components(ustat.auc_moments(values[a], values[b], truth))
               for a in range(t) for b in range(a, t)}
        terms = ustat.BCK_TERMS

        def variance_df(b):
            return ustat.bdg_variance_df(b, r, n0, n1)
    else:
        z = spec.scores(values, truth)[0]
        bck = {(a, b): ustat.mean_bck_components(ustat.mean_moments(z[a], z[b], enters))
               for a in range(t) for b in range(a, t)}
        terms = ustat.MEAN_BCK_TERMS

        def variance_df(b):
            return ustat.mean_bdg_variance_df(b, r, int(enters.sum()))
    means = [float(v) for v in np.asarray(spec.estimate(values, truth), float).mean(axis=1)]
    per_mod, comps = {}, []
    for a in range(t):
        var, df = variance_df(bck[a, a])
        se = math.sqrt(max(var, 0.0))
        ci, _, _ = _interval(means[a], se, df, alpha)
        per_mod[_key(labels[a])] = {"fom": _num(means[a]), "var": _num(var), "se": _num(se), "df": _num(df),
                                    "ci": [_num(v) for v in ci], "bck": [float(x) for x in bck[a, a]]}
    for a, b in combinations(range(t), 2):
        diff_bck = bck[a, a] + bck[b, b] - 2 * bck[a, b]
        var, df = variance_df(diff_bck)
        se = math.sqrt(max(var, 0.0))
        d = means[a] - means[b]
        ci, stat, p = _interval(d, se, df, alpha)
        comps.append({"modalities": [_key(labels[a]), _key(labels[b])], "diff": _num(d), "var": _num(var),
                      "se": _num(se), "df": _num(df), "ci": [_num(v) for v in ci], "stat": _num(stat),
                      "p": _num(p), "bck": [float(x) for x in diff_bck]})
    return {"method": "U-statistic (BCK) variance over random readers and cases, BDG df (iMRMC)",
            "bck_terms": list(terms), "per_modality": per_mod, "comparisons": comps}


def _check_reads(values, truth, enters, spec, data) -> None:
    """Each reader x modality needs >= 2 cases of each kind it uses, or its variance is undefined."""
    read = ~np.isnan(values)
    if spec.scores is None:
        need = {"diseased": read[..., truth == 1].sum(-1), "non-diseased": read[..., truth == 0].sum(-1)}
    else:
        need = {"entering": read[..., enters].sum(-1)}
    for kind, counts in need.items():
        short = [(data.readers[j], data.modalities[i]) for i, j in np.argwhere(counts < 2)]
        if short:
            raise ValueError(
                f"reader x modality (reader, modality) {_show(short)} read fewer than 2 {kind} cases "
                f"that enter fom={spec.name!r}; each needs at least 2 for a variance."
            )


def _or_result(theta, cov, data: CrossedData, alpha: float, **extra) -> MRMCResult:
    """The three OR analyses from the figures of merit and their error covariance matrix."""
    t, r = theta.shape
    comp = or_components(theta, cov)
    c4 = cov.reshape(t, r, t, r)
    per_mod = []
    for i in range(t):
        block = c4[i, :, i, :]
        off = block[~np.eye(r, dtype=bool)]
        per_mod.append(
            {
                "var": float(np.diag(block).mean()),
                "cov2": float(off.mean()),
                "ms_r": float(((theta[i] - theta[i].mean()) ** 2).sum()) / (r - 1),
            }
        )
    per_rdr = []
    for j in range(r):
        block = c4[:, j, :, j]
        per_rdr.append(
            {"var": float(np.diag(block).mean()), "cov1": float(block[~np.eye(t, dtype=bool)].mean())}
        )
    labels = data.modalities
    return MRMCResult(
        modalities=labels,
        readers=data.readers,
        n_cases=len(data.cases),
        theta=theta,
        cov_matrix=cov,
        components=comp,
        rrrc=_rrrc(theta, comp, per_mod, labels, alpha),
        frrc=_frrc(theta, comp, per_mod, per_rdr, labels, data.readers, alpha),
        rrfc=_rrfc(theta, comp, per_mod, labels, alpha),
        n_clusters=len(data.clusters) if data.cluster is not None else None,
        **extra,
    )
