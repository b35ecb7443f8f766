"""The reader pages, driven headless with AppTest on a temporary SQLite study per test."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from study.storage import db
from study.storage.models import Answer, AuditEvent
from tests.app_helpers import make_study, rendered_text
from testsupport.app import APP, PROBS, consent, sign_in, signed_in, submit_button
from testsupport.studies import committed

AI_MARKERS = ["AI suggestion", "It can be wrong", "0.8731", "0.873", "87.3", "feedc0de12345678", "ReVision test model", "probability"]


@pytest.fixture
def study_db(tmp_path, monkeypatch):
    def make(**kw):
        url, ids, codes = make_study(tmp_path, **kw)
        monkeypatch.setenv("REVISION_DB_URL", url)
        return url, ids, codes
    return make


def answer(at: AppTest, diagnosis: str = "amd") -> AppTest:
    radios = at.radio
    assert radios, "no answer form"
    radios[0].set_value(diagnosis)
    radios[-1].set_value("No")
    at.number_input[0].set_value(70)  # confidence: no default, a grader sets it
    submit_button(at).click()
    return at.run()


def _study_id(url) -> int:
    from study.storage.models import Study

    with db.session_factory(db.make_engine(url))() as s:
        return s.scalar(select(Study.id))


def count(url, model, *where):
    factory = db.session_factory(db.make_engine(url))
    with factory() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_wrong_codes_slow_down_never_lock_out_and_are_audited(study_db, monkeypatch):
    from study.services import signin

    waits = []
    monkeypatch.setattr(signin, "wait", waits.append)  # the page's waits, recorded instead of slept
    url, _, codes = study_db()
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/reader_signin.py").run()
    sign_in(at, "")  # an empty press is not a try
    assert [w.value for w in at.warning] == ["Type your access code first."]
    messages = []
    for i in range(6):
        sign_in(at, "AAAA-BBBB-CCCC")
        assert not at.exception
        messages += [w.value for w in at.warning]
    assert set(messages) == {"That code is not valid: check it and type it again."}  # no tries left, no times
    assert waits == [1.0, 2.0, 4.0]  # the browser session's three free tries, then a wait doubling per try
    sign_in(at, codes[0])  # the right code: after its wait, it gets in
    assert at.session_state["role"] == "reader" and waits[-1] == 8.0
    assert count(url, AuditEvent, AuditEvent.action == "reader.sign_in_failed") == 6
    assert count(url, AuditEvent, AuditEvent.action == "reader.sign_in_throttled") == 4
    assert count(url, AuditEvent, AuditEvent.action == "reader.signed_in") == 1


def test_sequential_reading_hides_ai_until_the_unaided_answer_is_locked(study_db):
    url, _, codes = study_db(design="sequential", n_cases=2)
    at = signed_in(codes[0])
    assert not at.exception, at.exception
    assert at.session_state["role"] == "reader"
    assert any("Instructions and consent" in h.value for h in at.header)
    consent(at)
    assert count(url, AuditEvent, AuditEvent.action == "reader.consented") == 1
    # step 1: unaided: no AI panel, no chart, no AI value anywhere in what was sent
    assert at.subheader[0].value == "Case 1 of 4"
    assert not at.get("progress")
    sent = rendered_text(at)
    for marker in AI_MARKERS:
        assert marker not in sent, marker
    assert "Unaided reading" in sent
    key_name = [k for k in at.session_state if str(k).startswith("idem_")][0]
    key, assignment_id = at.session_state[key_name], int(key_name.split("_")[1])
    answer(at, "amd")
    assert not at.exception, at.exception
    # a second click of the same form (same idempotency key) stores nothing new
    from study.services.reader import submit_answer
    stored = count(url, Answer)
    factory = db.session_factory(db.make_engine(url))
    with factory() as s:
        payload = s.scalar(select(Answer.payload).where(Answer.idempotency_key == key))
    assert submit_answer(factory, at.session_state["reader_id"], assignment_id, payload, key).replayed
    assert stored == count(url, Answer) == 1
    # step 2: aided: the locked answer, the AI panel with its chart, model card and disclaimer
    assert at.subheader[0].value == "Case 2 of 4"
    assert len(at.get("progress")) == 5  # the five findings, each bar labelled with its value
    sent = rendered_text(at)
    assert "Your unaided answer (locked)" in sent and "AI suggestion" in sent and "suggestion" in sent
    locked = next(m.value for m in at.markdown if m.value.startswith("Primary diagnosis: "))
    assert locked.splitlines()[0].strip() == "Primary diagnosis: **Age-related macular degeneration**"
    assert "findings present: **none**" in locked and locked.endswith(": **no**")  # words, not [] or False
    assert "ReVision test model" in sent and "demo model trained on synthetic images only" in sent
    assert count(url, Answer) == 1
    answer(at, "amd")
    assert count(url, Answer) == 2
    # reference labels never reach the browser: the truth of case 0 is "amd", stored as {"label": ...}
    assert '"label": "amd"' not in rendered_text(at)


def test_pause_and_resume_from_the_database(study_db):
    url, _, codes = study_db(design="sequential", n_cases=2)
    at = consent(signed_in(codes[0]))
    answer(at)
    at.button(key="pause_case").click().run()
    assert "role" not in at.session_state or at.session_state["role"] is None
    at2 = signed_in(codes[0])  # a new browser session
    assert not at2.exception
    assert at2.subheader[0].value == "Case 2 of 4"  # consent remembered, resumes at the next item


def test_crossover_end_of_session_shows_the_date_the_next_session_opens(study_db):
    url, _, codes = study_db(design="crossover", n_cases=2, n_readers=2, washout=14)
    at = consent(signed_in(codes[0]))
    seen_unaided, seen_aided = False, False
    for _ in range(2):
        sent = rendered_text(at)
        if "Unaided reading" in sent:
            seen_unaided = True
            assert not at.get("progress")
            for marker in AI_MARKERS:
                assert marker not in sent, marker
        else:
            seen_aided = True
            assert len(at.get("progress")) == 5 and "AI suggestion" in sent
        answer(at)
        assert not at.exception, at.exception
    assert seen_unaided and seen_aided
    assert any("End of this session" in h.value for h in at.header)
    assert any("Session 2 opens on" in i.value for i in at.info)


def _viewer_data(sent: str) -> dict:
    """The data the page handed the case viewer (the component's JSON), from what was sent."""
    import json
    import re

    found = re.search(r'"json": ("(?:[^"\\]|\\.)*")', sent)
    assert found, "no case viewer on the page"
    return json.loads(json.loads(found.group(1)))


def _map_files(sent: str, url: str) -> list[str]:
    """The store files of every signed link the page carries that names a saliency map (``<sha256>.map.png``);
    the links are checked with the servers' signing key in the database at ``url``."""
    import re

    from study.domain import image_links
    from study.services.reader import link_key

    key = link_key(db.session_factory(db.make_engine(url)))
    names = [image_links.verify(key, t).file_name for t in set(re.findall(r"/case-image/([A-Za-z0-9_.-]+)", sent))]
    return [n for n in names if n.endswith(".map.png")]


def test_saliency_maps_reach_the_saliency_arm_only_named_and_preloaded_from_saliency_to_saliency(study_db):
    """Each saliency-arm item carries the links of its three maps (most probable finding first, each named
    with its probability as the AI panel shows it) and, when the next reading is a saliency one too, the next
    case's maps to preload; an unaided or AI-only item carries no map link at all (not even the next case's)."""
    url, _, codes = study_db(design="multi_arm", n_cases=6, n_readers=3, saliency="maps",
                             arms=["unaided", "ai", "ai_saliency"])
    at = consent(signed_in(codes[0]))
    arms, preloads = [], []
    for _ in range(6):
        sent = rendered_text(at)
        data, files = _viewer_data(sent), _map_files(sent, url)
        if "Unaided reading" in sent:
            arms.append("unaided")
            assert not files and "maps" not in data and not at.get("progress")
        elif "maps" in data:
            arms.append("ai_saliency")
            assert [(m["name"], m["percent"]) for m in data["maps"]] == [
                ("Diabetic retinopathy", 87), ("Glaucomatous optic neuropathy", 46), ("Pathologic myopia", 25)]
            ahead = data["prefetch"][1:]  # after the next photograph: the next case's maps, if any
            assert len(files) == 3 + len(ahead) and len(ahead) in (0, 3)
            preloads.append(len(ahead))
            assert data["method"] == "integrated gradients" and data["palette"]["grey"] == [64, 128, 192]
        else:
            arms.append("ai")
            assert not files and "maps" not in data and len(at.get("progress")) == 5
        answer(at)
        assert not at.exception, at.exception
    first, second = [i for i, a in enumerate(arms) if a == "ai_saliency"]
    assert second == first + 1 and set(arms) == {"unaided", "ai", "ai_saliency"}  # the arms come in blocks
    assert preloads == [3, 0]  # saliency to saliency: preloaded; the last reading has no next
    from study.outputs.export import answers_table

    with db.session_factory(db.make_engine(url))() as s:
        table = answers_table(s, _study_id(url))
    assert (table.ai_saliency_shown == (table.condition == "ai_saliency")).all()  # the export says who saw maps


def test_a_picture_of_an_older_study_still_reaches_the_saliency_arm_only(study_db):
    url, _, codes = study_db(design="multi_arm", n_cases=3, n_readers=3, saliency=True,
                             arms=["unaided", "ai", "ai_saliency"])
    seen = set()
    for code in codes:
        at = consent(signed_in(code))
        for _ in range(3):
            sent = rendered_text(at)
            has_overlay = "data:image/png;base64," in sent  # the picture travels in the viewer's data only
            if "Unaided reading" in sent:
                seen.add("unaided")
                assert not has_overlay and not at.get("progress")
            elif has_overlay:
                seen.add("ai_saliency")
                assert "diabetic retinopathy (87%)" in sent  # the finding it explains (the most probable one)
            else:
                seen.add("ai")
            answer(at)
            assert not at.exception, at.exception
        if seen == {"unaided", "ai", "ai_saliency"}:
            break
    assert seen == {"unaided", "ai", "ai_saliency"}
    assert PROBS


def test_a_reader_added_after_the_design_sees_no_readings_yet_not_study_complete(study_db):
    """Before the first answer a new reader has no assignments until the investigator rebuilds the design;
    the page must not thank them for a finished study."""
    from study.domain.readers import add_reader

    url, ids, _codes = study_db()
    factory = db.session_factory(db.make_engine(url))
    with factory() as s:
        _, late_code = committed(add_reader, s, ids["study"], display_name="Late reader", years_experience=3)
        s.commit()
    at = signed_in(late_code)
    if at.get("checkbox") and any(c.key == "consent_box" for c in at.checkbox):
        consent(at)
    text = rendered_text(at)
    assert not at.exception
    assert "No readings have been assigned to you yet" in text
    assert "Study complete" not in text


def test_a_revoked_reader_pressing_submit_gets_a_clear_page_and_nothing_is_stored(study_db):
    """Revoked (or reissued) while the case is open: the next press says why, no Streamlit error, no answer."""
    from study.domain import reader_operations

    url, _, codes = study_db(design="crossover", n_cases=4)
    at = consent(signed_in(codes[0]))
    reader_id = at.session_state["reader_id"]
    radios = at.radio
    radios[0].set_value("amd")
    radios[-1].set_value("No")
    at.number_input[0].set_value(70)
    factory = db.session_factory(db.make_engine(url))
    with factory() as s:
        committed(reader_operations.revoke_code, s, reader_id, actor="investigator:lead", reason="left the study")
    submit_button(at).click()
    at.run()
    assert not at.exception, at.exception
    assert "role" not in at.session_state
    assert any("access code was withdrawn" in w.value and "your answers are saved" in w.value for w in at.warning)
    assert any(t.value == "Reader sign-in" for t in at.title)
    assert count(url, Answer) == 0


def test_a_new_browser_session_shows_the_draft_of_the_open_case(study_db):
    """What a reader ticked is kept as they go; after a reload or a new sign-in the form starts from it."""
    url, _, codes = study_db(design="crossover", n_cases=4)
    at = consent(signed_in(codes[0]))
    at.radio[0].set_value("glaucoma").run()
    at.number_input[0].set_value(42).run()
    assert not any("were kept" in c.value for c in at.caption)  # nothing to restore in the first session
    again = signed_in(codes[0])  # a new browser session (a reload, or signing in again)
    assert not again.exception, again.exception
    assert any("Your answers to this case so far were kept" in c.value for c in again.caption)
    assert again.radio[0].value == "glaucoma" and again.number_input[0].value == 42
    assert again.radio[-1].value is None  # what was not ticked stays unanswered
    assert count(url, Answer) == 0
    answer(again, "glaucoma")
    assert count(url, Answer) == 1
