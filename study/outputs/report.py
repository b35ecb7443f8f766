"""The study report: plotly figures and one self-contained HTML page from the results object.

Why the report only renders: the numbers come from ``study.analysis.study_analysis.analyze`` (the study's
answers) or :func:`analyze_reads` (an outside CSV), the same call the app and the CLI make, so the page in
the app and the file from ``python -m study analyze`` show the same numbers. Figures carry explicit
colours and the ``plotly_white`` template: inside the Streamlit process plotly's default template is
Streamlit's, whose placeholder colours (``#000001``...) would otherwise turn every chart black.
No Streamlit here.

Results keys: study (name, design, dates, cut-off, snapshot, model card, completion), meta, descriptive,
glmm, glmm_interaction_p, marginal_effects, reading_time, mrmc, mrmc_binary, sizing, ai_interaction,
sensitivity, primary, agreement, methods, software, summary, messages; each of descriptive, glmm, mrmc,
reading_time and ai_interaction has a ``population``, and so do mrmc_binary, sizing and agreement when present
(with ``clustered_by`` where cases were clustered in patients).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pandas as pd

from study.analysis.reads import load_reads
from study.analysis.study_analysis import Settings, analyze_frame, software_versions, to_jsonable
from study.analysis.summary import condition_name
from study.domain.timefmt import minute

__all__ = ["analyze_reads", "build_figures", "render_html", "write_report", "software_versions", "to_jsonable",
           "CONDITION_COLOURS", "TEMPLATE"]

TEMPLATE = "plotly_white"
# one colour per condition, in the results' condition order (unaided first); real colours, never a template's
CONDITION_COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860")
SWITCH_COLOURS = {"right_to_right": "#55A868", "wrong_to_wrong": "#C44E52", "wrong_to_right": "#4C72B0",
                  "right_to_wrong": "#DD8452"}
AI_COLOUR, GREY = "#333333", "#999999"


def analyze_reads(reads: pd.DataFrame | str | Path, level_order: Sequence[str] | None = None, n_boot: int = 1000,
                  seed: int = 0, alpha: float = 0.05, normal_label: str = "normal") -> dict:
    """The analysis of a reads table from outside the study database (a CSV or its DataFrame)."""
    df = load_reads(reads, level_order=level_order, normal_label=normal_label)
    settings = Settings(n_boot=n_boot, seed=seed, alpha=alpha, normal_label=normal_label,
                        level_order=tuple(level_order) if level_order else None)
    return analyze_frame(df, settings)


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------


def _esc(value) -> str:
    """A name (level, condition, reader) for a plotly label: plotly renders <a href>, <b>, <br> in text, so a
    level named ``<a href="http://...">`` would be a live link in the report; escaped, it is shown as typed."""
    return html.escape(str(value), quote=False)


def condition_colours(results: dict) -> dict[str, str]:
    """Condition -> colour, by the results' condition order."""
    conds = results["meta"]["conditions"]
    return {c: CONDITION_COLOURS[i % len(CONDITION_COLOURS)] for i, c in enumerate(conds)}


