"""Reader sign-in with an access code. Wrong codes slow further tries down (kept in the database, audited);
a correct code always gets in. The session then survives a reload (``pages/_shared.check_reader_session``)."""
import streamlit as st

from pages._shared import NOTICE, client_address, database, signed_in_reader
from study.services.signin import MAX_DELAY, SignInThrottle, new_client_id, sign_in

st.title("Reader sign-in")
if notice := st.session_state.pop(NOTICE, None):
    st.warning(notice, icon=":material/logout:")
st.write("Enter the access code the study team gave you (three groups of four characters, e.g. `K7QX-3MNP-W9RT`).")
throttle = st.session_state.setdefault("signin_throttle", SignInThrottle(new_client_id()))
throttle.ip = client_address()
with st.form("reader_signin", clear_on_submit=True):
    code = st.text_input("Access code", type="password", key="access_code")
    pressed = st.form_submit_button("Sign in", type="primary")
if pressed:
    with st.spinner("Checking your code ..."):
        result = sign_in(database(), throttle, code)
    if result.ok:
        signed_in_reader(result.reader_id, result.session_id, result.ticket)
        st.rerun()
    st.warning(result.message)
st.caption(f"After several wrong codes each further try is answered more slowly (up to {MAX_DELAY:.0f} seconds); "
           "a correct code always gets in. Your progress is saved after every answer, and a reload keeps you "
           "signed in: sign in again with the same code to resume on another day.")
