"""Load and validate a reads table: one row per reader x case x condition (x step).

Why one preparation: every analysis (descriptive, GLMM, MRMC, AI interaction, power) must agree on
which rows count (latest answer versions only), on the reference condition (unaided) and on the
order of experience levels, so they all start from :func:`prepare_reads`. The study's own answers
(``study.domain.answers.answers_table``) go to it directly, levels in the study's order
(``study.analysis.study_analysis``); :func:`load_reads` is for reads tables from outside (a CSV).

Columns (extra columns are kept but ignored):

required  reader, level, case, condition, correct (0/1)
optional  years, session, step (1 = first read; in a sequential design step 2 is the aided
          re-read of the same reader x case), version, is_latest, seconds,
          answer (reader's primary diagnosis), reference (true primary label),
          truth (0/1 abnormal; derived as reference != normal_label when absent),
          call (0/1 reader says abnormal; derived as answer != normal_label when absent),
          confidence (0-100), ai_label (AI top suggestion), ai_prob (AI probability that the
          case is abnormal / has the reference finding), ai_correct (0/1),
          answer_<finding> and truth_<finding> (0/1 per finding, for sensitivity/specificity),
          ungradable (readings marked "Image ungradable": left out of every analysis and counted),
          primary_question, primary_kind (``study.outputs.export``: the scored question and its kind),
          answer_grade, truth_grade (ordinal primary: 0-based grades, for weighted kappa).

For a primary question other than a diagnosis (``primary_kind`` ordinal, boolean or multi_choice)
the AI's top finding is not an answer to it, so no AI-vs-reference columns are derived; a yes/no
primary gives ``truth``/``call`` from the reference and the answer. Rows left out are counted in
``df.attrs["excluded"]`` ({"ungradable": {condition: n}, "no_reference": n}).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from study.analysis.stats.table_io import read_table
from study.domain.rules import p_abnormal

__all__ = ["REQUIRED", "UNAIDED", "aided_conditions", "condition_pairs", "findings", "load_reads", "no_comparison",
           "pair_key", "prepare_reads"]

REQUIRED = ("reader", "level", "case", "condition", "correct")
UNAIDED = "unaided"
# Common spellings in exports -> the canonical column name used by the analysis modules.
_ALIASES = {
    "experience": "level",
    "experience_level": "level",
    "reader_level": "level",
    "case_key": "case",
    "reader_pseudonym": "reader",
    "diagnosis": "answer",
    "primary_answer": "answer",
    "primary_diagnosis": "answer",
    "reference_label": "reference",
    "ai_top": "ai_label",
    "ai_top_label": "ai_label",
    "ai_suggestion": "ai_label",
    "ai_top_suggestion": "ai_label",
    "ai_probability": "ai_prob",
}
_TRUE = {"1", "true", "t", "yes", "y"}
_FALSE = {"0", "false", "f", "no", "n"}


def _as_binary(s: pd.Series, name: str, allow_missing: bool = False) -> pd.Series:
    """0/1 from numbers, bools or 'true'/'false' text; ValueError naming bad values."""
    if pd.api.types.is_bool_dtype(s):
        return s.astype(int)
    if pd.api.types.is_numeric_dtype(s):
        v = s.astype(float)
    else:
        txt = s.astype(str).str.strip().str.lower()
        v = pd.Series(np.where(txt.isin(_TRUE), 1.0, np.where(txt.isin(_FALSE), 0.0, np.nan)), index=s.index)
        v[s.isna()] = np.nan
    bad = ~(v.isin([0.0, 1.0]) | (allow_missing & v.isna()))
    if bad.any():
        examples = sorted({str(x) for x in s[bad].head(20)})[:5]
        raise ValueError(f"column {name!r} must be 0 or 1; {int(bad.sum())} row(s) are not (values like {examples})")
    return v if allow_missing and v.isna().any() else v.astype(int)


def load_reads(
    source: pd.DataFrame | str | Path,
    level_order: Sequence[str] | None = None,
    normal_label: str = "normal",
) -> pd.DataFrame:
    """A reads table from outside the study database (a CSV file or a DataFrame of one), prepared by
    :func:`prepare_reads`. The study's own answers go to :func:`prepare_reads` directly
    (``study.analysis.study_analysis``)."""
    return prepare_reads(read_table(source, "reads file"), level_order=level_order, normal_label=normal_label)


def prepare_reads(
    df: pd.DataFrame,
    level_order: Sequence[str] | None = None,
    normal_label: str = "normal",
) -> pd.DataFrame:
    """Validated copy of a reads table with ``condition`` and ``level`` as ordered categoricals.

    ``condition`` categories start with ``unaided`` (the reference); ``level`` categories follow
    ``level_order`` (the study's order; its first entry is the reference) or are alphabetical.
    Keeps only ``is_latest`` rows when that column exists. Raises ValueError for missing columns or
    non-0/1 ``correct``; a table with one condition, or without unaided readings, is returned as it is
    (:func:`no_comparison` says why nothing can be compared: a study that has only started).
    """
    df = df.copy()
    kind = None
    if "primary_kind" in df.columns and df["primary_kind"].notna().any():
        kind = str(df["primary_kind"].dropna().iloc[0])
    legacy = kind is None or ("primary_question" in df.columns
                              and str(df["primary_question"].dropna().iloc[0]) == "primary_diagnosis")
    if not legacy and kind != "single_choice":
        df = df.rename(columns={"ai_top_suggestion": "ai_top_finding"}).drop(columns=["ai_probabilities", "ai_prob"],
                                                                             errors="ignore")
    if kind is not None and "truth" in df.columns and "reference" not in df.columns:
        df = df.rename(columns={"truth": "reference"})
    df = df.rename(columns={k: v for k, v in _ALIASES.items() if k in df.columns and v not in df.columns})
    excluded: dict = {"ungradable": {}, "no_reference": 0}
    if "ungradable" in df.columns:
        if "is_latest" in df.columns:
            df = df[_as_binary(df["is_latest"], "is_latest").astype(bool)]
        flag = _as_binary(df["ungradable"].fillna(False), "ungradable").astype(bool)
        if "condition" in df.columns:
            excluded["ungradable"] = {str(k): int(v) for k, v in df[flag].groupby("condition").size().items()}
        df = df[~flag]
        if "correct" in df.columns:
            missing = df["correct"].isna()
            excluded["no_reference"] = int(missing.sum())
            df = df[~missing]
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(
            f"reads table is missing column(s) {missing}; it needs at least {', '.join(REQUIRED)} "
            f"(one row per reader x case x condition); found {list(df.columns)[:20]}"
        )
    df = _from_study_export(df, normal_label)
    if kind == "boolean" and "reference" in df.columns:
        df["truth"] = _as_binary(df["reference"], "truth", allow_missing=True)
        if "answer" in df.columns:
            df["call"] = _as_binary(df["answer"], "answer", allow_missing=True)
    elif not legacy and kind == "single_choice" and "reference" in df.columns:
        if not (df["reference"].astype(str) == normal_label).any():  # no "normal": no abnormal-vs-normal task
            df = df.assign(truth=np.nan, call=np.nan)
    elif not legacy:
        df = df.assign(truth=np.nan, call=np.nan)
    if "is_latest" in df.columns:
        df = df[_as_binary(df["is_latest"], "is_latest").astype(bool)]
    if df.empty and not (excluded["no_reference"] or excluded["ungradable"]):
        raise ValueError("reads table has no rows (after keeping only is_latest answers)")
    blank = df[list(REQUIRED)].isna().any(axis=1)
    if blank.any():
        raise ValueError(f"{int(blank.sum())} row(s) have empty values in {list(REQUIRED)}; fill them in or drop them")
    df["correct"] = _as_binary(df["correct"], "correct")
    for col in ("reader", "case"):
        df[col] = df[col].astype(str)

    conds = sorted(pd.unique(df["condition"].astype(str)))
    first = [UNAIDED] if UNAIDED in conds else []
    df["condition"] = pd.Categorical(df["condition"].astype(str), categories=first + [c for c in conds if c != UNAIDED])

    levels = list(pd.unique(df["level"].astype(str)))
    if level_order:
        order = [str(x) for x in level_order]
        unknown = sorted(set(levels) - set(order))
        if unknown:
            raise ValueError(f"level(s) {unknown} are not in level_order {order}")
        cats = [x for x in order if x in set(levels)]
    else:
        cats = sorted(levels)
    df["level"] = pd.Categorical(df["level"].astype(str), categories=cats)

    for col in ("step", "session", "version"):
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    for col in ("truth", "call", "ai_correct"):
        if col in df.columns:
            df[col] = _as_binary(df[col], col, allow_missing=True)
    if "truth" not in df.columns and "reference" in df.columns:
        ref = df["reference"]
        df["truth"] = np.where(ref.isna(), np.nan, (ref.astype(str) != normal_label).astype(float))
    if "call" not in df.columns and "answer" in df.columns:
        ans = df["answer"]
        df["call"] = np.where(ans.isna(), np.nan, (ans.astype(str) != normal_label).astype(float))
    if "ai_correct" not in df.columns and {"ai_label", "reference"} <= set(df.columns):
        ok = df["ai_label"].notna() & df["reference"].notna()
        df["ai_correct"] = np.where(ok, (df["ai_label"].astype(str) == df["reference"].astype(str)).astype(float), np.nan)
    for col in ("confidence", "ai_prob", "seconds", "years"):
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    if "confidence" in df.columns:
        c = df["confidence"].dropna()
        if ((c < 0) | (c > 100)).any():
            raise ValueError("column 'confidence' must be between 0 and 100")
    for col in ("answer_grade", "truth_grade"):
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    df = df.reset_index(drop=True)
    df.attrs["excluded"] = excluded
    df.attrs["primary_kind"] = kind or "single_choice"
    return df


def _from_study_export(df: pd.DataFrame, normal_label: str) -> pd.DataFrame:
    """Map ``study.domain.answers.answers_table`` columns onto the canonical ones.

    There ``truth`` is the reference *label* (text), ``findings`` the reader's ';'-joined findings
    and ``ai_probabilities`` a JSON dict of the probabilities shown; P(abnormal) is 1 - P(normal)
    or, for per-finding probabilities without ``normal``, the highest finding probability.
    """

    if "truth" in df.columns and "reference" not in df.columns:
        t = df["truth"].dropna()
        if len(t) and not pd.api.types.is_numeric_dtype(t) and not t.astype(str).str.lower().isin(_TRUE | _FALSE).all():
            df = df.rename(columns={"truth": "reference"})
    if "findings" in df.columns:
        chosen = df["findings"].fillna("").astype(str).str.split(";")
        for col in [c for c in df.columns if c.startswith("truth_") and c != "truth_findings"]:
            f = col[len("truth_"):]
            if f"answer_{f}" not in df.columns:
                hit = chosen.map(lambda xs, f=f: f in xs)
                if "answer" in df.columns:
                    hit = hit | (df["answer"].astype(str) == f)
                df[f"answer_{f}"] = np.where(df["answer"].isna(), np.nan, hit.astype(float)) if "answer" in df.columns else hit.astype(float)
    if "ai_prob" not in df.columns and "ai_probabilities" in df.columns:
        def abnormal(js):
            if not isinstance(js, str) or not js:
                return np.nan
            p = p_abnormal(json.loads(js), normal_label)  # the study's rule (study.domain.rules)
            return np.nan if p is None else p

        df["ai_prob"] = df["ai_probabilities"].map(abnormal)
    return df


def aided_conditions(df: pd.DataFrame) -> list[str]:
    """Non-reference conditions in category order."""
    return [c for c in df["condition"].cat.categories if c != UNAIDED]


def no_comparison(df: pd.DataFrame) -> str | None:
    """Why the conditions cannot be compared (no readings, one condition, no unaided readings), or None."""
    conds = [str(c) for c in df["condition"].cat.categories] if len(df) else []
    if not conds:
        return "there are no gradable readings with a reference answer yet"
    if len(conds) < 2:
        return (f"every reading so far is in one condition ({conds[0]}); comparing AI assistance needs readings "
                f"in the unaided condition and in at least one aided condition")
    if UNAIDED not in conds:
        return (f"there are no unaided readings yet (conditions read: {', '.join(conds)}); the unaided readings are "
                "the reference every aided condition is compared with")
    return None


def condition_pairs(conditions) -> list[tuple[str, str]]:
    """(condition, reference) of every comparison: each aided condition against unaided, then the aided
    conditions against each other (the later against the earlier, in the study's order)."""
    conditions = [str(c) for c in conditions]
    aided = [c for c in conditions if c != UNAIDED]
    versus_unaided = [(c, UNAIDED) for c in aided] if UNAIDED in conditions else []
    return versus_unaided + [(b, a) for i, a in enumerate(aided) for b in aided[i + 1:]]


def pair_key(condition: str, reference: str) -> str:
    """The results' key of a comparison: the aided condition alone against unaided, else 'b vs a'."""
    return condition if reference == UNAIDED else f"{condition} vs {reference}"


def findings(df: pd.DataFrame) -> list[str]:
    """Findings with both ``answer_<f>`` and ``truth_<f>`` columns."""
    return [c[len("answer_"):] for c in df.columns if c.startswith("answer_") and f"truth_{c[len('answer_'):]}" in df.columns]