def build_figures(results: dict) -> dict:
    """Plotly figures keyed by id: accuracy, forest, roc, switching, reading_time (when data exist).
    Every name from the data (levels, conditions, readers) is HTML-escaped (:func:`_esc`)."""
    import plotly.graph_objects as go

    colour = condition_colours(results)
    figs = {}
    acc = pd.DataFrame(results["descriptive"]["accuracy"])
    fig = go.Figure(layout=dict(template=TEMPLATE))
    for cond, g in acc.groupby("condition", sort=False):
        fig.add_bar(x=[_esc(v) for v in g["level"]], y=100 * g["accuracy"], name=_esc(condition_name(cond)),
                    marker_color=colour.get(cond, GREY),
                    error_y=dict(type="data", symmetric=False, array=100 * (g["ci_high"] - g["accuracy"]),
                                 arrayminus=100 * (g["accuracy"] - g["ci_low"]), color=AI_COLOUR))
    fig.update_layout(title="Accuracy by condition and experience level (Wilson 95% CI)", barmode="group",
                      yaxis_title="Accuracy (%)", xaxis_title="Experience level")
    figs["accuracy"] = fig

    fig = go.Figure(layout=dict(template=TEMPLATE))
    for cond, rows in results["marginal_effects"].items():
        me = pd.DataFrame(rows)
        fig.add_scatter(x=me["pp_diff"], y=[_esc(f"{lev} ({condition_name(cond)})") for lev in me["level"]],
                        mode="markers", name=_esc(condition_name(cond)), marker=dict(color=colour.get(cond, GREY), size=9),
                        error_x=dict(type="data", symmetric=False, array=me["pp_ci_high"] - me["pp_diff"],
                                     arrayminus=me["pp_diff"] - me["pp_ci_low"], color=colour.get(cond, GREY)),
                        text=[f"OR {o:.2f} ({lo:.2f} to {hi:.2f})"
                              for o, lo, hi in zip(me["odds_ratio"], me["or_ci_low"], me["or_ci_high"])])
    fig.add_vline(x=0, line_dash="dash", line_color=GREY)
    fig.update_layout(title="AI effect by experience level (mixed model, percentage points, 95% CI)",
                      xaxis_title="Aided - unaided accuracy (points)")
    figs["forest"] = fig

    roc = results["ai_interaction"].get("roc")
    pts = pd.DataFrame(results["ai_interaction"].get("operating_points") or [])
    if roc or not pts.empty:
        fig = go.Figure(layout=dict(template=TEMPLATE))
        if roc:
            fig.add_scatter(x=roc["fpr"], y=roc["tpr"], mode="lines", name=f"AI (AUC {roc['auc']:.3f})",
                            line=dict(color=AI_COLOUR))
        for cond, g in pts.groupby("condition", sort=False) if not pts.empty else []:
            fig.add_scatter(x=g["fpr"], y=g["sensitivity"], mode="markers", name=_esc(f"readers, {condition_name(cond)}"),
                            marker=dict(color=colour.get(cond, GREY), size=8),
                            text=[_esc(f"{r} ({lev})") for r, lev in zip(g["reader"], g["level"])])
        fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color=GREY), showlegend=False)
        fig.update_layout(title="AI ROC curve with reader operating points (abnormal vs normal)",
                          xaxis_title="1 - specificity", yaxis_title="Sensitivity")
        figs["roc"] = fig

    summ = pd.DataFrame(results["ai_interaction"].get("switching_summary") or [])
    if not summ.empty:
        fig = go.Figure(layout=dict(template=TEMPLATE))
        x = [_esc(f"{lev} ({condition_name(c)})") for lev, c in zip(summ["level"], summ["aided_condition"])]
        for col, name in (("right_to_right", "right -> right"), ("wrong_to_wrong", "wrong -> wrong"),
                          ("wrong_to_right", "wrong -> right"), ("right_to_wrong", "right -> wrong")):
            fig.add_bar(x=x, y=summ[col], name=name, marker_color=SWITCH_COLOURS[col])
        fig.update_layout(barmode="stack", title="Answer changes from unaided (step 1) to aided (step 2)",
                          yaxis_title="Reads")
        figs["switching"] = fig

    rt = results.get("reading_time")
    if rt and rt.get("median_seconds"):
        med = pd.DataFrame(rt["median_seconds"])
        fig = go.Figure(layout=dict(template=TEMPLATE))
        for cond, g in med.groupby("condition", sort=False):
            fig.add_bar(x=[_esc(v) for v in g["level"]], y=g["median"], name=_esc(condition_name(cond)),
                        marker_color=colour.get(cond, GREY))
        fig.update_layout(barmode="group", title="Median reading time by condition and level", yaxis_title="Seconds")
        figs["reading_time"] = fig
    return figs


# ---------------------------------------------------------------------------------------------
# Tables in words
# ---------------------------------------------------------------------------------------------


