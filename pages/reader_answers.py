"""The reader's own answers of the current session, and corrections where the study allows them: a new
version with a reason (``workflow.correct`` through ``study.domain.own_answers``, by the reader service; audited).

Only the reader's own answers and photograph are shown: never a case name, a reference answer or any AI
output, for any reading (``OwnReading`` carries none of them). Earlier sessions are closed."""
import uuid

import pandas as pd
import streamlit as st

from pages._answer_form import UNGRADABLE, collect_answer, draw_answer_form, widget_key
from pages._shared import READER_SESSION, database, end_reader_browser_session, plain, require_role
from study.domain import timefmt
from study.services import reader

require_role("reader")
factory = database()
reader_id = st.session_state["reader_id"]
mine = reader.own_answers(factory, reader_id)

st.page_link("pages/reader_study.py", label="Back to reading", icon=":material/arrow_back:")
st.title("Your answers")
if mine.revoked:
    st.error("This access code has been revoked. Please contact the study team.")
    st.stop()
if flash := st.session_state.pop("answers_flash", None):
    st.success(flash)
if not mine.readings:
    st.info("You have not answered any reading of this session yet.")
    st.stop()
st.caption(f"Session {mine.session}: your own answers, latest version of each.")
# whether an answer can still be corrected comes second, so that it stays in view on a 1024-px screen
st.dataframe(pd.DataFrame([{
    "case": f"Case {r.position}", "correctable": (r.locked or "yes") if mine.corrections_allowed else "no",
    "reading": r.reading + (f" · step {r.step}" if r.step > 1 else ""),
    "answer": "; ".join(f"{q}: {a}" for q, a in r.answer), "version": r.version,
    "answered": timefmt.minute(r.submitted_at)} for r in mine.readings]),
    hide_index=True, width="stretch", column_config={
        "case": "Case", "correctable": "Can be corrected", "reading": "Reading", "answer": "Your answer",
        "version": "Version", "answered": "Answered"})
if not mine.corrections_allowed:
    st.info("This study does not allow answers to be changed once submitted.")
    st.stop()
open_ = [r for r in mine.readings if r.locked is None]
if not open_:
    st.info("None of these answers can be corrected any more.")
    st.stop()

st.subheader("Correct an answer")
by_answer = {r.answer_id: r for r in open_}
pick = st.selectbox("Answer to correct", list(by_answer), key="fix_pick",
                    format_func=lambda i: f"Case {by_answer[i].position} ({by_answer[i].reading}), "
                                          f"version {by_answer[i].version}")
chosen = by_answer[pick]
form_id = f"fix{chosen.answer_id}"  # widget keys of its own: never the reading page's form


def _prefill(reading_, questions) -> None:
    """Start the form from the current answer (a correction usually changes one thing)."""
    for q in questions:
        key, value = widget_key(form_id, q["id"]), reading_.payload.get(q["id"])
        if key not in st.session_state and value is not None:
            st.session_state[key] = ("Yes" if value else "No") if q["kind"] == "boolean" else value
    if mine.allow_ungradable and widget_key(form_id, UNGRADABLE) not in st.session_state:
        st.session_state[widget_key(form_id, UNGRADABLE)] = bool(reading_.payload.get(UNGRADABLE))


def _save(answer_id: int, questions: tuple) -> None:
    answer = collect_answer(questions, form_id, mine.allow_ungradable)
    key = st.session_state.setdefault(f"fix_idem_{answer_id}", uuid.uuid4().hex)
    try:
        result = reader.correct_own_answer(factory, reader_id, answer_id, answer,
                                           st.session_state.get(f"{form_id}_reason", ""), key,
                                           st.session_state.get(READER_SESSION))
    except reader.SessionEnded as exc:  # signed out elsewhere, or the code was withdrawn: nothing was stored
        end_reader_browser_session(str(exc))
    except reader.AnswerInvalid as exc:
        st.session_state["fix_error"] = "Please complete the form: " + "; ".join(exc.problems)
    except (reader.WorkflowError, ValueError) as exc:
        st.session_state["fix_error"] = str(exc)
    else:
        st.session_state["answers_flash"] = f"Saved: your answer is now version {result.version}."
        st.session_state.pop("fix_pick", None)


photo = reader.own_photo(mine.study_id, chosen.image_ref, mine.store_root)
left, right = st.columns([2, 3])
if photo is not None:
    left.image(str(photo), caption=f"Case {chosen.position}", width="stretch")
with right:
    st.markdown("**Your current answer**  \n" + "  \n".join(f"{plain(q)}: **{plain(a)}**" for q, a in chosen.answer))
    _prefill(chosen, mine.questions)
    with st.form(f"fix_form_{chosen.answer_id}", border=True):
        draw_answer_form(mine.questions, form_id, mine.allow_ungradable)
        st.text_input("Reason for the correction (required)", key=f"{form_id}_reason",
                      max_chars=reader.MAX_REASON)
        st.form_submit_button("Save the correction", type="primary", on_click=_save,
                              args=(chosen.answer_id, mine.questions))
    if st.session_state.get("fix_error"):
        st.error(plain(st.session_state.pop("fix_error")))
    st.caption("A correction is stored as a new version with your reason; the earlier version is kept.")
