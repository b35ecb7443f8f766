"""How readers interact with the AI: agreement, switching (automation bias), kappa, AI vs readers.

Why separate from accuracy: a gain in accuracy can hide harmful switches (right -> wrong after a
wrong suggestion); reporting them by experience level is what tells whether juniors defer to the
AI. Inputs are :func:`study.analysis.reads.prepare_reads` frames; each function documents the
optional columns it needs and returns an empty result (not an error) when they are absent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from study.analysis.descriptive import ALL, wilson_ci
from study.analysis.stats.mrmc import empirical_auc
from study.analysis.reads import UNAIDED

__all__ = ["ai_label_per_case", "agreement_with_ai", "switching_table", "switching_summary", "fleiss_kappa",
           "kappa_by_condition", "ai_roc", "reader_operating_points"]


def ai_label_per_case(df: pd.DataFrame) -> pd.Series:
    """The AI top suggestion per case from any row where it was shown (index: case)."""
    if "ai_label" not in df.columns:
        return pd.Series(dtype=object)
    shown = df[df["ai_label"].notna()]
    return shown.groupby("case")["ai_label"].first().astype(str)


def agreement_with_ai(df: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Share of reads whose ``answer`` equals the AI top suggestion, by condition x level and 'all'.

    Aided reads compare with the suggestion shown. Unaided reads compare with what the AI *would*
    have said, only when every case has an AI label somewhere in the table (otherwise unaided
    rows are left out). Needs ``answer`` and ``ai_label``.
    """
    cols = ["condition", "level", "agree", "n", "agreement", "ci_low", "ci_high"]
    if not {"answer", "ai_label"} <= set(df.columns):
        return pd.DataFrame(columns=cols)
    per_case = ai_label_per_case(df)
    sub = df[df["answer"].notna()].copy()
    ai = sub["ai_label"].where(sub["ai_label"].notna(), None)
    if set(sub["case"]) <= set(per_case.index):
        ai = sub["case"].map(per_case)
    sub["_ai"] = ai
    sub = sub[sub["_ai"].notna()]
    if sub.empty:
        return pd.DataFrame(columns=cols)
    sub["_agree"] = (sub["answer"].astype(str) == sub["_ai"].astype(str)).astype(int)
    g = sub.groupby(["condition", "level"], observed=True)["_agree"].agg(["sum", "count"]).reset_index()
    tot = sub.groupby("condition", observed=True)["_agree"].agg(["sum", "count"]).reset_index()
    tot["level"] = ALL
    g["level"] = g["level"].astype(str)
    out = pd.concat([g, tot], ignore_index=True).rename(columns={"sum": "agree", "count": "n"})
    out["condition"] = out["condition"].astype(str)
    out["agreement"] = out["agree"] / out["n"]
    out["ci_low"], out["ci_high"] = wilson_ci(out["agree"], out["n"], alpha)
    return out[cols]


def _paired_steps(df: pd.DataFrame) -> pd.DataFrame:
    """One row per reader x case with step-1 (unaided) and step-2 (aided) correctness."""
    if "step" not in df.columns:
        return pd.DataFrame()
    s1 = df[(df["step"] == 1) & (df["condition"] == UNAIDED)]
    s2 = df[(df["step"] == 2) & (df["condition"] != UNAIDED)]
    keep2 = ["reader", "case", "condition", "correct"] + [c for c in ("ai_correct",) if c in df.columns]
    pairs = s1[["reader", "case", "level", "correct"]].merge(
        s2[keep2], on=["reader", "case"], suffixes=("_before", "_after")
    )
    return pairs.rename(columns={"condition": "aided_condition"})


