"""The reading page: consent, then one case at a time: the photograph in the client-side viewer on the
left (it takes the window's height), the AI panel (aided items only) and the study's questions on the
right. All state comes from the database each run.

No AI output for unaided items: the workflow gives an unaided reading as an ``Item``, which has no AI
field at all; the AI panel and the saliency maps are drawn only for an ``AidedItem`` (maps only in the
saliency arm, whose item alone carries their links: ``study.domain.overlays``); the viewer's photograph link
names the case photograph only (``study.domain.image_links``).

The layout keeps the photograph in view: the viewer column stays put while the questions scroll, and the
Submit button, with any error, stays at the bottom of the window (``READING_ROOM_CSS``). The questions are
drawn outside an ``st.form``, in a fragment, so that each change is kept as a draft (a reload or another
server resumes the case with what was typed).
"""
import uuid
from datetime import datetime, timezone

import streamlit as st

from components.case_viewer import case_viewer
from pages._answer_form import collect_answer, draft_from_widgets, draw_draft_form, form_problem, show_form_problem
from pages._shared import (READER_SESSION, database, end_reader_browser_session, finding_names, plain,
                           reading_room_style, require_role, sign_out_to_reader_signin, suggestion_bars)
from study.services.reader import (AnswerInvalid, SessionEnded, WorkflowError, case_display, consent_summary,
                                   describe_answer, eye_label, is_aided, load_draft, ranked_findings, reader_state,
                                   record_consent,
                                   save_draft, submit_answer)
from study.domain.timefmt import local, minute

CONSENT_VERSION = "2026-12"
require_role("reader")
reading_room_style()
factory = database()
state = reader_state(factory, st.session_state["reader_id"])
session_id = st.session_state.get(READER_SESSION)
started = st.session_state.setdefault("browser_session_started", datetime.now(timezone.utc))


def pause_button(where: str) -> None:
    if st.button("Pause and sign out", key=f"pause_{where}", icon=":material/pause:"):
        sign_out_to_reader_signin()  # lands on the reader sign-in page, never on a demo page
        st.rerun()


def answers_link() -> None:
    """To the reader's own answers of this session (and corrections, where the study allows them)."""
    if state.done:
        st.page_link("pages/reader_answers.py", label="Review my answers", icon=":material/edit_note:")


if state.revoked:
    st.error("This access code has been revoked. Please contact the study team.")
    st.stop()

if not state.consented:
    st.title(plain(state.study_name))
    st.header("Instructions and consent")
    st.markdown(
        f"- {consent_summary(factory, st.session_state['reader_id'])}\n"
        "- You will see colour fundus photographs one at a time and answer the same questions for each.\n"
        "- Some readings show an **AI suggestion**; others do not. The page says when a block of AI-assisted "
        "readings begins. The suggestion comes from a research model and may be wrong: answer with your own "
        "judgement.\n"
        "- The viewer works like a clinic viewer: mouse wheel or pinch to zoom (up to 8 screen pixels per "
        "photograph pixel), drag to pan, double-click to fit; brightness, contrast, gamma and red-free are "
        "in the toolbar; keys + − 0 1, arrows, G (red-free), R (reset).\n"
        "- Every answer is saved when you submit it; you can pause at any time and resume with the same code.\n"
        "- Answers are stored under a pseudonym and used only for this study's analysis.")
    agreed = st.checkbox("I have read the instructions and agree to take part in this reader study.",
                         key="consent_box")
    # a callback: the consent is stored before the next run, which draws the first case directly
    st.button("Start reading", type="primary", disabled=not agreed, key="consent_start", on_click=record_consent,
              args=(factory, st.session_state["reader_id"], CONSENT_VERSION, session_id))
    pause_button("consent")
    st.stop()

if state.error or state.washout_until is not None or state.finished:
    st.title(plain(state.study_name))
    st.progress(state.done / state.total if state.total else 0.0, text=f"{state.done} of {state.total} readings done")
    if state.error:
        st.error(plain(state.error))
    elif state.washout_until is not None:
        st.header("End of this session")
        st.success(f"Thank you: you have finished session {state.washout_session - 1}.")
        opens = local(state.washout_until)
        st.info(f"Session {state.washout_session} opens on **{opens:%A %d %B %Y, %H:%M} {opens:%Z}** "
                "(a washout period between sessions). Sign in again with the same code on or after that date.")
    elif state.total == 0:  # a reader added without readings (the investigator has not built them yet)
        st.header("No readings yet")
        st.info("No readings have been assigned to you yet: please contact the study team.")
    else:
        st.header("Study complete")
        st.success(f"Thank you: all {state.total} readings are saved. You can close this window.")
    pause_button("end")
    answers_link()
    st.stop()

item = state.item
aided = is_aided(item)
mode = "AI-assisted reading" if aided else "Unaided reading"
if item.step == 2:
    mode += " · step 2: final answer"
if item.sessions > 1:
    where = f"Case {item.session_position} of {item.session_total}, session {item.session} of {item.sessions}"
else:
    where = f"Case {item.position} of {item.total}"
