"""The answer form for one reading: widgets per question kind, and the answer read back on submit.

Why a helper: the reading page stays thin, and the rule "nothing is pre-filled" (every radio starts
unselected, numbers and the legacy 0-100 confidence start empty) lives in one place, so an
untouched question reaches ``validate_answer`` as unanswered instead of as a silent default.
Widget keys are ``q_{assignment_id}_{question id}`` (``ungradable`` is reserved, so the "Image
ungradable" box, ``q_{assignment_id}_ungradable``, never collides with a question).
"""
from __future__ import annotations

import streamlit as st

from pages._shared import plain

UNGRADABLE = "ungradable"
SHORT_LABEL = 14  # ordinal grades with labels up to this long are laid out in one row


def widget_key(assignment_id: int, qid: str) -> str:
    return f"q_{assignment_id}_{qid}"


def _label(q: dict) -> str:
    unit = q.get("unit")
    # question texts, units and option labels are typed by investigators: shown literally, never as Markdown
    return plain(f"{q['text']} ({unit})" if unit and q["kind"] == "number" else q["text"])


def _mark_required(keys: list[str]) -> None:
    """A red asterisk after each required question's label (CSS, so the label a screen reader reads stays the
    question's own text), explained in words above the questions."""
    st.caption("Questions marked :red[\\*] are required.")
    labels = ", ".join(f'.st-key-{k} [data-testid="stWidgetLabel"] p::after' for k in keys)
    st.html(f'<style>{labels} {{ content: " *"; color: #d33; font-weight: 700; }}</style>')


def _numbers(q: dict) -> tuple:
    """(min, max, step) of a number question, all int or all float as st.number_input requires."""
    low, high, step = q.get("minimum"), q.get("maximum"), q.get("step")
    if q["kind"] == "integer":
        step = 1
    whole = all(v is None or float(v).is_integer() for v in (low, high, step)) and step is not None
    cast = int if whole else float
    return tuple(None if v is None else cast(v) for v in (low, high, step))


def draw_answer_form(questions, assignment_id: int, allow_ungradable: bool = False) -> None:
    """Draw the widgets (call inside ``st.form``); ``questions`` are dicts as ``Item.questions`` holds them.
    Required questions are marked before anything is submitted (a red asterisk, said in words above them)."""
    required = [widget_key(assignment_id, q["id"]) for q in questions if q.get("required", True)]
    if required:
        _mark_required(required)
    if allow_ungradable:
        st.checkbox("Image ungradable", key=widget_key(assignment_id, UNGRADABLE),
                    help="Tick when the photograph cannot be graded; the other questions are then skipped.")
    for q in questions:
        key, kind, label = widget_key(assignment_id, q["id"]), q["kind"], _label(q)
        labels = {k: plain(v) for k, v in (q.get("options") or ())}
        helptext = None if q.get("required", True) else "Optional"
        if kind == "single_choice":
            st.radio(label, list(labels), format_func=labels.get, index=None, key=key, help=helptext)
        elif kind == "ordinal":
            short = all(len(v) <= SHORT_LABEL for v in labels.values())
            st.radio(label, list(labels), format_func=labels.get, index=None, key=key, help=helptext,
                     horizontal=short)
        elif kind == "multi_choice":
            st.multiselect(label, list(labels), format_func=labels.get, key=key, help=helptext)
        elif kind in ("number", "integer"):
            low, high, step = _numbers(q)
            st.number_input(label, min_value=low, max_value=high, step=step, value=None, key=key, help=helptext,
                            placeholder="not answered")
        elif kind == "text":
            st.text_area(label, max_chars=q.get("max_length"), key=key, help=helptext)
        elif kind == "boolean":
            st.radio(label, ["Yes", "No"], index=None, horizontal=True, key=key, help=helptext)


def form_problem(exc) -> dict:
    """What a refused answer (``AnswerInvalid``) shows: a short message and the questions to mark. Missing
    required answers are marked on the form itself, so the message only counts them; other problems (a
    number out of range, ...) are listed."""
    missing = list(getattr(exc, "missing", ()))
    others = [p for p in exc.problems if not p.endswith(": an answer is required")]
    parts = []
    if missing:
        n = len(missing)
        parts.append(f"Please answer the {n} required question{'s' if n > 1 else ''} marked in red.")
    if others:
        parts.append("Please correct: " + "; ".join(others))
    return {"message": " ".join(parts) or "Please complete the form.", "missing": missing}


