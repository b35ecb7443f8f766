"""The Methods paragraph of the report, built from the results: it describes only the sections that ran.

Why from the results: a Methods section that describes an MRMC analysis the report does not contain (or a
bootstrap with other settings than the one run) misleads the reader of a paper draft.
"""

from __future__ import annotations

__all__ = ["methods_text"]


def _match(kind: str) -> str:
    return {"ordinal": "whose grade on the primary question equalled the reference grade",
            "multi_choice": "whose set of answers to the primary question matched the reference exactly",
            "boolean": "whose yes/no answer to the primary question matched the reference"}.get(
        kind, "whose primary diagnosis matched the reference standard")


def methods_text(res: dict) -> str:
    """One paragraph for the sections present in ``res`` (``study.analysis.study_analysis`` results)."""
    m = res["meta"]
    kind = (res.get("primary") or {}).get("kind", "single_choice")
    alpha = m.get("alpha", 0.05)
    level = int(round(100 * (1 - alpha)))
    clustered = bool(((m.get("patients") or {}).get("clustered")))
    n_comp = len(m.get("comparisons") or [])
    which = ("each aided condition against unaided and the aided conditions against each other" if n_comp > 1
             else "aided minus unaided")
    parts = [
        f"Accuracy is the proportion of reads {_match(kind)}, reported as a percentage with Wilson {level}% "
        "intervals by condition and experience level (reads treated as independent).",
        f"Differences between conditions ({which}) use a two-way cluster bootstrap "
        f"({m['n_boot']} replicates, seed {m['seed']}) that resamples readers within experience level and cases "
        "independently, with percentile intervals, in percentage points.",
    ]
    glmm = res.get("glmm") or {}
    if glmm.get("fixed_effects"):
        parts.append(
            "The primary model is a logistic mixed model, correct ~ condition * level + (1|reader) + "
            f"{'(1|patient/case), cases nested in patients,' if clustered else '(1|case),'} fitted by Laplace "
            f"maximum likelihood (as lme4::glmer), with unaided reading and {m['reference_level']} readers as "
            "references; when the data cannot carry it, the model steps down in a fixed order (without the "
            "condition x level interaction when a condition x level cell has no readings; without the level when "
            "there is one level or one reader per level; without the reader or case effect when there is one "
            "reader or one case), and when some readings are separated (a cell all correct or all wrong) the same "
            "model is fitted with normal priors N(0, 10^2) on the intercept and N(0, 2.5^2) on the other fixed "
            "effects (the posterior mode, as blme::bglmer with its default fixed-effect prior). The effect of each "
            "comparison per level is given as an odds ratio and as population-averaged percentage points "
            "(delta-method intervals), and a joint Wald test of the condition x level terms tests whether it "
            "differs between levels.")
        if glmm.get("fallback") or glmm.get("separation"):
            parts.append(f"Here the model that ran was {glmm['formula']} ({glmm['estimation']})"
                         + (f", because {glmm['fallback']}" if glmm.get("fallback") else "") + ".")
    if n_comp > 1:
        parts.append(f"With {n_comp} comparisons of conditions, the p-values of each analysis are adjusted by "
                     "Holm's step-down method (family-wise error rate at alpha); intervals are unadjusted 95% "
                     "intervals.")
    parts.append("Where an estimate's variance is zero or cannot be estimated, no interval and no p-value are "
                 "given, and the table says why.")
    if clustered:
        parts.insert(0, f"{m['patients']['note'][0].upper()}{m['patients']['note'][1:]} (the patient pseudonym of "
                        "the case manifest); the mixed model nests cases in patients, and the MRMC jackknife and "
                        "the agreement bootstrap leave out or resample whole patients.")
    if (res.get("reading_time") or {}).get("fixed_effects"):
        parts.append("Reading time is modelled as log(seconds) in a linear mixed model with the same terms and the "
                     "same steps down (REML).")
    mr = res.get("mrmc") or {}
    if mr.get("auc"):
        where = ("on every reading as an incomplete design, with the jackknife for incomplete designs (MRMCaov)"
                 if str(mr.get("design", "")).startswith("every reading") else
                 "on the largest fully crossed subset of readers and cases (the readers and cases left out are "
                 "listed with the results)")
        parts.append("An Obuchowski-Rockette analysis with Hillis degrees of freedom compares empirical AUCs of "
                     f"the readers' ratings ({mr.get('rating')}) between conditions {where}.")
    if mr.get("auc") and clustered and mr["auc"].get("cluster"):
        parts.append("Its jackknife leaves out whole patients (all of a patient's cases together).")
    sb = res.get("mrmc_binary") or {}
    if sb.get("sensitivity") or sb.get("specificity"):
        parts.append("The readers' sensitivity and specificity for the primary question's abnormal call "
                     f"({sb.get('call')}) are compared between conditions by the same Obuchowski-Rockette analysis "
                     "with Hillis degrees of freedom, on the same kind of design, with a call and a binary reference; "
                     "the jackknife leaves out only the cases that enter each figure of "
                     "merit (diseased cases for sensitivity, non-diseased for specificity), as in MRMCaov"
                     + (", and whole patients rather than single cases." if clustered else "."))
    sz = res.get("sizing") or {}
    if any(c.get("grid") for c in sz.get("comparisons") or []):
        parts.append("Study sizing uses the analytic method of Hillis and Obuchowski (as RJafroc) with this study's "
                     f"AUC variance components ({sz['pilot']['readers']} readers x {sz['pilot']['cases']} cases) as "
                     "the pilot and each comparison's observed AUC difference as the effect: power of the two-sided "
                     f"test at alpha = {sz['alpha']:g} for random readers and cases over a grid of readers x cases, "
                     "and the fewest cases for 80% power (fixed readers: F(1, K - 1), as RJafroc's "
                     "SsPowerGivenJKOrVarComp).")
    ai_res = res.get("ai_interaction") or {}
    ai_res = {} if ai_res.get("note") else ai_res
    ai_parts = ["agreement with the AI's top suggestion"] if ai_res.get("agreement") else []
    if ai_res.get("switching_summary"):
        ai_parts.append("the switching table of the sequential design")
    if ai_res.get("kappa"):
        ai_parts.append("Fleiss' kappa among readers")
    if ai_parts:
        parts.append("Reader-AI interaction is described by " + ", ".join(ai_parts) + ".")
    agr = res.get("agreement") or {}
    if kind == "ordinal" and agr.get("vs_reference") is not None:
        ci = agr.get("ci") or {}
        unit = "patients" if ci.get("resampled") == "patient" else "cases"
        parts.append("For the ordinal primary question, agreement is also given as quadratic-weighted kappa against "
                     "the reference and between readers (mean over pairs of readers), by condition and level, with "
                     f"percentile intervals from a bootstrap resampling {unit}"
                     + (f" ({ci['n_boot']} replicates, the same draws for every table)" if ci.get("n_boot") else "")
                     + ".")
    sens = (res.get("sensitivity") or {}).get("fast_reads") or {}
    if sens.get("differences") is not None:
        parts.append(f"A sensitivity analysis repeats the bootstrap differences and the models without the reads "
                     f"faster than {sens['threshold_seconds']:g} s (the study's fast-read flag).")
    cut = (res.get("study") or {}).get("cutoff") or {}
    parts.append("Readings marked ungradable are counted per condition and left out of all analyses; each "
                 "section states the readers, cases and readings it includes and what it excludes, and why.")
    if cut.get("description"):
        parts.append(f"Data cut-off: {cut['description']}.")
    return " ".join(parts)
