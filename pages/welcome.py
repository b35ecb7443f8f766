"""The front door for visitors: what the platform is, whom it is for, the way in for each, and the disclaimer.

Why it loads nothing: a visitor's first page must be quick (under a second warm), so it runs no model and
opens no study; it only links to the pages that do. Shown while the public demo is on (app.py).
"""
import streamlit as st

from pages._shared import model_spec, public_demo_enabled, role

st.title("ReVision Reader Study")
st.markdown(
    "An open-source platform for **AI-assisted reader studies in ophthalmology**. Eye doctors read colour "
    "fundus photographs with and without an AI suggestion, and the study measures what the suggestion "
    "changes: accuracy, confidence, referral decisions and over-reliance on the AI. The AI is a "
    "ReVision-style retinal vision-language model: it learned from photographs paired with their reports and "
    "detects disease **zero-shot**, prompted with report-style text.")
if model_spec()[0] == "demo":  # the configured model, by name: nothing is loaded here
    st.warning("**Demo model.** The model on this server is a demo trained by this project on synthetic "
               "photographs only. It shows how the system works and is **not for clinical use**; every page "
               "that shows a suggestion says so.", icon=":material/warning:")
else:
    st.warning("**Research model.** Its suggestions are **not for clinical use**: they support, and never "
               "replace, the reader's judgement.", icon=":material/warning:")

try:
    demo_on = role() is None and public_demo_enabled()
except ValueError:  # an invalid setting: app.py shows the error
    demo_on = False
readers, investigators, visitors = st.columns(3, border=True)
with readers:
    st.subheader("Readers")
    st.markdown("You read the cases of a study with the access code your investigator gave you. One page: the "
                "photograph with zoom and contrast tools, the questions, and the AI panel only in aided "
                "readings. You can pause and resume at any time.")
    st.page_link("pages/reader_signin.py", label="Reader sign-in", icon=":material/key:")
with investigators:
    st.subheader("Investigators")
    st.markdown("You set up a study (cases, readers, a sequential, crossover or multi-arm design), follow it "
                "live, and analyse it: accuracy with and without AI, a mixed-effects model, MRMC ROC, "
                "automation bias, exports.")
    st.page_link("pages/investigator_signin.py", label="Investigator sign-in", icon=":material/lock:")
with visitors:
    st.subheader("Visitors")
    if demo_on:
        st.markdown("Try the demo model on sample photographs or your own, see where it looks, how it scores on "
                    "synthetic test cases, and read ten cases yourself as a reader would.")
        st.page_link("pages/demo_playground.py", label="Model playground", icon=":material/biotech:")
        st.page_link("pages/demo_evaluation.py", label="Model evaluation", icon=":material/show_chart:")
        st.page_link("pages/demo_try_study.py", label="Try the study", icon=":material/science:")
    else:
        st.markdown("The public demo pages are off on this server while a study is running.")
st.caption("The real ReVision weights are not public. Suggestions support, and never replace, the reader's "
           "judgement.")
