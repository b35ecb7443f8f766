"""The mixed-model sections: the GLMM ``correct ~ condition * level + (1|reader) + (1|case)`` and the reading-time
LMM of log seconds with the same terms, each stepping down in a stated order when a study's data cannot carry it;
the GLMM never lets separation pass for an estimate.

Why a ladder: a real study is often smaller than its design (a level with one reader, a reader who has not
reached the aided readings, a single reader). The full model is tried first; each step down names what the
data cannot show and why, in the investigator's words, and the section reports the model that ran:

1. ``correct ~ condition * level + (1|reader) + (1|case)`` (cases in patients: ``(1|patient/case)``);
2. without the condition x level interaction, when a condition x level cell has no readings (the AI effect
   cannot be estimated per level);
3. without the level, when there is one level, or one reader per level (the level effect cannot be told
   apart from the reader effect);
4. one random effect fewer: the reader effect goes with fewer than two readers, the case effect with fewer
   than two cases (or, if a fit still fails, the reader effect and then the case effect are tried alone).

A model whose fit fails (the optimiser or the linear algebra) moves to the next step, saying so. Separation
(some condition x level cell all correct or all wrong, so that a maximum-likelihood estimate is infinite;
:func:`study.analysis.stats.separation.is_separated`) is not a reason to drop terms: the same model is fitted
with blme's default normal priors on the fixed effects (:data:`~study.analysis.stats.glmm.BLME_NORMAL`, the
posterior mode, as ``blme::bglmer(fixef.prior = normal)``), and the section says so.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import patsy

from study.analysis.populations import population
from study.analysis.reads import condition_pairs, pair_key
from study.analysis.stats.glmm import BLME_NORMAL, fit_glmm
from study.analysis.stats.lmm import fit_lmm_log_time
from study.analysis.stats.multiplicity import holm
from study.analysis.stats.separation import is_separated
from study.analysis.summary import condition_name

__all__ = ["glmm_section", "model_ladder", "reading_time_section"]

ML = "maximum likelihood (Laplace approximation), as lme4::glmer"
PENALISED = (f"penalised maximum likelihood: normal priors N(0, {BLME_NORMAL[0]:g}^2) on the intercept and "
             f"N(0, {BLME_NORMAL[1]:g}^2) on every other fixed effect (blme's default for bglmer; Chung et al. 2013, "
             "Gelman et al. 2008), because some readings are separated")


def _cells(df: pd.DataFrame) -> pd.DataFrame:
    """Readings and correct readings per condition x level cell (observed cells only)."""
    g = df.groupby(["condition", "level"], observed=True)["correct"].agg(["sum", "count"]).reset_index()
    g["condition"], g["level"] = g["condition"].astype(str), g["level"].astype(str)
    return g


def model_ladder(df: pd.DataFrame, levels: list[str], clustered: bool = False,
                 response: str = "correct") -> list[tuple[str, str | None]]:
    """(lme4 formula, why the previous step was left) from the most to the least complete model the data allow;
    the first entry's reason says why the full model was not tried (None when it is)."""
    n_readers, n_cases = df["reader"].nunique(), df["case"].nunique()
    per_level = df.groupby("level", observed=True)["reader"].nunique()
    present = [lv for lv in levels if per_level.get(lv, 0) > 0]
    cells = _cells(df)
    conditions = [str(c) for c in df["condition"].cat.categories]
    missing = [(c, lv) for c in conditions for lv in present
               if not ((cells["condition"] == c) & (cells["level"] == lv)).any()]
    reasons: list[str] = []
    fixed = ["condition * level", "condition + level", "condition"]
    if len(present) < 2:
        fixed = ["condition"]
        reasons.append("there is one experience level, so there is no level effect to estimate")
    elif int(per_level.max()) < 2:
        fixed = ["condition"]
        reasons.append("there is one reader per experience level: the level effect cannot be separated from the "
                       "reader effect")
    elif missing:
        fixed = fixed[1:]
        shown = "; ".join(f"{lv} readers {condition_name(c)}" for c, lv in missing[:4])
        reasons.append(f"no readings in {len(missing)} condition x level cell(s) ({shown}"
                       f"{'; ...' if len(missing) > 4 else ''}): the AI effect cannot be estimated for each level")
    case_term = "(1|patient/case)" if clustered else "(1|case)"
    randoms = ["(1|reader)", case_term]
    if n_readers < 2:
        randoms.remove("(1|reader)")
        reasons.append("there is one reader, so reader-to-reader variation cannot be estimated: the results apply "
                       "to this reader only")
    if n_cases < 2:
        randoms.remove(case_term)
        reasons.append("there is one case, so case-to-case variation cannot be estimated")
    if not randoms:
        return []
    ladder = [(f"{response} ~ {f} + {' + '.join(randoms)}", None) for f in fixed]
    if len(randoms) == 2:  # last resort when both random effects are there but a fit fails
        ladder += [(f"{response} ~ {fixed[-1]} + {case_term}", "the model with both random effects could not be "
                                                              "estimated, so the reader effect was left out"),
                   (f"{response} ~ {fixed[-1]} + (1|reader)", "the model with the case effect could not be "
                                                              "estimated either, so only the reader effect was kept")]
    if reasons:
        ladder[0] = (ladder[0][0], "; ".join(reasons))
    return ladder