def switching_table(df: pd.DataFrame) -> pd.DataFrame:
    """Counts of (AI correct, before, after) in the sequential design, by level and 'all'.

    Needs ``step`` (1 unaided, 2 aided re-read of the same reader x case); the AI's correctness
    comes from ``ai_correct`` (derived from ``ai_label == reference`` by ``prepare_reads``) and is
    'unknown' without it. ``before``/``after`` are 'right'/'wrong'.
    """
    cols = ["aided_condition", "level", "ai_correct", "before", "after", "n"]
    pairs = _paired_steps(df)
    if pairs.empty:
        return pd.DataFrame(columns=cols)
    ai = pairs["ai_correct"] if "ai_correct" in pairs else pd.Series(np.nan, index=pairs.index)
    pairs["ai_correct"] = np.where(ai.isna(), "unknown", np.where(ai == 1, "correct", "wrong"))
    pairs["before"] = np.where(pairs["correct_before"] == 1, "right", "wrong")
    pairs["after"] = np.where(pairs["correct_after"] == 1, "right", "wrong")
    pairs["level"] = pairs["level"].astype(str)
    keys = ["aided_condition", "ai_correct", "before", "after"]
    by_level = pairs.groupby(["level", *keys], observed=True).size().reset_index(name="n")
    overall = pairs.groupby(keys, observed=True).size().reset_index(name="n")
    overall["level"] = ALL
    out = pd.concat([by_level, overall], ignore_index=True)
    out["aided_condition"] = out["aided_condition"].astype(str)
    order = {lev: i for i, lev in enumerate([*map(str, df["level"].cat.categories), ALL])}
    out = out.sort_values(["aided_condition", "level"], key=lambda s: s.map(order) if s.name == "level" else s, kind="stable")
    return out[cols].reset_index(drop=True)


def switching_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per condition x level: right->right, wrong->wrong, beneficial and harmful switches.

    ``wrong_to_right_after_correct_ai``: corrected by a correct suggestion; ``right_to_wrong_after_
    wrong_ai``: automation bias. Rates are over the reads at risk (initially wrong with a correct
    suggestion; initially right with a wrong suggestion).
    """
    rows = []
    for (cond, lev), t in table.groupby(["aided_condition", "level"], sort=False):
        def n(ai=None, before=None, after=None):
            m = np.ones(len(t), bool)
            for col, v in (("ai_correct", ai), ("before", before), ("after", after)):
                if v is not None:
                    m &= (t[col] == v).to_numpy()
            return int(t["n"][m].sum())

        at_risk_help, at_risk_harm = n("correct", "wrong"), n("wrong", "right")
        help_, harm = n("correct", "wrong", "right"), n("wrong", "right", "wrong")
        rows.append(
            {
                "aided_condition": cond,
                "level": lev,
                "n_pairs": n(),
                "right_to_right": n(before="right", after="right"),
                "wrong_to_wrong": n(before="wrong", after="wrong"),
                "wrong_to_right": n(before="wrong", after="right"),
                "right_to_wrong": n(before="right", after="wrong"),
                "wrong_to_right_after_correct_ai": help_,
                "right_to_wrong_after_wrong_ai": harm,
                "correction_rate": help_ / at_risk_help if at_risk_help else float("nan"),
                "automation_bias_rate": harm / at_risk_harm if at_risk_harm else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def fleiss_kappa(table: np.ndarray) -> float:
    """Fleiss' kappa of a subjects x categories count table with equal raters per subject."""
    t = np.asarray(table, float)
    n = t.sum(1)
    if len(t) == 0 or not np.allclose(n, n[0]) or n[0] < 2:
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of raters for every subject")
    N, m = t.shape[0], n[0]
    p_j = t.sum(0) / (N * m)
    P_i = (np.sum(t * t, 1) - m) / (m * (m - 1))
    P_bar, P_e = P_i.mean(), np.sum(p_j**2)
    return float((P_bar - P_e) / (1 - P_e)) if P_e < 1 else float("nan")


