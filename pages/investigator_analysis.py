"""Investigator: the study's analysis (one results object from ``study.services.analysis``, the CLI's call
and defaults) with the data cut-off, the report and the exports.

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
        except Exception as exc:  # a message for the investigator; the log has the traceback
            st.session_state.pop(key, None)
            st.error(f"The analysis could not run: {plain(exc)}")
res = st.session_state.get(key)


def population(section):
    line = report.population_line((section or {}).get("population"))
    if line:
        st.caption(plain(line))
    cl = report.clustering_line(section)
    if cl:
        st.caption(plain(cl))


def table(rows):
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    else:
        st.caption("Not available for this study.")


if res:
    figs = report.build_figures(res)
    info = res["study"]
    st.caption(plain(f"Cut-off: {info['cutoff']['description']}; data snapshot sha256 {info['snapshot_sha256']}"))
    st.subheader("Summary")
    st.text(res["summary"])
    st.subheader("Reader completion")
    table(report.completion_rows(info))

    st.subheader("Accuracy")
    population(res["descriptive"])
    st.plotly_chart(figs["accuracy"], theme=None, key="fig_accuracy")
    table(report.difference_rows(res["descriptive"]["differences"]))

    st.subheader("Mixed-effects logistic model (odds ratios)")
    population(res["glmm"])
    table(report.glmm_rows(res["glmm"]))

    st.subheader("AI effect by experience level")
    st.plotly_chart(figs["forest"], theme=None, key="fig_forest")
    table(report.effect_rows(res))

    st.subheader("MRMC (Obuchowski-Rockette, AUC)")
    mr = res.get("mrmc")
    population(mr)
    table(report.mrmc_rows(mr))
    if mr and mr.get("note"):
        st.info(plain(mr["note"]))

    st.subheader("MRMC (sensitivity and specificity of the abnormal call)")
    sb = res.get("mrmc_binary")
    population(sb)
    if sb:
        st.caption(plain(f"{sb['call']}; {sb['n_diseased']} diseased and {sb['n_non_diseased']} non-diseased cases; "
                         "Obuchowski-Rockette, random readers and cases."))
    table(report.mrmc_binary_rows(sb))
    for note in [(sb or {}).get(k) for k in ("note", "sensitivity_error", "specificity_error")]:
        if note:
            st.info(plain(note))

    st.subheader("Sizing a next study")
    sz = res.get("sizing")
    population(sz)
    st.caption(plain(report.sizing_text(sz)))
    if sz and sz.get("grid"):
        table(report.sizing_rows(sz))
        table(report.sizing_need_rows(sz))

    st.subheader("Agreement (quadratic-weighted kappa)")
    agr = res.get("agreement")
    if agr:
        population(agr)
        table(report.agreement_rows(agr, "vs_reference"))
        table(report.agreement_rows(agr, "between_readers"))
    else:
        st.caption("Only for an ordinal primary question (a grade).")

    st.subheader("Reading time")
    population(res.get("reading_time"))
    table(report.reading_time_rows(res.get("reading_time")))
    if "reading_time" in figs:
        st.plotly_chart(figs["reading_time"], theme=None, key="fig_reading_time")

    st.subheader("Switching after the AI's suggestion")
    population(res["ai_interaction"])
    table(report.switching_rows(res))

    sens = res["sensitivity"].get("fast_reads")
    if sens:
        st.subheader(f"Without fast reads (under {sens['threshold_seconds']:g} s)")
        if sens.get("population"):
            population(sens)
            table(report.difference_rows(sens["differences"]))
        else:
            st.caption(plain(sens.get("note", "")))
    for message in res.get("messages", []):
        st.warning(plain(message))

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