def _separated(formula: str, df: pd.DataFrame) -> bool:
    """Whether the fixed part of ``formula`` separates correct from wrong readings (any coding of the factors
    spans the same columns, so the observed categories are enough)."""
    rhs = re.sub(r"\s*\+\s*\(1\|[^)]*\)", "", formula).split("~", 1)[1]
    data = df.assign(condition=df["condition"].cat.remove_unused_categories(),
                     level=df["level"].cat.remove_unused_categories())
    return is_separated(np.asarray(patsy.dmatrix(rhs, data)), df["correct"].to_numpy(float))


def _pure_cells(df: pd.DataFrame) -> str:
    """The condition x level cells whose readings are all correct or all wrong, in words."""
    cells = _cells(df)
    pure = cells[(cells["sum"] == 0) | (cells["sum"] == cells["count"])]
    words = [f"every reading by {r.level} readers {condition_name(r.condition)} was "
             f"{'correct' if r.sum == r.count else 'wrong'} ({r.count})" for r in pure.itertuples()]
    return "; ".join(words) or "a combination of conditions and levels separates correct from wrong readings"


def _fit(formula: str, df: pd.DataFrame, refs: dict | None):
    """Fit ``formula`` (penalised when separated); (fit, separation words or None)."""
    separation = _pure_cells(df) if _separated(formula, df) else None
    fit = fit_glmm(formula, df, reference_levels=refs, fixef_prior=BLME_NORMAL if separation else None)
    fe = fit.fixed_effects
    if not np.isfinite(fe[["estimate", "se"]].to_numpy()).all():
        raise ValueError("the fit gave estimates without finite standard errors")
    return fit, separation


def _safe_exp(x: float) -> float:
    return math.exp(x) if x < 700 else math.inf


def _odds_ratios(fit_dict: dict) -> None:
    """Add odds ratios with their 95% CI to each fixed effect of a GLMM summary."""
    for fe in fit_dict["fixed_effects"]:
        fe["odds_ratio"] = _safe_exp(fe["estimate"])
        fe["or_ci"] = [_safe_exp(fe["ci"][0]), _safe_exp(fe["ci"][1])]


def _interaction_p(fit, treat: str, ref: str, levels: list[str]) -> float | None:
    """Joint Wald p that the treat-vs-ref effect is the same at every level (None without the interaction)."""
    if not any(":" in t for t in fit.fixed_effects["term"]) or len(levels) < 2:
        return None
    rows = pd.DataFrame([(arm, lv) for lv in levels for arm in (treat, ref)], columns=["condition", "level"])
    X = fit.design_rows(rows).reshape(len(levels), 2, -1)
    effect = X[:, 0] - X[:, 1]  # treat - ref at each level
    L = effect[1:] - effect[0]
    return fit.wald_test(L)[2]


