"""Investigator: the audit trail, filtered by actor, event type, reader and dates, with a CSV download
(formula-safe; the download is itself audited)."""
import json

import pandas as pd
import streamlit as st

from pages._investigator import header

SHOWN = 500  # rows drawn on the page; the CSV has every matching event

factory, study_id, actor = header("Audit trail")
from study.domain import timefmt  # noqa: E402
from study.services import investigator  # noqa: E402

actors, actions, pseudonyms = investigator.audit_filter_choices(factory, study_id)
c1, c2, c3 = st.columns(3)
by = c1.multiselect("Actor", actors, key="audit_actors")
kinds = c2.multiselect("Event type", actions, key="audit_actions")
reader = c3.selectbox("Reader", ["all readers"] + pseudonyms, key="audit_reader")
c4, c5 = st.columns([2, 1])
days = c4.date_input("Dates (from, to)", value=(), key="audit_days", format="YYYY-MM-DD")
with_global = c5.checkbox("Include sign-ins not tied to a study", value=True, key="audit_global")
first, last = (tuple(days) + (None, None))[:2] if isinstance(days, (tuple, list)) else (days, days)
since, until = investigator.day_range(first, last or first)
flt = investigator.AuditFilter(actors=tuple(by), actions=tuple(kinds), since=since, until=until,
                               reader=None if reader == "all readers" else reader, with_global=with_global)
rows, total = investigator.audit_trail(factory, study_id, flt, limit=SHOWN, newest_first=True)
st.caption(f"{total} event(s) match" + (f"; the newest {SHOWN} are shown, the CSV has all" if total > SHOWN else "")
           + f". Times in {investigator.zone_label()}.")
if rows:
    st.dataframe(pd.DataFrame([{
        "at": timefmt.minute(r["at"]), "actor": r["actor"], "action": r["action"], "entity": r["entity"],
        "entity_id": r["entity_id"] or "",
        "details": json.dumps({k: v for k, v in (("before", r["before"]), ("after", r["after"])) if v is not None},
                              default=str, ensure_ascii=False)} for r in rows]),
        hide_index=True, width="stretch", column_config={
            "at": "Time", "actor": "Actor", "action": "Event", "entity": "About", "entity_id": "Id",
            "details": "Details"})


def _csv() -> str:
    return investigator.export_audit(factory, study_id, flt, actor=actor)[0]


st.download_button("Download these events as CSV", _csv, "audit_trail.csv", "text/csv", key="audit_download",
                   on_click="ignore", disabled=not total)
