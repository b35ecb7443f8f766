"""The results paragraph of the report, computed from the results dict (never typed by hand), and the few
formats every presentation of the results shares (percentages, points, p-values, condition names).

Why: a paper's headline sentence must match the tables to the digit; building it from the same
numbers (and testing that it does) removes transcription errors. It claims only what was tested: no
difference is described from an interval of zero width or a p-value from a degenerate variance, p-values
are "< 0.001" at the smallest, and with several comparisons the Holm-adjusted p-value is the one quoted.
"""

from __future__ import annotations

import math

__all__ = ["comparison_name", "condition_name", "p_phrase", "p_text", "pct", "pts", "summary_paragraph"]

CONDITION_NAMES = {"unaided": "unaided", "ai": "AI-aided", "aided": "AI-aided",
                   "ai_saliency": "AI-aided with saliency map"}


def condition_name(condition: str) -> str:
    """A condition key in words (``ai_saliency`` -> 'AI-aided with saliency map')."""
    return CONDITION_NAMES.get(str(condition), str(condition).replace("_", " "))


def comparison_name(condition: str, reference: str) -> str:
    """'AI-aided - unaided': the difference a comparison reports."""
    return f"{condition_name(condition)} - {condition_name(reference)}"


def pct(x: float) -> str:
    """A proportion as a percentage with one decimal: 0.7364 -> '73.6%'."""
    return f"{100 * x:.1f}%"


def pts(x: float) -> str:
    """A difference in percentage points with sign and one decimal (input in points)."""
    return f"{x:+.1f}"


