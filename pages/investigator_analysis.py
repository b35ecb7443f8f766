"""Investigator: descriptive accuracy by condition and level, the study report/analysis when available,
and export downloads."""
import pandas as pd
import plotly.express as px
import streamlit as st

from pages._investigator import header

factory, study_id, actor = header("Analysis and exports")
if study_id is None:
    st.info("No study yet.")
    st.stop()
from study.web import accuracy_by_condition_level, reading  # noqa: E402

st.subheader("Accuracy of the primary diagnosis by condition and experience level")
with reading(factory) as session:
    rows = accuracy_by_condition_level(session, study_id)
if rows:
    table = pd.DataFrame(rows)
    st.plotly_chart(px.bar(table, x="level", y="accuracy", color="condition", barmode="group", range_y=[0, 1],
                           hover_data=["readings"]), width="stretch")
    st.dataframe(table, hide_index=True)
else:
    st.info("No answers yet.")

st.subheader("Study report and exports")
try:
    from study import export as export_mod
except ImportError:
    export_mod = None
try:
    from study import report as report_mod
except ImportError:
    report_mod = None
if export_mod is None:
    st.info("Exports (long CSV, Parquet, iMRMC) are not available yet in this installation (study.export).")
else:
    from study.web import export_bytes

    cols = st.columns(3)
    for col, (label, fmt, fname, mime) in zip(cols, [("Long CSV", "csv", "answers_long.csv", "text/csv"),
                                                     ("Parquet", "parquet", "answers.parquet",
                                                      "application/vnd.apache.parquet"),
                                                     ("iMRMC", "imrmc", "imrmc_input.imrmc", "text/plain")]):
        try:
            data = export_bytes(factory, study_id, fmt)
        except Exception as exc:  # an export that cannot be built is reported, not fatal
            col.warning(f"{label}: {exc}")
        else:
            col.download_button(f"Download {label}", data, fname, mime, key=f"dl_{fmt}")
if report_mod is None:
    st.info("The HTML report is not available yet in this installation (study.report).")
elif st.button("Build the HTML report (runs the full analysis; may take a minute)", key="build_report"):
    from study.web import html_report

    with st.spinner("Analysing ..."):
        try:
            st.session_state["report_html"] = html_report(factory, study_id)
        except Exception as exc:
            st.error(f"The report could not be built: {exc}")
if st.session_state.get("report_html"):
    st.download_button("Download the HTML report", st.session_state["report_html"], "report.html", "text/html",
                       key="dl_report")