def _effects(fit, df: pd.DataFrame, levels: list[str], by_level: bool) -> tuple[dict, dict]:
    """Model-based effect of every comparison (per level and overall) and its interaction p, keyed by
    :func:`pair_key`; overall p-values Holm-adjusted over the comparisons."""
    effects, inter = {}, {}
    for treat, ref in condition_pairs(df["condition"].cat.categories):
        rows = ([fit.marginal_effects(by="level", treat=treat, ref=ref)] if by_level else []) + [
            fit.marginal_effects(by=None, treat=treat, ref=ref)]
        me = pd.concat(rows, ignore_index=True)
        me["level"] = me["level"].astype(str)
        me = me.rename(columns={f"p_{ref}": "model_accuracy_reference", f"p_{treat}": "model_accuracy_condition"})
        me.insert(0, "reference", ref)
        me.insert(0, "condition", treat)
        key = pair_key(treat, ref)
        effects[key] = me
        inter[key] = _interaction_p(fit, treat, ref, levels) if by_level else None
    overall = [float(e.loc[e["level"] == "all", "p"].iloc[0]) for e in effects.values()]
    for e, adj in zip(effects.values(), holm(overall)):
        e["p_holm"] = np.where(e["level"] == "all", np.nan if adj is None else adj, np.nan)
    return effects, inter


def _first_that_fits(ladder: list[tuple[str, str | None]], fit_one) -> tuple[object, dict]:
    """The first model of ``ladder`` that ``fit_one`` estimates, and how it was reached (``steps``: every formula
    tried with why it was tried and why it failed; ``full_model``; ``fallback``: the reasons in one line)."""
    steps = []
    for formula, why in ladder:
        steps.append({"formula": formula, "why": why})
        try:
            result = fit_one(formula)
            break
        except (ValueError, np.linalg.LinAlgError, FloatingPointError) as exc:
            steps[-1]["failed"] = f"it could not be estimated ({exc})"
    else:
        raise ValueError("no model could be estimated from these readings ("
                         + "; ".join(s["failed"] for s in steps) + ")")
    fell_back = [s["why"] for s in steps if s["why"]] + [f"{s['formula']}: {s['failed']}" for s in steps[:-1]]
    return result, {"steps": steps, "full_model": not fell_back, "fallback": "; ".join(fell_back) or None}


def _present_levels(df: pd.DataFrame, levels: list[str]) -> tuple[list[str], dict | None]:
    """The levels with readings (study order) and the reference levels for the model (the first of them)."""
    present = [lv for lv in levels if lv in set(df["level"].astype(str))]
    return present, ({"level": present[0]} if len(present) > 1 else None)


def glmm_section(df: pd.DataFrame, levels: list[str], clustered: bool = False) -> tuple[dict, dict, dict]:
    """(the model that ran, with ``steps``, ``fallback`` and ``estimation``; effects by comparison; interaction p
    by comparison). Raises ValueError, in words, when no model of the ladder can be estimated."""
    ladder = model_ladder(df, levels, clustered)
    if not ladder:
        raise ValueError("the mixed model needs at least two readers or two cases")
    levels, refs = _present_levels(df, levels)
    (fit, separation), how = _first_that_fits(ladder, lambda formula: _fit(formula, df, refs))
    glmm = {**fit.to_dict(), "messages": list(fit.messages), **how,
            "estimation": PENALISED if separation else ML, "separation": separation}
    _odds_ratios(glmm)
    effects, inter = _effects(fit, df, levels, "level" in fit.formula)
    return glmm, inter, effects


def reading_time_section(df: pd.DataFrame, levels: list[str]) -> dict:
    """The LMM of log reading time with the GLMM's terms and ladder, and the median time per condition x level."""
    if "seconds" not in df.columns:
        raise ValueError("no reading times were recorded")
    timed = df[df["seconds"].notna() & (df["seconds"] > 0)]
    if timed.empty:
        raise ValueError("no reading has a recorded time")
    excluded = []
    if len(timed) < len(df):
        excluded.append({"who": f"{len(df) - len(timed)} reading(s)", "why": "no reading time recorded"})
    ladder = model_ladder(timed, levels, response="seconds")
    if not ladder:
        raise ValueError("the reading-time model needs at least two readers or two cases")
    levels, refs = _present_levels(timed, levels)
    lmm, how = _first_that_fits(ladder, lambda formula: fit_lmm_log_time(formula, timed, reference_levels=refs))
    med = timed.groupby(["condition", "level"], observed=True)["seconds"].median().rename("median").reset_index()
    return {**lmm.to_dict(), **how, "median_seconds": med, "population": population(timed, excluded)}
