"""Investigator: one reader in detail: progress per session, every answer with its versions and
corrections, fast reads, and the sign-in and lockout events."""
import json

import pandas as pd
import streamlit as st

from pages._investigator import header
from pages._shared import plain

factory, study_id, _ = header("Reader detail")
from study.domain import timefmt  # noqa: E402
from study.services import investigator  # noqa: E402

readers, limits = investigator.readers_with_thresholds(factory, study_id)
if not readers:
    st.info("No readers yet: add them on the set-up page.")
    st.stop()
by_id = {r["reader_id"]: r for r in readers}
pick = st.selectbox("Reader", list(by_id), key="reader_pick",
                    format_func=lambda i: f"{by_id[i]['pseudonym']} ({by_id[i]['level']}, {by_id[i]['status']})")
detail = investigator.reader_detail(factory, pick)
r = detail.reader
st.markdown(f"**{plain(r['pseudonym'])}** · {plain(r['display_name'])} · {plain(r['level'])} "
            f"({r['years_experience']:g} years) · site {plain(r['site'] or 'not recorded')}")
cols = st.columns(4)
cols[0].metric("Readings done", f"{r['done']} / {r['total']}")
cols[1].metric("Fast reads", r["fast_reads"])
last = r["last_activity"]  # the day fits a metric at 1024 px; the full time is in its help and the table below
cols[2].metric("Last activity", f"{timefmt.local(last):%d %b}" if last else "not started",
               help=timefmt.minute(last) if last else None)
status, _, more = r["status"].partition(": ")  # "washout: session 2 opens ...": the word fits a metric at 1024 px
cols[3].metric("Status", status, help=r["status"] if more else None)
if more:
    st.caption(f"Status: {plain(r['status'])}")
st.caption(("Access code active, issued " + timefmt.minute(r["code_issued_at"])) if r["code_active"]
           else f"Access code revoked {timefmt.minute(r['revoked_at'])}")
st.caption(limits.describe())

st.subheader("Progress per session")
st.dataframe(pd.DataFrame([{**s, "first_shown": timefmt.minute(s["first_shown"]),
                            "last_activity": timefmt.minute(s["last_activity"]),
                            "opened_early": s["opened_early"] or ""} for s in detail.sessions]),
             hide_index=True, width="stretch", column_config={
                 "session": "Session", "done": "Done", "total": "Of", "fast_reads": "Fast reads",
                 "median_seconds": "Median seconds per case", "first_shown": "First case shown",
                 "last_activity": "Last activity", "opened_early": "Opened before the washout ended (by: reason)"})

st.subheader("Answers, with every version")
if detail.answers:
    # the position as the reader saw it ("Case 3 of 60, session 1 of 2"): counted from 1 within each session
    st.dataframe(pd.DataFrame([{**a, "position": a["position"] + 1, "submitted_at": timefmt.minute(a["submitted_at"]),
                                "reason": a["reason"] or ""} for a in detail.answers]).drop(columns="answer_id"),
                 hide_index=True, width="stretch", column_config={
                     "session": "Session", "position": st.column_config.NumberColumn(
                         "Shown as case", help="The reader's heading said \"Case n\" (of the session)"),
                     "case": "Case", "condition": "Condition",
                     "step": "Step", "version": "Version", "answer": "Answer", "reason": "Correction reason",
                     "submitted_at": "Answered", "seconds": "Seconds", "fast": "Fast read"})
else:
    st.caption("No answers yet.")

st.subheader("Sign-in and account events")


def _events(rows):
    return pd.DataFrame([{"at": timefmt.minute(e["at"]), "actor": e["actor"], "event": e["action"],
                          "details": json.dumps(e["after"], default=str, ensure_ascii=False) if e["after"] else ""}
                         for e in rows])


if detail.events:
    st.dataframe(_events(detail.events), hide_index=True, width="stretch")
else:
    st.caption("None yet.")
st.markdown("**Failed and slowed-down sign-ins with this reader's code prefix**")
st.caption("Wrong codes are counted by the code's first group (the part stored in clear), so another reader "
           "with the same first group would show here too; tries against an earlier, replaced code are not.")
if detail.prefix_failures:
    st.dataframe(_events(detail.prefix_failures), hide_index=True, width="stretch")
else:
    st.caption("None.")
