"""Demo: how good is the model? ROC curves and AUROC with 95% DeLong CIs on a small synthetic labelled
set, and the few-shot label-efficiency curve. Both cached per model version and settings."""
import html

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from pages._shared import classifier_or_stop, model_banner

from pages._shared import require_public_demo

require_public_demo()  # study mode: nothing of the model while a study has unaided readings left (app.py)
st.title("Model evaluation")
clf = classifier_or_stop()
card = clf.loaded.card
model_banner(clf, ". Synthetic evaluation cases (seeds never used in training).")


@st.cache_data(show_spinner="Scoring the synthetic evaluation set ...", max_entries=8)
def _roc(version: str, n: int):
    from revision_core.demo_eval import roc_evaluation

    return roc_evaluation(clf, n=n)


@st.cache_data(show_spinner="Fitting few-shot probes ...", max_entries=8)
def _fewshot(version: str, n_train: int, n_test: int):
    from revision_core.demo_eval import fewshot_curve

    return fewshot_curve(clf, n_train=n_train, n_test=n_test)


n = st.select_slider("Evaluation cases", [24, 60, 120, 240], value=60, key="eval_n")
res = _roc(card.version, n)
st.subheader(f"ROC curves (mean AUROC {res['mean_auroc']:.3f})" if res["mean_auroc"] is not None else "ROC curves")
fig = go.Figure()
for finding, (fpr, tpr) in res["curves"].items():
    name = html.escape(clf.label_set.finding(finding).name)  # plotly renders <a> and <b> in names
    fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name=name))
fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"}, name="chance"))
fig.update_layout(xaxis_title="1 - specificity", yaxis_title="sensitivity", height=420)
st.plotly_chart(fig, width="stretch", key="roc")
st.dataframe(pd.DataFrame(res["table"]), hide_index=True, width="stretch", column_config={
    "finding": "Finding", "positives": "Positives", "negatives": "Negatives", "note": "Note",
    "auroc": st.column_config.NumberColumn("AUROC", format="%.3f"),
    "ci_low": st.column_config.NumberColumn("95% CI low (DeLong)", format="%.3f"),
    "ci_high": st.column_config.NumberColumn("95% CI high (DeLong)", format="%.3f")})

st.subheader("Few-shot label efficiency")
st.caption("Test AUROC of linear probes on the image embeddings with k positive and k negative training cases "
           "(mean over draws); k = 0 is zero-shot.")
if st.toggle("Compute the label-efficiency curve", key="fewshot_on"):
    curve = _fewshot(card.version, 60, 40).dropna(subset=["auc_mean"])
    if curve.empty:
        st.info("Too few positive cases in this small set for any k.")
    else:
        st.plotly_chart(px.line(curve, x="k", y="auc_mean", color="finding", line_dash="method", markers=True,
                                labels={"auc_mean": "test AUROC"}), width="stretch", key="fewshot")
