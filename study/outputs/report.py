"""The study report: one presentation of the results object (:func:`sections`), rendered as a self-contained
HTML page here and as the analysis page in the app (``pages/investigator_analysis.py``), with plotly figures.

Why one presentation: the page and the report must show the same sections with the same numbers, so both
render the list of :class:`Section` built here from the one results object
(``study.analysis.study_analysis.analyze``, or :func:`analyze_reads` for an outside CSV), the same call the
app and the CLI make. Proportions appear as percentages and differences as percentage points (the JSON keeps
proportions); AUC, kappa and odds ratios keep their own scales; model-based figures are named as such beside
the observed ones; p-values are "< 0.001" at the smallest; an interval that cannot be estimated is shown as
"not estimable" with the reason, never as a number; every cell is text, so no NaN reaches a reader.
Figures carry explicit colours and the ``plotly_white`` template: inside the Streamlit process plotly's
default template is Streamlit's, whose placeholder colours (``#000001``...) would otherwise turn every chart
black. No Streamlit here.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from study.analysis.reads import load_reads
from study.analysis.study_analysis import Settings, analyze_frame, software_versions, to_jsonable
from study.analysis.summary import comparison_name, condition_name, p_phrase, p_text
from study.domain.timefmt import minute

__all__ = ["CONDITION_COLOURS", "Section", "TEMPLATE", "analyze_reads", "build_figures", "p_text", "population_line",
           "render_html", "sections", "software_versions", "to_jsonable", "write_report"]

TEMPLATE = "plotly_white"
# one colour per condition, in the results' condition order (unaided first); real colours, never a template's
CONDITION_COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860")
SWITCH_COLOURS = {"right_to_right": "#55A868", "wrong_to_wrong": "#C44E52", "wrong_to_right": "#4C72B0",
                  "right_to_wrong": "#DD8452"}
AI_COLOUR, GREY = "#333333", "#999999"
NOT_ESTIMABLE = "not estimable"


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


def _num(values) -> list:
    """Plot values with missing ones as None (a gap), never as text."""
    return [None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v for v in values]


def build_figures(results: dict) -> dict:
    """Plotly figures keyed by id: accuracy, forest, roc, switching, reading_time (those the results support).
    Every name from the data (levels, conditions, readers) is HTML-escaped (:func:`_esc`)."""
    import plotly.graph_objects as go

    colour = condition_colours(results)
    figs = {}
    acc = pd.DataFrame((results.get("descriptive") or {}).get("accuracy") or [])
    if not acc.empty:
        fig = go.Figure(layout=dict(template=TEMPLATE))
        for cond, g in acc.groupby("condition", sort=False):
            fig.add_bar(x=[_esc(v) for v in g["level"]], y=100 * g["accuracy"], name=_esc(condition_name(cond)),
                        marker_color=colour.get(cond, GREY),
                        error_y=dict(type="data", symmetric=False, array=100 * (g["ci_high"] - g["accuracy"]),
                                     arrayminus=100 * (g["accuracy"] - g["ci_low"]), color=AI_COLOUR))
        fig.update_layout(title="Accuracy by condition and experience level (Wilson 95% CI)", barmode="group",
                          yaxis_title="Accuracy (%)", xaxis_title="Experience level")
        figs["accuracy"] = fig

    effects = {k: pd.DataFrame(v) for k, v in (results.get("marginal_effects") or {}).items() if v}
    effects = {k: e[e["pp_ci_low"].notna()] for k, e in effects.items() if "pp_ci_low" in e}
    if any(not e.empty for e in effects.values()):
        fig = go.Figure(layout=dict(template=TEMPLATE))
        for me in effects.values():
            if me.empty:
                continue
            cond, ref = me["condition"].iloc[0], me["reference"].iloc[0]
            name = comparison_name(cond, ref)
            fig.add_scatter(x=me["pp_diff"], y=[_esc(f"{lev} ({name})") for lev in me["level"]], mode="markers",
                            name=_esc(name), marker=dict(color=colour.get(cond, GREY), size=9),
                            error_x=dict(type="data", symmetric=False, array=me["pp_ci_high"] - me["pp_diff"],
                                         arrayminus=me["pp_diff"] - me["pp_ci_low"], color=colour.get(cond, GREY)))
        fig.add_vline(x=0, line_dash="dash", line_color=GREY)
        fig.update_layout(title="Effect of each comparison by experience level (mixed model, percentage points, "
                                "95% CI)", xaxis_title="Difference in model-based accuracy (points)")
        figs["forest"] = fig

    ai_res = results.get("ai_interaction") or {}
    roc = ai_res.get("roc")
    points = pd.DataFrame(ai_res.get("operating_points") or [])
    if not points.empty:
        points = points[points["fpr"].notna() & points["sensitivity"].notna()]
    if roc or not points.empty:
        fig = go.Figure(layout=dict(template=TEMPLATE))
        if roc:
            fig.add_scatter(x=roc["fpr"], y=roc["tpr"], mode="lines", name=f"AI (AUC {roc['auc']:.3f})",
                            line=dict(color=AI_COLOUR))
        for cond, g in points.groupby("condition", sort=False) if not points.empty else []:
            fig.add_scatter(x=_num(g["fpr"]), y=_num(g["sensitivity"]), mode="markers",
                            name=_esc(f"readers, {condition_name(cond)}"),
                            marker=dict(color=colour.get(cond, GREY), size=8),
                            text=[_esc(f"{r} ({lev})") for r, lev in zip(g["reader"], g["level"])])
        fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color=GREY), showlegend=False)
        fig.update_layout(title="AI ROC curve with reader operating points (abnormal vs normal)",
                          xaxis_title="1 - specificity", yaxis_title="Sensitivity")
        figs["roc"] = fig

    summ = pd.DataFrame(ai_res.get("switching_summary") or [])
    if not summ.empty:
        fig = go.Figure(layout=dict(template=TEMPLATE))
        x = [_esc(f"{lev} ({condition_name(c)})") for lev, c in zip(summ["level"], summ["aided_condition"])]
        for col, name in (("right_to_right", "right -> right"), ("wrong_to_wrong", "wrong -> wrong"),
                          ("wrong_to_right", "wrong -> right"), ("right_to_wrong", "right -> wrong")):
            fig.add_bar(x=x, y=summ[col], name=name, marker_color=SWITCH_COLOURS[col])
        fig.update_layout(barmode="stack", title="Answer changes from unaided (step 1) to aided (step 2)",
                          yaxis_title="Reads")
        figs["switching"] = fig

    rt = results.get("reading_time") or {}
    if rt.get("median_seconds"):
        med = pd.DataFrame(rt["median_seconds"])
        fig = go.Figure(layout=dict(template=TEMPLATE))
        for cond, g in med.groupby("condition", sort=False):
            fig.add_bar(x=[_esc(v) for v in g["level"]], y=g["median"], name=_esc(condition_name(cond)),
                        marker_color=colour.get(cond, GREY))
        fig.update_layout(barmode="group", title="Median reading time by condition and level", yaxis_title="Seconds")
        figs["reading_time"] = fig
    return figs


# ---------------------------------------------------------------------------------------------
# Cells: every value as the text a reader sees
# ---------------------------------------------------------------------------------------------


def _given(*values) -> bool:
    return all(v is not None and not (isinstance(v, float) and not math.isfinite(v)) for v in values)


def _pct(x) -> str:
    """A proportion as a percentage: 0.6193 -> '61.9%'."""
    return f"{100 * x:.1f}%" if _given(x) else ""


def _pts(x) -> str:
    """A difference of proportions in percentage points: 0.0975 -> '+9.8'."""
    return _signed(100 * x) if _given(x) else ""


def _dec(x, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if _given(x) else ""


def _signed(x, digits: int = 1) -> str:
    return f"{round(x, digits) + 0.0:+.{digits}f}" if _given(x) else ""  # + 0.0: no "-0.0"


def _interval(lo, hi, cell=_dec) -> str:
    """'a to b' in the cell's format, or 'not estimable' when the interval is not there."""
    return f"{cell(lo)} to {cell(hi)}" if _given(lo, hi) else NOT_ESTIMABLE


