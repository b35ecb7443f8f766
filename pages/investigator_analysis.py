"""Investigator: the study's analysis (one results object from ``study.services.analysis``, the CLI's call
and defaults) with the data cut-off, the report and the exports. The page shows the report's sections
(``study.outputs.report.sections``), part by part, so the two never differ.

User-supplied names (levels, conditions, readers) reach the browser only as plain text: st.dataframe cells
are not Markdown, the figures carry HTML-escaped copies (``study.outputs.report``) and messages go through
``plain``."""
from datetime import datetime, time, timezone

import pandas as pd
import streamlit as st

from pages._investigator import header
from pages._shared import plain

factory, study_id, actor = header("Analysis and exports")
from study.domain import timefmt  # noqa: E402
from study.outputs import report  # noqa: E402
from study.services import analysis  # noqa: E402


if not analysis.answers_stored(factory, study_id):
    st.info("Exports and the analysis become available once readers have submitted answers.")
    st.stop()

st.subheader("Data cut-off")
MODES = {"all": "All answers stored", "completed": "Completed readers only", "until": "Answers up to a time"}
mode = st.radio("Answers to analyse", list(MODES), format_func=MODES.get, horizontal=True, key="cutoff_mode")
until = None
if mode == "until":
    zone = timefmt.display_zone()
    c1, c2 = st.columns(2)
    day = c1.date_input("Date", key="cutoff_date")
    at = c2.time_input("Time", value=time(23, 59), key="cutoff_time")
    until = datetime.combine(day, at, tzinfo=zone).astimezone(timezone.utc).replace(tzinfo=None)
cutoff = analysis.cutoff(mode, until)
key = f"analysis_{study_id}_{cutoff!r}"  # results belong to the cut-off they were run with
if st.button("Run the analysis", key="run_analysis", type="primary"):
    with st.spinner("Analysing ..."):
        try:
            st.session_state[key] = analysis.results(factory, study_id, cutoff)
        except analysis.AnalysisError as exc:  # in words; an unexpected failure's traceback is in the server log
            st.session_state.pop(key, None)
            st.error(f"The analysis could not run: {plain(exc)}")
res = st.session_state.get(key)


def show(kind, value, figures):
    """One part of a section of the report (``study.outputs.report.sections``), as the report shows it."""
    if kind == "table":
        if value:
            st.dataframe(pd.DataFrame(value), hide_index=True)
        else:
            st.caption("Not available for this study.")
    elif kind == "figure":
        st.plotly_chart(figures[value], theme=None, key=f"fig_{value}")
    elif kind == "heading":
        st.markdown(f"**{plain(value)}**")
    elif kind == "note":
        st.info(plain(value))
    elif kind == "caption":
        st.caption(plain(value))
    else:
        st.markdown(plain(value))


if res:
    figs = report.build_figures(res)
    info = res.get("study") or {}
    st.caption(plain(f"Cut-off: {info['cutoff']['description']}; data snapshot sha256 {info['snapshot_sha256']}"))
    for section in report.sections(res, figs):
        st.subheader(section.title)
        for kind, value in section.parts:
            show(kind, value, figs)

    st.subheader("Report")
    st.download_button("Download the HTML report", lambda: analysis.report_html(res), "report.html", "text/html",
                       key="dl_report", on_click="ignore")
    st.download_button("Download the results (JSON)", lambda: analysis.results_json(res), "results.json",
                       "application/json", key="dl_results", on_click="ignore")

st.subheader("Exports")
st.caption("Each file is built from the database when you click its button.")
cols = st.columns(3)
for col, (label, fmt, fname, mime) in zip(cols, [("Long CSV", "csv", "answers_long.csv", "text/csv"),
                                                 ("Parquet", "parquet", "answers.parquet",
                                                  "application/vnd.apache.parquet"),
                                                 ("iMRMC", "imrmc", "imrmc_input.imrmc", "text/plain")]):
    build = lambda fmt=fmt: analysis.export_bytes(factory, study_id, fmt, actor=actor)  # noqa: E731 (run on click, audited)
    col.download_button(f"Download {label}", build, fname, mime, key=f"dl_{fmt}", on_click="ignore")
