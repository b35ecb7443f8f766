"""The reading page: consent, the case viewer, the study's questions, the AI panel for aided items only,
progress, pause/resume and the end-of-session page. All state comes from the database each run.

No AI output for unaided items: the workflow gives an unaided reading as an ``Item``, which has no AI
field at all, and the AI panel below is drawn only for an ``AidedItem``; nothing else on this page
reads AI output, so an unaided item sends none to the browser.
"""
import uuid

import streamlit as st

from pages._shared import database, probability_chart, require_role, sign_out
from study.config import AnswerInvalid
from study.viewer import ViewSettings, blend, from_png, render_view
from study.web import case_image, describe_answer, is_aided, reader_state, record_consent, submit_answer

CONSENT_VERSION = "2026-01"
require_role("reader")
factory = database()
state = reader_state(factory, st.session_state["reader_id"])

st.title(state.study_name)
top = st.columns([4, 1])
top[0].caption(f"Signed in as reader {state.pseudonym}")
if top[1].button("Pause and sign out", key="pause"):
    sign_out()
    st.rerun()

if state.revoked:
    st.error("This access code has been revoked. Please contact the study team.")
    st.stop()

if not state.consented:
    st.header("Instructions and consent")
    st.markdown(
        "- You will see colour fundus photographs one at a time and answer the same questions for each.\n"
        "- Some cases show an **AI suggestion**; others do not. The suggestion comes from a research model "
        "and may be wrong: answer with your own judgement.\n"
        "- Use the zoom, brightness, contrast and red-free controls as you would in clinic.\n"
        "- Every answer is saved when you submit it; you can pause at any time and resume with the same code.\n"
        "- Answers are stored under a pseudonym and used only for this study's analysis.")
    agreed = st.checkbox("I have read the instructions and agree to take part in this reader study.",
                         key="consent_box")
    if st.button("Start reading", type="primary", disabled=not agreed, key="consent_start"):
        record_consent(factory, st.session_state["reader_id"], CONSENT_VERSION)
        st.rerun()
    st.stop()

st.progress(state.done / state.total if state.total else 0.0,
            text=f"{state.done} of {state.total} readings done")
if state.error:
    st.error(state.error)
    st.stop()
if state.washout_until is not None:
    st.header("End of this session")
    st.success(f"Thank you: you have finished session {state.washout_session - 1}.")
    st.info(f"Session {state.washout_session} opens on **{state.washout_until:%A %d %B %Y, %H:%M} UTC** "
            "(a washout period between sessions). Sign in again with the same code on or after that date.")
    st.stop()
if state.finished:
    st.header("Study complete")
    st.success(f"Thank you: all {state.total} readings are saved. You can close this window.")
    st.stop()

item = state.item
aided = is_aided(item)
st.subheader(f"Case {item.position} of {item.total}")
st.caption(("AI-assisted reading" if aided else "Unaided reading")
           + (f" · session {item.session}" if state.design == "crossover" else "")
           + (" · step 2: final answer" if item.step == 2 else ""))

left, right = st.columns([3, 2])
with left:
    image = case_image(state.study_id, item.image_ref)
    with st.expander("Viewer controls", expanded=True):
        c1, c2, c3 = st.columns(3)
        zoom = c1.slider("Zoom", 1.0, 8.0, 1.0, 0.5, key="v_zoom")
        brightness = c2.slider("Brightness", 0.5, 2.0, 1.0, 0.05, key="v_brightness")
        contrast = c3.slider("Contrast", 0.5, 2.0, 1.0, 0.05, key="v_contrast")
        c4, c5, c6 = st.columns(3)
        red_free = c4.toggle("Red-free (green channel)", key="v_redfree")
        cx = c5.slider("Pan left-right", 0.0, 1.0, 0.5, 0.01, key="v_cx", disabled=zoom == 1.0)
        cy = c6.slider("Pan up-down", 0.0, 1.0, 0.5, 0.01, key="v_cy", disabled=zoom == 1.0)
    if aided and item.ai.saliency_png is not None:
        with st.container(border=True):
            show = st.toggle("Show the AI saliency overlay", key="v_saliency")
            opacity = st.slider("Overlay opacity", 0.0, 1.0, 0.6, 0.05, key="v_opacity", disabled=not show)
        if show:
            image = blend(image, from_png(item.ai.saliency_png), opacity)
    view = render_view(image, ViewSettings(brightness, contrast, red_free, zoom, cx, cy))
    st.image(view, caption=f"{image.width}x{image.height} px" + (f", zoom {zoom:g}x" if zoom > 1 else ""),
             width="stretch")

