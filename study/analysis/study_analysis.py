"""The one analysis of a study: :func:`analyze` takes the study's answers and settings and returns one
results object (JSON-serialisable dict). The app, ``python -m study analyze`` and the report all call it
with :data:`DEFAULTS`, so they show the same numbers.

Why populations are explicit: a live study always has someone part-way through, ungradable readings,
corrections and cases without a reference. Each section (``descriptive``, ``glmm``, ``mrmc``,
``reading_time``, ``ai_interaction``) carries ``population: {readers, cases, readings, excluded: [{who,
why}]}`` so that nothing is left out without a note. MRMC needs a fully crossed design; it runs on the
largest fully crossed subset of readers x cases (:func:`largest_crossed`) and names what it left out.
The sections that need more of the study (:data:`MORE_SECTIONS`: sensitivity and specificity MRMC of the
abnormal call on the same kind of subset, the sizing grid from the AUC MRMC's variance components, ordinal
agreement) carry a population too, or are None / carry a ``note`` saying why they did not run.

Patients (two eyes): when every case has a patient pseudonym and some patient has more than one case
(``answers_table``'s ``patient``), the GLMM nests cases in patients (``(1|patient/case)``), the MRMC
jackknife leaves out whole patients and the agreement bootstrap resamples patients; each such section says
so in ``clustered_by`` and ``meta.patients`` says why the analysis did or did not cluster.

Cut-off (:class:`Cutoff`): all answers, completed readers only, and/or answers submitted up to a time;
``until`` keeps, per reading, the latest version stored by then. The sensitivity analysis without fast
reads uses the study's rule (``study.domain.flags.is_fast_read`` at ``StudyConfig.fast_read_seconds``).
"""

from __future__ import annotations

import hashlib
import math
import platform
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from study.analysis import ai_interaction as ai
from study.analysis import descriptive
from study.analysis.agreement import ordinal_agreement
from study.analysis.methods import methods_text
from study.analysis.reads import UNAIDED, aided_conditions, prepare_reads
from study.analysis.stats.glmm import fit_glmm
from study.analysis.stats.lmm import fit_lmm_log_time
from study.analysis.stats.mrmc import binary_mrmc_analysis, mrmc_analysis
from study.analysis.stats.mrmc_sizing import ORComponents, power_grid, sample_size_table
from study.analysis.summary import summary_paragraph
from study.domain import flags, rules
from study.domain.config import DEFAULT_FAST_READ_SECONDS
from study.domain.timefmt import minute

__all__ = ["Cutoff", "DEFAULTS", "MORE_SECTIONS", "SECTIONS", "Settings", "analyze", "analyze_frame", "apply_cutoff",
           "largest_crossed", "snapshot_hash", "software_versions", "to_jsonable"]

SECTIONS = ("descriptive", "glmm", "mrmc", "reading_time", "ai_interaction")
# sections present where the study allows them (None otherwise), each with its population when it ran:
# MRMC of sensitivity and specificity, the sizing grid (from the AUC MRMC) and ordinal agreement (QWK)
MORE_SECTIONS = ("mrmc_binary", "sizing", "agreement")
MIN_MRMC_CASES, MIN_MRMC_READERS = 4, 2


@dataclass(frozen=True)
class Cutoff:
    """Which answers an analysis uses: completed readers only, and/or answers submitted up to ``until``."""
    completed_only: bool = False
    until: datetime | None = None  # UTC (naive = UTC, as stored)

    def describe(self) -> str:
        parts = (["completed readers only"] if self.completed_only else []) + (
            [f"answers submitted up to {minute(self.until)}"] if self.until else [])
        return "; ".join(parts) or "all answers stored"


@dataclass(frozen=True)
class Settings:
    """The settings every caller shares (:data:`DEFAULTS`); ``level_order`` None = the table's order."""
    n_boot: int = 1000
    seed: int = 0
    alpha: float = 0.05
    level_order: tuple[str, ...] | None = None
    cutoff: Cutoff = field(default_factory=Cutoff)
    normal_label: str = "normal"
    fast_read_seconds: float = DEFAULT_FAST_READ_SECONDS  # 0: no sensitivity analysis


