"""The results paragraph of the report, computed from the results dict (never typed by hand).

Why: a paper's headline sentence must match the tables to the digit; building it from the same
numbers (and testing that it does) removes transcription errors.
"""

from __future__ import annotations

import math

__all__ = ["condition_name", "pct", "pts", "summary_paragraph"]

CONDITION_NAMES = {"unaided": "unaided", "ai": "AI-aided", "aided": "AI-aided",
                   "ai_saliency": "AI-aided with saliency map"}


def condition_name(condition: str) -> str:
    """A condition key in words (``ai_saliency`` -> 'AI-aided with saliency map')."""
    return CONDITION_NAMES.get(str(condition), str(condition).replace("_", " "))


def pct(x: float) -> str:
    """A proportion as a percentage with one decimal: 0.7364 -> '73.6%'."""
    return f"{100 * x:.1f}%"


def pts(x: float) -> str:
    """A difference in percentage points with sign and one decimal (input in points)."""
    return f"{x:+.1f}"


def _ci_pts(lo: float, hi: float) -> str:
    return f"95% CI {pts(lo)} to {pts(hi)}"


def _rrrc_comparisons(mrmc_fom: dict | None, alpha: float):
    """(a, b, comparison, per-modality results, verdict) for each random-reader random-case comparison of one
    MRMC figure of merit that has an estimate and a p-value; the verdict follows the test at ``alpha``."""
    rrrc = (mrmc_fom or {}).get("rrrc") or {}
    per = rrrc.get("per_modality") or {}
    for c in rrrc.get("comparisons") or []:
        a, b = c["modalities"]
        if c.get("diff") is None or c.get("p") is None or a not in per or b not in per:
            continue
        yield a, b, c, per, ("a difference" if c["p"] < alpha else "no significant difference")


def summary_paragraph(results: dict) -> str:
    """One paragraph: overall change per aided condition (bootstrap), level extremes (GLMM), ORs, switching.

    Uses ``descriptive.differences`` (level 'all'), ``marginal_effects[condition]`` (per level)
    and ``ai_interaction.switching_summary`` when present.
    """
    meta = results.get("meta", {})
    sentences = [
        f"{meta.get('n_readers', '?')} readers read {meta.get('n_cases', '?')} cases "
        f"({meta.get('n_reads', '?')} reads) without and with AI assistance."
    ]
    diffs = results.get("descriptive", {}).get("differences", [])
    alpha = meta.get("alpha", 0.05)
    for d in diffs:
        if d["level"] != "all":
            continue
        cond = d["condition"]
        label = "AI assistance" if cond in ("aided", "ai") else f"AI assistance ({condition_name(cond)})"
        s = (
            f"{label} changed accuracy from {pct(d['acc_unaided'])} to {pct(d['acc_condition'])} "
            f"(difference {pts(100 * d['difference'])} points, {_ci_pts(100 * d['ci_low'], 100 * d['ci_high'])}, "
            f"two-way bootstrap over readers and cases)"
        )
        me = [m for m in results.get("marginal_effects", {}).get(cond, []) if m.get("level") not in (None, "all")]
        me = [m for m in me if m.get("pp_diff") is not None and not math.isnan(m["pp_diff"])]
        inter = results.get("glmm_interaction_p", {}).get(cond)
        if len(me) >= 2 and inter is not None and inter < alpha:  # only a tested difference is described
            hi = max(me, key=lambda m: m["pp_diff"])
            lo = min(me, key=lambda m: m["pp_diff"])
            s += (
                f"; in the mixed model the gain was largest in {hi['level']} readers "
                f"({pts(hi['pp_diff'])} points, {_ci_pts(hi['pp_ci_low'], hi['pp_ci_high'])}; "
                f"odds ratio {hi['odds_ratio']:.2f}, 95% CI {hi['or_ci_low']:.2f} to {hi['or_ci_high']:.2f}) "
                f"and smallest in {lo['level']} readers ({pts(lo['pp_diff'])} points, "
                f"{_ci_pts(lo['pp_ci_low'], lo['pp_ci_high'])})"
            )
        sentences.append(s + ".")
        if inter is not None:
            verdict = ("the AI effect differed between experience levels" if inter < alpha else
                       "the data do not show that the AI effect differs between experience levels "
                       "(per-level estimates are in the table)")
            sentences.append(f"The test of a different AI effect across experience levels gave p = {inter:.3g}: "
                             f"{verdict}.")
    mr = results.get("mrmc") or {}
    for a, b, c, per, verdict in _rrrc_comparisons(mr.get("auc"), alpha):
        sentences.append(
            f"In the MRMC analysis ({mr['n_readers']} readers x {mr['n_cases']} cases fully crossed) the AUC was "
            f"{per[a]['fom']:.3f} {condition_name(a)} and {per[b]['fom']:.3f} {condition_name(b)} (difference "
            f"{c['diff']:+.3f}, 95% CI {c['ci'][0]:+.3f} to {c['ci'][1]:+.3f}, p = {c['p']:.3g}: {verdict}).")
    sb = results.get("mrmc_binary") or {}
    for fom in ("sensitivity", "specificity"):
        for a, b, c, bper, verdict in _rrrc_comparisons(sb.get(fom), alpha):
            sentences.append(
                f"The readers' {fom} for the abnormal call (MRMC, {sb['n_readers']} readers x {sb['n_cases']} cases) "
                f"was {pct(bper[a]['fom'])} {condition_name(a)} and {pct(bper[b]['fom'])} {condition_name(b)} "
                f"(difference {pts(100 * c['diff'])} points, {_ci_pts(100 * c['ci'][0], 100 * c['ci'][1])}, "
                f"p = {c['p']:.3g}: {verdict}).")
    switching = [r for r in results.get("ai_interaction", {}).get("switching_summary", [])
                 if r["level"] == "all" and r.get("n_pairs")]
    for row in switching:
        rate = row.get("automation_bias_rate")
        where = f" ({row['aided_condition']})" if len(switching) > 1 else ""
        if rate is not None and not math.isnan(rate):
            sentences.append(
                f"Of initially correct reads shown a wrong suggestion{where}, {pct(rate)} were changed to a wrong answer "
                f"({row['right_to_wrong_after_wrong_ai']} reads); {row['wrong_to_right_after_correct_ai']} initially "
                f"wrong reads were corrected after a correct suggestion."
            )
    agr = results.get("agreement") or {}
    overall = [r for r in agr.get("vs_reference", []) if r.get("level") == "all" and r.get("qwk") is not None]
    if overall:
        parts = [f"{r['qwk']:.3f} {r['condition']}" + (f" (95% CI {r['ci_low']:.3f} to {r['ci_high']:.3f})"
                                                       if r.get("ci_low") is not None else "") for r in overall]
        sentences.append("Quadratic-weighted kappa of the readers' grades against the reference was "
                         + ", ".join(parts) + ".")
    ung = sum(((results.get("primary") or {}).get("excluded") or {}).get("ungradable", {}).values())
    if ung:
        sentences.append(f"{ung} readings were marked ungradable and left out.")
    return " ".join(sentences)