def _ci(lo, hi, digits: int = 3, scale: float = 1.0) -> str:
    if lo is None or hi is None:
        return ""
    return f"{scale * lo:.{digits}f} to {scale * hi:.{digits}f}"


def term_label(term: str, labels: dict | None = None) -> str:
    """A model term in words: ``condition[T.ai]:level[T.senior]`` -> 'AI-aided x senior'."""
    if term == "Intercept":
        return "Intercept (unaided, reference level)"
    parts = []
    for piece in term.split(":"):
        if "[T." in piece:
            var, value = piece.split("[T.", 1)
            value = value.rstrip("]")
            parts.append(condition_name(value) if var == "condition" else f"{value} readers" if var == "level"
                         else (labels or {}).get(value, value))
        else:
            parts.append(piece)
    return " x ".join(parts)


def glmm_rows(glmm: dict) -> list[dict]:
    """The GLMM's fixed effects as odds ratios with 95% CIs, terms in words."""
    return [{"term": term_label(fe["term"]), "odds ratio": fe.get("odds_ratio"),
             "95% CI": _ci(*(fe.get("or_ci") or (None, None))), "p": p_text(fe["p"])} for fe in glmm["fixed_effects"]]


def effect_rows(results: dict) -> list[dict]:
    """The AI effect per condition and level: points and odds ratios, intervals as intervals."""
    out = []
    for cond, rows in results["marginal_effects"].items():
        for m in rows:
            out.append({"condition": condition_name(cond), "level": m["level"],
                        "unaided": m.get("p_unaided"), "aided": m.get("p_condition"),
                        "difference (points)": round(m["pp_diff"], 1), "95% CI (points)": _ci(m["pp_ci_low"], m["pp_ci_high"], 1),
                        "odds ratio": m["odds_ratio"], "95% CI (OR)": _ci(m["or_ci_low"], m["or_ci_high"], 2)})
    return out


def mrmc_rows(mrmc: dict | None) -> list[dict]:
    """AUC per condition (RRRC, 95% CI) and each difference with its p: the MRMC table."""
    if not mrmc or not mrmc.get("auc") or "rrrc" not in mrmc["auc"]:
        return []
    rrrc = mrmc["auc"]["rrrc"]
    per = rrrc.get("per_modality", {})
    order = sorted(per, key=lambda m: (m != "unaided", m))  # unaided first, as everywhere in the report
    rows = [{"comparison": condition_name(m), "AUC": per[m]["fom"], "95% CI": _ci(*per[m]["ci"]), "p": ""}
            for m in order]
    for c in rrrc.get("comparisons", []):
        a, b = c["modalities"]
        rows.append({"comparison": f"{condition_name(a)} - {condition_name(b)}", "AUC": c["diff"],
                     "95% CI": _ci(*c["ci"]), "p": p_text(c["p"])})
    return rows


BINARY_NAMES = {"sensitivity": "Sensitivity", "specificity": "Specificity"}


def mrmc_binary_rows(section: dict | None) -> list[dict]:
    """Sensitivity and specificity per condition (RRRC, 95% CI) and each difference with its p: one row per
    measure and condition or comparison, with the cases that enter the measure."""
    rows: list[dict] = []
    for fom, name in BINARY_NAMES.items():
        res = (section or {}).get(fom)
        if not res or "rrrc" not in res:
            continue
        rrrc = res["rrrc"]
        per = rrrc.get("per_modality", {})
        entering = f"{res.get('n_fom_cases')} {'diseased' if fom == 'sensitivity' else 'non-diseased'}"
        for m in sorted(per, key=lambda m: (m != "unaided", m)):
            rows.append({"measure": name, "comparison": condition_name(m), "estimate": per[m]["fom"],
                         "95% CI": _ci(*per[m]["ci"]), "p": "", "cases entering": entering})
        for c in rrrc.get("comparisons", []):
            a, b = c["modalities"]
            rows.append({"measure": name, "comparison": f"{condition_name(a)} - {condition_name(b)}",
                         "estimate": c["diff"], "95% CI": _ci(*c["ci"]), "p": p_text(c["p"]), "cases entering": entering})
    return rows