DEFAULTS = Settings()


def to_jsonable(obj):
    """Plain Python for json.dump(allow_nan=False): DataFrames -> records, NaN/inf -> None."""
    if isinstance(obj, pd.DataFrame):
        return [to_jsonable(r) for r in obj.to_dict(orient="records")]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        x = float(obj)
        return x if math.isfinite(x) else None
    if obj is None or isinstance(obj, str):
        return obj
    if obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, datetime):
        return obj.isoformat()
    return str(obj)


def software_versions() -> dict:
    """Versions of python and the numerical stack, and of this package."""

    import plotly
    import scipy
    import statsmodels

    try:
        pkg = metadata.version("revision-reader-study")
    except metadata.PackageNotFoundError:
        pkg = _pyproject_version()
    return {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "pandas": pd.__version__, "statsmodels": statsmodels.__version__, "plotly": plotly.__version__,
            "revision-reader-study": pkg}


def _pyproject_version() -> str:
    try:
        data = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
        return str(data["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


# --- cut-off and populations ------------------------------------------------------------------------

def _utc(value) -> pd.Series:
    return pd.to_datetime(value, utc=True, format="ISO8601")


def apply_cutoff(answers: pd.DataFrame, cutoff: Cutoff, assigned: dict[str, int] | None = None
                 ) -> tuple[pd.DataFrame, list[dict], dict[str, dict]]:
    """(answers kept, exclusions [{who, why}], completion per reader {done, total, complete}).

    ``assigned``: readings assigned per reader (pseudonym); without it a reader counts as complete when
    they have answered every case of the table in every condition they were given.
    """
    table, excluded = answers.copy(), []
    if cutoff.until is not None:
        if "submitted_at" not in table.columns:
            raise ValueError("a cut-off time needs the answers' submission times (submitted_at)")
        until = pd.Timestamp(cutoff.until if cutoff.until.tzinfo else cutoff.until.replace(tzinfo=timezone.utc))
        late = _utc(table["submitted_at"]) > until
        if late.any():
            excluded.append({"who": f"{int(late.sum())} answer version(s)", "why": f"submitted after the cut-off "
                                                                                  f"({cutoff.describe()})"})
        table = table[~late].copy()
        if "assignment_id" in table.columns and "version" in table.columns:  # the latest version by then
            pairs = list(zip(table["assignment_id"], table["version"]))
            latest = rules.latest_versions(pairs)
            table["is_latest"] = [version == latest[a] for a, version in pairs]
    keys = "assignment_id" if "assignment_id" in table.columns else ["reader", "case", "condition"]
    done = table.drop_duplicates(keys).groupby("reader", observed=True).size()
    if assigned is None:
        per = table.drop_duplicates(["case", "condition"])
        assigned = {r: len(per) for r in done.index}
    completion = {str(r): {"done": int(done.get(r, 0)), "total": int(n), "complete": bool(n and done.get(r, 0) >= n)}
                  for r, n in assigned.items()}
    if cutoff.completed_only:
        partial = {r: c for r, c in completion.items() if not c["complete"] and c["done"]}
        for r, c in sorted(partial.items()):
            excluded.append({"who": f"reader {r}", "why": f"not completed ({c['done']} of {c['total']} readings; "
                                                          "cut-off: completed readers only)"})
        table = table[~table["reader"].astype(str).isin(partial)]
    return table, excluded, completion


def snapshot_hash(table: pd.DataFrame) -> str:
    """sha256 of the answers an analysis used (ids, versions, times, answers, scores), order-independent."""
    cols = [c for c in ("answer_id", "assignment_id", "version", "reader", "case", "condition", "answer",
                        "correct", "confidence", "submitted_at", "shown_at", "is_latest") if c in table.columns]
    rows = sorted("\x1f".join("" if pd.isna(v) else str(v) for v in row)
                  for row in table[cols].astype(object).itertuples(index=False))
    return hashlib.sha256(("\x1e".join(cols) + "\n" + "\n".join(rows)).encode()).hexdigest()


def _population(df: pd.DataFrame, excluded: Sequence[dict] = ()) -> dict:
    return {"readers": int(df["reader"].nunique()), "cases": int(df["case"].nunique()), "readings": int(len(df)),
            "excluded": [dict(e) for e in excluded]}


def _load_exclusions(df: pd.DataFrame, superseded: int) -> list[dict]:
    """What the loader left out (ungradable, no reference) and the corrected versions it did not use."""
    excluded = df.attrs.get("excluded", {})
    out = []
    for cond, n in (excluded.get("ungradable") or {}).items():
        out.append({"who": f"{n} reading(s) in {cond}", "why": "marked 'Image ungradable' (counted apart)"})
    if excluded.get("no_reference"):
        out.append({"who": f"{excluded['no_reference']} reading(s)", "why": "case without a reference answer"})
    if superseded:
        out.append({"who": f"{superseded} earlier answer version(s)",
                    "why": "superseded by a correction (the latest version counts)"})
    return out


def largest_crossed(sub: pd.DataFrame, conditions: Sequence[str]) -> tuple[list[str], list[str]]:
    """(readers, cases) of the largest fully crossed subset: every kept reader read every kept case in
    every condition. Greedy over readers by how many cases they completed (most first), keeping the
    prefix with the most reader x case cells (ties: more readers)."""
    have = sub.groupby(["reader", "case"])["condition"].agg(lambda c: set(map(str, c)))
    full = have[have.map(lambda s: set(map(str, conditions)) <= s)].reset_index()
    sets = full.groupby("reader")["case"].agg(set)
    order = sorted(sets.index, key=lambda r: (-len(sets[r]), str(r)))
    best, inter, chosen = (-1, 0), None, ([], [])
    for k, r in enumerate(order, start=1):
        inter = set(sets[r]) if inter is None else inter & sets[r]
        score = (k * len(inter), k)
        if k >= MIN_MRMC_READERS and score >= best:
            best, chosen = score, (list(order[:k]), sorted(inter))
    return chosen


def _patients(df: pd.DataFrame) -> dict:
    """Whether the analyses cluster on patients: every case has one patient pseudonym and at least one
    patient has more than one case (two eyes). ``{"clustered", "n_patients", "n_multi", "note"}``."""
    if "patient" not in df.columns or not df["patient"].notna().any():
        return {"clustered": False, "note": "the cases carry no patient pseudonym; cases are treated as independent"}
    per_case = df.groupby("case", observed=True)["patient"].agg(lambda v: v.dropna().astype(str).unique().tolist())
    missing = [str(c) for c, v in per_case.items() if not v]
    several = [str(c) for c, v in per_case.items() if len(v) > 1]
    if missing or several:
        what = (f"{len(missing)} case(s) have no patient pseudonym" if missing else
                f"{len(several)} case(s) have several patient pseudonyms")
        return {"clustered": False, "note": f"{what}; cases are treated as independent"}
    sizes = per_case.map(lambda v: v[0]).value_counts()
    if int(sizes.max()) < 2:
        return {"clustered": False, "n_patients": int(len(sizes)),
                "note": "one case per patient; cases are treated as independent"}
    return {"clustered": True, "n_patients": int(len(sizes)), "n_multi": int((sizes > 1).sum()),
            "note": f"{len(per_case)} cases from {len(sizes)} patients ({int((sizes > 1).sum())} with more than one "
                    "case): cases are clustered in patients"}


def _crossed_subset(sub: pd.DataFrame, conditions: list[str], excluded: list[dict]
                    ) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The largest fully crossed subset of ``sub`` (one row per reader x condition x case), noting in
    ``excluded`` the readers and cases it leaves out."""
    if "step" in sub.columns:  # sequential design: the aided re-read is the aided reading
        sub = sub.sort_values("step")
    sub = sub.drop_duplicates(["reader", "condition", "case"], keep="last")
    readers, cases = largest_crossed(sub, conditions)
    all_readers = sorted(map(str, sub["reader"].unique()))
    all_cases = sorted(map(str, sub["case"].unique()))
    for r in [r for r in all_readers if r not in set(readers)]:
        n = sub[sub["reader"] == r].drop_duplicates(["case"]).shape[0]
        excluded.append({"who": f"reader {r}", "why": f"not fully crossed with the others (read {n} of "
                                                      f"{len(all_cases)} cases; MRMC needs every case in every "
                                                      "condition)"})
    dropped = [c for c in all_cases if c not in set(cases)]
    if dropped:
        shown = ", ".join(dropped[:8]) + (f" and {len(dropped) - 8} more" if len(dropped) > 8 else "")
        excluded.append({"who": f"{len(dropped)} case(s): {shown}",
                         "why": "not read by every kept reader in every condition"})
    return sub[sub["reader"].isin(readers) & sub["case"].isin(cases)], readers, cases


def _long(kept: pd.DataFrame, cluster: bool) -> pd.DataFrame:
    long = kept.rename(columns={"condition": "modality"})
    long["modality"] = long["modality"].astype(str)
    long["truth"] = long["truth"].astype(int)
    if cluster:
        long["patient"] = long["patient"].astype(str)
    return long


def _mrmc(df: pd.DataFrame, alpha: float, patients: dict | None = None) -> dict | None:
    """OR/Hillis MRMC on the largest fully crossed subset: AUC of confidence ratings and percent correct.

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
        return None
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
    conditions = [str(c) for c in df["condition"].cat.categories]
    kept, readers, cases = _crossed_subset(sub, conditions, excluded)
    cluster = bool(patients and patients.get("clustered"))
    out = {"rating": rating, "n_readers": len(readers), "n_cases": len(cases), "auc": None, "percent_correct": None,
           "clustered_by": _clustered_by(kept, cluster), "population": _population(kept, excluded)}
    if len(cases) < MIN_MRMC_CASES or len(readers) < MIN_MRMC_READERS:
        out["note"] = (f"the largest fully crossed subset has {len(readers)} reader(s) x {len(cases)} case(s); "
                       f"MRMC needs at least {MIN_MRMC_READERS} readers and {MIN_MRMC_CASES} cases")
        return out
    _run_foms(out, mrmc_analysis, _long(kept, cluster), ("auc", "percent_correct"), alpha, cluster)
    return out


def _run_foms(out: dict, analysis, long: pd.DataFrame, foms: tuple[str, ...], alpha: float, cluster: bool) -> None:
    """``out[fom]`` = the MRMC of each figure of merit (``out[fom + "_error"]`` = why one could not run)."""
    for fom in foms:
        try:
            out[fom] = analysis(long, fom=fom, alpha=alpha, cluster="patient" if cluster else None).to_dict()
        except ValueError as exc:
            out[f"{fom}_error"] = str(exc)


def _clustered_by(kept: pd.DataFrame, cluster: bool) -> dict | None:
    """What the jackknife or bootstrap leaves out as one unit, when it is a patient (None: the case)."""
    if not cluster:
        return None
    n = int(kept["patient"].nunique()) if len(kept) else 0
    return {"unit": "patient", "n_patients": n,
            "note": f"resampling unit: the patient ({n} patients, all of a patient's cases together)"}


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


def _mrmc_binary(df: pd.DataFrame, alpha: float, patients: dict | None = None) -> dict | None:
    """OR/Hillis MRMC of the readers' sensitivity and specificity for the primary question's abnormal call
    (the reader's binary call against the reference), on the largest fully crossed subset of readers x cases
    with a call and a reference (the same subset as the AUC MRMC whenever every reading has a rating)."""

    made = _binary_call(df)
    if made is None:
        return None
    frame, rule = made
    excluded: list[dict] = []
    ok = frame["call"].notna() & frame["truth"].notna()
    if (~ok).any():
        excluded.append({"who": f"{int((~ok).sum())} reading(s)", "why": "no abnormal call or no binary reference"})
    sub = frame[ok].copy()
    conditions = [str(c) for c in df["condition"].cat.categories]
    kept, readers, cases = _crossed_subset(sub, conditions, excluded)
    cluster = bool(patients and patients.get("clustered"))
    truth = kept.drop_duplicates("case")["truth"] if len(kept) else pd.Series(dtype=float)
    out = {"call": rule, "n_readers": len(readers), "n_cases": len(cases),
           "n_diseased": int((truth == 1).sum()), "n_non_diseased": int((truth == 0).sum()),
           "design": "largest fully crossed subset (the incomplete-design jackknife is not used)",
           "sensitivity": None, "specificity": None, "clustered_by": _clustered_by(kept, cluster),
           "population": _population(kept, excluded)}
    if len(cases) < MIN_MRMC_CASES or len(readers) < MIN_MRMC_READERS:
        out["note"] = (f"the largest fully crossed subset has {len(readers)} reader(s) x {len(cases)} case(s); "
                       f"MRMC needs at least {MIN_MRMC_READERS} readers and {MIN_MRMC_CASES} cases")
        return out
    _run_foms(out, binary_mrmc_analysis, _long(kept, cluster), ("sensitivity", "specificity"), alpha, cluster)
    return out


SIZING_READERS = (3, 5, 10, 15, 20)
SIZING_CASES = (50, 100, 200, 400)


def _sizing(mrmc: dict | None, alpha: float) -> dict:
    """Analytic power (Hillis and Obuchowski; :mod:`study.analysis.stats.mrmc_sizing`) of a next study from this study's
    AUC MRMC variance components, for the observed AUC difference: a readers x cases grid and the cases
    needed for 80% power; or ``note`` saying why there is none."""

    auc = (mrmc or {}).get("auc")
    out: dict = {"grid": None, "cases_for_80": None, "population": (mrmc or {}).get("population")}
    if not auc:
        why = (mrmc or {}).get("note") or (mrmc or {}).get("auc_error") or "no AUC MRMC analysis ran for this study"
        out["note"] = f"no sizing: it needs this study's AUC MRMC variance components ({why})"
        if out["population"] is None:
            out["population"] = {"readers": 0, "cases": 0, "readings": 0,
                                 "excluded": [{"who": "every reading", "why": why}]}
        return out
    rrrc, vc = auc["rrrc"], auc["var_components"]
    comps = rrrc.get("comparisons") or []
    pick = next((c for c in comps if UNAIDED in c["modalities"]), comps[0] if comps else None)
    if pick is None or pick.get("diff") is None:
        out["note"] = "no sizing: the MRMC analysis gave no AUC difference between conditions"
        return out
    a, b = pick["modalities"]
    effect = float(pick["diff"]) if b == UNAIDED else -float(pick["diff"])
    aided = a if b == UNAIDED else b
    comp = ORComponents(var_tr=vc["var_tr"], cov1=vc["cov1"], cov2=vc["cov2"], cov3=vc["cov3"],
                        var_error=vc["var_error"], n_cases=int(auc["n_cases"]), effect=effect,
                        source="this study's AUC MRMC")
    n_r, n_c = int(auc["n_readers"]), int(auc["n_cases"])
    readers = sorted({n_r, *SIZING_READERS})
    cases = sorted({n_c, *SIZING_CASES})
    out.update({"effect": effect, "comparison": [aided, UNAIDED], "alpha": alpha, "components": comp.to_dict(),
                "pilot": {"readers": n_r, "cases": n_c}, "readers": readers, "cases": cases,
                "clustered": bool(auc.get("cluster"))})
    if abs(effect) < 1e-12:
        out["note"] = "no sizing: the observed AUC difference is zero, so every design has power alpha"
        return out
    try:
        grid = power_grid(comp, effect, readers, cases, alpha=alpha)
        need = sample_size_table(comp, effect, readers, target=0.8, alpha=alpha, analysis="rrrc")
    except ValueError as exc:
        out["note"] = f"no sizing: {exc}"
        return out
    out["grid"] = grid
    out["cases_for_80"] = need
    return out


def _interaction_p(fit) -> float | None:
    """Joint Wald chi-square p for all condition x level interaction terms."""
    terms = [t for t in fit.fixed_effects["term"] if ":" in t]
    if not terms:
        return None
    b = fit.fixed_effects.set_index("term").loc[terms, "estimate"].to_numpy()
    V = fit.vcov.loc[terms, terms].to_numpy()
    chi2 = float(b @ np.linalg.solve(V, b))
    return float(stats.chi2.sf(chi2, len(terms)))


def _odds_ratios(fit_dict: dict) -> None:
    """Add odds ratios with their 95% CI to each fixed effect of a GLMM summary."""
    for fe in fit_dict["fixed_effects"]:
        fe["odds_ratio"] = math.exp(fe["estimate"])
        fe["or_ci"] = [math.exp(fe["ci"][0]), math.exp(fe["ci"][1])]


def _reading_time(df: pd.DataFrame, levels: list[str], refs, messages: list[str]) -> dict | None:
    if "seconds" not in df.columns:
        return None
    timed = df[df["seconds"].notna() & (df["seconds"] > 0)]
    if timed.empty:
        return None
    excluded = []
    if len(timed) < len(df):
        excluded.append({"who": f"{len(df) - len(timed)} reading(s)", "why": "no reading time recorded"})
    tf = "seconds ~ condition * level" if len(levels) > 1 else "seconds ~ condition"
    lmm = _unless_it_cannot_run(lambda: fit_lmm_log_time(tf, timed, reference_levels=refs), "reading-time model",
                                messages)
    if lmm is None:
        return None
    med = timed.groupby(["condition", "level"], observed=True)["seconds"].median().rename("median").reset_index()
    return {**lmm.to_dict(), "median_seconds": med, "population": _population(timed, excluded)}


def _unless_it_cannot_run(compute, what: str, messages: list[str]):
    """A section that may not apply to these data (a ValueError says why): None, with the reason in ``messages``."""
    try:
        return compute()
    except ValueError as exc:
        messages.append(f"{what} skipped: {exc}")
        return None


def _after_study_exclusions(section: dict | None, base: list[dict]) -> dict | None:
    """List a section's own exclusions after the study-wide ones (``base``)."""
    if section and section.get("population"):
        section["population"]["excluded"] = base + section["population"]["excluded"]
    return section


def _glmm_and_effects(df: pd.DataFrame, levels: list[str], clustered: bool = False) -> tuple[dict, dict, dict]:
    formula = "correct ~ condition * level" if len(levels) > 1 else "correct ~ condition"
    if clustered:  # cases (photographs) nested in patients, as lme4's (1|patient/case)
        formula += " + (1|reader) + (1|patient/case)"
    refs = {"level": levels[0]} if len(levels) > 1 else None
    fit = fit_glmm(formula, df, reference_levels=refs)
    glmm = {**fit.to_dict(), "messages": list(fit.messages)}
    _odds_ratios(glmm)
    inter, effects = {}, {}
    aided = aided_conditions(df)
    for cond in aided:
        pair = df[df["condition"].isin([UNAIDED, cond])].copy()
        pair["condition"] = pair["condition"].cat.remove_unused_categories()
        f = fit if len(aided) == 1 else fit_glmm(formula, pair, reference_levels=refs)
        rows = ([f.marginal_effects(by="level")] if len(levels) > 1 else []) + [f.marginal_effects(by=None)]
        me = pd.concat(rows, ignore_index=True)
        me["level"] = me["level"].astype(str)
        effects[cond] = me.rename(columns={f"p_{UNAIDED}": "p_unaided", f"p_{cond}": "p_condition"})
        inter[cond] = _interaction_p(f)
    return glmm, inter, effects


def _fast_read_sensitivity(df: pd.DataFrame, settings: Settings, levels: list[str], refs,
                           clustered: bool = False) -> dict | None:
    """The main results again without the reads faster than the study's threshold (``study.domain.flags``)."""
    threshold = settings.fast_read_seconds
    if not threshold or "seconds" not in df.columns:
        return None
    fast = df["seconds"].map(lambda s: flags.is_fast_read(None if pd.isna(s) else float(s), threshold)).astype(bool)
    out = {"threshold_seconds": threshold, "n_fast": int(fast.sum()),
           "fast_by_reader": {str(r): int(n) for r, n in df[fast].groupby("reader", observed=True).size().items()}}
    if not fast.any():
        out["note"] = f"no reading took less than {threshold:g} s; nothing to leave out"
        return out
    rest = df[~fast].copy()
    excluded = [{"who": f"{int(fast.sum())} reading(s)", "why": f"faster than {threshold:g} s (fast-read flag)"}]
    out["population"] = _population(rest, excluded)
    messages: list[str] = []
    out["differences"] = descriptive.bootstrap_differences(rest, n_boot=settings.n_boot, seed=settings.seed,
                                                           alpha=settings.alpha)
    try:
        glmm, inter, effects = _glmm_and_effects(rest, levels, clustered)
        out["glmm"], out["glmm_interaction_p"], out["marginal_effects"] = glmm, inter, effects
    except (ValueError, np.linalg.LinAlgError) as exc:
        messages.append(f"mixed model without fast reads skipped: {exc}")
    rt = _reading_time(rest, levels, refs, messages)
    out["reading_time"] = {k: rt[k] for k in ("formula", "fixed_effects")} if rt else None
    out["messages"] = messages
    return out


def _agreement(df: pd.DataFrame, settings: Settings, base: list[dict], clustered: bool) -> dict | None:
    """Quadratic-weighted kappa for an ordinal primary question (``agreement.ordinal_agreement``): against
    the reference and between readers, by condition and level; the bootstrap resamples patients when the
    cases are clustered in patients, else cases."""

    if not {"answer_grade", "truth_grade"} <= set(df.columns):
        return None
    graded = df["answer_grade"].notna() & df["truth_grade"].notna()
    excluded = list(base)
    if (~graded).any():
        excluded.append({"who": f"{int((~graded).sum())} reading(s)", "why": "no grade or no reference grade"})
    out = ordinal_agreement(df, n_boot=settings.n_boot, seed=settings.seed, alpha=settings.alpha,
                            cluster="patient" if clustered else None).to_dict()
    out["clustered_by"] = _clustered_by(df[graded], clustered)
    out["population"] = _population(df[graded], excluded)
    return out


# --- the analysis -------------------------------------------------------------------------------------

def analyze_frame(df: pd.DataFrame, settings: Settings = DEFAULTS, *, excluded: Sequence[dict] = ()) -> dict:
    """Every analysis on a prepared reads frame (:func:`study.analysis.reads.prepare_reads`), with the
    exclusions made before it (``excluded``) in every section's population."""
    kind, loader = df.attrs.get("primary_kind", "single_choice"), df.attrs.get("excluded", {})
    levels = [str(x) for x in df["level"].cat.categories]
    sequential = "step" in df.columns and bool((df["step"] == 2).any())
    n_boot, seed, alpha = settings.n_boot, settings.seed, settings.alpha
    base = list(excluded) + _load_exclusions(df, int(df.attrs.get("superseded", 0)))
    res: dict = {
        "meta": {
            "n_reads": len(df), "n_readers": int(df["reader"].nunique()), "n_cases": int(df["case"].nunique()),
            "conditions": [str(c) for c in df["condition"].cat.categories], "levels": levels,
            "reference_condition": UNAIDED, "reference_level": levels[0],
            "design": "sequential" if sequential else "crossed", "alpha": alpha, "n_boot": n_boot, "seed": seed,
        },
        "messages": [],
        "primary": {"kind": kind, "excluded": loader},
    }
    n_ungradable = sum((loader.get("ungradable") or {}).values())
    if n_ungradable:
        res["messages"].append(f"{n_ungradable} reading(s) marked 'Image ungradable' are left out of every "
                               f"analysis (by condition: {loader['ungradable']})")
    if loader.get("no_reference"):
        res["messages"].append(f"{loader['no_reference']} reading(s) of cases without a reference answer are "
                               "left out")
    patients = _patients(df)
    clustered = patients["clustered"]
    res["meta"]["patients"] = patients
    res["agreement"] = _agreement(df, settings, base, clustered) if kind == "ordinal" else None
    population = _population(df, base)
    res["descriptive"] = {
        "accuracy": descriptive.accuracy_table(df, alpha),
        "differences": descriptive.bootstrap_differences(df, n_boot=n_boot, seed=seed, alpha=alpha),
        "sensitivity_specificity": descriptive.sensitivity_specificity(df, alpha),
        "population": population,
    }
    refs = {"level": levels[0]} if len(levels) > 1 else None
    glmm, res["glmm_interaction_p"], res["marginal_effects"] = _glmm_and_effects(df, levels, clustered)
    res["glmm"] = {**glmm, "clustered_by": _clustered_by(df, clustered), "population": population}
    res["reading_time"] = _after_study_exclusions(_reading_time(df, levels, refs, res["messages"]), base)
    res["mrmc"] = _after_study_exclusions(
        _unless_it_cannot_run(lambda: _mrmc(df, alpha, patients), "MRMC", res["messages"]), base)
    res["mrmc_binary"] = _after_study_exclusions(
        _unless_it_cannot_run(lambda: _mrmc_binary(df, alpha, patients), "MRMC of sensitivity and specificity",
                              res["messages"]), base)
    res["sizing"] = _sizing(res["mrmc"], alpha)
    table = ai.switching_table(df)
    res["ai_interaction"] = {
        "agreement": ai.agreement_with_ai(df, alpha),
        "switching": table,
        "switching_summary": ai.switching_summary(table),
        "kappa": ai.kappa_by_condition(df),
        "roc": ai.ai_roc(df),
        "operating_points": ai.reader_operating_points(df),
        "population": population,
    }
    res["sensitivity"] = {"fast_reads": _after_study_exclusions(
        _fast_read_sensitivity(df, settings, levels, refs, clustered), base)}
    res["software"] = software_versions()
    res = to_jsonable(res)

    res["methods"] = methods_text(res)
    res["summary"] = summary_paragraph(res)
    return res


def analyze(answers: pd.DataFrame, settings: Settings = DEFAULTS, *, study: dict | None = None,
            assigned: dict[str, int] | None = None) -> dict:
    """The study's analysis from its answers table (``study.domain.answers.answers_table``: every version, levels in
    the study's order) and ``settings``; ``study`` (name, design, dates, model card, ...) goes into the
    results as it is, ``assigned`` (readings per reader) decides who has completed."""
    table, excluded, completion = apply_cutoff(answers, settings.cutoff, assigned)
    if table.empty:
        raise ValueError(f"no answers are left after the data cut-off ({settings.cutoff.describe()})")
    order = settings.level_order
    if order is None and isinstance(answers.get("level", pd.Series(dtype=object)).dtype, pd.CategoricalDtype):
        order = tuple(map(str, answers["level"].cat.categories))
    superseded = int((~table["is_latest"].astype(bool)).sum()) if "is_latest" in table.columns else 0
    df = prepare_reads(table, level_order=order, normal_label=settings.normal_label)
    df.attrs["superseded"] = superseded
    res = analyze_frame(df, replace(settings, level_order=order), excluded=excluded)
    level_of = {str(r): str(lv) for r, lv in zip(answers["reader"], answers["level"])}
    used = table[table["is_latest"].astype(bool)] if "is_latest" in table.columns else table
    times = _utc(used["submitted_at"]) if "submitted_at" in used.columns and len(used) else None
    res["study"] = to_jsonable({
        **(study or {}),
        "cutoff": {"completed_only": settings.cutoff.completed_only,
                   "until": settings.cutoff.until.isoformat() if settings.cutoff.until else None,
                   "description": settings.cutoff.describe()},
        "snapshot_sha256": snapshot_hash(used), "answers_used": int(len(used)),
        "first_answer": times.min().isoformat() if times is not None else None,
        "last_answer": times.max().isoformat() if times is not None else None,
        "completion": [{"reader": r, "level": level_of.get(r), **c} for r, c in sorted(completion.items())],
    })

    res["methods"] = methods_text(res)  # again, now with the cut-off
    return res
