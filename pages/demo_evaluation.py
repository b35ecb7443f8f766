"""Demo: how good is the model? ROC curves and AUROC with 95% DeLong CIs on a small synthetic labelled
set; beside it, where a folder of real labelled photographs is configured (``[[evaluation.real_source]]`` in
the demo settings), the model on those, with what they can and cannot show; and the few-shot label-efficiency
curve. All cached per model version and settings.

The ROC plot is square (both axes are rates from 0 to 1); curves that coincide are said in words, since a
plot draws them as one line."""
import html
from pathlib import Path

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from pages._shared import classifier_or_stop, model_banner, plain, real_samples_folder
from pages._shared import require_public_demo
from revision_core import samples as gallery_mod
from revision_core.demo_eval import overlap_sentence, overlapping_curves

require_public_demo()  # study mode: nothing of the model while a study has unaided readings left (app.py)
st.title("Model evaluation")
clf = classifier_or_stop()
card = clf.loaded.card
model_banner(clf, ". Synthetic evaluation cases (seeds never used in training); real photographs where configured.")
names = {k: clf.label_set.finding(k).name for k in clf.findings}
DASHES = ("solid", "dash", "dot", "dashdot", "longdash")


@st.cache_data(show_spinner=False)
def _settings() -> dict:
    from revision_core.samples import demo_settings

    return demo_settings().get("evaluation", {})


@st.cache_data(show_spinner="Scoring the synthetic evaluation set ...", max_entries=8)
def _roc(version: str, n: int):
    from revision_core.demo_eval import roc_evaluation

    return roc_evaluation(clf, n=n)


@st.cache_data(show_spinner="Fitting few-shot probes ...", max_entries=8)
def _fewshot(version: str, n_train: int, n_test: int):
    from revision_core.demo_eval import fewshot_curve

    return fewshot_curve(clf, n_train=n_train, n_test=n_test)


settings = _settings()
sizes = list(settings.get("sizes", [24, 60, 120, 240]))
n = st.select_slider("Evaluation cases", sizes, value=settings.get("default_size", sizes[len(sizes) // 2]),
                     key="eval_n")
res = _roc(card.version, n)
st.subheader(f"ROC curves on {n} synthetic cases" + (f" (mean AUROC {res['mean_auroc']:.3f})"
                                                      if res["mean_auroc"] is not None else ""))

groups = overlapping_curves(res["curves"], res["aucs"])
rank = {f: i for g in groups for i, f in enumerate(g)}  # a coinciding curve gets its own dash and width
fig = go.Figure()
for finding, (fpr, tpr) in res["curves"].items():
    auc = res["aucs"].get(finding)
    label = html.escape(names[finding]) + (f" (AUROC {auc:.2f})" if auc is not None else "")  # plotly renders <a>
    r = rank.get(finding)  # None: a curve of its own
    fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name=label,
                             line={"dash": "solid", "width": 2.5} if r is None else
                             {"dash": DASHES[r % len(DASHES)], "width": max(2, 8 - 2 * r)}))
fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey", "width": 1},
                         name="chance (AUROC 0.50)"))
# square: fixed width, both axes 0-1 at one scale; the legend below, so that the square keeps its size
fig.update_layout(xaxis_title="1 - specificity", yaxis_title="sensitivity", width=520, height=640,
                  margin={"l": 60, "r": 20, "t": 10, "b": 10},
                  legend={"orientation": "v", "x": 0, "y": -0.14, "xanchor": "left", "yanchor": "top"})
fig.update_xaxes(range=[-0.01, 1.01], constrain="domain", tickvals=[0, 0.25, 0.5, 0.75, 1])
fig.update_yaxes(range=[-0.01, 1.01], scaleanchor="x", scaleratio=1, constrain="domain",
                 tickvals=[0, 0.25, 0.5, 0.75, 1])
st.plotly_chart(fig, width="content", key="roc")
for group in groups:
    st.caption(plain(overlap_sentence(group, names, res["aucs"].get(group[0]))))