def _count(x) -> str:
    return str(int(x)) if _given(x) else ""


def term_label(term: str, labels: dict | None = None) -> str:
    """A model term in words: ``condition[T.ai]:level[T.senior]`` -> 'AI-aided x senior readers'."""
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


def population_line(pop: dict | None) -> str:
    """'9 readers, 60 cases, 1080 readings. Left out: reader R3, who ... ; ...' in sentences."""
    if not pop:
        return ""
    line = f"{pop['readers']} readers, {pop['cases']} cases, {pop['readings']} readings"
    left = [f"{e['who']}: {e['why']}" for e in pop.get("excluded") or []]
    return line + (". Left out: " + "; ".join(left) + "." if left else ". Nothing left out.")


def clustering_line(section: dict | None) -> str:
    """'Cases clustered in patients: resampling unit: the patient (...)' when a section clustered cases."""
    cb = (section or {}).get("clustered_by")
    return f"Cases clustered in patients: {cb['note']}." if cb else ""


def _reasons(rows: list[dict]) -> list[str]:
    """The distinct reasons why some rows have no interval."""
    return list(dict.fromkeys(r["degenerate"] for r in rows if r.get("degenerate")))


# ---------------------------------------------------------------------------------------------
# The presentation: sections of parts
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """One section of the report and the page: ``parts`` are ("text" | "caption" | "note" | "heading", str),
    ("table", list of rows of text cells) or ("figure", figure key)."""

    key: str
    title: str
    parts: tuple[tuple[str, object], ...]


