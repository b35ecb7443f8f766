"""Demo: try a 10-case mini reader study (half with the AI suggestion, half without), then compare your
accuracy in each condition with the model's. Kept in this browser session only; nothing is stored.

While the next case is drawn, nothing of the previous one stays on screen (no old AI panel beside a new,
unaided case): the reading page's rule for stale elements is reused from ``pages/_shared.READING_ROOM_CSS``."""
import secrets

import pandas as pd
import plotly.express as px
import streamlit as st

from pages._shared import READING_ROOM_CSS, classifier_or_stop, plain
from study.visitor import ministudy
from study.visitor.viewer import ViewSettings, render_view

from pages._shared import require_public_demo

require_public_demo()  # study mode: nothing of the model while a study has unaided readings left (app.py)
N_CASES = 10
# only the stale-element rule: the rest of the reading-room style (no header band, sticky viewer) is the reader's
STALE_HIDDEN = "<style>" + "".join(line for line in READING_ROOM_CSS.splitlines() if "data-stale" in line) + "</style>"
st.html(STALE_HIDDEN)
st.title("Try the study")
clf = classifier_or_stop()


@st.cache_data(show_spinner="Preparing the cases ...", max_entries=16)
def _cases(seed: int, version: str):
    from PIL import Image

    from revision_core.demo_eval import mini_study_cases

    cases = mini_study_cases(N_CASES, seed=seed)
    images = [Image.fromarray(c.image) for c in cases]
    probs = clf.predict_images(images)
    return images, [c.labels for c in cases], [dict(zip(clf.findings, map(float, p))) for p in probs]


names = {k: clf.label_set.finding(k).name for k in clf.findings}
names[ministudy.NORMAL] = "Normal"
mini = st.session_state.get("mini")
if mini is None:
    st.write(f"You will read {N_CASES} synthetic fundus photographs. For half of them you will also see the "
             "model's suggestion. At the end you see your accuracy with and without the AI beside the model's. "
             "Nothing is stored.")
    if st.button("Start", type="primary", key="mini_start"):
        seed = secrets.randbelow(10_000)
        _, labels, probs = _cases(seed, clf.loaded.card.version)
        st.session_state["mini"] = ministudy.start(seed, labels, probs)
        st.rerun()
    st.stop()

images, _, probs = _cases(mini.seed, clf.loaded.card.version)
if mini.done:
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
st.progress(i / N_CASES, text=f"Case {i + 1} of {N_CASES}")
left, right = st.columns([3, 2])
with left:
    zoom = st.slider("Zoom", 1.0, 4.0, 1.0, 0.5, key="mini_zoom")
    red_free = st.toggle("Red-free (green channel)", key="mini_redfree")
    st.image(render_view(images[i], ViewSettings(zoom=zoom, red_free=red_free)), width="stretch")
with right:
    if aided:
        with st.container(border=True):
            st.markdown("#### AI suggestion")
            st.info("A suggestion from a demo model trained on synthetic images only; it can be wrong.", icon=":material/lightbulb:")
            top = sorted(probs[i].items(), key=lambda kv: kv[1], reverse=True)[:5]
            # one labelled bar a finding: readable at any column width (a chart's axis labels are cut at 1024 px)
            for k, p in top:
                st.progress(min(max(p, 0.0), 1.0), text=f"{plain(names[k])}: {p:.0%}")
    else:
        st.caption("Unaided case: read it on your own.")
    with st.form(f"mini_form_{i}"):
        choice = st.radio("Primary diagnosis", list(names), format_func=lambda k: plain(names[k]),  # radio: Markdown
                          index=None, key=f"mini_q_{i}")
        if st.form_submit_button("Submit", type="primary"):
            if choice is None:
                st.error("Choose a diagnosis first.")
            else:
                mini.answers.append(choice)
                st.rerun()
