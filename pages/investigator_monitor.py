"""Investigator: live monitor per reader and session (cases done, median time per case, fast reads, last
activity) and the flags: readers with implausibly fast reads and stalled readers, thresholds stated
(``study.domain.flags`` through ``study.domain.monitoring``, read by ``study.services.investigator.live_monitor``; the
numbers are the study TOML's ``[monitor]``)."""
import pandas as pd
import streamlit as st

from pages._investigator import header

factory, study_id, _ = header("Live monitor")
from study.domain import timefmt  # noqa: E402
from study.services import investigator  # noqa: E402


@st.fragment(run_every=30)
def live():
    view = investigator.live_monitor(factory, study_id)
    rows, fast, readers, limits = view.rows, view.fast_reads, view.readers, view.thresholds
    if not rows:
        st.info("No assignments yet: add readers and build the design.")
        return
    table = pd.DataFrame(rows)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Readings done", f"{int(table['done'].sum())} / {int(table['total'].sum())}")
    c2.metric("Readers finished", int((table.groupby("reader")["done"].sum()
                                       == table.groupby("reader")["total"].sum()).sum()))
    med = table["median_seconds"].dropna()
    c3.metric("Median seconds per case", f"{med.median():.0f}" if len(med) else "-")
    c4.metric("Fast reads", sum(fast.values()), help=limits.describe())
    table["progress"] = table["done"] / table["total"]
    table["fast_reads"] = [fast.get((r, s), 0) for r, s in zip(table["reader"], table["session"])]
    shown = table.assign(  # words, not "None", where a session has not started
        last_activity=[timefmt.minute(t) if pd.notna(t) else "not started" for t in table["last_activity"]],
        median_seconds=[f"{v:.0f}" if pd.notna(v) else "-" for v in table["median_seconds"]])
    st.dataframe(shown, hide_index=True, width="stretch", column_config={
        "reader": "Reader", "level": "Experience level", "session": "Session", "done": "Done", "total": "Of",
        "last_activity": "Last activity", "median_seconds": "Median seconds per case", "fast_reads": "Fast reads",
        "progress": st.column_config.ProgressColumn("Progress", min_value=0, max_value=1)})

    st.subheader("Flags")
    st.caption(limits.describe())
    flagged = [r for r in readers if r["fast_reads"] or r["stalled"]]
    if not flagged:
        st.success("No reader is flagged.")
    else:
        st.dataframe(pd.DataFrame([{
            "reader": r["pseudonym"], "level": r["level"], "fast_reads": r["fast_reads"],
            "stalled": "stalled" if r["stalled"] else "", "last_activity": timefmt.minute(r["last_activity"]),
            "done": r["done"], "total": r["total"]} for r in flagged]),
            hide_index=True, width="stretch", column_config={
                "reader": "Reader", "level": "Experience level",
                "fast_reads": f"Reads under {limits.fast_read_seconds:g} s", "stalled": "Stalled",
                "last_activity": "Last activity", "done": "Done", "total": "Of"})
        st.caption("Reader detail (sidebar) lists each fast read; the analysis can leave flagged reads out.")
    st.caption(f"Refreshes every 30 seconds. Times in {investigator.zone_label()} "
               "to the minute, server clock.")


live()