class _Parts(list):
    """A section's parts as they are added; :meth:`of` starts one with its population and, when it did not run,
    the reason."""

    @classmethod
    def of(cls, section: dict) -> "_Parts":
        parts = cls()
        parts.population(section)
        parts.note(section.get("note"))
        return parts

    def text(self, value: str):
        if value:
            self.append(("text", value))

    def caption(self, value: str):
        if value:
            self.append(("caption", value))

    def note(self, value: str | None):
        if value:
            value = value[:1].upper() + value[1:]
            self.append(("note", value if value.endswith(".") else value + "."))

    def heading(self, value: str):
        self.append(("heading", value))

    def table(self, rows: list[dict]):
        self.append(("table", rows))

    def figure(self, key: str, figures: dict):
        if key in figures:
            self.append(("figure", key))

    def population(self, section: dict | None):
        line = population_line((section or {}).get("population"))
        self.caption(f"Population: {line}" if line else "")
        self.caption(clustering_line(section))


def _accuracy_rows(rows: list[dict]) -> list[dict]:
    return [{"condition": condition_name(r["condition"]), "level": r["level"], "correct": _count(r["correct"]),
             "readings": _count(r["n"]), "accuracy": _pct(r["accuracy"]),
             "95% CI": _interval(r["ci_low"], r["ci_high"], _pct)} for r in rows]


def difference_rows(rows: list[dict]) -> list[dict]:
    """Observed accuracy of each comparison's two conditions and the difference in points (bootstrap CI)."""
    return [{"comparison": comparison_name(d["condition"], d.get("reference", "unaided")), "level": d["level"],
             "readers": _count(d.get("readers")),
             "observed, reference": _pct(d.get("acc_reference")), "observed, condition": _pct(d["acc_condition"]),
             "difference (points)": _pts(d["difference"]),
             "95% CI (points)": _interval(d.get("ci_low"), d.get("ci_high"), _pts)} for d in rows]


def sens_spec_rows(results: dict) -> list[dict]:
    """Sensitivity and specificity per finding (named in words) and condition, all levels pooled: one row per
    finding and measure, one column per condition."""
    labels = (results.get("study") or {}).get("labels") or {}
    df = pd.DataFrame((results.get("descriptive") or {}).get("sensitivity_specificity") or [])
    if df.empty:
        return []
    df = df[df["level"] == "all"]
    out = []
    for (finding, measure), g in df.groupby(["finding", "measure"], sort=False):
        row = {"finding": labels.get(finding, "any finding (abnormal)" if finding == "abnormal"
                                     else str(finding).replace("_", " ")), "measure": measure}
        for r in g.itertuples():
            row[condition_name(r.condition)] = (f"{_pct(r.estimate)} ({_interval(r.ci_low, r.ci_high, _pct)}), "
                                                f"n = {r.n}")
        out.append(row)
    return out


