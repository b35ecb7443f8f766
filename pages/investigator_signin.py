"""Investigator sign-in (credentials from the environment, secrets.toml, or the demo default); failed
sign-ins are counted in the database per user and per client, so a lockout survives a reload."""
import streamlit as st

from pages._shared import ROLE, database
from study.services.signin import SignInThrottle, investigator_credentials, investigator_sign_in, new_client_id

st.title("Investigator sign-in")
creds = investigator_credentials()
throttle = st.session_state.setdefault("investigator_throttle", SignInThrottle(new_client_id()))
throttle.ip = st.context.ip_address  # None on localhost: the browser session is the client then
with st.form("investigator_signin", clear_on_submit=True):
    user = st.text_input("User", key="inv_user")
    password = st.text_input("Password", type="password", key="inv_password")
    pressed = st.form_submit_button("Sign in", type="primary")
if pressed:
    result = investigator_sign_in(database(), throttle, user, password)
    if result.ok:
        st.session_state[ROLE] = "investigator"
        st.session_state["investigator_user"] = user
        st.rerun()
    elif result.locked:
        st.error(result.message, icon=":material/lock:")
    else:
        st.error(result.message)
if creds.source == "demo default":
    st.caption("Demo installation: user `investigator`; the password is printed in the server log at start-up "
               "(or set REVISION_INVESTIGATOR_PASSWORD). A real study sets REVISION_INVESTIGATOR_USER and "
               "REVISION_INVESTIGATOR_PASSWORD_HASH (argon2, made by `python -m study hash-password`) or "
               "[investigator] in .streamlit/secrets.toml.")