def sizing_rows(sizing: dict | None) -> list[dict]:
    """The power grid (random readers and cases) as a table: one row per number of readers, one column per
    number of cases, power in percent."""
    grid = pd.DataFrame((sizing or {}).get("grid") or [])
    if grid.empty:
        return []
    out = []
    for readers, g in grid.groupby("readers", sort=True):
        row = {"readers": f"{int(readers)} readers"}
        for r in g.sort_values("cases").itertuples():
            row[f"{int(r.cases)} cases"] = f"{100 * r.power_rrrc:.0f}%"
        out.append(row)
    return out


def sizing_need_rows(sizing: dict | None) -> list[dict]:
    """Fewest cases for 80% power (random readers and cases) per number of readers."""
    return [{"readers": r["readers"], "cases for 80% power": "not reachable" if r.get("cases") is None
             else int(r["cases"]), "power there": "" if r.get("power") is None else f"{100 * r['power']:.1f}%"}
            for r in (sizing or {}).get("cases_for_80") or []]


def sizing_text(sizing: dict | None) -> str:
    """One sentence on what the grid is, or why there is none."""
    if not sizing:
        return ""
    if not sizing.get("grid"):
        return sizing.get("note") or "no sizing"
    a, b = sizing["comparison"]
    return (f"Power of the two-sided test (alpha {sizing['alpha']:g}, random readers and random cases, Hillis and "
            f"Obuchowski) of a study with the readers and cases shown, if the true AUC difference "
            f"{condition_name(a)} - {condition_name(b)} were the one observed here ({sizing['effect']:+.3f}); "
            f"the variance components are this study's ({sizing['pilot']['readers']} readers x "
            f"{sizing['pilot']['cases']} cases)" + (", with cases clustered in patients" if sizing.get("clustered")
                                                     else "") + ". An observed difference is a noisy guide to "
            "the true one: treat the grid as a rough plan, not a promise.")


def agreement_rows(agr: dict | None, key: str) -> list[dict]:
    """An ordinal agreement table (``vs_reference``, ``differences``, ``between_readers``) in words."""
    rows = (agr or {}).get(key) or []
    return in_words(rows) if rows else []


def clustering_line(section: dict | None) -> str:
    """'Resampling unit: the patient (...)' when a section clustered cases in patients."""
    cb = (section or {}).get("clustered_by")
    return f"Cases clustered in patients: {cb['note']}." if cb else ""


def sens_spec_rows(results: dict) -> list[dict]:
    """Sensitivity and specificity per finding (named in words) and condition, all levels pooled: one row per
    finding and measure, one column per condition."""
    labels = (results.get("study") or {}).get("labels") or {}
    df = pd.DataFrame(results["descriptive"]["sensitivity_specificity"])
    if df.empty:
        return []
    df = df[df["level"] == "all"]
    out = []
    for (finding, measure), g in df.groupby(["finding", "measure"], sort=False):
        row = {"finding": labels.get(finding, "any finding (abnormal)" if finding == "abnormal"
                                     else str(finding).replace("_", " ")), "measure": measure}
        for r in g.itertuples():
            row[condition_name(r.condition)] = (f"{100 * r.estimate:.1f}% ({_ci(r.ci_low, r.ci_high, 1, 100)}), "
                                                f"n = {r.n}")
        out.append(row)
    return out


def in_words(rows) -> list[dict]:
    """Any results table with conditions in words and ``ci_low``/``ci_high`` as one '95% CI' interval."""
    out = []
    for r in pd.DataFrame(rows).to_dict(orient="records"):
        row = {}
        for k, v in r.items():
            if k in ("condition", "aided_condition"):
                row["condition"] = condition_name(v)
            elif k == "ci_low":
                row["95% CI"] = _ci(r["ci_low"], r.get("ci_high"))
            elif k not in ("ci_high", "categories"):
                row[k.replace("_", " ")] = v
        out.append(row)
    return out