def glmm_rows(glmm: dict) -> list[dict]:
    """The GLMM's fixed effects as odds ratios with 95% CIs, terms in words."""
    return [{"term": term_label(fe["term"]), "odds ratio": _dec(fe.get("odds_ratio"), 2),
             "95% CI": _interval(*(fe.get("or_ci") or (None, None)), lambda x: _dec(x, 2)), "p": p_text(fe.get("p"))}
            for fe in glmm.get("fixed_effects") or []]


def effect_rows(results: dict) -> list[dict]:
    """The model-based effect of each comparison per level: model-based accuracies, points and odds ratios."""
    out = []
    several = len((results.get("meta") or {}).get("comparisons") or []) > 1
    for rows in (results.get("marginal_effects") or {}).values():
        for m in rows:
            row = {"comparison": comparison_name(m["condition"], m["reference"]), "level": m["level"],
                   "model-based, reference": _pct(m.get("model_accuracy_reference")),
                   "model-based, condition": _pct(m.get("model_accuracy_condition")),
                   "difference (points)": _signed(m.get("pp_diff")),
                   "95% CI (points)": _interval(m.get("pp_ci_low"), m.get("pp_ci_high"), _signed),
                   "odds ratio": _dec(m.get("odds_ratio"), 2),
                   "95% CI (OR)": _interval(m.get("or_ci_low"), m.get("or_ci_high"), lambda x: _dec(x, 2)),
                   "p": p_text(m.get("p"))}
            if several:
                row["p (Holm)"] = p_text(m.get("p_holm"))
            out.append(row)
    return out


MRMC_FOMS = {"auc": ("AUC", _dec, lambda x: _signed(x, 3)), "percent_correct": ("Percent correct", _pct, _pts),
             "sensitivity": ("Sensitivity", _pct, _pts), "specificity": ("Specificity", _pct, _pts)}


def mrmc_rows(section: dict | None, foms: Sequence[str]) -> list[dict]:
    """Each figure of merit per condition (random readers and cases, 95% CI) and each comparison with its p
    (Holm-adjusted too when there are several)."""
    rows: list[dict] = []
    for fom in foms:
        res = (section or {}).get(fom)
        if not res or "rrrc" not in res:
            continue
        name, cell, diff_cell = MRMC_FOMS[fom]
        rrrc = res["rrrc"]
        per = rrrc.get("per_modality", {})
        entering = {"sensitivity": "diseased", "specificity": "non-diseased"}.get(fom)
        extra = {"cases entering": f"{res.get('n_fom_cases')} {entering}"} if entering else {}
        several = len(rrrc.get("comparisons") or []) > 1
        for m in sorted(per, key=lambda m: (m != "unaided", m)):
            rows.append({"measure": name, "comparison": condition_name(m), "estimate": cell(per[m]["fom"]),
                         "95% CI": _interval(*per[m]["ci"], cell), "p": "", **({"p (Holm)": ""} if several else {}),
                         **extra})
        for c in rrrc.get("comparisons", []):
            rows.append({"measure": name, "comparison": comparison_name(*c["modalities"]),
                         "estimate": diff_cell(c["diff"]),
                         "95% CI": _interval(*c["ci"], diff_cell), "p": p_text(c.get("p")),
                         **({"p (Holm)": p_text(c.get("p_holm"))} if several else {}), **extra})
    return rows


def _wald_caption(p: _Parts, section: dict, foms: Sequence[str]) -> None:
    """Say why an interval can pass 0% or 100% (the OR analysis's intervals are symmetric, t-based)."""
    bounds = [b for fom in foms for m in (((section.get(fom) or {}).get("rrrc") or {}).get("per_modality") or {}).values()
              for b in m.get("ci") or [] if b is not None]
    if any(b < 0 or b > 1 for b in bounds):
        p.caption("An interval of the OR analysis is symmetric around its estimate; with few readers it can pass 0% "
                  "or 100%, which says the data cannot pin the value down.")


def _mrmc_notes(section: dict, foms: Sequence[str]) -> list[str]:
    notes = [section.get(f"{fom}_error") for fom in foms]
    notes += [(section.get(fom) or {}).get("degenerate") for fom in foms]
    for fom in foms:
        per = (((section.get(fom) or {}).get("rrrc") or {}).get("per_modality") or {})
        name, cell, _ = MRMC_FOMS[fom]
        flat = [f"{condition_name(m)} ({cell(v['fom'])})" for m, v in per.items() if not _given(*v.get("ci") or [None])]
        if flat:
            notes.append(f"{name} has no interval in {', '.join(flat)}: every reader's value there is the same and "
                         "leaving out cases does not change it, so there is no variance to build an interval from")
    return [n for n in notes if n]