def p_text(p) -> str:
    """A p-value as a reader of a paper expects it: three decimals, or "< 0.001" (never 0.000 or 1e-30)."""
    if p is None or (isinstance(p, float) and not math.isfinite(p)):
        return ""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_phrase(p) -> str:
    """'p = 0.012' or 'p < 0.001'."""
    text = p_text(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def _p(c: dict, n: int) -> str:
    """'p = 0.012' or, with several comparisons, 'Holm-adjusted p = 0.036'."""
    if n > 1 and c.get("p_holm") is not None:
        return f"Holm-adjusted {p_phrase(c['p_holm'])}"
    return p_phrase(c["p"])


def _ci_pts(lo: float, hi: float) -> str:
    return f"95% CI {pts(lo)} to {pts(hi)}"


def _rrrc_comparisons(mrmc_fom: dict | None, alpha: float):
    """(a, b, comparison, per-modality results, verdict, number of comparisons) for each random-reader
    random-case comparison of one MRMC figure of merit that has an estimate and a p-value; the verdict follows
    the (Holm-adjusted, with several comparisons) test at ``alpha``."""
    rrrc = (mrmc_fom or {}).get("rrrc") or {}
    per = rrrc.get("per_modality") or {}
    comps = rrrc.get("comparisons") or []
    for c in comps:
        a, b = c["modalities"]
        p = c.get("p_holm") if len(comps) > 1 and c.get("p_holm") is not None else c.get("p")
        if c.get("diff") is None or p is None or a not in per or b not in per:
            continue
        yield a, b, c, per, ("a difference" if p < alpha else "no significant difference"), len(comps)


def _label(cond: str, ref: str) -> str:
    if ref != "unaided":
        name = condition_name(cond)
        return f"{name[:1].upper()}{name[1:]} compared with {condition_name(ref)}"
    return "AI assistance" if cond in ("aided", "ai") else f"AI assistance ({condition_name(cond)})"


def _difference_sentence(d: dict, results: dict, alpha: float) -> list[str]:
    cond, ref = d["condition"], d.get("reference", "unaided")
    if d.get("acc_reference") is None or d.get("acc_condition") is None:
        return []
    s = (f"{_label(cond, ref)} changed accuracy from {pct(d['acc_reference'])} to {pct(d['acc_condition'])} "
         f"(difference {pts(100 * d['difference'])} points")
    if d.get("degenerate") or d.get("ci_low") is None:
        return [s + f"; no interval: {d.get('degenerate') or 'not estimable'})."]
    s += f", {_ci_pts(100 * d['ci_low'], 100 * d['ci_high'])}, two-way bootstrap over readers and cases)"
    key = cond if ref == "unaided" else f"{cond} vs {ref}"
    me = [m for m in results.get("marginal_effects", {}).get(key, []) if m.get("level") not in (None, "all")]
    me = [m for m in me if m.get("pp_diff") is not None and m.get("pp_ci_low") is not None]
    inter = results.get("glmm_interaction_p", {}).get(key)
    if len(me) >= 2 and inter is not None and inter < alpha:  # only a tested difference is described
        hi = max(me, key=lambda m: m["pp_diff"])
        lo = min(me, key=lambda m: m["pp_diff"])
        s += (f"; in the mixed model the gain was largest in {hi['level']} readers "
              f"({pts(hi['pp_diff'])} points, {_ci_pts(hi['pp_ci_low'], hi['pp_ci_high'])}; "
              f"odds ratio {hi['odds_ratio']:.2f}, 95% CI {hi['or_ci_low']:.2f} to {hi['or_ci_high']:.2f}) "
              f"and smallest in {lo['level']} readers ({pts(lo['pp_diff'])} points, "
              f"{_ci_pts(lo['pp_ci_low'], lo['pp_ci_high'])})")
    out = [s + "."]
    if inter is not None:
        verdict = ("the AI effect differed between experience levels" if inter < alpha else
                   "the data do not show that the AI effect differs between experience levels "
                   "(per-level estimates are in the table)")
        out.append(f"The test of a different effect across experience levels gave {p_phrase(inter)}: {verdict}.")
    return out


def _model_sentence(glmm: dict) -> list[str]:
    """What the mixed model could and could not estimate, when it stepped down or needed priors."""
    out = []
    if glmm.get("fallback"):
        out.append(f"The mixed model ran as {glmm['formula']} because {glmm['fallback']}.")
    if glmm.get("separation"):
        out.append(f"Some readings were separated ({glmm['separation']}), so the mixed model was fitted with "
                   "weakly informative normal priors on its fixed effects (as blme's bglmer).")
    return out


def summary_paragraph(results: dict) -> str:
    """One paragraph: overall change per comparison (bootstrap), level extremes (GLMM), MRMC, switching.

    Uses ``descriptive.differences`` (level 'all'), ``marginal_effects[key]`` (per level)
    and ``ai_interaction.switching_summary`` when present; a section that did not run is left out here
    (its reason is in its own section).
    """
    meta = results.get("meta", {})
    alpha = meta.get("alpha", 0.05)
    sentences = [
        f"{meta.get('n_readers', '?')} readers read {meta.get('n_cases', '?')} cases "
        f"({meta.get('n_reads', '?')} reads) without and with AI assistance."
    ]
    sentences += [m for m in results.get("messages", []) if m.startswith("Only the descriptive table")]
    comparisons = meta.get("comparisons") or []
    if len(comparisons) > 1:
        sentences.append(f"The {len(comparisons)} comparisons of conditions (each aided condition against unaided, "
                         "and the aided conditions against each other) are tested together: the p-values quoted are "
                         "Holm-adjusted.")
    for d in (results.get("descriptive") or {}).get("differences", []) or []:
        if d["level"] == "all":
            sentences += _difference_sentence(d, results, alpha)
    sentences += _model_sentence(results.get("glmm") or {})
    mr = results.get("mrmc") or {}
    for a, b, c, per, verdict, n in _rrrc_comparisons(mr.get("auc"), alpha):
        sentences.append(
            f"In the MRMC analysis ({mr['n_readers']} readers x {mr['n_cases']} cases) the AUC was "
            f"{per[a]['fom']:.3f} {condition_name(a)} and {per[b]['fom']:.3f} {condition_name(b)} (difference "
            f"{c['diff']:+.3f}, 95% CI {c['ci'][0]:+.3f} to {c['ci'][1]:+.3f}, {_p(c, n)}: {verdict}).")
    sb = results.get("mrmc_binary") or {}
    for fom in ("sensitivity", "specificity"):
        for a, b, c, bper, verdict, n in _rrrc_comparisons(sb.get(fom), alpha):
            sentences.append(
                f"The readers' {fom} for the abnormal call (MRMC, {sb['n_readers']} readers x {sb['n_cases']} cases) "
                f"was {pct(bper[a]['fom'])} {condition_name(a)} and {pct(bper[b]['fom'])} {condition_name(b)} "
                f"(difference {pts(100 * c['diff'])} points, {_ci_pts(100 * c['ci'][0], 100 * c['ci'][1])}, "
                f"{_p(c, n)}: {verdict}).")
    switching = [r for r in (results.get("ai_interaction") or {}).get("switching_summary", []) or []
                 if r["level"] == "all" and r.get("n_pairs")]
    for row in switching:
        rate = row.get("automation_bias_rate")
        where = f" ({condition_name(row['aided_condition'])})" if len(switching) > 1 else ""
        if rate is not None and not math.isnan(rate):
            sentences.append(
                f"Of initially correct reads shown a wrong suggestion{where}, {pct(rate)} were changed to a wrong answer "
                f"({row['right_to_wrong_after_wrong_ai']} reads); {row['wrong_to_right_after_correct_ai']} initially "
                f"wrong reads were corrected after a correct suggestion."
            )
    agr = results.get("agreement") or {}
    overall = [r for r in agr.get("vs_reference", []) or [] if r.get("level") == "all" and r.get("qwk") is not None]
    if overall:
        parts = [f"{r['qwk']:.3f} {condition_name(r['condition'])}" + (
            f" (95% CI {r['ci_low']:.3f} to {r['ci_high']:.3f})" if r.get("ci_low") is not None else "")
            for r in overall]
        sentences.append("Quadratic-weighted kappa of the readers' grades against the reference was "
                         + ", ".join(parts) + ".")
    ung = sum(((results.get("primary") or {}).get("excluded") or {}).get("ungradable", {}).values())
    if ung:
        sentences.append(f"{ung} readings were marked ungradable and left out.")
    return " ".join(sentences)