def show_form_problem(problem: dict, assignment_id: int) -> None:
    """The message (plain text: it quotes question texts) and a red mark on every unanswered question."""
    st.error(plain(problem["message"]))
    keys = [widget_key(assignment_id, qid) for qid in problem["missing"]]
    if keys:
        selector = ", ".join(f".st-key-{k}" for k in keys)
        st.html(f"<style>{selector} {{ border-left: 4px solid #d33; padding-left: 8px; }}</style>")


def collect_answer(questions, assignment_id: int, allow_ungradable: bool = False, state=None) -> dict:
    """The answer dict for ``workflow.submit`` from the widgets' values (``state``: st.session_state).

    Unanswered widgets are left out (the workflow then says which required answers are missing);
    with "Image ungradable" ticked the answer is ``{"ungradable": True}`` plus any optional answers.
    """
    state = st.session_state if state is None else state
    ungradable = bool(allow_ungradable and state.get(widget_key(assignment_id, UNGRADABLE)))
    answer: dict = {UNGRADABLE: True} if ungradable else {}
    for q in questions:
        if ungradable and q.get("required", True):
            continue
        value = state.get(widget_key(assignment_id, q["id"]))
        kind = q["kind"]
        if kind == "boolean" and value is not None:
            value = value == "Yes"
        elif kind in ("number", "integer") and value is not None:
            low, _high, step = _numbers(q)
            value = int(round(value)) if isinstance(step, int) and (low is None or isinstance(low, int)) else float(value)
        elif kind == "text" and value is not None:
            value = value.strip() or None
        elif kind == "multi_choice" and value is not None:
            value = list(value)
        if value is not None:
            answer[q["id"]] = value
    return answer


def draft_from_widgets(questions, assignment_id: int, allow_ungradable: bool = False, state=None) -> dict:
    """What the widgets hold now, as plain values by question id (unvalidated): a draft to keep."""
    state = st.session_state if state is None else state
    draft: dict = {}
    if allow_ungradable and state.get(widget_key(assignment_id, UNGRADABLE)):
        draft[UNGRADABLE] = True
    for q in questions:
        value = state.get(widget_key(assignment_id, q["id"]))
        if value is None:
            continue
        if q["kind"] == "boolean":
            value = value == "Yes"
        elif q["kind"] == "multi_choice":
            value = list(value)
        draft[q["id"]] = value
    return draft


def draw_draft_form(questions, assignment_id: int, allow_ungradable: bool, draft: dict | None, on_change) -> None:
    """The answer widgets outside an ``st.form``, starting from ``draft`` (what the reader had ticked or typed
    before a reload; nothing else is pre-filled), each change calling ``on_change()`` so that it is kept.
    Required questions are marked before anything is submitted, as in :func:`draw_answer_form`."""
    draft = draft or {}
    required = [widget_key(assignment_id, q["id"]) for q in questions if q.get("required", True)]
    if required:
        _mark_required(required)
    if allow_ungradable:
        st.checkbox("Image ungradable", key=widget_key(assignment_id, UNGRADABLE), on_change=on_change,
                    value=bool(draft.get(UNGRADABLE)),
                    help="Tick when the photograph cannot be graded; the other questions are then skipped.")
    for q in questions:
        key, kind, label = widget_key(assignment_id, q["id"]), q["kind"], _label(q)
        labels = {k: plain(v) for k, v in (q.get("options") or ())}
        helptext = None if q.get("required", True) else "Optional"
        saved = draft.get(q["id"])
        common = dict(key=key, help=helptext, on_change=on_change)
        if kind in ("single_choice", "ordinal"):
            keys = list(labels)
            horizontal = kind == "ordinal" and all(len(v) <= SHORT_LABEL for v in labels.values())
            st.radio(label, keys, format_func=labels.get, index=keys.index(saved) if saved in keys else None,
                     horizontal=horizontal, **common)
        elif kind == "multi_choice":
            st.multiselect(label, list(labels), format_func=labels.get,
                           default=[v for v in saved or () if v in labels] or None, **common)
        elif kind in ("number", "integer"):
            low, high, step = _numbers(q)
            value = saved if isinstance(saved, (int, float)) and not isinstance(saved, bool) else None
            if value is not None:
                value = type(step)(value) if step is not None else float(value)
                if (low is not None and value < low) or (high is not None and value > high):
                    value = None
            st.number_input(label, min_value=low, max_value=high, step=step, value=value,
                            placeholder="not answered", **common)
        elif kind == "text":
            st.text_area(label, max_chars=q.get("max_length"), value=saved if isinstance(saved, str) else "",
                         **common)
        elif kind == "boolean":
            st.radio(label, ["Yes", "No"], index=None if not isinstance(saved, bool) else (0 if saved else 1),
                     horizontal=True, **common)