def sizing_rows(one: dict) -> list[dict]:
    """A comparison's power grid (random readers and cases): one row per number of readers, one column per
    number of cases, power in percent."""
    grid = pd.DataFrame(one.get("grid") or [])
    if grid.empty:
        return []
    out = []
    for readers, g in grid.groupby("readers", sort=True):
        row = {"readers": f"{int(readers)} readers"}
        for r in g.sort_values("cases").itertuples():
            row[f"{int(r.cases)} cases"] = _pct(r.power_rrrc).replace(".0%", "%") if _given(r.power_rrrc) else ""
        out.append(row)
    return out


def sizing_need_rows(one: dict) -> list[dict]:
    """Fewest cases for 80% power (random readers and cases) per number of readers."""
    return [{"readers": str(r["readers"]), "cases for 80% power": "not reachable" if r.get("cases") is None
             else str(int(r["cases"])), "power there": _pct(r.get("power"))}
            for r in one.get("cases_for_80") or []]


def sizing_text(sizing: dict, one: dict) -> str:
    """One sentence on what a comparison's grid is."""
    a, b = one["comparison"]
    return (f"Power of the two-sided test (alpha {sizing['alpha']:g}, random readers and random cases, Hillis and "
            f"Obuchowski) of a study with the readers and cases shown, if the true AUC difference "
            f"{comparison_name(a, b)} were the one observed here ({one['effect']:+.3f}); the variance components "
            f"are this study's ({sizing['pilot']['readers']} readers x {sizing['pilot']['cases']} cases)"
            + (", with cases clustered in patients" if sizing.get("clustered") else "") + ". An observed difference "
            "is a noisy guide to the true one: treat the grid as a rough plan, not a promise.")


def agreement_rows(agr: dict | None, key: str) -> list[dict]:
    """An ordinal agreement table (``vs_reference``, ``differences``, ``between_readers``) in words."""
    return in_words((agr or {}).get(key) or [])


PERCENT_COLUMNS = {"agreement", "automation_bias_rate", "correction_rate", "sensitivity", "fpr"}


def in_words(rows) -> list[dict]:
    """Any results table with conditions in words, proportions as percentages, ``ci_low``/``ci_high`` as one
    '95% CI' interval and every value as text."""
    out = []
    for r in pd.DataFrame(rows).to_dict(orient="records"):
        row = {}
        percent = "agreement" in r
        for k, v in r.items():
            if k in ("condition", "aided_condition", "reference"):
                row[k.replace("aided_", "")] = condition_name(v)
            elif k == "ci_low":
                row["95% CI"] = _interval(r["ci_low"], r.get("ci_high"), _pct if percent else _dec)
            elif k in ("ci_high", "categories", "degenerate"):
                continue
            elif k in PERCENT_COLUMNS:
                row[k.replace("_", " ")] = _pct(v)
            elif isinstance(v, float):
                row[k.replace("_", " ")] = "" if not math.isfinite(v) else (
                    str(int(v)) if v.is_integer() and k.startswith("n") else _dec(v))
            else:
                row[k.replace("_", " ")] = "" if v is None else str(v)
        out.append(row)
    return out


def reading_time_rows(rt: dict | None) -> list[dict]:
    """The reading-time model's terms as time ratios (exp of the log-seconds effect) with 95% CIs; the intercept
    is the reference readings' geometric mean time in seconds."""
    return [{"term": "Geometric mean time, unaided, reference level (seconds)" if fe["term"] == "Intercept" else
             term_label(fe["term"]), "time ratio": _dec(math.exp(fe["estimate"]), 2),
             "95% CI": _interval(*[math.exp(x) if _given(x) else None for x in fe["ci"]], lambda x: _dec(x, 2)),
             "p": p_text(fe.get("p"))} for fe in (rt or {}).get("fixed_effects") or []]