def difference_rows(rows: list[dict]) -> list[dict]:
    return [{"condition": condition_name(d["condition"]), "level": d["level"], "unaided": d["acc_unaided"],
             "aided": d["acc_condition"], "difference": d["difference"], "95% CI": _ci(d["ci_low"], d["ci_high"])}
            for d in rows]


def accuracy_rows(rows: list[dict]) -> list[dict]:
    return [{"condition": condition_name(r["condition"]), "level": r["level"], "correct": r["correct"], "n": r["n"],
             "accuracy": r["accuracy"], "95% CI": _ci(r["ci_low"], r["ci_high"])} for r in rows]


def reading_time_rows(rt: dict | None) -> list[dict]:
    if not rt:
        return []
    return [{"term": term_label(fe["term"]), "estimate (log s)": fe["estimate"], "95% CI": _ci(*fe["ci"]),
             "p": p_text(fe["p"])} for fe in rt["fixed_effects"]]


def switching_rows(results: dict) -> list[dict]:
    return [{"condition": condition_name(r["aided_condition"]), "level": r["level"], "pairs": r["n_pairs"],
             "right -> right": r["right_to_right"], "wrong -> wrong": r["wrong_to_wrong"],
             "wrong -> right": r["wrong_to_right"], "right -> wrong": r["right_to_wrong"],
             "automation bias rate": r["automation_bias_rate"], "correction rate": r["correction_rate"]}
            for r in results["ai_interaction"].get("switching_summary") or []]


def completion_rows(study: dict) -> list[dict]:
    return [{"reader": c["reader"], "level": c.get("level"), "readings done": c["done"], "assigned": c["total"],
             "completed": "yes" if c["complete"] else "no"} for c in study.get("completion") or []]


def population_line(pop: dict | None) -> str:
    """'9 readers, 60 cases, 1080 readings; excluded: reader R3 (why); ...'."""
    if not pop:
        return ""
    line = f"{pop['readers']} readers, {pop['cases']} cases, {pop['readings']} readings"
    excl = "; ".join(f"{e['who']} ({e['why']})" for e in pop.get("excluded") or [])
    return line + (f". Excluded: {excl}." if excl else ". Nothing excluded.")


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------


def p_text(p) -> str:
    """A p-value as a reader of a paper expects it: three decimals, or "< 0.001" (never 0.000 or 1e-30)."""
    if p is None or (isinstance(p, float) and not math.isfinite(p)):
        return ""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _table_html(rows, columns=None, digits=3) -> str:
    df = pd.DataFrame(rows)
    if df.empty:
        return "<p><em>not available</em></p>"
    if columns:
        df = df[[c for c in columns if c in df.columns]]
    return df.to_html(index=False, float_format=lambda x: f"{x:.{digits}f}", na_rep="", border=0, classes="tbl")


def _pop_html(section: dict | None) -> str:
    line = population_line((section or {}).get("population"))
    cl = clustering_line(section)
    return (f"<p class='pop'><b>Population:</b> {html.escape(line)}</p>" if line else "") + (
        f"<p class='pop'>{html.escape(cl)}</p>" if cl else "")


def _study_html(results: dict) -> list[str]:
    st = results.get("study") or {}
    if not st:
        return []

    def when(value):
        return minute(datetime.fromisoformat(value)) if value else ""

    card = st.get("model_card") or {}
    facts = [("Study", st.get("name")), ("Design", st.get("design_text") or st.get("design")),
             ("Created", when(st.get("created_at"))), ("Design locked", when(st.get("locked_at"))),
             ("Answers used", f"{st.get('answers_used')} (first {when(st.get('first_answer'))}, last "
                              f"{when(st.get('last_answer'))})"),
             ("Data cut-off", (st.get("cutoff") or {}).get("description")),
             ("Data snapshot (sha256 of the answers used)", st.get("snapshot_sha256")),
             ("Report built", when(st.get("built_at"))),
             ("Model", ", ".join(f"{k} {v}" for k, v in card.items() if k in ("name", "architecture", "version",
                                                                             "input_size", "is_demo")))]  # no server path
    items = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts if v)
    return ["<h2 id='study'>Study</h2>", f"<table class='tbl' id='study-facts'>{items}</table>",
            "<h3 id='completion'>Reader completion</h3>", _table_html(completion_rows(st))]


