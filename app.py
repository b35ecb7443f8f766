"""ReVision Reader Study: the Streamlit entry point. Navigation only; pages draw widgets and call
``revision_core`` and ``study``.

Roles are separated here: a visitor sees the public demo pages and the two sign-in pages; a signed-in
reader sees only the reading page; a signed-in investigator only the investigator pages. A page that
is not in the navigation cannot be opened (Streamlit serves only the pages given to ``st.navigation``),
and every reader/investigator page also checks the role itself (``pages/_shared.require_role``).

Study mode (``study.domain.study_mode``, setting ``[app] public_demo``): the demo pages run the study's model for
anyone, so in "auto" they are left out of the navigation while any study has a reader with unaided
readings left (each demo page checks too: ``pages/_shared.require_public_demo``); visitors then land on
the reader sign-in page (a reload too). A reader who pauses lands on the reader sign-in page in any mode.

A reader's session lives in the database (``pages/_shared.check_reader_session``, every run): a reload or
another server finds it by the HttpOnly session cookie, and a session ended elsewhere (sign-out, a withdrawn
code, expiry) signs this browser out with the reason.
"""
import sys

import streamlit as st

from pages._shared import (FAVICON, LANDING, app_style, check_reader_session, check_server_settings,
                           public_demo_enabled, role, session_cookie_scripts, sign_out)
from study.domain.study_mode import PublicDemoSettingError, public_demo_setting

# the favicon is a file of the app (a material icon would be fetched from a font CDN: a third-party request
# from a hospital network, and a broken icon offline)
st.set_page_config(page_title="ReVision Reader Study", page_icon=str(FAVICON), layout="wide")
app_style()

demo = [
    st.Page("pages/demo_playground.py", title="Model playground", icon=":material/biotech:"),
    st.Page("pages/demo_evaluation.py", title="Model evaluation", icon=":material/show_chart:"),
    st.Page("pages/demo_try_study.py", title="Try the study", icon=":material/science:"),
]
try:
    public_demo_setting()  # an invalid value stops every page, for every role: a deployment error to fix
    check_server_settings()  # trusted proxies, session lifetime, photograph-link key: the same
except ValueError as exc:
    print(f"[revision] {exc}", file=sys.stderr, flush=True)
    st.error(f"Configuration error: {exc}")
    st.stop()
check_reader_session()
current = role()
try:
    show_demo = current is None and public_demo_enabled()
except PublicDemoSettingError as exc:
    print(f"[revision] {exc}", file=sys.stderr, flush=True)
    st.error(f"Configuration error: {exc}")
    st.stop()
if current == "reader":
    pages = {"Reading": [st.Page("pages/reader_study.py", title="Reading", icon=":material/visibility:", default=True),
                         st.Page("pages/reader_answers.py", title="Your answers", icon=":material/edit_note:")]}
elif current == "investigator":
    pages = {"Investigator": [
        st.Page("pages/investigator_setup.py", title="Study set-up", icon=":material/build:", default=True),
        st.Page("pages/investigator_monitor.py", title="Live monitor", icon=":material/monitor_heart:"),
        st.Page("pages/investigator_analysis.py", title="Analysis and exports", icon=":material/bar_chart:"),
        st.Page("pages/investigator_operations.py", title="Study operations", icon=":material/manage_accounts:"),
        st.Page("pages/investigator_readers.py", title="Reader detail", icon=":material/person_search:"),
        st.Page("pages/investigator_cases.py", title="Case browser", icon=":material/photo_library:"),
        st.Page("pages/investigator_audit.py", title="Audit trail", icon=":material/history:"),
    ]}
else:
    # the reader sign-in page is the default while the demo is off, and for a reader who signed out
    signin_first = not show_demo or st.session_state.get(LANDING) == "reader_signin"
    study = [
        st.Page("pages/reader_signin.py", title="Reader sign-in", icon=":material/key:"),
        st.Page("pages/investigator_signin.py", title="Investigator sign-in", icon=":material/lock:"),
    ]
    if signin_first:  # "/" forwards to /reader_signin, which keeps its own address (links and bookmarks work)
        study.insert(0, st.Page("pages/landing.py", title="Welcome", visibility="hidden", default=True))
    if show_demo:  # the welcome page (no model on it) is the visitors' front door while the demo is on
        welcome = st.Page("pages/welcome.py", title="Welcome", icon=":material/home:", default=not signin_first)
        pages = {"Start": [welcome], "Demo": demo, "Study": study}
    else:
        pages = {"Study": study}
if current == "investigator":
    st.sidebar.caption(f"Signed in as investigator **{st.session_state.get('investigator_user', '?')}**")
    st.sidebar.button("Sign out", on_click=sign_out, key="sign_out")
session_cookie_scripts()
# a reader has one page and its own "Pause and sign out" button: no sidebar, the photograph gets the width
st.navigation(pages, position="hidden" if current == "reader" else "sidebar").run()
