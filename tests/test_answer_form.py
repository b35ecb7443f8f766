"""pages/_answer_form.py: widgets start unanswered, the collected answer validates, ungradable skips."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from study.domain.config import AnswerInvalid, parse_text, validate_answer
from testsupport.studies import study_toml

CUSTOM = parse_text('''[study]
name = "F"
allow_ungradable = true
[[question]]
id = "grade"
text = "Grade"
kind = "ordinal"
options = [["0", "none"], ["1", "mild"], ["2", "moderate"]]
truth = "grade"
[[question]]
id = "dme"
text = "DME?"
kind = "boolean"
[[question]]
id = "size"
text = "Size"
kind = "number"
minimum = 0
maximum = 10
step = 0.5
unit = "mm"
[[question]]
id = "note"
text = "Comment"
kind = "text"
max_length = 50
[design]
type = "crossover"
''')


def _app(config):
    def script():
        import streamlit as st

        from pages._answer_form import collect_answer, draw_answer_form

        qs = st.session_state["qs"]
        with st.form("f"):
            draw_answer_form(qs, 7, st.session_state["ug"])
            if st.form_submit_button("Submit"):
                st.session_state["collected"] = collect_answer(qs, 7, st.session_state["ug"])

    at = AppTest.from_function(script)
    at.session_state["qs"] = [q.to_dict() for q in config.questions]
    at.session_state["ug"] = config.allow_ungradable
    return at.run()


def test_nothing_prefilled_and_untouched_is_unanswered():
    at = _app(parse_text(study_toml()))
    assert not at.exception
    assert at.number_input(key="q_7_confidence").value is None
    assert at.radio(key="q_7_primary_diagnosis").value is None
    assert at.radio(key="q_7_referral").value is None
    at.button[0].click().run()
    collected = at.session_state["collected"]
    assert collected == {"findings": []}
    try:
        validate_answer(parse_text(study_toml()).questions, collected)
    except AnswerInvalid as exc:
        assert "Primary diagnosis: an answer is required" in exc.problems
        assert any(p.startswith("Confidence in the primary diagnosis") for p in exc.problems)
    else:
        raise AssertionError("an untouched form must not validate")


def test_custom_questions_collected_and_validated():
    at = _app(CUSTOM)
    assert at.checkbox(key="q_7_ungradable").value is False
    assert at.radio(key="q_7_grade").value is None and at.number_input(key="q_7_size").value is None
    assert "mm" in at.number_input(key="q_7_size").label
    at.radio(key="q_7_grade").set_value("2")
    at.radio(key="q_7_dme").set_value("No")
    at.number_input(key="q_7_size").set_value(2.5)
    at.text_area(key="q_7_note").input("  small  ")
    at.button[0].click().run()
    collected = at.session_state["collected"]
    assert collected == {"grade": "2", "dme": False, "size": 2.5, "note": "small"}
    assert validate_answer(CUSTOM.questions, collected, allow_ungradable=True) == collected


def test_ungradable_skips_required_questions():
    at = _app(CUSTOM)
    at.radio(key="q_7_grade").set_value("1")
    at.checkbox(key="q_7_ungradable").check()
    at.text_area(key="q_7_note").input("blurred")
    at.button[0].click().run()
    collected = at.session_state["collected"]
    assert collected == {"ungradable": True, "note": "blurred"}
    assert validate_answer(CUSTOM.questions, collected, allow_ungradable=True) == collected