def render_html(results: dict, figures: dict | None = None, title: str = "ReVision reader study: analysis report") -> str:
    """Self-contained HTML: plotly.js inlined once (first figure), every figure as a div with id fig-<key>."""
    import plotly.io as pio

    figures = build_figures(results) if figures is None else figures
    divs = {key: pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0), div_id=f"fig-{key}")
            for i, (key, fig) in enumerate(figures.items())}
    name = (results.get("study") or {}).get("name")
    title = f"{title}: {name}" if name else title
    glmm = results["glmm"]
    sw = "".join(f"<li>{html.escape(k)} {html.escape(str(v))}</li>" for k, v in results["software"].items())
    msgs = results.get("messages", []) + glmm.get("messages", [])
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}.tbl{border-collapse:collapse;font-size:13px}"
        ".tbl td,.tbl th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}.pop{color:#444}</style>"
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<h2>Summary</h2><p id='summary'>{html.escape(results['summary'])}</p>",
        *_study_html(results),
        "<h2 id='accuracy'>Accuracy</h2>", _pop_html(results["descriptive"]), divs.get("accuracy", ""),
        _table_html(accuracy_rows(results["descriptive"]["accuracy"])),
        "<h3>Aided - unaided (two-way cluster bootstrap)</h3>",
        _table_html(difference_rows(results["descriptive"]["differences"])),
        "<h3>Sensitivity and specificity (all levels)</h3>", _table_html(sens_spec_rows(results)),
        f"<h2 id='glmm'>Mixed-effects logistic model</h2>{_pop_html(glmm)}<p>{html.escape(glmm['formula'])}; "
        + html.escape(", ".join(f"{k[:-3].replace('case:patient', 'case within patient')} SD {v:.3f}"
                                for k, v in glmm["random_effects"].items() if v is not None)) + "</p>",
        _table_html(glmm_rows(glmm)),
        "<h3>AI effect by level</h3>", _table_html(effect_rows(results)), divs.get("forest", ""),
    ]
    inter = {k: v for k, v in (results.get("glmm_interaction_p") or {}).items() if v is not None}
    if inter:
        parts.append("<p>Test of a different AI effect across levels: " + "; ".join(
            f"{html.escape(condition_name(k))} p = {v:.3g}" for k, v in inter.items()) + "</p>")
    mr = results.get("mrmc")
    if mr:
        parts += [f"<h2 id='mrmc'>MRMC (Obuchowski-Rockette, Hillis), {mr['n_readers']} readers x {mr['n_cases']} "
                  "cases</h2>", _pop_html(mr)]
        parts.append(_table_html(mrmc_rows(mr), digits=3) if mr.get("auc") else
                     f"<p>{html.escape(mr.get('note') or mr.get('auc_error') or 'not available')}</p>")
    sb = results.get("mrmc_binary")
    if sb:
        parts += [f"<h2 id='mrmc-binary'>MRMC of sensitivity and specificity (abnormal call), {sb['n_readers']} "
                  f"readers x {sb['n_cases']} cases</h2>", _pop_html(sb),
                  f"<p>{html.escape(sb['call'])}; {sb['n_diseased']} diseased and {sb['n_non_diseased']} "
                  "non-diseased cases; Obuchowski-Rockette with Hillis df, random readers and cases, jackknife over "
                  "the cases that enter each measure.</p>"]
        rows = mrmc_binary_rows(sb)
        notes = [sb.get(k) for k in ("note", "sensitivity_error", "specificity_error") if sb.get(k)]
        parts.append(_table_html(rows) if rows else "")
        parts += [f"<p>{html.escape(n)}</p>" for n in notes] or ([] if rows else ["<p>not available</p>"])
    sz = results.get("sizing")
    if sz:
        parts += ["<h2 id='sizing'>Sizing a next study (analytic power from this study's AUC MRMC)</h2>", _pop_html(sz),
                  f"<p>{html.escape(sizing_text(sz))}</p>"]
        if sz.get("grid"):
            parts += ["<h3>Power by readers and cases</h3>", _table_html(sizing_rows(sz)),
                      "<h3>Fewest cases for 80% power</h3>", _table_html(sizing_need_rows(sz))]
    ai_res = results["ai_interaction"]
    parts += ["<h2 id='ai'>Interaction with the AI</h2>", _pop_html(ai_res),
              "<h3>Agreement with the AI's top suggestion</h3>", _table_html(in_words(ai_res["agreement"])),
              "<h3 id='switching'>Switching (sequential design)</h3>", _table_html(switching_rows(results)),
              divs.get("switching", ""), divs.get("roc", ""),
              "<h3>Fleiss' kappa among readers</h3>", _table_html(in_words(ai_res["kappa"]))]
    if results.get("reading_time"):
        parts += ["<h2 id='reading-time'>Reading time (LMM of log seconds)</h2>", _pop_html(results["reading_time"]),
                  _table_html(reading_time_rows(results["reading_time"])), divs.get("reading_time", "")]
    sens = ((results.get("sensitivity") or {}).get("fast_reads")) or None
    if sens:
        parts.append(f"<h2 id='fast-reads'>Sensitivity analysis without fast reads (under "
                     f"{sens['threshold_seconds']:g} s)</h2>")
        if sens.get("population"):
            parts += [_pop_html(sens), "<h3>Aided - unaided</h3>", _table_html(difference_rows(sens["differences"]))]
            if sens.get("glmm"):
                parts += ["<h3>Mixed-effects logistic model</h3>", _table_html(glmm_rows(sens["glmm"]))]
            if sens.get("reading_time"):
                parts += ["<h3>Reading time</h3>", _table_html(reading_time_rows(sens["reading_time"]))]
        else:
            parts.append(f"<p>{html.escape(sens.get('note', ''))}</p>")
    agr = results.get("agreement")
    if agr:
        ci = agr.get("ci") or {}
        unit = "patients" if ci.get("resampled") == "patient" else "cases"
        how = (f"Percentile bootstrap intervals resampling {unit}" + (f" ({ci['n_units']} {unit}, {ci['n_boot']} "
                                                                     "replicates)" if ci.get("n_boot") else ""))
        parts += ["<h2 id='qwk'>Quadratic-weighted kappa (ordinal primary question)</h2>", _pop_html(agr),
                  f"<p>{html.escape(how)}.</p>",
                  "<h3>Against the reference</h3>", _table_html(agreement_rows(agr, "vs_reference")),
                  f"<h3>Aided - unaided (bootstrap over {unit})</h3>", _table_html(agreement_rows(agr, "differences")),
                  "<h3>Between readers (mean pairwise)</h3>", _table_html(agreement_rows(agr, "between_readers")),
                  "<h3>Mean grade distance</h3>", _table_html(agreement_rows(agr, "mean_grade_distance"))]
    ung = ((results.get("primary") or {}).get("excluded") or {}).get("ungradable") or {}
    if ung:
        parts += ["<h2 id='ungradable'>Ungradable readings</h2>",
                  _table_html([{"condition": condition_name(k), "ungradable": v} for k, v in ung.items()])]
    parts += [f"<h2>Methods</h2><p id='methods'>{html.escape(results['methods'])}</p>",
              f"<h2>Software</h2><ul>{sw}</ul>"]
    if msgs:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(m)}</li>" for m in msgs) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(results: dict, out_html: str | Path | None, out_json: str | Path | None) -> dict:
    """Write the HTML report and/or the JSON results; returns the results."""

    if out_json:
        Path(out_json).write_text(json.dumps(results, indent=2, allow_nan=False))
    if out_html:
        Path(out_html).write_text(render_html(results), encoding="utf-8")
    return results
