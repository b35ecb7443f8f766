"""Reader sign-in with an access code; 5 wrong codes lock sign-in for a while (kept in the database, audited)."""
import streamlit as st

from pages._shared import ROLE, database
from study.services.signin import LOCKOUT, MAX_FAILURES, SignInThrottle, new_client_id, sign_in

st.title("Reader sign-in")
st.write("Enter the access code the study team gave you (three groups of four characters, e.g. `K7QX-3MNP-W9RT`).")
throttle = st.session_state.setdefault("signin_throttle", SignInThrottle(new_client_id()))
throttle.ip = st.context.ip_address  # None on localhost: the browser session is the client then
with st.form("reader_signin", clear_on_submit=True):
    code = st.text_input("Access code", type="password", key="access_code")
    pressed = st.form_submit_button("Sign in", type="primary")
if pressed:
    result = sign_in(database(), throttle, code)
    if result.reader_id is not None:
        st.session_state[ROLE] = "reader"
        st.session_state["reader_id"] = result.reader_id
        st.rerun()
    elif result.locked:
        st.error(result.message, icon=":material/lock:")
    else:
        st.warning(result.message)
st.caption(f"After {MAX_FAILURES} wrong codes, sign-in is paused for {int(LOCKOUT.total_seconds() // 60)} minutes "
           "(a reload or another browser does not lift it). Your progress is saved after every answer: sign in "
           "again with the same code to resume.")
