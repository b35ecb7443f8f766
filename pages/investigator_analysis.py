"""Investigator: descriptive accuracy by condition and level, export downloads (built on click) and the
HTML analysis report.

User-supplied names (levels, conditions) reach the browser only as plain text: st.dataframe cells are not
Markdown, the chart gets HTML-escaped copies (plotly renders <a href> in labels) and error messages go
through ``plain``."""
import html

import pandas as pd
import plotly.express as px
import streamlit as st

from pages._investigator import header
from pages._shared import plain

factory, study_id, actor = header("Analysis and exports")
if study_id is None:
    st.info("No study yet.")
    st.stop()
from study.db import reading  # noqa: E402
from study.web import accuracy_by_condition_level  # noqa: E402

st.subheader("Accuracy of the primary diagnosis by condition and experience level")
with reading(factory) as session:
    rows = accuracy_by_condition_level(session, study_id)
if rows:
    table = pd.DataFrame(rows)
    chart = table.assign(level=table["level"].map(lambda v: html.escape(str(v), quote=False)),
                         condition=table["condition"].map(lambda v: html.escape(str(v), quote=False)))
    st.plotly_chart(px.bar(chart, x="level", y="accuracy", color="condition", barmode="group", range_y=[0, 1],
                           hover_data=["readings"]), width="stretch")
    st.dataframe(table, hide_index=True, column_config={
        "condition": "Condition", "level": "Experience level", "readings": "Readings",
        "accuracy": st.column_config.NumberColumn("Accuracy", format="percent")})
else:
    st.info("No answers yet.")

st.subheader("Study report and exports")
if not rows:
    st.info("Exports and the report become available once readers have submitted answers.")
    st.stop()
from study.web import export_bytes, html_report  # noqa: E402

st.caption("Each file is built from the database when you click its button.")
cols = st.columns(3)
for col, (label, fmt, fname, mime) in zip(cols, [("Long CSV", "csv", "answers_long.csv", "text/csv"),
                                                 ("Parquet", "parquet", "answers.parquet",
                                                  "application/vnd.apache.parquet"),
                                                 ("iMRMC", "imrmc", "imrmc_input.imrmc", "text/plain")]):
    build = lambda fmt=fmt: export_bytes(factory, study_id, fmt, actor=actor)  # noqa: E731 (run on click, audited)
    col.download_button(f"Download {label}", build, fname, mime, key=f"dl_{fmt}", on_click="ignore")
report_key = f"report_html_{study_id}"  # one per study: switching study never offers another study's report
if st.button("Build the HTML report (runs the full analysis; may take a minute)", key="build_report"):
    with st.spinner("Analysing ..."):
        try:
            st.session_state[report_key] = html_report(factory, study_id)
        except Exception as exc:
            st.error(f"The report could not be built: {plain(exc)}")
if st.session_state.get(report_key):
    st.download_button("Download the HTML report", st.session_state[report_key], "report.html", "text/html",
                       key="dl_report")
