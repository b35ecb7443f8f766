"""Demo: try a 10-case mini reader study (half with the AI suggestion, half without), then compare your
accuracy in each condition with the model's. Kept in this browser session only; nothing is stored.

The screen is the reading station's: the photograph in the same client-side viewer (zoom, pan, red-free,
brightness) on the left, staying in view, the suggestion and the question on the right with Submit at the
bottom of the window (``pages/_shared.STATION_CSS``), so it works at 1024 x 768. While the next case is drawn,
nothing of the previous one stays on screen (no old AI panel beside a new, unaided case)."""
import secrets

import pandas as pd
import plotly.express as px
import streamlit as st

from components.case_viewer import case_viewer, image_data_url
from pages._shared import classifier_or_stop, plain, require_public_demo, station_style, suggestion_bars
from study.visitor import ministudy

require_public_demo()  # study mode: nothing of the model while a study has unaided readings left (app.py)
N_CASES = 10
station_style()
clf = classifier_or_stop()


@st.cache_data(show_spinner="Preparing the cases ...", max_entries=16)
def _cases(seed: int, version: str):
    from PIL import Image

    from revision_core.demo_eval import mini_study_cases

    cases = mini_study_cases(N_CASES, seed=seed)
    images = [Image.fromarray(c.image) for c in cases]
    probs = clf.predict_images(images)
    return ([image_data_url(im) for im in images], [im.size for im in images], [c.labels for c in cases],
            [dict(zip(clf.findings, map(float, p))) for p in probs])


names = {k: clf.label_set.finding(k).name for k in clf.findings}
names[ministudy.NORMAL] = "Normal"
mini = st.session_state.get("mini")
if mini is None:
    st.title("Try the study")
    st.write(f"You will read {N_CASES} synthetic fundus photographs. For half of them you will also see the "
             "model's suggestion. At the end you see your accuracy with and without the AI beside the model's. "
             "Nothing is stored.")
    if st.button("Start", type="primary", key="mini_start"):
        seed = secrets.randbelow(10_000)
        _, _, labels, probs = _cases(seed, clf.loaded.card.version)
        st.session_state["mini"] = ministudy.start(seed, labels, probs)
        st.rerun()
    st.stop()

urls, sizes, _, probs = _cases(mini.seed, clf.loaded.card.version)
if mini.done:
    st.title("Try the study")
    st.header("Your results")
    table = pd.DataFrame(ministudy.results(mini))
    st.dataframe(table, hide_index=True)
    long = table.melt(id_vars=["condition"], value_vars=["your accuracy", "model accuracy"], var_name="who",
                      value_name="accuracy")
    st.plotly_chart(px.bar(long, x="condition", y="accuracy", color="who", barmode="group", range_y=[0, 1]),
                    width="stretch", key="mini_results")
    st.caption("Ten synthetic cases are far too few to conclude anything: this only shows how the study works.")
    if st.button("Try again", key="mini_restart"):
        del st.session_state["mini"]
        st.rerun()
    st.stop()

i = mini.position
aided = mini.conditions[i] == "ai"
# no page title while reading: the photograph gets the height
st.progress(i / N_CASES, text=f"Case {i + 1} of {N_CASES}")
st.markdown(f"**Try the study** · {'AI-assisted reading' if aided else 'Unaided reading'} · a synthetic photograph")
left, right = st.columns([2, 1], gap="small")
with left, st.container(key="viewer_column"):
    case_viewer(key=f"mini_viewer_{mini.seed}_{i}", screen_url=urls[i], full_url=urls[i], width=sizes[i][0],
                height=sizes[i][1])
with right, st.form(f"mini_form_{i}", border=False):  # the whole column: Submit sticks to the window's bottom
    if aided:
        with st.container(border=True, key="ai_panel"):
            st.markdown("**AI suggestion.** A demo model trained on synthetic images only; it can be wrong.")
            suggestion_bars(names, probs[i])
    else:
        st.caption("Unaided case: read it on your own.")
    choice = st.radio("Primary diagnosis", list(names), format_func=lambda k: plain(names[k]),  # radio: Markdown
                      index=None, key=f"mini_q_{i}")
    with st.container(key="submit_bar"):
        if st.session_state.pop("mini_error", False):
            st.error("Choose a diagnosis first.")
        if st.form_submit_button("Submit", type="primary"):
            if choice is None:
                st.session_state["mini_error"] = True
            else:
                mini.answers.append(choice)
            st.rerun()