st.dataframe(pd.DataFrame(res["table"]), hide_index=True, width="stretch", column_config={
    "finding": "Finding", "positives": "Positives", "negatives": "Negatives", "note": "Note",
    "auroc": st.column_config.NumberColumn("AUROC", format="%.3f"),
    "ci_low": st.column_config.NumberColumn("CI low", format="%.3f", help="95% confidence interval (DeLong)"),
    "ci_high": st.column_config.NumberColumn("CI high", format="%.3f", help="95% confidence interval (DeLong)")})



@st.cache_data(show_spinner="Scoring the real photographs ...", max_entries=4)
def _real(version: str, folder: str, n_synthetic: int):
    from revision_core.demo_eval import real_evaluation

    photos = gallery_mod.labelled_real_photos(Path(folder))
    result = real_evaluation(clf, gallery_mod.load_labelled(photos), [p.findings for p in photos],
                             _roc(version, n_synthetic))
    return result, sorted({p.credit for p in photos if p.credit})


def _pct(low: float, high: float) -> str:
    return f"{100 * low:.0f}-{100 * high:.0f}%"


def _auc(value, ci) -> str:
    return "" if value is None else f"{value:.3f}" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else "")


folder = real_samples_folder()
photos = gallery_mod.labelled_real_photos(folder)
st.subheader(f"Real photographs ({len(photos)})" if photos else "Real photographs")
if not photos:
    st.caption("None configured: the numbers above are on synthetic cases only. A folder of real photographs "
               "(REVISION_REAL_SAMPLES, or `[demo] real_samples` in .streamlit/secrets.toml) whose files an "
               "`[[evaluation.real_source]]` of the demo settings labels is evaluated here, beside them.")
else:
    real, credits = _real(card.version, str(folder), n)
    # one column a finding, one row a measure: readable at any window width, the synthetic result beside the real
    st.dataframe(pd.DataFrame({names.get(r["finding"], r["finding"]): {
        "Real photographs showing it": str(r["positives"]),
        "Real normal photographs": str(r["negatives"]),
        "Called by the model (p >= 0.5)": f"{r['called']} of {r['positives']} ({r['sensitivity']:.0%}; 95% CI "
                                          f"{_pct(r['sens_low'], r['sens_high'])})",
        "Median probability on them": f"{r['median']:.2f}",
        "AUROC on real photographs (95% CI)": _auc(r["auroc"], r["ci"]) or "none: no real normals",
        f"AUROC on the {n} synthetic cases (95% CI)": _auc(r["synthetic_auroc"], r["synthetic_ci"]),
        "AUROC, real vs synthetic normals (95% CI)": _auc(r["auroc_vs_synthetic"], r["ci_vs_synthetic"]),
    } for r in real["rows"]}), width="stretch")
    lines = [f"{real['n']} real photographs ({'; '.join(credits)})" if credits else f"{real['n']} real photographs"]
    if real["normals"] == 0:
        lines.append("None of them is normal, so no AUROC can be computed on real photographs alone: what they "
                     "show is how many the model calls (its sensitivity at 0.5). The last column pairs them with "
                     "the synthetic normals, a mixed comparison that is not a real-world AUROC: real and synthetic "
                     "photographs differ in more than the disease.")
    lines.append(gallery_mod.REAL_NOTE)
    for line in lines:
        st.caption(plain(line))

st.subheader("Few-shot label efficiency")
st.caption("Test AUROC of linear probes on the image embeddings with k positive and k negative training cases "
           "(mean over draws); k = 0 is zero-shot.")
if st.toggle("Compute the label-efficiency curve", key="fewshot_on"):
    curve = _fewshot(card.version, settings.get("fewshot_train", 60), settings.get("fewshot_test", 40))
    curve = curve.dropna(subset=["auc_mean"])
    if curve.empty:
        st.info("Too few positive cases in this small set for any k.")
    else:
        curve = curve.assign(finding=curve["finding"].map(lambda k: html.escape(names.get(k, k))))
        fig = px.line(curve, x="k", y="auc_mean", color="finding", line_dash="method", markers=True,
                      labels={"auc_mean": "test AUROC", "finding": "Finding", "method": "Method"})
        fig.update_layout(legend={"orientation": "h", "y": -0.25, "title": None}, height=520)
        st.plotly_chart(fig, width="stretch", key="fewshot")
