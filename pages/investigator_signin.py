"""Investigator sign-in (credentials from the environment, secrets.toml, or the demo default). Wrong tries slow
further tries down (counted in the database, audited); the right password always gets in, and
``python -m study unlock`` lifts the wait."""
import streamlit as st

from pages._shared import ROLE, client_address, database
from study.services.signin import (MAX_DELAY, SignInThrottle, investigator_credentials, investigator_sign_in,
                                   new_client_id)

st.title("Investigator sign-in")
creds = investigator_credentials()
throttle = st.session_state.setdefault("investigator_throttle", SignInThrottle(new_client_id()))
throttle.ip = client_address()
with st.form("investigator_signin", clear_on_submit=True):
    user = st.text_input("User", key="inv_user")
    password = st.text_input("Password", type="password", key="inv_password")
    pressed = st.form_submit_button("Sign in", type="primary")
if pressed:
    with st.spinner("Checking ..."):
        result = investigator_sign_in(database(), throttle, user, password)
    if result.ok:
        st.session_state[ROLE] = "investigator"
        st.session_state["investigator_user"] = user
        st.rerun()
    st.error(result.message)
st.caption(f"After several wrong tries each further try is answered more slowly (up to {MAX_DELAY:.0f} seconds); "
           "the right password always gets in. `python -m study unlock --reason ...` on the server lifts the wait.")
if creds.source == "demo default":
    st.caption("Demo installation: user `investigator`; the password is printed in the server log at start-up "
               "(or set REVISION_INVESTIGATOR_PASSWORD). A real study sets REVISION_INVESTIGATOR_USER and "
               "REVISION_INVESTIGATOR_PASSWORD_HASH (argon2, made by `python -m study hash-password`) or "
               "[investigator] in .streamlit/secrets.toml.")
