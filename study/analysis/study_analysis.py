"""The one analysis of a study: :func:`analyze` takes the study's answers and settings and returns one
results object (JSON-serialisable dict). The app, ``python -m study analyze`` and the report all call it
with :data:`DEFAULTS`, so they show the same numbers.

Why sections stand alone: a real study takes every shape (a level with one reader, a reader who has not
reached the aided readings, a cell where everyone is right, half the photographs ungradable, three arms).
Each section (:data:`SECTIONS`, :data:`MORE_SECTIONS`) runs on its own: it gives its result, or ``note``
saying in words why these readings cannot carry it, and the others still run; an unexpected failure is
written to the server log with its traceback, never to the page. A study without readings in unaided and an
aided condition gets the descriptive table and a sentence. Each section carries ``population: {readers,
cases, readings, excluded: [{who, why}]}`` so that nothing is left out without a note. The mixed models step
down in a stated order (:mod:`study.analysis.mixed_models`), MRMC runs on the largest fully crossed subset or
as an incomplete design (:mod:`study.analysis.mrmc_sections`), every comparison of conditions is made (each
aided arm against unaided, the aided arms against each other; Holm-adjusted p-values), and no interval of
zero width or p-value from a degenerate variance is reported (:mod:`study.analysis.claims`).

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
import logging
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

from study.analysis import ai_interaction as ai
from study.analysis import descriptive
from study.analysis.agreement import ordinal_agreement
from study.analysis.claims import withhold_degenerate
from study.analysis.methods import methods_text
from study.analysis.mixed_models import glmm_section, reading_time_section
from study.analysis.mrmc_sections import largest_crossed, mrmc_binary_section, mrmc_section, sizing_section
from study.analysis.populations import after_study_exclusions, clustered_by, load_exclusions, population
from study.analysis.reads import UNAIDED, condition_pairs, no_comparison, pair_key, prepare_reads
from study.analysis.summary import summary_paragraph
from study.domain import flags, rules
from study.domain.config import DEFAULT_FAST_READ_SECONDS
from study.domain.timefmt import minute

__all__ = ["Cutoff", "DEFAULTS", "MORE_SECTIONS", "SECTIONS", "Settings", "analyze", "analyze_frame", "apply_cutoff",
           "largest_crossed", "snapshot_hash", "software_versions", "to_jsonable"]

SECTIONS = ("descriptive", "glmm", "mrmc", "reading_time", "ai_interaction")
# MRMC of sensitivity and specificity, the sizing grid (from the AUC MRMC) and ordinal agreement (QWK)
MORE_SECTIONS = ("mrmc_binary", "sizing", "agreement")
SECTION_NAMES = {"descriptive": "descriptive accuracy", "glmm": "mixed-effects model", "mrmc": "MRMC analysis",
                 "mrmc_binary": "MRMC of sensitivity and specificity", "reading_time": "reading-time model",
                 "ai_interaction": "analysis of the interaction with the AI", "agreement": "agreement (kappa)",
                 "sizing": "sizing of a next study", "fast_reads": "sensitivity analysis without fast reads"}
log = logging.getLogger(__name__)


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
    frrc_reference: str = "f"  # sizing: FRRC power against F(1, K - 1) (RJafroc) or "chi2"


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


def _run(name: str, compute, population_if_not: dict) -> dict:
    """One section on its own: its result, or ``{"note": why, "population": ...}`` when it cannot run. A
    ValueError is a reason in words (these data cannot carry the section); anything else is unexpected: logged
    with its traceback for the server log, and the section says it could not be computed."""
    try:
        out = compute()
    except ValueError as exc:
        return {"note": str(exc), "population": population_if_not}
    except Exception:  # noqa: BLE001 - one section's failure must never hide the others
        log.exception("analysis section %r failed unexpectedly", name)
        return {"note": f"the {SECTION_NAMES.get(name, name)} could not be computed for these readings (an "
                        "unexpected problem; the server log has the details)", "population": population_if_not}
    return out


def _descriptive(df: pd.DataFrame, settings: Settings, base: list[dict]) -> dict:
    return {"accuracy": descriptive.accuracy_table(df, settings.alpha),
            "differences": descriptive.bootstrap_differences(df, n_boot=settings.n_boot, seed=settings.seed,
                                                             alpha=settings.alpha),
            "sensitivity_specificity": descriptive.sensitivity_specificity(df, settings.alpha),
            "population": population(df, base)}


def _glmm(df: pd.DataFrame, levels: list[str], clustered: bool, base: list[dict]) -> dict:
    glmm, inter, effects = glmm_section(df, levels, clustered)
    return {**glmm, "clustered_by": clustered_by(df, clustered), "population": population(df, base),
            "interaction_p": inter, "effects": effects}


def _ai_interaction(df: pd.DataFrame, alpha: float, base: list[dict]) -> dict:
    table = ai.switching_table(df)
    return {"agreement": ai.agreement_with_ai(df, alpha), "switching": table,
            "switching_summary": ai.switching_summary(table), "kappa": ai.kappa_by_condition(df),
            "roc": ai.ai_roc(df), "operating_points": ai.reader_operating_points(df), "population": population(df, base)}


def _agreement(df: pd.DataFrame, settings: Settings, base: list[dict], clustered: bool) -> dict:
    """Quadratic-weighted kappa for an ordinal primary question (``agreement.ordinal_agreement``): against
    the reference and between readers, by condition and level; the bootstrap resamples patients when the
    cases are clustered in patients, else cases."""
    if df.attrs.get("primary_kind") != "ordinal" or not {"answer_grade", "truth_grade"} <= set(df.columns):
        raise ValueError("quadratic-weighted kappa is for an ordinal primary question (a grade); this study's "
                         "primary question is not one")
    graded = df["answer_grade"].notna() & df["truth_grade"].notna()
    excluded = list(base)
    if (~graded).any():
        excluded.append({"who": f"{int((~graded).sum())} reading(s)", "why": "no grade or no reference grade"})
    out = ordinal_agreement(df, n_boot=settings.n_boot, seed=settings.seed, alpha=settings.alpha,
                            cluster="patient" if clustered else None).to_dict()
    out["clustered_by"] = clustered_by(df[graded], clustered)
    out["population"] = population(df[graded], excluded)
    return out


def _fast_read_sensitivity(df: pd.DataFrame, settings: Settings, levels: list[str], clustered: bool,
                           base: list[dict]) -> dict:
    """The main results again without the reads faster than the study's threshold (``study.domain.flags``)."""
    threshold = settings.fast_read_seconds
    if not threshold:
        raise ValueError("the study sets no fast-read threshold")
    if "seconds" not in df.columns:
        raise ValueError("no reading times were recorded, so fast reads cannot be told apart")
    fast = df["seconds"].map(lambda s: flags.is_fast_read(None if pd.isna(s) else float(s), threshold)).astype(bool)
    out = {"threshold_seconds": threshold, "n_fast": int(fast.sum()),
           "fast_by_reader": {str(r): int(n) for r, n in df[fast].groupby("reader", observed=True).size().items()}}
    if not fast.any():
        out["note"] = f"no reading took less than {threshold:g} s; nothing to leave out"
        return out
    rest = df[~fast].copy()
    excluded = base + [{"who": f"{int(fast.sum())} reading(s)", "why": f"faster than {threshold:g} s (fast-read flag)"}]
    out["population"] = population(rest, excluded)
    gap = no_comparison(rest)
    if gap:
        out["note"] = f"without the fast reads, {gap}"
        return out
    out["differences"] = descriptive.bootstrap_differences(rest, n_boot=settings.n_boot, seed=settings.seed,
                                                           alpha=settings.alpha)
    out["glmm"] = _run("glmm", lambda: _glmm(rest, levels, clustered, excluded), out["population"])
    rt = _run("reading_time", lambda: reading_time_section(rest, levels), out["population"])
    out["reading_time"] = {k: rt[k] for k in ("formula", "fixed_effects", "fallback") if k in rt} or rt
    return out


