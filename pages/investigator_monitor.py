"""Investigator: live monitor per reader and session (cases done, median time per case, last activity)."""
import pandas as pd
import streamlit as st

from pages._investigator import header

factory, study_id, _ = header("Live monitor")
if study_id is None:
    st.info("No study yet.")
    st.stop()
from study.db import reading  # noqa: E402
from study.web import monitor  # noqa: E402


@st.fragment(run_every=30)
def live():
    with reading(factory) as session:
        rows = monitor(session, study_id)
    if not rows:
        st.info("No assignments yet: add readers and build the design.")
        return
    table = pd.DataFrame(rows)
    c1, c2, c3 = st.columns(3)
    c1.metric("Readings done", f"{int(table['done'].sum())} / {int(table['total'].sum())}")
    c2.metric("Readers finished", int((table.groupby("reader")["done"].sum()
                                       == table.groupby("reader")["total"].sum()).sum()))
    med = table["median_seconds"].dropna()
    c3.metric("Median seconds per case", f"{med.median():.0f}" if len(med) else "-")
    table["progress"] = table["done"] / table["total"]
    shown = table.assign(  # words, not "None", where a session has not started
        last_activity=[f"{t:%Y-%m-%d %H:%M}" if pd.notna(t) else "not started" for t in table["last_activity"]],
        median_seconds=[f"{v:.0f}" if pd.notna(v) else "-" for v in table["median_seconds"]])
    st.dataframe(shown, hide_index=True, width="stretch", column_config={
        "reader": "Reader", "level": "Experience level", "session": "Session", "done": "Done", "total": "Of",
        "last_activity": "Last activity (UTC)", "median_seconds": "Median seconds per case",
        "progress": st.column_config.ProgressColumn("Progress", min_value=0, max_value=1)})
    st.caption("Refreshes every 30 seconds. Times are UTC, server clock.")


live()
