"""Investigator: study operations: revoke or reissue a reader's access code (the new code shown once) and
open a reader's next session before the washout ends. Every action needs a reason and is audited
(``study.services.investigator`` over ``study.domain.reader_operations``)."""
import pandas as pd
import streamlit as st

from pages._investigator import header
from pages._shared import plain

factory, study_id, actor = header("Study operations")
from study.domain import timefmt  # noqa: E402
from study.services import investigator  # noqa: E402

readers = investigator.readers_overview(factory, study_id)
if not readers:
    st.info("No readers yet: add them on the set-up page.")
    st.stop()
by_id = {r["reader_id"]: r for r in readers}
st.dataframe(pd.DataFrame([{
    "reader": r["pseudonym"], "level": r["level"], "site": r["site"] or "",
    "code": "active" if r["code_active"] else "revoked " + timefmt.minute(r["revoked_at"]),
    "code_issued": timefmt.minute(r["code_issued_at"]), "done": r["done"], "total": r["total"],
    "status": r["status"]} for r in readers]), hide_index=True, width="stretch", column_config={
    "reader": "Reader", "level": "Experience level", "site": "Site", "code": "Access code",
    "code_issued": "Code issued", "done": "Done", "total": "Of", "status": "Status"})


def _run(fn, reader_id: int, reason_key: str, done: str) -> None:
    """One audited operation in its own transaction, as a button callback (it runs before the page is drawn,
    so the page shows the new state); a refusal is kept as a message for this run."""
    try:
        result = fn(factory, reader_id, actor=actor, reason=st.session_state.get(reason_key, ""))
    except investigator.OperationRefused as exc:
        st.session_state["ops_message"] = ("error", str(exc))
        return
    st.session_state["ops_message"] = ("success", done.format(result=result, who=by_id[reader_id]["pseudonym"]))
    st.session_state[reason_key] = ""  # each action gives its own reason
    if fn is investigator.reissue_code:
        st.session_state["ops_new_code"] = (by_id[reader_id]["pseudonym"], result)  # popped when drawn: shown once


kind, text = st.session_state.pop("ops_message", (None, None))
if kind:
    (st.success if kind == "success" else st.error)(plain(text))
issued = st.session_state.pop("ops_new_code", None)
if issued is not None:
    st.warning(f"New access code for {plain(issued[0])}. Copy it now: it is not shown again.", icon=":material/key:")
    st.code(issued[1], language=None)

st.subheader("Access codes")
st.caption("Revoke a code that was lost or shared (the reader's answers stay), or issue a new one: the old code "
           "stops working and the new one is shown here once. Codes are stored only as argon2 hashes.")
# the picker names the reader only: a status in its label stayed stale in the browser after an operation changed
# it; the status is said fresh on every run, below it
pick = st.selectbox("Reader", list(by_id), format_func=lambda i: by_id[i]["pseudonym"], key="ops_code_reader")
st.caption(f"{plain(by_id[pick]['pseudonym'])}: " + ("access code active" if by_id[pick]["code_active"] else
                                                      "access code revoked") + f" · {plain(by_id[pick]['status'])}")
st.text_input("Reason (goes into the audit trail)", key="ops_code_reason", max_chars=investigator.MAX_REASON)
left, right = st.columns(2)
left.button("Revoke the code", key="ops_revoke", disabled=not by_id[pick]["code_active"], on_click=_run,
            args=(investigator.revoke_code, pick, "ops_code_reason", "The access code of {who} is revoked."))
right.button("Issue a new code", key="ops_reissue", on_click=_run,
             args=(investigator.reissue_code, pick, "ops_code_reason",
                   "{who} has a new access code; the old one no longer works."))

st.subheader("Early access to the next session")
waiting = [r for r in readers if r["washout_until"] is not None]
if not waiting:
    st.info("No reader is waiting out a washout.")
else:
    st.caption("A reader whose next session is held by the washout can be let in now, for a reason (audited).")
    names = {r["reader_id"]: r for r in waiting}
    pick = st.selectbox("Reader waiting for the washout", list(names), key="ops_washout_reader",
                        format_func=lambda i: f"{names[i]['pseudonym']}: session {names[i]['next_session']} opens "
                                              f"{timefmt.minute(names[i]['washout_until'])}")
    st.text_input("Reason (goes into the audit trail)", key="ops_washout_reason",
                        max_chars=investigator.MAX_REASON)
    st.button(f"Open session {names[pick]['next_session']} now", key="ops_override", on_click=_run,
              args=(investigator.override_washout, pick, "ops_washout_reason", "Session {result} of {who} is open."))
