"""The whole issue-6 analysis of a reads table: results dict, plotly figures, self-contained HTML.

Why one entry point: the CLI (``python -m study analyze``) and the dashboard page must show the
same numbers, so both call :func:`analyze_reads` (JSON-serialisable results), then
:func:`build_figures` and :func:`render_html`. No Streamlit here.

Results keys: meta, descriptive {accuracy, differences, sensitivity_specificity}, glmm
(``fit_glmm("correct ~ condition * level")``.to_dict()), glmm_interaction_p, marginal_effects
{condition: per-level odds ratios and percentage points}, reading_time (LMM of log seconds or
None), mrmc {auc, percent_correct, ...} or None, ai_interaction {agreement, switching,
switching_summary, kappa, roc, operating_points}, primary {kind, excluded} (the scored question's kind;
ungradable readings per condition and reads without a reference, left out of every analysis),
agreement (ordinal primary only: ``study.analysis.agreement.qwk_summary``), methods, software, summary.
"""

from __future__ import annotations

import html
import math
import platform
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from study.analysis import ai_interaction as ai
from study.analysis import descriptive
from study.analysis.reads import UNAIDED, aided_conditions, load_reads
from study.analysis.summary import summary_paragraph

__all__ = ["analyze_reads", "build_figures", "render_html", "write_report", "software_versions", "to_jsonable"]


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
    return str(obj)


