"""Where a visitor lands while the public demo is off (or after a reader paused): the reader sign-in page,
at its own address, so that a link to /reader_signin keeps working whichever page is the default."""
import streamlit as st

st.switch_page("pages/reader_signin.py")