def kappa_by_condition(df: pd.DataFrame, column: str | None = None) -> pd.DataFrame:
    """Fleiss' kappa among readers per condition and per condition x level.

    Categories are ``answer`` (or ``correct`` when there is no answer column). Fleiss needs equal
    raters per case, so only cases read by the most common number of readers in that group are
    used (``n_cases``); with a fully crossed design that is every case.
    """
    column = column or ("answer" if "answer" in df.columns else "correct")
    rows = []
    for cond in df["condition"].cat.categories:
        sub = df[(df["condition"] == cond) & df[column].notna()]
        for lev in [ALL, *[str(x) for x in df["level"].cat.categories]]:
            part = sub if lev == ALL else sub[sub["level"].astype(str) == lev]
            part = part.drop_duplicates(["reader", "case"])
            if part.empty:
                continue
            counts = pd.crosstab(part["case"], part[column].astype(str))
            per_case = counts.sum(axis=1)
            m = int(per_case.mode().iloc[0])
            counts = counts[per_case == m]
            kappa = fleiss_kappa(counts.to_numpy()) if m >= 2 and len(counts) >= 2 else float("nan")
            note = None
            if m < 2:
                note = "each case was read by one reader in this group: agreement needs two or more"
            elif len(counts) < 2:
                note = "fewer than two cases were read by the same number of readers"
            elif not np.isfinite(kappa):
                note = "every reading gave the same answer: there is no chance-corrected agreement to estimate"
            rows.append({"condition": str(cond), "level": lev, "kappa": kappa, "n_cases": int(len(counts)),
                         "n_readers": m, "categories": column, "note": note})
    return pd.DataFrame(rows)


def ai_roc(df: pd.DataFrame) -> dict | None:
    """The AI's empirical ROC curve and AUC from per-case ``ai_prob`` and ``truth`` (None if absent).

    ``ai_prob`` is the AI's probability that the case is abnormal (or has the reference finding);
    it is taken from any row of the case where it was recorded.
    """
    if not {"ai_prob", "truth"} <= set(df.columns):
        return None
    per = df[df["ai_prob"].notna() & df["truth"].notna()].groupby("case").agg(score=("ai_prob", "first"), truth=("truth", "first"))
    if per.empty or per["truth"].nunique() < 2:
        return None
    s, y = per["score"].to_numpy(float), per["truth"].to_numpy(int)
    thr = np.r_[np.inf, np.unique(s)[::-1]]
    tpr = [(s[y == 1] >= t).mean() for t in thr]
    fpr = [(s[y == 0] >= t).mean() for t in thr]
    return {"fpr": [float(x) for x in fpr], "tpr": [float(x) for x in tpr],
            "thresholds": [None if np.isinf(t) else float(t) for t in thr],
            "auc": float(empirical_auc(s[None, :], y)[0]), "n_cases": int(len(per)),
            "n_abnormal": int(y.sum()), "n_normal": int((1 - y).sum())}


def reader_operating_points(df: pd.DataFrame) -> pd.DataFrame:
    """Each reader's sensitivity and 1 - specificity per condition for abnormal vs normal.

    Needs ``call`` (0/1 reader says abnormal; ``prepare_reads`` derives it from ``answer``) and
    ``truth``.
    """
    cols = ["reader", "level", "condition", "sensitivity", "fpr", "n_abnormal", "n_normal"]
    if not {"call", "truth"} <= set(df.columns):
        return pd.DataFrame(columns=cols)
    sub = df[df["call"].notna() & df["truth"].notna()]
    rows = []
    for (r, lev, cond), g in sub.groupby(["reader", "level", "condition"], observed=True):
        pos, neg = g[g["truth"] == 1], g[g["truth"] == 0]
        rows.append({"reader": r, "level": str(lev), "condition": str(cond),
                     "sensitivity": float(pos["call"].mean()) if len(pos) else float("nan"),
                     "fpr": float(neg["call"].mean()) if len(neg) else float("nan"),
                     "n_abnormal": int(len(pos)), "n_normal": int(len(neg))})
    return pd.DataFrame(rows, columns=cols)
