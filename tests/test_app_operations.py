"""The operations screens, driven with AppTest: revoke/reissue (the new code shown once), early access to
the next session, the audit trail with filters, the case browser, reader detail, the monitor's flags, and the
reader's corrections screen (never the reference, never any AI output)."""
from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from study.storage import db
from study.domain import readers, workflow
from study.storage.models import Answer, Assignment, AuditEvent
from tests.app_helpers import as_signed_in_reader, make_study, rendered_text
from tests.study.helpers import answer_history
from testsupport.app import APP, CARD
from testsupport.studies import committed

ROOT = Path(APP).parent
PAGES = ["pages/investigator_operations.py", "pages/investigator_audit.py", "pages/investigator_cases.py",
         "pages/investigator_readers.py"]
AI_MARKERS = ["AI suggestion", "It can be wrong", "0.8731", "87%", "feedc0de12345678", "ReVision test model",
              "probability", "Saliency"]
ANSWER = {"primary_diagnosis": "amd", "confidence": 60, "referral": False}


@pytest.fixture
def env(tmp_path, monkeypatch):
    def make(**kw):
        url, ids, codes = make_study(tmp_path, **{"design": "crossover", "n_cases": 4, "n_readers": 2, **kw})
        monkeypatch.setenv("REVISION_DB_URL", url)
        monkeypatch.setenv("REVISION_TIMEZONE", "UTC")
        return url, db.session_factory(db.make_engine(url)), codes
    return make


def investigator(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["role"], at.session_state["investigator_user"] = "investigator", "lead"
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def as_reader(reader_id: int, page: str = "pages/reader_answers.py") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    as_signed_in_reader(at, os.environ["REVISION_DB_URL"], reader_id)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def answer_next(factory, rid: int, seconds: float = 20, now: datetime | None = None, key: str | None = None):
    now = now or datetime.now(timezone.utc) - timedelta(minutes=30)
    with factory() as s:
        item = committed(workflow.next_item, s, rid, now=now)
        result = committed(workflow.submit, s, rid, item.assignment_id, ANSWER, key or f"k-{item.assignment_id}",
                                 now=now + timedelta(seconds=seconds))
    return item, result


@pytest.mark.parametrize("page", PAGES + ["pages/reader_answers.py"])
def test_new_pages_refuse_the_wrong_role(env, page):
    env()
    at = AppTest.from_file(str(ROOT / page), default_timeout=60)
    if page.startswith("pages/investigator"):
        at.session_state["role"], at.session_state["reader_id"] = "reader", 1
    at.run()
    assert any("signed-in" in e.value and "only" in e.value for e in at.error)
    assert not at.dataframe and not at.button


def test_revoke_and_reissue_show_the_new_code_once(env):
    url, factory, codes = env()
    at = investigator("pages/investigator_operations.py")
    assert at.title[0].value == "Study operations"
    assert list(at.dataframe[0].value["reader"]) == ["R001", "R002"]
    at.button(key="ops_revoke").click().run()  # no reason: refused, nothing changed
    assert any("reason is required" in e.value for e in at.error)
    with factory() as s:
        assert readers.authenticate(s, codes[0]).pseudonym == "R001"
    at.text_input(key="ops_code_reason").input("code shared by e-mail").run()
    at.button(key="ops_revoke").click().run()
    assert any("is revoked" in m.value for m in at.success)
    assert at.button(key="ops_revoke").disabled  # already revoked
    assert any(c.value.startswith("R001: access code revoked") for c in at.caption)
    assert at.selectbox(key="ops_code_reader").options == ["R001", "R002"]  # no status in the picker: it went stale
    assert at.text_input(key="ops_code_reason").value == ""  # each action gives its own reason
    at.text_input(key="ops_code_reason").input("reader asked for a new code").run()
    at.button(key="ops_reissue").click().run()
    new = at.code[0].value
    assert any(c.value.startswith("R001: access code active") for c in at.caption)  # said at once, not on reload
    assert any("not shown again" in w.value for w in at.warning)
    with factory() as s:
        assert readers.authenticate(s, new).pseudonym == "R001" and readers.authenticate(s, codes[0]) is None
        asked = s.scalars(select(AuditEvent).where(AuditEvent.action.like("reader.%_requested"))
                          .order_by(AuditEvent.id)).all()
        assert [(e.action, e.actor, e.after["reason"]) for e in asked] == [
            ("reader.revoke_requested", "investigator:lead", "code shared by e-mail"),
            ("reader.reissue_requested", "investigator:lead", "reader asked for a new code")]
    at.run()  # any next run of the page: the code is gone
    assert new not in rendered_text(at) and not at.code


def test_early_access_to_session_two(env):
    url, factory, codes = env(washout=28)
    with factory() as s:
        n1 = len(s.scalars(select(Assignment.id).where(Assignment.reader_id == 1, Assignment.session == 1)).all())
    for k in range(n1):
        answer_next(factory, 1, now=datetime.now(timezone.utc) - timedelta(hours=2) + timedelta(minutes=k))
    detail = investigator("pages/investigator_readers.py")  # the long status: a word in the metric, whole below
    assert detail.metric[3].value == "washout"
    assert any(c.value.replace("\\", "").startswith("Status: washout: session 2 opens ") for c in detail.caption)
    shown = detail.dataframe[1].value  # the answers, counted from 1 as the reader saw them ("Case 1 of ...")
    assert list(shown["position"]) == list(range(1, n1 + 1))
    at = investigator("pages/investigator_operations.py")
    assert "washout" in at.dataframe[0].value.set_index("reader").loc["R001", "status"]
    assert at.selectbox(key="ops_washout_reader").value == 1
    at.button(key="ops_override").click().run()
    assert any("reason is required" in e.value for e in at.error)
    at.text_input(key="ops_washout_reason").input("reader relocates next week").run()
    at.button(key="ops_override").click().run()
    assert any("Session 2 of R001 is open" in m.value for m in at.success)
    with factory() as s:
        assert committed(workflow.next_item, s, 1).session == 2
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "washout.overridden"))
        assert (event.actor, event.after["reason"]) == ("investigator:lead", "reader relocates next week")
    at.run()
    assert any("No reader is waiting" in i.value for i in at.info)