def switching_rows(results: dict) -> list[dict]:
    return [{"condition": condition_name(r["aided_condition"]), "level": r["level"], "pairs": _count(r["n_pairs"]),
             "right -> right": _count(r["right_to_right"]), "wrong -> wrong": _count(r["wrong_to_wrong"]),
             "wrong -> right": _count(r["wrong_to_right"]), "right -> wrong": _count(r["right_to_wrong"]),
             "automation bias rate": _pct(r["automation_bias_rate"]), "correction rate": _pct(r["correction_rate"])}
            for r in (results.get("ai_interaction") or {}).get("switching_summary") or []]


def completion_rows(study: dict) -> list[dict]:
    return [{"reader": c["reader"], "level": c.get("level") or "", "readings done": str(c["done"]),
             "assigned": str(c["total"]), "completed": "yes" if c["complete"] else "no"}
            for c in study.get("completion") or []]


def _study_facts(results: dict) -> list[dict]:
    st = results.get("study") or {}

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
    return [{"item": k, "value": str(v)} for k, v in facts if v]


def _descriptive_section(results: dict, figures: dict) -> Section:
    d = results.get("descriptive") or {}
    p = _Parts.of(d)
    p.figure("accuracy", figures)
    p.table(_accuracy_rows(d.get("accuracy") or []))
    several = len((results.get("meta") or {}).get("comparisons") or []) > 1
    p.heading("Differences between conditions (observed accuracy, two-way cluster bootstrap)")
    diffs = d.get("differences") or []
    p.table(difference_rows(diffs))
    for reason in _reasons(diffs):
        p.note(f"Not estimable: {reason}.")
    if any(d.get("readers") == 1 for d in diffs):
        p.caption("Where a level has one reader, its interval reflects case-to-case variation only: one reader "
                  "cannot show how other readers of that level would do.")
    if several:
        p.caption("Each aided condition is compared with unaided, and the aided conditions with each other; the "
                  "bootstrap intervals are not adjusted for the number of comparisons.")
    p.heading("Sensitivity and specificity (all levels)")
    p.table(sens_spec_rows(results))
    return Section("accuracy", "Accuracy", tuple(p))


def _glmm_section(results: dict, figures: dict) -> Section:
    g = results.get("glmm") or {}
    p = _Parts.of(g)
    if g.get("fixed_effects"):
        sds = ", ".join(f"{k[:-3].replace('case:patient', 'case within patient')} SD {v:.3f}"
                        for k, v in (g.get("random_effects") or {}).items() if v is not None)
        p.text(f"Model that ran: {g['formula']}; {sds}. Estimation: {g.get('estimation')}.")
        if g.get("fallback"):
            p.note(f"The full model correct ~ condition * level + (1|reader) + (1|case) was not used: {g['fallback']}.")
        if g.get("separation"):
            p.note(f"Separated readings: {g['separation']}. Without the priors the estimates would be infinite.")
        p.table(glmm_rows(g))
        p.heading("Effect of each comparison by level (model-based)")
        p.caption("Model-based accuracies are the mixed model's population-averaged predictions (a new reader "
                  "reading a new case), not the observed percentages of the accuracy table.")
        rows = effect_rows(results)
        p.table(rows)
        p.figure("forest", figures)
        inter = {k: v for k, v in (results.get("glmm_interaction_p") or {}).items() if v is not None}
        names = {c["key"]: comparison_name(c["condition"], c["reference"])
                 for c in (results.get("meta") or {}).get("comparisons") or []}
        if inter:
            p.text("Test of a different effect across levels: " + "; ".join(
                f"{names.get(k, k)} {p_phrase(v)}" for k, v in inter.items()) + ".")
        for m in g.get("messages") or []:
            p.caption(f"Fit: {m}.")
    return Section("glmm", "Mixed-effects logistic model", tuple(p))