# --- the analysis -------------------------------------------------------------------------------------

def analyze_frame(df: pd.DataFrame, settings: Settings = DEFAULTS, *, excluded: Sequence[dict] = ()) -> dict:
    """Every analysis on a prepared reads frame (:func:`study.analysis.reads.prepare_reads`), with the
    exclusions made before it (``excluded``) in every section's population. Each section runs on its own
    (:func:`_run`): one that cannot run for these data carries ``note`` (why) instead of its result."""
    kind, loader = df.attrs.get("primary_kind", "single_choice"), df.attrs.get("excluded", {})
    levels = [str(x) for x in df["level"].cat.categories]
    sequential = "step" in df.columns and bool((df["step"] == 2).any())
    n_boot, seed, alpha = settings.n_boot, settings.seed, settings.alpha
    base = list(excluded) + load_exclusions(df, int(df.attrs.get("superseded", 0)))
    conditions = [str(c) for c in df["condition"].cat.categories]
    res: dict = {
        "meta": {
            "n_reads": len(df), "n_readers": int(df["reader"].nunique()), "n_cases": int(df["case"].nunique()),
            "conditions": conditions, "levels": levels, "reference_condition": UNAIDED,
            "reference_level": levels[0] if levels else None, "comparisons": [
                {"condition": c, "reference": r, "key": pair_key(c, r)} for c, r in condition_pairs(conditions)],
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
    patients = _patients(df) if len(df) else {"clustered": False, "note": "no readings"}
    clustered = patients["clustered"]
    res["meta"]["patients"] = patients
    everyone = population(df, base)
    res["descriptive"] = _run("descriptive", lambda: _descriptive(df, settings, base), everyone)
    gap = no_comparison(df)
    if gap:
        res["messages"].append(f"Only the descriptive table is given: {gap}.")
        for name in (*SECTIONS, *MORE_SECTIONS):
            if name != "descriptive":
                res[name] = {"note": gap, "population": everyone}
        res["glmm_interaction_p"], res["marginal_effects"] = {}, {}
        res["sensitivity"] = {"fast_reads": {"note": gap, "population": everyone}}
    else:
        glmm = _run("glmm", lambda: _glmm(df, levels, clustered, base), everyone)
        res["glmm_interaction_p"], res["marginal_effects"] = glmm.pop("interaction_p", {}), glmm.pop("effects", {})
        res["glmm"] = glmm
        res["reading_time"] = after_study_exclusions(
            _run("reading_time", lambda: reading_time_section(df, levels), everyone), base)
        res["mrmc"] = after_study_exclusions(_run("mrmc", lambda: mrmc_section(df, alpha, patients), everyone), base)
        res["mrmc_binary"] = after_study_exclusions(
            _run("mrmc_binary", lambda: mrmc_binary_section(df, alpha, patients), everyone), base)
        res["sizing"] = _run("sizing", lambda: sizing_section(res["mrmc"], alpha, settings.frrc_reference),
                             res["mrmc"].get("population") or everyone)
        res["ai_interaction"] = _run("ai_interaction", lambda: _ai_interaction(df, alpha, base), everyone)
        res["agreement"] = _run("agreement", lambda: _agreement(df, settings, base, clustered), everyone)
        res["sensitivity"] = {"fast_reads": _run(
            "fast_reads", lambda: _fast_read_sensitivity(df, settings, levels, clustered, base), everyone)}
    res["software"] = software_versions()
    res = withhold_degenerate(to_jsonable(res))
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