head = st.columns([5, 1.3], vertical_alignment="center")
left, right = st.columns([5, 3], gap="small")
ai = item.ai if aided else None
names = finding_names(ai.label_set, item.questions) if aided else {}
with left, st.container(key="viewer_column"):  # drawn first: the photograph is what the reader waits for
    display = case_display(factory, state, item.image_ref, item.next_image_ref, maps=ai.maps if ai else (),
                           next_maps=ai.next_maps if ai else ())
    legacy = ai.saliency_png if ai is not None and not display.maps else None
    top = ranked_findings(ai.probabilities)[0] if legacy is not None else None  # the finding the panel lists first
    case_viewer(key=f"viewer_{item.assignment_id}", screen_url=display.screen_url, full_url=display.full_url,
                width=display.width, height=display.height, prefetch=display.prefetch,
                maps=[{**vars(m), "name": names.get(m.finding, m.finding)} for m in display.maps],
                map_method=ai.saliency_label if ai else None, overlay_png=legacy,
                overlay_label=f"{names.get(top, top).lower()} ({ai.probabilities[top]:.0%})" if top else None)
head[0].subheader(where, anchor=False)
head[0].markdown(f"**{mode}** · {eye_label(item.eye)} · :gray[{plain(state.study_name)} · reader {plain(state.pseudonym)}]")
with head[1]:
    pause_button("case")

key = st.session_state.setdefault(f"idem_{item.assignment_id}", uuid.uuid4().hex)
sequential_step1 = state.design == "sequential" and item.step == 1
allow_ungradable = item.allow_ungradable


def _submit(reader_id: int, assignment_id: int, questions: tuple, idempotency_key: str) -> None:
    # a callback runs before the next script run, so that run draws the next item directly
    answer = collect_answer(questions, assignment_id, allow_ungradable)
    try:
        submit_answer(factory, reader_id, assignment_id, answer, idempotency_key, session_id)
    except AnswerInvalid as exc:
        st.session_state["answer_error"] = form_problem(exc)
        return
    except SessionEnded as exc:  # signed out elsewhere, or the code was withdrawn: nothing was stored
        end_reader_browser_session(str(exc))
    except WorkflowError as exc:
        st.session_state["answer_error"] = {"message": str(exc), "missing": []}
        return
    st.session_state["advance"] = True


def _keep_draft(reader_id: int, assignment_id: int, questions: tuple) -> None:
    save_draft(factory, session_id, reader_id, assignment_id,
               draft_from_widgets(questions, assignment_id, allow_ungradable), [q["id"] for q in questions])


draft_key = f"draft_{item.assignment_id}"
if draft_key not in st.session_state:  # once per case and browser session: after a reload, what was typed
    st.session_state[draft_key] = load_draft(factory, st.session_state["reader_id"], item.assignment_id)
draft = st.session_state[draft_key]
args = (st.session_state["reader_id"], item.assignment_id, item.questions)


@st.fragment
def answer_column() -> None:
    """The whole right column: outside an st.form, in a fragment, each change reruns only this part and is kept
    as a draft. The column is the Submit bar's parent, so the bar sticks to the bottom of the window over the
    whole column (a parent that began below the AI panel could not hold a bar grown by an error in view)."""
    if st.session_state.pop("advance", False):
        st.rerun(scope="app")  # the next case (or the sign-in page, when the session ended)
    with st.container(key="answer_column"):
        if aided and item.block_start:
            st.info("**AI-assisted readings start here.** From this case on, the model's suggestion is shown "
                    "beside the photograph.", icon=":material/lightbulb:")
        if item.prior_answer is not None:
            with st.container(border=True):
                st.markdown("**Your unaided answer (locked)**")
                st.markdown("  \n".join(f"{plain(question)}: **{plain(answer)}**"
                                        for question, answer in describe_answer(item.questions, item.prior_answer)))
        if aided:
            with st.container(border=True, key="ai_panel"):
                st.markdown("**AI suggestion.** It can be wrong: the decision is yours.")
                suggestion_bars(names, ai.probabilities)
                card = ai.model_card
                st.caption(f"Model: {plain(card.get('name', '?'))} · version {plain(ai.model_version)}"
                           + (" · **demo model trained on synthetic images only, not for clinical use**"
                              if card.get("is_demo") else ""))
        if draft is not None:
            st.caption(f"Your answers to this case so far were kept ({minute(draft[1])}).")
        elif item.shown_at < started:
            st.caption("Nothing was saved for this case before you left: please answer it again.")
        with st.container(key="answer_form"):
            draw_draft_form(item.questions, item.assignment_id, allow_ungradable, draft and draft[0],
                            on_change=lambda: _keep_draft(*args))
        with st.container(key="submit_bar"):  # stays at the bottom of the window, with any error above the button
            if st.session_state.get("answer_error"):
                show_form_problem(st.session_state.pop("answer_error"), item.assignment_id)
            label = "Lock my unaided answer and continue" if sequential_step1 else "Submit answer"
            st.button(label, type="primary", key=f"submit_{item.assignment_id}", on_click=_submit, args=(*args, key))
            if sequential_step1:
                st.caption("Your unaided answer is locked when you continue; the model output follows on the next "
                           "screen.")


with right:
    answer_column()
    answers_link()  # below the form: the heading row, and so the photograph's height, stay as they are