def _mrmc_section(results: dict, key: str, foms: tuple[str, str], title: str) -> Section:
    """An MRMC section (``mrmc``: AUC and percent correct; ``mrmc_binary``: sensitivity and specificity)."""
    mr = results.get(key) or {}
    p = _Parts.of(mr)
    if mr.get("call"):
        p.caption(f"{mr['call']}; {mr['n_diseased']} diseased and {mr['n_non_diseased']} non-diseased cases; "
                  f"design: {mr['design']}; Obuchowski-Rockette with Hillis df, random readers and cases, jackknife "
                  "over the cases that enter each measure.")
    elif mr.get("design"):
        p.caption(f"Design: {mr['design']}. Rating: {mr.get('rating')}.")
    p.table(mrmc_rows(mr, foms))
    _wald_caption(p, mr, foms)
    for n in _mrmc_notes(mr, foms):
        p.note(n)
    if mr.get("n_readers") is not None:
        title += f", {mr['n_readers']} readers x {mr['n_cases']} cases"
    return Section("mrmc" if key == "mrmc" else "mrmc-binary", title, tuple(p))


def _sizing_section(results: dict) -> Section:
    sz = results.get("sizing") or {}
    p = _Parts.of(sz)
    for one in sz.get("comparisons") or []:
        p.heading(comparison_name(*one["comparison"]))
        if not one.get("grid"):
            p.note(f"No sizing for this comparison: {one.get('note') or 'not available'}.")
            continue
        p.caption(sizing_text(sz, one))
        p.table(sizing_rows(one))
        p.heading("Fewest cases for 80% power")
        p.table(sizing_need_rows(one))
    return Section("sizing", "Sizing a next study (analytic power from this study's AUC MRMC)", tuple(p))


def _ai_section(results: dict, figures: dict) -> Section:
    ai_res = results.get("ai_interaction") or {}
    p = _Parts.of(ai_res)
    if not ai_res.get("note"):
        p.heading("Agreement with the AI's top suggestion")
        p.table(in_words(ai_res.get("agreement") or []))
        p.heading("Switching after the AI's suggestion (sequential design)")
        rows = switching_rows(results)
        if rows:
            p.table(rows)
        else:
            p.caption("No switching table: the AI's suggestion is shown after an unaided answer to the same case "
                      "only in a sequential design.")
        p.figure("switching", figures)
        p.figure("roc", figures)
        if "roc" not in figures:
            p.caption("No ROC curve or reader operating points: they need normal and abnormal cases, with the AI's "
                      "probabilities for the curve.")
        p.heading("Fleiss' kappa among readers")
        kappa = ai_res.get("kappa") or []
        if kappa and all(r.get("kappa") is None for r in kappa):
            p.note("No Fleiss' kappa: " + "; ".join(dict.fromkeys(r["note"] for r in kappa if r.get("note"))))
        else:
            p.table(in_words(kappa))
    return Section("ai", "Interaction with the AI", tuple(p))


def _reading_time_section(results: dict, figures: dict) -> Section:
    rt = results.get("reading_time") or {}
    p = _Parts.of(rt)
    if rt.get("fixed_effects"):
        p.text(f"Model that ran: log {rt['formula']} (REML); a time ratio below 1 means faster reading.")
        if rt.get("fallback"):
            p.note(f"The full model was not used: {rt['fallback']}.")
        p.table(reading_time_rows(rt))
        p.figure("reading_time", figures)
    return Section("reading-time", "Reading time (linear mixed model of log seconds)", tuple(p))


def _fast_reads_section(results: dict) -> Section:
    sens = ((results.get("sensitivity") or {}).get("fast_reads")) or {}
    p = _Parts.of(sens)
    if sens.get("differences") is not None:
        p.heading("Differences between conditions")
        p.table(difference_rows(sens["differences"]))
        glmm = sens.get("glmm") or {}
        p.heading("Mixed-effects logistic model")
        p.note(glmm.get("note"))
        p.table(glmm_rows(glmm))
        rt = sens.get("reading_time") or {}
        p.heading("Reading time")
        p.note(rt.get("note"))
        p.table(reading_time_rows(rt))
    threshold = sens.get("threshold_seconds")
    title = "Sensitivity analysis without fast reads" + (f" (under {threshold:g} s)" if threshold else "")
    return Section("fast-reads", title, tuple(p))