with right:
    options = {k: label for q in item.questions if q["id"] == "primary_diagnosis" for k, label in q["options"]}
    if item.prior_answer is not None:
        with st.container(border=True):
            st.markdown("**Your unaided answer (locked)**")
            st.markdown("  \n".join(f"{question}: **{answer}**"
                                    for question, answer in describe_answer(item.questions, item.prior_answer)))
    if aided:
        ai = item.ai
        with st.container(border=True, key="ai_panel"):
            st.markdown("#### AI suggestion")
            st.info("This is a **suggestion** from a model. It can be wrong: the decision is yours.", icon=":material/lightbulb:")
            top_findings = sorted(ai.probabilities.items(), key=lambda kv: kv[1], reverse=True)[:5]
            fig = probability_chart([options.get(k, k) for k, _ in top_findings], [p for _, p in top_findings],
                                    height=260)
            st.plotly_chart(fig, width="stretch", key=f"ai_chart_{item.assignment_id}")
            card = ai.model_card
            st.caption(f"Model: {card.get('name', '?')} · version {ai.model_version}")
            if card.get("is_demo"):
                st.warning("Demo model trained on synthetic images only: it shows how the system works and is "
                           "not for clinical use.", icon=":material/warning:")

    key = st.session_state.setdefault(f"idem_{item.assignment_id}", uuid.uuid4().hex)
    sequential_step1 = state.design == "sequential" and item.step == 1

    def _submit(reader_id: int, assignment_id: int, questions: tuple, idempotency_key: str) -> None:
        # a callback runs before the next script run, so that run draws the next item directly
        answer = {}
        for q in questions:
            value = st.session_state.get(f"q_{assignment_id}_{q['id']}")
            if q["kind"] == "boolean" and value is not None:
                value = value == "Yes"
            if q["kind"] == "integer" and value is not None:
                value = int(value)
            if value is not None:
                answer[q["id"]] = value
        try:
            submit_answer(factory, reader_id, assignment_id, answer, idempotency_key)
        except AnswerInvalid as exc:
            st.session_state["answer_error"] = "Please complete the form: " + "; ".join(exc.problems)

    with st.form(f"answer_{item.assignment_id}"):
        for q in item.questions:
            wkey = f"q_{item.assignment_id}_{q['id']}"
            labels = dict(q["options"])
            if q["kind"] == "single_choice":
                st.radio(q["text"], list(labels), format_func=labels.get, index=None, key=wkey)
            elif q["kind"] == "multi_choice":
                st.multiselect(q["text"], list(labels), format_func=labels.get, key=wkey)
            elif q["kind"] == "integer":
                st.slider(q["text"], q["minimum"], q["maximum"], (q["minimum"] + q["maximum"]) // 2, key=wkey)
            elif q["kind"] == "boolean":
                st.radio(q["text"], ["Yes", "No"], index=None, horizontal=True, key=wkey)
        label = "Lock my unaided answer and continue" if sequential_step1 else "Submit answer"
        st.form_submit_button(label, type="primary", on_click=_submit,
                              args=(st.session_state["reader_id"], item.assignment_id, item.questions, key))
    if st.session_state.get("answer_error"):
        st.error(st.session_state.pop("answer_error"))
    if sequential_step1:
        st.caption("Your unaided answer is locked when you continue; the model output follows on the next screen.")
