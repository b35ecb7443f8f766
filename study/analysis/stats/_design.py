"""Formula parsing, input validation and the fixed/random design shared by the mixed models.

Kept apart from the fitting code so that the GLMM and the LMM agree on term names, reference
levels and the checks that turn bad study exports into a clear ``ValueError`` rather than a
silently wrong model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import patsy

_RE_TERM = re.compile(r"\+?\s*\(\s*1\s*\|\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\)")
_CONDITION_REFERENCE = "unaided"


@dataclass
class MixedDesign:
    """Everything a fitter needs: response, fixed design, integer codes per grouping factor."""

    y: np.ndarray
    X: np.ndarray
    terms: list[str]
    design_info: patsy.DesignInfo
    groups: tuple[str, ...]
    codes: list[np.ndarray]
    levels: list[pd.Index]
    data: pd.DataFrame  # rows used, with categorical columns re-levelled
    formula: str  # fixed part only
    n_dropped: int


def parse_formula(formula: str, groups) -> tuple[str, tuple[str, ...]]:
    """Split ``y ~ fixed + (1|g1) + (1|g2)`` into the fixed formula and the grouping factors.

    Random intercepts may be written in the formula (lme4 style) or passed as ``groups``; when the
    formula has any, they replace ``groups``, so the same formula string can be sent to R unchanged.
    """
    if not isinstance(formula, str) or "~" not in formula:
        raise ValueError(f"formula must look like 'y ~ terms', got {formula!r}")
    in_formula = tuple(_RE_TERM.findall(formula))
    fixed = _RE_TERM.sub("", formula).strip()
    fixed = re.sub(r"[+\s]+$", "", fixed)
    lhs, rhs = (s.strip() for s in fixed.split("~", 1))
    if not rhs:
        rhs = "1"
    if "|" in rhs:
        raise ValueError(f"only random intercepts '(1|group)' are supported, got {formula!r}")
    groups = tuple(groups or ())
    if isinstance(groups, str):  # pragma: no cover - guarded by tuple() above
        groups = (groups,)
    all_groups = in_formula or groups  # terms written in the formula win over the default
    if not all_groups:
        raise ValueError("at least one random-intercept grouping factor is required")
    return f"{lhs} ~ {rhs}", all_groups


def build_design(
    formula: str,
    data: pd.DataFrame,
    groups=("reader", "case"),
    reference_levels: dict | None = None,
    binary_response: bool = False,
) -> MixedDesign:
    """Validate ``data`` and build the Treatment-coded design with the study's reference levels.

    ``condition`` is always referenced at ``unaided`` (so ``condition[T.aided]`` is the AI effect);
    other categorical columns use ``reference_levels`` or else their first level alphabetically.
    """
    if not isinstance(data, pd.DataFrame):
        raise ValueError("data must be a pandas DataFrame")
    fixed, groups = parse_formula(formula, groups)
    lhs, rhs = (s.strip() for s in fixed.split("~", 1))
    reference_levels = dict(reference_levels or {})

    rhs_vars = _formula_variables(rhs, data)
    needed = [lhs, *rhs_vars, *groups]
    missing = [c for c in dict.fromkeys(needed) if c not in data.columns]
    if missing:
        raise ValueError(f"data is missing column(s) {missing}; has {list(data.columns)}")

    df = data[list(dict.fromkeys(needed))].copy()
    n_before = len(df)
    df = df.dropna()
    n_dropped = n_before - len(df)
    if len(df) == 0:
        raise ValueError("no complete rows left after dropping missing values")

    for col in rhs_vars:
        if _is_categorical(df[col]):
            df[col] = _relevel(df[col], col, reference_levels.get(col))
    if "condition" in rhs_vars and "condition" in df:
        ref = reference_levels.get("condition", _CONDITION_REFERENCE)
        cats = list(df["condition"].cat.categories) if _is_categorical(df["condition"]) else []
        if len(cats) < 2:
            raise ValueError(
                f"condition needs two levels (e.g. 'unaided' and 'aided'); found {cats or 'a numeric column'}"
            )
        if ref not in cats:
            raise ValueError(f"condition must contain the reference level {ref!r}; found {cats}")
    for col in rhs_vars:
        if _is_categorical(df[col]) and df[col].nunique() < 2:
            raise ValueError(f"column {col!r} has a single level {list(df[col].unique())}; it cannot be estimated")

    y = df[lhs]
    if binary_response:
        y = _binary(y, lhs)
    else:
        y = pd.to_numeric(y, errors="coerce")
        if y.isna().any() or not np.isfinite(y.to_numpy(float)).all():
            raise ValueError(f"response {lhs!r} must be numeric and finite")
        y = y.to_numpy(float)

    X_df = patsy.dmatrix(rhs, df, return_type="dataframe", NA_action="raise")
    X = X_df.to_numpy(float)
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise ValueError(f"fixed-effects design is rank deficient (terms {list(X_df.columns)}); check empty cells")

    codes, levels = [], []
    for g in groups:
        c, lev = pd.factorize(df[g], sort=True)
        if len(lev) < 2:
            raise ValueError(f"grouping factor {g!r} needs at least two levels, found {len(lev)}")
        codes.append(c.astype(np.intp))
        levels.append(pd.Index(lev))
    return MixedDesign(
        y=y,
        X=X,
        terms=list(X_df.columns),
        design_info=X_df.design_info,
        groups=groups,
        codes=codes,
        levels=levels,
        data=df,
        formula=fixed,
        n_dropped=n_dropped,
    )


def _formula_variables(rhs: str, data: pd.DataFrame) -> list[str]:
    """Names of data columns used on the right-hand side, found via patsy's own parser."""
    desc = patsy.ModelDesc.from_formula("~ " + rhs)
    names: list[str] = []
    for term in desc.rhs_termlist:
        for factor in term.factors:
            code = factor.code
            if code in data.columns:
                names.append(code)
            else:
                names.extend(tok for tok in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", code) if tok in data.columns)
    missing = [
        f.code
        for t in desc.rhs_termlist
        for f in t.factors
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", f.code) and f.code not in data.columns
    ]
    return list(dict.fromkeys(names + missing))


def _is_categorical(s: pd.Series) -> bool:
    return isinstance(s.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)


def _relevel(s: pd.Series, name: str, reference) -> pd.Series:
    """Categorical with the reference level first (patsy's Treatment reference is the first level)."""
    observed = list(pd.unique(s.astype(object)))
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = [c for c in s.cat.categories if c in set(observed)]
    else:
        cats = sorted(observed, key=str)
    if name == "condition" and reference is None and _CONDITION_REFERENCE in cats:
        reference = _CONDITION_REFERENCE
    if reference is not None:
        if reference not in cats:
            raise ValueError(f"reference level {reference!r} for {name!r} is not among its levels {cats}")
        cats = [reference] + [c for c in cats if c != reference]
    return pd.Series(pd.Categorical(s.astype(object), categories=cats), index=s.index, name=name)


def _binary(y: pd.Series, name: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(y):
        return y.to_numpy(float)
    v = pd.to_numeric(y, errors="coerce")
    if v.isna().any() or not np.isin(v.to_numpy(float), (0.0, 1.0)).all():
        bad = sorted(pd.unique(y.astype(object)), key=str)[:5]
        raise ValueError(f"outcome {name!r} must be binary 0/1 (or bool); found values like {bad}")
    return v.to_numpy(float)
