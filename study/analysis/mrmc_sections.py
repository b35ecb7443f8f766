"""The MRMC sections of the study analysis (AUC and percent correct, sensitivity and specificity of the abnormal
call) and the sizing grid built on the AUC's variance components.

Why these choices:

* Design. MRMC runs on the largest fully crossed subset of readers x cases (:func:`largest_crossed`), naming
  the readers and cases it leaves out. A design that is not crossed by construction (a multi-arm study, where
  each reader reads each case once, in one arm) has no such subset; it is analysed as it is, with the
  jackknife for incomplete designs (MRMCaov's: a reader keeps their estimate when the left-out case is one they
  did not read), and says so. Sizing needs a fully crossed pilot, so it is not offered from such a design.
* Comparisons. Every comparison is oriented as (condition - reference) in the order of
  :func:`study.analysis.reads.condition_pairs` (each aided arm against unaided, then the aided arms against each
  other), and the p-values of each figure of merit's comparisons are Holm-adjusted (``p_holm``).
* No claim from a degenerate variance. Where the OR statistics have no variance to test against
  (:data:`study.analysis.stats.mrmc.SE_TOL`), the stats layer gives no interval and no p-value; this layer says
  why in words (``degenerate``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from study.analysis.populations import clustered_by, population
from study.analysis.reads import condition_pairs
from study.analysis.stats.mrmc import binary_mrmc_analysis, mrmc_analysis
from study.analysis.stats.mrmc_sizing import ORComponents, power_grid, sample_size_table
from study.analysis.stats.multiplicity import holm

__all__ = ["MIN_MRMC_CASES", "MIN_MRMC_READERS", "SIZING_CASES", "SIZING_READERS", "largest_crossed",
           "mrmc_binary_section", "mrmc_section", "sizing_section"]

MIN_MRMC_CASES, MIN_MRMC_READERS = 4, 2
SIZING_READERS = (3, 5, 10, 15, 20)
SIZING_CASES = (50, 100, 200, 400)
CROSSED = "largest fully crossed subset of readers x cases"
INCOMPLETE = ("every reading, as an incomplete design (no reader read a case in every condition): the jackknife "
              "for incomplete designs (MRMCaov), where a reader keeps their estimate when the left-out case is one "
              "they did not read")
FOM_WORDS = {"auc": "AUCs", "percent_correct": "percentages correct", "sensitivity": "sensitivities",
             "specificity": "specificities"}


def largest_crossed(sub: pd.DataFrame, conditions: Sequence[str]) -> tuple[list[str], list[str]]:
    """(readers, cases) of the largest fully crossed subset: every kept reader read every kept case in
    every condition. Greedy over readers by how many cases they completed (most first), keeping the
    prefix with the most reader x case cells (ties: more readers)."""
    conds = set(map(str, conditions))
    have = sub.assign(_c=sub["condition"].astype(str))
    have = have[have["_c"].isin(conds)].drop_duplicates(["reader", "case", "_c"])
    n = have.groupby(["reader", "case"], observed=True).size()
    full = n[n == len(conds)].reset_index()
    sets = full.groupby("reader")["case"].agg(set)
    order = sorted(sets.index, key=lambda r: (-len(sets[r]), str(r)))
    best, inter, chosen = (-1, 0), None, ([], [])
    for k, r in enumerate(order, start=1):
        inter = set(sets[r]) if inter is None else inter & sets[r]
        score = (k * len(inter), k)
        if k >= MIN_MRMC_READERS and score >= best:
            best, chosen = score, (list(order[:k]), sorted(inter))
    return chosen


def _one_per_cell(sub: pd.DataFrame) -> pd.DataFrame:
    """One reading per reader x condition x case (sequential design: the aided re-read is the aided reading)."""
    if "step" in sub.columns:
        sub = sub.sort_values("step")
    return sub.drop_duplicates(["reader", "condition", "case"], keep="last")


def _design(sub: pd.DataFrame, conditions: list[str], excluded: list[dict]) -> tuple[pd.DataFrame, str]:
    """(readings to analyse, design in words): the largest fully crossed subset, noting in ``excluded`` the
    readers and cases it leaves out; or, when no subset is large enough, every reading as an incomplete design."""
    sub = _one_per_cell(sub)
    readers, cases = largest_crossed(sub, conditions)
    if len(readers) < MIN_MRMC_READERS or len(cases) < MIN_MRMC_CASES:
        return sub, INCOMPLETE
    all_cases = sorted(map(str, sub["case"].unique()))
    for r in sorted(set(map(str, sub["reader"].unique())) - set(readers)):
        mine = sub[sub["reader"] == r]
        done = mine.groupby("case")["condition"].nunique()
        excluded.append({"who": f"reader {r}", "why": (
            f"not fully crossed with the other readers: read {int((done == len(conditions)).sum())} of the "
            f"{len(all_cases)} cases in every condition, and this analysis needs every kept reader to have read "
            "every kept case in every condition")})
    dropped = [c for c in all_cases if c not in set(cases)]
    if dropped:
        shown = ", ".join(dropped[:8]) + (f" and {len(dropped) - 8} more" if len(dropped) > 8 else "")
        excluded.append({"who": f"{len(dropped)} case(s): {shown}",
                         "why": "not read by every kept reader in every condition"})
    return sub[sub["reader"].isin(readers) & sub["case"].isin(cases)], CROSSED


def _long(kept: pd.DataFrame, cluster: bool) -> pd.DataFrame:
    long = kept.rename(columns={"condition": "modality"})
    long["modality"] = long["modality"].astype(str)
    long["truth"] = long["truth"].astype(int)
    if cluster:
        long["patient"] = long["patient"].astype(str)
    return long


def _orient(comparisons: list[dict], pairs: list[tuple[str, str]]) -> list[dict]:
    """The comparisons as (condition - reference) in the order of ``pairs`` (the stats layer gives first minus
    second in sorted label order)."""
    index = {frozenset(p): (i, p) for i, p in enumerate(pairs)}
    out = []
    for c in comparisons:
        i, (treat, ref) = index[frozenset(c["modalities"])]
        if c["modalities"][0] == ref:
            lo, hi = c["ci"]
            c = {**c, "modalities": [treat, ref], "diff": None if c["diff"] is None else -c["diff"],
                 "stat": None if c["stat"] is None else -c["stat"],
                 "ci": [None if hi is None else -hi, None if lo is None else -lo]}
        out.append((i, c))
    return [c for _, c in sorted(out, key=lambda x: x[0])]


def _tidy(res: dict, fom: str, pairs: list[tuple[str, str]]) -> dict:
    """Orient every test's comparisons, Holm-adjust their p-values, and say why there is no test where the
    variance is degenerate."""
    for test in ("rrrc", "frrc", "rrfc"):
        t = res[test]
        t["comparisons"] = _orient(t["comparisons"], pairs)
        for c, adj in zip(t["comparisons"], holm([c["p"] for c in t["comparisons"]])):
            c["p_holm"] = adj
        if t.get("per_reader"):
            t["per_reader"] = _orient(t["per_reader"], pairs)
    flat = [c for c in res["rrrc"]["comparisons"] if not c["estimable"]]
    res["degenerate"] = None if not flat else (
        f"the readers' {FOM_WORDS.get(fom, fom)} do not vary where they are compared (every reader's difference "
        "between the conditions is the same, and leaving out cases changes nothing): there is no between-reader "
        "or between-case variance to test the difference against, so no interval or p-value is given")
    return res


def _short_of_cases(long: pd.DataFrame, fom: str) -> str | None:
    """Why a figure of merit has too few normal or abnormal cases, in words (None: enough). The AUC needs two of
    each kind; sensitivity two abnormal and specificity two normal cases read by every reader in every condition."""
    kinds = {"auc": (1, 0), "sensitivity": (1,), "specificity": (0,)}.get(fom, ())
    for truth in kinds:
        name = "abnormal" if truth == 1 else "normal"
        n = long.loc[long["truth"] == truth, "case"].nunique()
        per = long[long["truth"] == truth].groupby(["reader", "modality"]).size()
        fewest = 0 if len(per) < long.groupby(["reader", "modality"]).ngroups else int(per.min())
        if n < 2:
            return (f"{n} of the {long['case'].nunique()} cases {'is' if n == 1 else 'are'} {name}: the "
                    f"{'AUC' if fom == 'auc' else fom} needs at least two {name} cases")
        if fewest < 2:
            return (f"some reader read only {fewest} {name} case(s) in a condition: the "
                    f"{'AUC' if fom == 'auc' else fom} needs at least two {name} cases read by each reader in each "
                    "condition")
    return None


def _run_foms(out: dict, analysis, long: pd.DataFrame, foms: tuple[str, ...], alpha: float, cluster: bool,
              pairs: list[tuple[str, str]], incomplete: bool) -> None:
    """``out[fom]`` = the MRMC of each figure of merit (``out[fom + "_error"]`` = why one could not run)."""
    for fom in foms:
        short = _short_of_cases(long, fom)
        if short:
            out[f"{fom}_error"] = short
            continue
        try:
            res = analysis(long, fom=fom, alpha=alpha, cluster="patient" if cluster else None,
                           incomplete=incomplete).to_dict()
            out[fom] = _tidy(res, fom, pairs)
        except ValueError as exc:
            out[f"{fom}_error"] = str(exc)


def _enough(out: dict, kept: pd.DataFrame) -> bool:
    """Whether the design has the readers and cases MRMC needs; if not, ``out["note"]`` says so."""
    n_r, n_c = kept["reader"].nunique(), kept["case"].nunique()
    if n_r >= MIN_MRMC_READERS and n_c >= MIN_MRMC_CASES:
        return True
    out["note"] = (f"MRMC needs at least {MIN_MRMC_READERS} readers and {MIN_MRMC_CASES} cases read in every "
                   f"condition compared; these readings have {n_r} reader(s) and {n_c} case(s)")
    return False


def _section(sub: pd.DataFrame, df: pd.DataFrame, excluded: list[dict], patients: dict | None) -> tuple:
    """(readings to analyse, design in words, clustered?, comparisons, the section's common fields)."""
    conditions = [str(c) for c in df["condition"].cat.categories]
    kept, design = _design(sub, conditions, excluded)
    cluster = bool(patients and patients.get("clustered"))
    common = {"n_readers": int(kept["reader"].nunique()), "n_cases": int(kept["case"].nunique()), "design": design,
              "clustered_by": clustered_by(kept, cluster), "population": population(kept, excluded)}
    return kept, design, cluster, condition_pairs(conditions), common


def mrmc_section(df: pd.DataFrame, alpha: float, patients: dict | None = None) -> dict:
    """OR/Hillis MRMC of the AUC of confidence ratings and of percent correct.

    Rating = confidence that the case is abnormal: 50 + confidence/2 when the reader called it abnormal,
    50 - confidence/2 when normal (``call``); the raw confidence when there is no call. Ordinal primary
    questions use the grade as the rating against truth = any grade above the lowest. With cases clustered
    in patients (``patients["clustered"]``) the jackknife leaves out whole patients.
    """
    excluded: list[dict] = []
    ordinal = df.attrs.get("primary_kind") == "ordinal" and {"answer_grade", "truth_grade"} <= set(df.columns)
    if ordinal:
        ok = df["answer_grade"].notna() & df["truth_grade"].notna()
        sub = df[ok].copy()
        sub["rating"], sub["truth"] = sub["answer_grade"], (sub["truth_grade"] >= 1).astype(int)
        rating = "the reader's grade (ordinal rating); truth = reference grade above the lowest"
    elif not {"confidence", "truth"} <= set(df.columns):
        raise ValueError("the readings carry no confidence rating and no binary reference (abnormal or normal), "
                         "which an AUC needs")
    else:
        ok = df["confidence"].notna() & df["truth"].notna()
        sub = df[ok].copy()
        if "call" in sub.columns and sub["call"].notna().all():
            sub["rating"] = np.where(sub["call"] == 1, 50 + sub["confidence"] / 2, 50 - sub["confidence"] / 2)
            rating = "signed confidence: 50 +/- confidence/2 by the reader's abnormal/normal call"
        else:
            sub["rating"] = sub["confidence"]
            rating = "confidence (0-100) taken as confidence that the case is abnormal"
    if (~ok).any():
        excluded.append({"who": f"{int((~ok).sum())} reading(s)", "why": "no rating or no binary reference"})
    kept, design, cluster, pairs, common = _section(sub, df, excluded, patients)
    out = {"rating": rating, **common, "auc": None, "percent_correct": None}
    if _enough(out, kept):
        _run_foms(out, mrmc_analysis, _long(kept, cluster), ("auc", "percent_correct"), alpha, cluster, pairs,
                  design == INCOMPLETE)
    return out


def _binary_call(df: pd.DataFrame) -> tuple[pd.DataFrame, str] | None:
    """Readings with the reader's 0/1 abnormal call and the 0/1 reference, and the rule used (None if the
    primary question has no abnormal-vs-normal call, e.g. multiple choice)."""
    if df.attrs.get("primary_kind") == "ordinal" and {"answer_grade", "truth_grade"} <= set(df.columns):
        sub = df.copy()
        ok = sub["answer_grade"].notna() & sub["truth_grade"].notna()
        sub["call"] = np.where(ok, (sub["answer_grade"] >= 1).astype(float), np.nan)
        sub["truth"] = np.where(ok, (sub["truth_grade"] >= 1).astype(float), np.nan)
        return sub, "positive = the reader graded above the lowest grade; diseased = reference grade above the lowest"
    if not {"call", "truth"} <= set(df.columns) or not (df["call"].notna() & df["truth"].notna()).any():
        return None
    kind = df.attrs.get("primary_kind", "single_choice")
    rule = ("positive = the reader answered yes; diseased = reference yes" if kind == "boolean" else
            "positive = the reader's primary answer is not normal; diseased = the reference is not normal")
    return df, rule


def mrmc_binary_section(df: pd.DataFrame, alpha: float, patients: dict | None = None) -> dict:
    """OR/Hillis MRMC of the readers' sensitivity and specificity for the primary question's abnormal call
    (the reader's binary call against the reference), on the same kind of design as :func:`mrmc_section`."""
    made = _binary_call(df)
    if made is None:
        raise ValueError("the primary question has no abnormal-versus-normal call (for example a multiple choice "
                         "without 'normal'), so there is no sensitivity or specificity to compare")
    frame, rule = made
    excluded: list[dict] = []
    ok = frame["call"].notna() & frame["truth"].notna()
    if (~ok).any():
        excluded.append({"who": f"{int((~ok).sum())} reading(s)", "why": "no abnormal call or no binary reference"})
    kept, design, cluster, pairs, common = _section(frame[ok].copy(), df, excluded, patients)
    truth = kept.drop_duplicates("case")["truth"] if len(kept) else pd.Series(dtype=float)
    out = {"call": rule, **common, "n_diseased": int((truth == 1).sum()), "n_non_diseased": int((truth == 0).sum()),
           "sensitivity": None, "specificity": None}
    if _enough(out, kept):
        _run_foms(out, binary_mrmc_analysis, _long(kept, cluster), ("sensitivity", "specificity"), alpha, cluster,
                  pairs, design == INCOMPLETE)
    return out


def sizing_section(mrmc: dict | None, alpha: float, frrc_reference: str = "f") -> dict:
    """Analytic power (Hillis and Obuchowski; :mod:`study.analysis.stats.mrmc_sizing`) of a next study from this
    study's AUC MRMC variance components, for each comparison's observed AUC difference: a readers x cases grid
    and the cases needed for 80% power; or ``note`` saying why there is none."""
    auc = (mrmc or {}).get("auc")
    out: dict = {"comparisons": [], "population": (mrmc or {}).get("population"), "alpha": alpha}
    if not auc:
        why = (mrmc or {}).get("note") or (mrmc or {}).get("auc_error") or "no AUC MRMC analysis ran for this study"
        raise ValueError(f"sizing needs this study's AUC MRMC variance components ({why})")
    if (mrmc or {}).get("design") == INCOMPLETE:
        raise ValueError("sizing plans a fully crossed study from this study's variance components, and this "
                         "study's design is not fully crossed")
    vc = auc["var_components"]
    n_r, n_c = int(auc["n_readers"]), int(auc["n_cases"])
    out.update({"pilot": {"readers": n_r, "cases": n_c}, "readers": sorted({n_r, *SIZING_READERS}),
                "cases": sorted({n_c, *SIZING_CASES}), "clustered": bool(auc.get("cluster")),
                "frrc_reference": frrc_reference})
    for c in auc["rrrc"]["comparisons"]:
        treat, ref = c["modalities"]
        one = {"comparison": [treat, ref], "effect": c["diff"], "grid": None, "cases_for_80": None}
        out["comparisons"].append(one)
        if c["diff"] is None or abs(c["diff"]) < 1e-12:
            one["note"] = "the observed AUC difference is zero, so every design has power alpha"
            continue
        comp = ORComponents(var_tr=vc["var_tr"], cov1=vc["cov1"], cov2=vc["cov2"], cov3=vc["cov3"],
                            var_error=vc["var_error"], n_cases=n_c, effect=c["diff"], source="this study's AUC MRMC")
        one["components"] = comp.to_dict()
        try:
            one["grid"] = power_grid(comp, c["diff"], out["readers"], out["cases"], alpha=alpha,
                                     frrc_reference=frrc_reference)
            one["cases_for_80"] = sample_size_table(comp, c["diff"], out["readers"], target=0.8, alpha=alpha,
                                                    analysis="rrrc")
        except ValueError as exc:
            one["note"] = str(exc)
    return out