def software_versions() -> dict:
    """Versions of python and the numerical stack, and of this package."""
    from importlib import metadata

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
    import tomllib

    try:
        data = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
        return str(data["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def _interaction_p(fit) -> float | None:
    """Joint Wald chi-square p for all condition x level interaction terms."""
    terms = [t for t in fit.fixed_effects["term"] if ":" in t]
    if not terms:
        return None
    b = fit.fixed_effects.set_index("term").loc[terms, "estimate"].to_numpy()
    V = fit.vcov.loc[terms, terms].to_numpy()
    chi2 = float(b @ np.linalg.solve(V, b))
    return float(stats.chi2.sf(chi2, len(terms)))


def _mrmc(df: pd.DataFrame) -> dict | None:
    """OR/Hillis MRMC on the fully crossed subset: AUC of confidence ratings and percent correct.

    Rating = confidence that the case is abnormal: 50 + confidence/2 when the reader called it
    abnormal, 50 - confidence/2 when normal (``call``); the raw confidence when there is no call.
    Cases kept: read by every reader in every condition.
    """
    from study.analysis.mrmc import mrmc_analysis

    ordinal = df.attrs.get("primary_kind") == "ordinal" and {"answer_grade", "truth_grade"} <= set(df.columns)
    if ordinal:  # the grade is an ordinal rating; truth = any grade above the lowest (as the iMRMC export)
        sub = df[df["answer_grade"].notna() & df["truth_grade"].notna()].drop_duplicates(
            ["reader", "condition", "case"]).copy()
        sub["rating"], sub["truth"] = sub["answer_grade"], (sub["truth_grade"] >= 1).astype(int)
        rating = "the reader's grade (ordinal rating); truth = reference grade above the lowest"
    elif not {"confidence", "truth"} <= set(df.columns):
        return None
    else:
        sub = df[df["confidence"].notna() & df["truth"].notna()].drop_duplicates(["reader", "condition", "case"]).copy()
    if ordinal:
        pass
    elif "call" in sub.columns and sub["call"].notna().all():
        sub["rating"] = np.where(sub["call"] == 1, 50 + sub["confidence"] / 2, 50 - sub["confidence"] / 2)
        rating = "signed confidence: 50 +/- confidence/2 by the reader's abnormal/normal call"
    else:
        sub["rating"] = sub["confidence"]
        rating = "confidence (0-100) taken as confidence that the case is abnormal"
    n_cond, n_read = sub["condition"].nunique(), sub["reader"].nunique()
    cover = sub.groupby("case").size()
    keep = cover.index[cover == n_cond * n_read]
    sub = sub[sub["case"].isin(keep)]
    out = {"rating": rating, "n_readers": int(n_read), "n_cases": int(len(keep)), "auc": None, "percent_correct": None}
    if len(keep) < 4 or n_read < 2:
        out["note"] = "fewer than 4 cases read by every reader in every condition; MRMC skipped"
        return out
    long = sub.rename(columns={"condition": "modality"})
    long["modality"] = long["modality"].astype(str)
    long["truth"] = long["truth"].astype(int)
    for key, fom in (("auc", "auc"), ("percent_correct", "percent_correct")):
        try:
            out[key] = mrmc_analysis(long, fom=fom).to_dict()
        except ValueError as exc:
            out[f"{key}_error"] = str(exc)
    return out


def analyze_reads(
    reads: pd.DataFrame | str | Path,
    level_order: Sequence[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    normal_label: str = "normal",
) -> dict:
    """Run every analysis of issue 6 on a reads table; returns a JSON-serialisable dict."""
    from study.analysis.glmm import fit_glmm
    from study.analysis.lmm import fit_lmm_log_time

    df = load_reads(reads, level_order=level_order, normal_label=normal_label)
    kind, excluded = df.attrs.get("primary_kind", "single_choice"), df.attrs.get("excluded", {})
    levels = [str(x) for x in df["level"].cat.categories]
    sequential = "step" in df.columns and bool((df["step"] == 2).any())
    res: dict = {
        "meta": {
            "n_reads": len(df), "n_readers": int(df["reader"].nunique()), "n_cases": int(df["case"].nunique()),
            "conditions": [str(c) for c in df["condition"].cat.categories], "levels": levels,
            "reference_condition": UNAIDED, "reference_level": levels[0],
            "design": "sequential" if sequential else "crossed", "alpha": alpha, "n_boot": n_boot, "seed": seed,
        },
        "messages": [],
        "primary": {"kind": kind, "excluded": excluded},
    }
    n_ungradable = sum((excluded.get("ungradable") or {}).values())
    if n_ungradable:
        res["messages"].append(f"{n_ungradable} reading(s) marked 'Image ungradable' are left out of every "
                               f"analysis (by condition: {excluded['ungradable']})")
    if excluded.get("no_reference"):
        res["messages"].append(f"{excluded['no_reference']} reading(s) of cases without a reference answer are "
                               "left out")
    res["agreement"] = None
    if kind == "ordinal" and {"answer_grade", "truth_grade"} <= set(df.columns):
        from study.analysis.agreement import qwk_summary

        res["agreement"] = qwk_summary(df, n_boot=n_boot, seed=seed, alpha=alpha)
    res["descriptive"] = {
        "accuracy": descriptive.accuracy_table(df, alpha),
        "differences": descriptive.bootstrap_differences(df, n_boot=n_boot, seed=seed, alpha=alpha),
        "sensitivity_specificity": descriptive.sensitivity_specificity(df, alpha),
    }
    formula = "correct ~ condition * level" if len(levels) > 1 else "correct ~ condition"
    refs = {"level": levels[0]} if len(levels) > 1 else None
    fit = fit_glmm(formula, df, reference_levels=refs)
    res["glmm"] = {**fit.to_dict(), "messages": list(fit.messages)}
    res["glmm_interaction_p"] = {}
    res["marginal_effects"] = {}
    for cond in aided_conditions(df):
        pair = df[df["condition"].isin([UNAIDED, cond])].copy()
        pair["condition"] = pair["condition"].cat.remove_unused_categories()
        f = fit if len(aided_conditions(df)) == 1 else fit_glmm(formula, pair, reference_levels=refs)
        rows = []
        if len(levels) > 1:
            rows.append(f.marginal_effects(by="level"))
        rows.append(f.marginal_effects(by=None))  # level "all"
        me = pd.concat(rows, ignore_index=True)
        me["level"] = me["level"].astype(str)
        me = me.rename(columns={f"p_{UNAIDED}": "p_unaided", f"p_{cond}": "p_condition"})
        res["marginal_effects"][cond] = me
        res["glmm_interaction_p"][cond] = _interaction_p(f)
    res["reading_time"] = None
    if "seconds" in df.columns and df["seconds"].notna().sum() > 0 and (df["seconds"].dropna() > 0).all():
        tf = "seconds ~ condition * level" if len(levels) > 1 else "seconds ~ condition"
        try:
            lmm = fit_lmm_log_time(tf, df[df["seconds"].notna()], reference_levels=refs)
            res["reading_time"] = {**lmm.to_dict(), "median_seconds": (
                df.groupby(["condition", "level"], observed=True)["seconds"].median().rename("median").reset_index())}
        except ValueError as exc:
            res["messages"].append(f"reading-time model skipped: {exc}")
    try:
        res["mrmc"] = _mrmc(df)
    except ValueError as exc:
        res["mrmc"] = None
        res["messages"].append(f"MRMC skipped: {exc}")
    table = ai.switching_table(df)
    res["ai_interaction"] = {
        "agreement": ai.agreement_with_ai(df, alpha),
        "switching": table,
        "switching_summary": ai.switching_summary(table),
        "kappa": ai.kappa_by_condition(df),
        "roc": ai.ai_roc(df),
        "operating_points": ai.reader_operating_points(df),
    }
    res["methods"] = _methods(res)
    res["software"] = software_versions()
    res = to_jsonable(res)
    res["summary"] = summary_paragraph(res)
    return res


def _methods(res: dict) -> str:
    m = res["meta"]
    kind = (res.get("primary") or {}).get("kind", "single_choice")
    match = {"ordinal": "whose grade on the primary question equalled the reference grade",
             "multi_choice": "whose set of answers to the primary question matched the reference exactly",
             "boolean": "whose yes/no answer to the primary question matched the reference"}.get(
        kind, "whose primary diagnosis matched the reference standard")
    extra = (" For the ordinal primary question, agreement is also given as quadratic-weighted kappa against the "
             "reference (reads pooled per condition and level, and the mean of per-reader kappas) and between readers "
             "(mean over reader pairs per condition), with percentile intervals from a bootstrap over cases."
             if kind == "ordinal" else "")
    return (
        f"Accuracy is the proportion of reads {match}, reported "
        f"with Wilson 95% intervals by condition and experience level (reads treated as independent). "
        f"Differences between each aided condition and unaided reading use a two-way cluster bootstrap "
        f"({m['n_boot']} replicates, seed {m['seed']}) that resamples readers within experience level and cases "
        f"independently, with percentile intervals. The primary model is a logistic mixed model, correct ~ "
        f"condition * level + (1|reader) + (1|case), fitted by Laplace maximum likelihood (as lme4::glmer), with "
        f"unaided reading and {m['reference_level']} readers as references; the AI effect per level is given as an "
        f"odds ratio and as population-averaged percentage points (delta-method intervals). Reading time is "
        f"modelled as log(seconds) in a linear mixed model with the same terms (REML). Where confidence ratings "
        f"and a binary reference exist, an Obuchowski-Rockette analysis with Hillis degrees of freedom compares "
        f"empirical AUCs on the fully crossed subset. Reader-AI interaction is described by agreement with the AI's "
        f"top suggestion, the switching table of the sequential design, and Fleiss' kappa among readers. Readings "
        f"marked ungradable are counted per condition and left out of all analyses.{extra}"
    )


# ---------------------------------------------------------------------------------------------
# Figures and HTML
# ---------------------------------------------------------------------------------------------


def _esc(value) -> str:
    """A name (level, condition, reader) for a plotly label: plotly renders <a href>, <b>, <br> in text, so a
    level named ``<a href="http://...">`` would be a live link in the report; escaped, it is shown as typed."""
    return html.escape(str(value), quote=False)


def build_figures(results: dict) -> dict:
    """Plotly figures keyed by id: accuracy, forest, roc, switching, reading_time (when data exist).
    Every name from the data (levels, conditions, readers) is HTML-escaped (:func:`_esc`)."""
    import plotly.graph_objects as go

    figs = {}
    acc = pd.DataFrame(results["descriptive"]["accuracy"])
    fig = go.Figure()
    for cond, g in acc.groupby("condition", sort=False):
        fig.add_bar(x=[_esc(v) for v in g["level"]], y=100 * g["accuracy"], name=_esc(cond),
                    error_y=dict(type="data", symmetric=False, array=100 * (g["ci_high"] - g["accuracy"]),
                                 arrayminus=100 * (g["accuracy"] - g["ci_low"])))
    fig.update_layout(title="Accuracy by condition and experience level (Wilson 95% CI)", barmode="group",
                      yaxis_title="Accuracy (%)", xaxis_title="Experience level")
    figs["accuracy"] = fig

    fig = go.Figure()
    for cond, rows in results["marginal_effects"].items():
        me = pd.DataFrame(rows)
        fig.add_scatter(x=me["pp_diff"], y=[_esc(f"{lev} ({cond})") for lev in me["level"]], mode="markers", name=_esc(cond),
                        error_x=dict(type="data", symmetric=False, array=me["pp_ci_high"] - me["pp_diff"],
                                     arrayminus=me["pp_diff"] - me["pp_ci_low"]),
                        text=[f"OR {o:.2f} ({lo:.2f}-{hi:.2f})" for o, lo, hi in zip(me["odds_ratio"], me["or_ci_low"], me["or_ci_high"])])
    fig.add_vline(x=0, line_dash="dash")
    fig.update_layout(title="AI effect by experience level (mixed model, percentage points, 95% CI)",
                      xaxis_title="Aided - unaided accuracy (points)")
    figs["forest"] = fig

    roc = results["ai_interaction"].get("roc")
    pts = pd.DataFrame(results["ai_interaction"].get("operating_points") or [])
    if roc or not pts.empty:
        fig = go.Figure()
        if roc:
            fig.add_scatter(x=roc["fpr"], y=roc["tpr"], mode="lines", name=f"AI (AUC {roc['auc']:.3f})")
        for cond, g in pts.groupby("condition", sort=False) if not pts.empty else []:
            fig.add_scatter(x=g["fpr"], y=g["sensitivity"], mode="markers", name=_esc(f"readers, {cond}"),
                            text=[_esc(f"{r} ({lev})") for r, lev in zip(g["reader"], g["level"])])
        fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"), showlegend=False)
        fig.update_layout(title="AI ROC curve with reader operating points (abnormal vs normal)",
                          xaxis_title="1 - specificity", yaxis_title="Sensitivity")
        figs["roc"] = fig

    summ = pd.DataFrame(results["ai_interaction"].get("switching_summary") or [])
    if not summ.empty:
        fig = go.Figure()
        x = [_esc(f"{lev} ({c})") for lev, c in zip(summ["level"], summ["aided_condition"])]
        for col, name in (("right_to_right", "right -> right"), ("wrong_to_wrong", "wrong -> wrong"),
                          ("wrong_to_right", "wrong -> right"), ("right_to_wrong", "right -> wrong")):
            fig.add_bar(x=x, y=summ[col], name=name)
        fig.update_layout(barmode="stack", title="Answer changes from unaided (step 1) to aided (step 2)",
                          yaxis_title="Reads")
        figs["switching"] = fig

    rt = results.get("reading_time")
    if rt and rt.get("median_seconds"):
        med = pd.DataFrame(rt["median_seconds"])
        fig = go.Figure()
        for cond, g in med.groupby("condition", sort=False):
            fig.add_bar(x=[_esc(v) for v in g["level"]], y=g["median"], name=_esc(cond))
        fig.update_layout(barmode="group", title="Median reading time by condition and level", yaxis_title="Seconds")
        figs["reading_time"] = fig
    return figs


def _table_html(rows, columns=None, digits=3) -> str:
    df = pd.DataFrame(rows)
    if df.empty:
        return "<p><em>not available</em></p>"
    if columns:
        df = df[[c for c in columns if c in df.columns]]
    return df.to_html(index=False, float_format=lambda x: f"{x:.{digits}f}", na_rep="", border=0, classes="tbl")


def render_html(results: dict, figures: dict | None = None, title: str = "ReVision reader study: analysis report") -> str:
    """Self-contained HTML: plotly.js inlined once (first figure), every figure as a div with id fig-<key>."""
    import plotly.io as pio

    figures = build_figures(results) if figures is None else figures
    divs = []
    for i, (key, fig) in enumerate(figures.items()):
        divs.append(pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0), div_id=f"fig-{key}"))
    glmm = results["glmm"]
    sw = "".join(f"<li>{html.escape(k)} {html.escape(str(v))}</li>" for k, v in results["software"].items())
    msgs = results.get("messages", []) + glmm.get("messages", [])
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}.tbl{border-collapse:collapse;font-size:13px}"
        ".tbl td,.tbl th{padding:2px 8px;border-bottom:1px solid #ddd}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<h2>Summary</h2><p id='summary'>{html.escape(results['summary'])}</p>",
        "<h2>Accuracy</h2>", divs[0] if divs else "",
        _table_html(results["descriptive"]["accuracy"]),
        "<h3>Aided - unaided (two-way cluster bootstrap)</h3>", _table_html(results["descriptive"]["differences"]),
        "<h3>Sensitivity and specificity</h3>", _table_html(results["descriptive"]["sensitivity_specificity"]),
        f"<h2>Mixed-effects logistic model</h2><p>{html.escape(glmm['formula'])}; reader SD "
        f"{glmm['random_effects'].get('reader_sd', float('nan')):.3f}, case SD {glmm['random_effects'].get('case_sd', float('nan')):.3f}</p>",
        _table_html([{**r, "ci": f"{r['ci'][0]:.3f} to {r['ci'][1]:.3f}"} for r in glmm["fixed_effects"]]),
        "<h3>AI effect by level</h3>",
    ]
    for cond, rows in results["marginal_effects"].items():
        parts.append(f"<h4>{html.escape(cond)} vs unaided</h4>" + _table_html(rows))
    parts += [d for d in divs[1:]]
    ai_res = results["ai_interaction"]
    parts += ["<h2>Interaction with the AI</h2><h3>Agreement with the AI's top suggestion</h3>",
              _table_html(ai_res["agreement"]), "<h3>Switching (sequential design)</h3>",
              _table_html(ai_res["switching_summary"]), "<h3>Fleiss' kappa among readers</h3>", _table_html(ai_res["kappa"])]
    if results.get("reading_time"):
        parts += ["<h2>Reading time (LMM of log seconds)</h2>",
                  _table_html(results["reading_time"]["fixed_effects"], ["term", "estimate", "se", "p"])]
    agr = results.get("agreement")
    if agr:
        parts += ["<h2 id='qwk'>Quadratic-weighted kappa (ordinal primary question)</h2>",
                  "<h3>Against the reference</h3>", _table_html(agr["vs_reference"]),
                  "<h3>Aided - unaided (bootstrap over cases)</h3>", _table_html(agr["differences"]),
                  "<h3>Between readers (mean pairwise)</h3>", _table_html(agr["between_readers"]),
                  "<h3>Mean grade distance</h3>", _table_html(agr["mean_grade_distance"])]
    ung = ((results.get("primary") or {}).get("excluded") or {}).get("ungradable") or {}
    if ung:
        parts += ["<h2 id='ungradable'>Ungradable readings</h2>",
                  _table_html([{"condition": k, "ungradable": v} for k, v in ung.items()])]
    mr = results.get("mrmc")
    if mr and mr.get("auc"):
        parts += [f"<h2>MRMC (Obuchowski-Rockette, Hillis), {mr['n_readers']} readers x {mr['n_cases']} cases</h2>",
                  _table_html(mr["auc"]["rrrc"]["comparisons"]) if "rrrc" in mr["auc"] else ""]
    parts += [f"<h2>Methods</h2><p>{html.escape(results['methods'])}</p>", f"<h2>Software</h2><ul>{sw}</ul>"]
    if msgs:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(m)}</li>" for m in msgs) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(reads, out_html: str | Path | None, out_json: str | Path | None, **kwargs) -> dict:
    """Analyse, then write the HTML report and/or the JSON results; returns the results."""
    import json

    results = analyze_reads(reads, **kwargs)
    if out_json:
        Path(out_json).write_text(json.dumps(results, indent=2, allow_nan=False))
    if out_html:
        Path(out_html).write_text(render_html(results), encoding="utf-8")
    return results
