"""Investigator sign-in (credentials from the environment, secrets.toml, or the demo default)."""
import streamlit as st

from pages._shared import ROLE, database
from study.web import SignInThrottle, audit_investigator, investigator_credentials, new_client_id, verify_investigator

st.title("Investigator sign-in")
creds = investigator_credentials()
throttle = st.session_state.setdefault("investigator_throttle", SignInThrottle(new_client_id()))
with st.form("investigator_signin", clear_on_submit=True):
    user = st.text_input("User", key="inv_user")
    password = st.text_input("Password", type="password", key="inv_password")
    pressed = st.form_submit_button("Sign in", type="primary")
if pressed:
    from study.models import utcnow
    from study.web import LOCKOUT, MAX_FAILURES

    now = utcnow()
    if throttle.locked(now):
        st.error(f"Too many failed sign-ins. Try again after {throttle.locked_until:%H:%M} UTC.", icon=":material/lock:")
    elif verify_investigator(user, password):
        audit_investigator(database(), user, True)
        st.session_state[ROLE] = "investigator"
        st.session_state["investigator_user"] = user
        st.rerun()
    else:
        audit_investigator(database(), user, False)
        throttle.failures += 1
        if throttle.failures >= MAX_FAILURES:
            throttle.locked_until = now + LOCKOUT
        st.error("Wrong user or password.")
if creds.source == "demo default":
    st.caption("Demo installation: user `investigator`; the password is printed in the server log at start-up "
               "(or set REVISION_INVESTIGATOR_PASSWORD). A real study sets REVISION_INVESTIGATOR_USER and "
               "REVISION_INVESTIGATOR_PASSWORD_HASH (argon2) or [investigator] in .streamlit/secrets.toml.")