def test_audit_trail_filters_and_download(env):
    url, factory, codes = env()
    answer_next(factory, 2)
    at = investigator("pages/investigator_audit.py")
    table = at.dataframe[0].value
    assert {"reader.added", "answer.submitted", "assignment.shown"} <= set(table["action"])
    assert all(len(t) == len("2026-12-01 14:05 UTC") for t in table["at"])  # to the minute, zone named
    at.multiselect(key="audit_actions").set_value(["answer.submitted"]).run()
    assert list(at.dataframe[0].value["action"]) == ["answer.submitted"]
    at.multiselect(key="audit_actions").set_value([]).run()
    at.selectbox(key="audit_reader").set_value("R001").run()
    assert "reader:R002" not in set(at.dataframe[0].value["actor"])
    at.selectbox(key="audit_reader").set_value("R002").run()
    assert "reader:R002" in set(at.dataframe[0].value["actor"])
    last_year = datetime.now(timezone.utc).date() - timedelta(days=400)
    at.date_input(key="audit_days").set_value((last_year, last_year + timedelta(days=1))).run()
    assert not at.dataframe and any("0 event(s) match" in c.value for c in at.caption)
    at.date_input(key="audit_days").set_value(()).run()
    assert at.dataframe and len(at.get("download_button")) == 1


def test_case_browser_shows_reference_photo_and_ai_per_version(env):
    url, factory, codes = env()
    answer_next(factory, 1)
    at = investigator("pages/investigator_cases.py")
    listing = at.dataframe[0].value
    assert list(listing["case"]) == ["C000", "C001", "C002", "C003"] and listing["readings"].sum() == 1
    at.selectbox(key="case_pick").set_value(2).run()  # case C001, reference "normal"
    assert not at.exception, at.exception
    text = rendered_text(at)
    assert "Case C001" in text and "Primary diagnosis: **Normal" in text
    assert CARD["version"] in text and "shown to readers" in text
    assert at.get("image"), "the case photograph is drawn"


def test_case_browser_shows_each_map_as_a_saliency_reader_sees_it(env):
    url, factory, codes = env(design="multi_arm", arms=["unaided", "ai", "ai_saliency"], n_readers=3,
                              saliency="maps")
    at = investigator("pages/investigator_cases.py")
    at.selectbox(key="case_pick").set_value(1).run()
    assert not at.exception, at.exception
    captions = [i.caption for img in at.get("image") for i in img.proto.imgs]
    assert [c for c in captions if c.startswith("Where the model looked")] == [
        "Where the model looked for Diabetic retinopathy (87%)",
        "Where the model looked for Glaucomatous optic neuropathy (46%)",
        "Where the model looked for Pathologic myopia (25%)"]