def _agreement_section(results: dict) -> Section:
    agr = results.get("agreement") or {}
    p = _Parts.of(agr)
    if agr.get("vs_reference") is not None:
        ci = agr.get("ci") or {}
        unit = "patients" if ci.get("resampled") == "patient" else "cases"
        p.caption(f"Percentile bootstrap intervals resampling {unit}" + (
            f" ({ci['n_units']} {unit}, {ci['n_boot']} replicates)" if ci.get("n_boot") else "") + ".")
        for key, name in (("vs_reference", "Against the reference"),
                          ("differences", f"Differences between conditions (bootstrap over {unit})"),
                          ("between_readers", "Between readers (mean pairwise)"),
                          ("mean_grade_distance", "Mean grade distance")):
            p.heading(name)
            p.table(agreement_rows(agr, key))
    return Section("qwk", "Agreement: quadratic-weighted kappa (ordinal primary question)", tuple(p))


def sections(results: dict, figures: dict | None = None) -> list[Section]:
    """Every section of the report and the page, in order, from one results object."""
    figures = build_figures(results) if figures is None else figures
    study = results.get("study") or {}
    out = [Section("summary", "Summary", (("text", results.get("summary", "")),))]
    if study:
        out.append(Section("study", "Study", (("table", _study_facts(results)), ("heading", "Reader completion"),
                                             ("table", completion_rows(study)))))
    out += [_descriptive_section(results, figures), _glmm_section(results, figures),
            _mrmc_section(results, "mrmc", ("auc", "percent_correct"),
                          "MRMC (Obuchowski-Rockette, Hillis): AUC and percent correct"),
            _mrmc_section(results, "mrmc_binary", ("sensitivity", "specificity"),
                          "MRMC of sensitivity and specificity (abnormal call)"),
            _sizing_section(results), _ai_section(results, figures),
            _reading_time_section(results, figures), _fast_reads_section(results), _agreement_section(results)]
    ung = ((results.get("primary") or {}).get("excluded") or {}).get("ungradable") or {}
    if ung:
        out.append(Section("ungradable", "Ungradable readings", (("table", [
            {"condition": condition_name(k), "ungradable readings": str(v)} for k, v in ung.items()]),)))
    out.append(Section("methods", "Methods", (("text", results.get("methods", "")),)))
    out.append(Section("software", "Software", (("table", [{"package": k, "version": str(v)}
                                                           for k, v in (results.get("software") or {}).items()]),)))
    notes = list(results.get("messages") or [])
    if notes:
        out.append(Section("notes", "Notes", tuple(("caption", n) for n in notes)))
    return out


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------


def _table_html(rows) -> str:
    df = pd.DataFrame(rows)
    if df.empty:
        return "<p><em>not available</em></p>"
    return df.to_html(index=False, na_rep="", border=0, classes="tbl", escape=True)


def _part_html(kind: str, value, divs: dict) -> str:
    if kind == "table":
        return _table_html(value)
    if kind == "figure":
        return divs.get(value, "")
    if kind == "heading":
        return f"<h3>{html.escape(value)}</h3>"
    css = {"caption": " class='pop'", "note": " class='note'"}.get(kind, "")
    return f"<p{css}>{html.escape(value)}</p>"


def render_html(results: dict, figures: dict | None = None, title: str = "ReVision reader study: analysis report") -> str:
    """Self-contained HTML: plotly.js inlined once (first figure), every figure as a div with id fig-<key>."""
    import plotly.io as pio

    figures = build_figures(results) if figures is None else figures
    divs = {key: pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0), div_id=f"fig-{key}")
            for i, (key, fig) in enumerate(figures.items())}
    name = (results.get("study") or {}).get("name")
    title = f"{title}: {name}" if name else title
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}.tbl{border-collapse:collapse;font-size:13px}"
        ".tbl td,.tbl th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}.pop{color:#444}"
        ".note{background:#f4f6fa;padding:4px 8px}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for sec in sections(results, figures):
        parts.append(f"<h2 id='{sec.key}'>{html.escape(sec.title)}</h2>")
        if sec.key in ("summary", "methods"):  # one paragraph each, addressable
            parts.append(f"<p id='{sec.key}'>{html.escape(results.get(sec.key, ''))}</p>")
            continue
        parts += [_part_html(kind, value, divs) for kind, value in sec.parts]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(results: dict, out_html: str | Path | None, out_json: str | Path | None) -> dict:
    """Write the HTML report and/or the JSON results; returns the results."""

    if out_json:
        Path(out_json).write_text(json.dumps(results, indent=2, allow_nan=False))
    if out_html:
        Path(out_html).write_text(render_html(results), encoding="utf-8")
    return results