def test_reader_detail_lists_versions_and_sign_ins(env):
    url, factory, codes = env()
    _, first = answer_next(factory, 1, seconds=1)
    with factory() as s:
        committed(workflow.correct, s, 1, first.answer_id, {**ANSWER, "confidence": 15}, "slipped")
    at = investigator("pages/investigator_readers.py")
    answers = at.dataframe[1].value
    assert list(answers["version"]) == [1, 2] and list(answers["reason"]) == ["", "slipped"]
    assert list(answers["fast"]) == [True, False]
    assert [m.value for m in at.metric][:2] == ["1 / 8", "1"]
    assert any("3 s" in c.value for c in at.caption)


def test_monitor_flags_fast_reads_with_the_threshold(env):
    url, factory, codes = env()
    answer_next(factory, 1, seconds=1)
    answer_next(factory, 2, seconds=40)
    at = investigator("pages/investigator_monitor.py")
    main = at.dataframe[0].value
    assert set(main.columns) >= {"reader", "session", "done", "fast_reads", "last_activity"}
    assert main.groupby("reader")["fast_reads"].sum().to_dict() == {"R001": 1, "R002": 0}
    flagged = at.dataframe[1].value
    assert list(flagged["reader"]) == ["R001"] and list(flagged["fast_reads"]) == [1]
    assert any("faster than 3 s" in c.value and "7 days" in c.value for c in at.caption)


def aided_and_unaided(factory) -> tuple[int, list]:
    """A reader with one unaided and one aided answer in the current session (multi-arm: both in session 1)."""
    items = [answer_next(factory, 1, now=datetime.now(timezone.utc) - timedelta(minutes=30 - k))[0]
             for k in range(3)]
    return 1, items


def test_corrections_screen_shows_no_ai_and_no_truth_and_saves_a_version(env):
    # the unaided answer is corrected after the session's aided readings began: this study allows it
    url, factory, codes = env(design="multi_arm", arms=["unaided", "ai"], unaided_corrections_after_ai=True)
    rid, items = aided_and_unaided(factory)
    assert {i.condition for i in items} == {"unaided", "ai"}
    at = as_reader(rid)
    assert at.title[0].value == "Your answers"
    assert len(at.dataframe[0].value) == 3
    text = rendered_text(at)
    for marker in AI_MARKERS + ["C000", "C001", "C002", "0.4567", "0.1234"]:
        assert marker not in text, marker
    unaided = next(i for i in items if i.condition == "unaided")
    with factory() as s:
        target = s.scalar(select(Answer.id).where(Answer.assignment_id == unaided.assignment_id))
    at.selectbox(key="fix_pick").set_value(target).run()
    for marker in AI_MARKERS:
        assert marker not in rendered_text(at), marker
    form = f"fix{target}"
    assert at.radio(key=f"q_{form}_primary_diagnosis").value == "amd"  # pre-filled from the answer
    at.number_input(key=f"q_{form}_confidence").set_value(35)
    [b for b in at.button if b.proto.is_form_submitter][0].click().run()
    assert any("reason" in e.value for e in at.error)  # no reason: refused
    with factory() as s:
        assert len(answer_history(s, unaided.assignment_id)) == 1
    at.number_input(key=f"q_{form}_confidence").set_value(35)
    at.text_input(key=f"{form}_reason").input("meant 35")
    [b for b in at.button if b.proto.is_form_submitter][0].click().run()
    assert not at.exception, at.exception
    assert any("version 2" in m.value for m in at.success)
    with factory() as s:
        history = answer_history(s, unaided.assignment_id)
        assert [(a.version, a.payload["confidence"], a.reason) for a in history] == [(1, 60, None), (2, 35, "meant 35")]
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "answer.corrected"))
        assert event.actor == "reader:R001" and event.after["reason"] == "meant 35"


def test_corrections_screen_without_corrections_allowed(env):
    url, factory, codes = env(corrections=False)
    answer_next(factory, 1)
    at = as_reader(1)
    assert any("does not allow answers to be changed" in i.value for i in at.info)
    assert not [b for b in at.button if b.proto.is_form_submitter]


def test_reading_page_links_to_the_answers_after_a_first_answer(env):
    url, factory, codes = env()
    at = as_reader(1, "pages/reader_study.py")
    at.checkbox(key="consent_box").check().run()
    at.button(key="consent_start").click().run()
    assert "Review my answers" not in rendered_text(at)
    answer_next(factory, 1)
    at.run()
    assert "Review my answers" in rendered_text(at)
