"""Study operations (study.domain.reader_operations, audit_trail, monitoring, own_answers) on SQLite and PostgreSQL: each write and its audit rows, the audit
trail's filters and its formula-safe CSV, the case browser, a reader's detail, the flags, and a reader's
review and correction of their own answers (never the reference, never an AI output)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from study.domain import audit_trail, monitoring, own_answers, reader_operations, readers, timefmt, workflow
from study.jobs.precompute import store_ai_output
from study.outputs import audit_export
from study.services import signin
from study.storage.models import Answer, AuditEvent, Reader, WashoutOverride
from tests.study.helpers import answer_history
from testsupport.studies import CARD, VALID_ANSWER
from testsupport.studies import committed

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
ACTOR = "investigator:lead"


def read(s, rid, seconds: float, now: datetime, key: str, answer=VALID_ANSWER):
    """Show the reader's next item at ``now`` and answer it ``seconds`` later; returns (item, result)."""
    item = committed(workflow.next_item, s, rid, now=now)
    return item, committed(workflow.submit, s, rid, item.assignment_id, answer, key, now=now + timedelta(seconds=seconds))


def audit_rows(s, *where) -> list[AuditEvent]:
    return list(s.scalars(select(AuditEvent).where(*where).order_by(AuditEvent.id)))


def test_revoke_is_audited_with_actor_and_reason_in_one_transaction(Session, make_study):
    sid, _, codes = make_study(n_readers=2)
    rid, code = next(iter(codes.items()))
    with Session() as s:
        before = s.scalar(select(func.count()).select_from(AuditEvent))
        with pytest.raises(ValueError, match="reason is required"):
            committed(reader_operations.revoke_code, s, rid, actor=ACTOR, reason="   ")
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == before  # refused: nothing written
        committed(reader_operations.revoke_code, s, rid, actor=ACTOR, reason="laptop stolen")
    with Session() as s:
        assert readers.authenticate(s, code) is None
        requested, revoked = audit_rows(s, AuditEvent.entity == "reader", AuditEvent.entity_id == str(rid),
                                        AuditEvent.action.in_(["reader.revoke_requested", "reader.revoked"]))
        assert (requested.action, requested.actor, requested.after["reason"]) == (
            "reader.revoke_requested", ACTOR, "laptop stolen")
        assert (revoked.action, revoked.actor) == ("reader.revoked", ACTOR)
        assert revoked.after["revoked_at"] is not None and revoked.before["revoked_at"] is None
        with pytest.raises(ValueError, match="already revoked"):
            committed(reader_operations.revoke_code, s, rid, actor=ACTOR, reason="again")
        with pytest.raises(ValueError, match="no reader with id"):
            committed(reader_operations.revoke_code, s, 99999, actor=ACTOR, reason="x")


def test_reissue_gives_a_working_code_stored_hashed_and_never_audited(Session, make_study):
    sid, _, codes = make_study(n_readers=2)
    rid, old = next(iter(codes.items()))
    with Session() as s:
        committed(reader_operations.revoke_code, s, rid, actor=ACTOR, reason="lost")
        new = committed(reader_operations.reissue_code, s, rid, actor=ACTOR, reason="found the reader again")
    assert new != old
    with Session() as s:
        assert readers.authenticate(s, old) is None
        assert readers.authenticate(s, new).id == rid  # also lifts the revocation
        reader = s.get(Reader, rid)
        flat = readers.normalise_code(new)
        assert reader.code_hash.startswith("$argon2") and flat not in reader.code_hash
        trail = json.dumps([[e.actor, e.action, e.before, e.after] for e in audit_rows(s)], default=str)
        assert new not in trail and flat not in trail and flat[4:] not in trail
        asked = audit_rows(s, AuditEvent.action == "reader.reissue_requested")
        assert [(e.actor, e.after["reason"]) for e in asked] == [(ACTOR, "found the reader again")]
        assert len(audit_rows(s, AuditEvent.action == "reader.code_issued")) == 1


def test_find_reader_by_pseudonym_or_id_and_a_clear_error(Session, make_study):
    sid, _, codes = make_study(n_readers=2)
    rid = next(iter(codes))
    with Session() as s:
        assert reader_operations.find_reader(s, sid, "r001").id == rid
        assert reader_operations.find_reader(s, sid, str(rid)).id == rid
        with pytest.raises(ValueError, match=r"no reader 'R404'.*readers: R001, R002"):
            reader_operations.find_reader(s, sid, "R404")


def finish_session_one(s, rid: int, now: datetime) -> datetime:
    """Answer every reading of the reader's session 1 (10 s each); returns the time of the last answer."""
    k = 0
    while True:
        item = committed(workflow.next_item, s, rid, now=now)
        if item.session != 1:
            raise AssertionError("session 2 opened without an override")
        committed(workflow.submit, s, rid, item.assignment_id, VALID_ANSWER, f"w{rid}-{k}", now=now + timedelta(seconds=10))
        now += timedelta(seconds=30)
        k += 1
        if reader_operations.session_progress(s, rid)[1].complete:
            return now


def test_washout_override_opens_session_two_with_the_reason_audited(Session, make_study):
    sid, _, codes = make_study(n_cases=4, n_readers=2, washout=28)
    rid = next(iter(codes))
    with Session() as s:
        end = finish_session_one(s, rid, T0)
        with pytest.raises(workflow.WashoutPending):
            committed(workflow.next_item, s, rid, now=end + timedelta(days=1))
        waiting = reader_operations.washout_until(s, s.get(Reader, rid), end + timedelta(days=1))
        assert waiting is not None and waiting[0] == 2
        with pytest.raises(ValueError, match="reason is required"):
            committed(reader_operations.override_washout, s, rid, actor=ACTOR, reason="")
        with pytest.raises(ValueError, match="no session 1 that a washout holds"):
            committed(reader_operations.override_washout, s, rid, 1, actor=ACTOR, reason="x")
        assert committed(reader_operations.override_washout, s, rid, actor=ACTOR, reason="reader leaves the site",
                                    now=end + timedelta(days=1)) == 2
        item = committed(workflow.next_item, s, rid, now=end + timedelta(days=1, minutes=1))
        assert item.session == 2
        assert reader_operations.washout_until(s, s.get(Reader, rid), end + timedelta(days=1)) is None
        with pytest.raises(ValueError, match="already opened early by investigator:lead"):
            committed(reader_operations.override_washout, s, rid, actor=ACTOR, reason="twice")
        rows = audit_rows(s, AuditEvent.action == "washout.overridden")
        assert [(e.actor, e.entity_id, e.after) for e in rows] == [
            (ACTOR, str(rid), {"session": 2, "reason": "reader leaves the site"})]
        assert s.scalar(select(func.count()).select_from(WashoutOverride)) == 1
        other = next(i for i in codes if i != rid)
        other_end = finish_session_one(s, other, T0)
        with pytest.raises(ValueError, match="open already: the washout has passed"):
            committed(reader_operations.override_washout, s, other, actor=ACTOR, reason="x", now=other_end + timedelta(days=29))


def test_override_refused_where_there_is_no_washout(Session, make_study):
    sid, _, codes = make_study("sequential", n_cases=2, n_readers=1)
    with Session() as s:
        with pytest.raises(ValueError, match="no washout"):
            committed(reader_operations.override_washout, s, next(iter(codes)), actor=ACTOR, reason="x")


def test_audit_trail_filters_and_formula_safe_csv(Session, make_study):
    sid, _, codes = make_study(n_readers=2)
    r1, r2 = list(codes)
    with Session() as s:
        read(s, r1, 20, T0, "a1")
        read(s, r2, 20, T0 + timedelta(days=2), "b1")
        committed(reader_operations.revoke_code, s, r2, actor="=HYPERLINK(\"http://evil\")", reason="+SUM(1)")
        everything, total = audit_trail.audit_trail(s, sid)
        assert total == len(everything) > 5
        by_reader, _ = audit_trail.audit_trail(s, sid, audit_trail.AuditFilter(reader="R001"))
        assert by_reader and all(e["actor"] == "reader:R001" or e["entity_id"] in {str(r1)}
                                 or e["entity"] in ("assignment", "answer") for e in by_reader)
        assert {e["action"] for e in by_reader} >= {"reader.added", "assignment.shown", "answer.submitted"}
        assert not any(e["actor"] == "reader:R002" for e in by_reader)
        answers_r1 = {str(i) for i in s.scalars(select(Answer.id).where(Answer.reader_id == r1))}
        assert {e["entity_id"] for e in by_reader if e["entity"] == "answer"} == answers_r1
        submitted, n = audit_trail.audit_trail(s, sid, audit_trail.AuditFilter(actions=("answer.submitted",)))
        assert n == 2 and {e["actor"] for e in submitted} == {"reader:R001", "reader:R002"}
        prefixed, _ = audit_trail.audit_trail(s, sid, audit_trail.AuditFilter(actions=("reader.*",)))
        assert prefixed and all(e["action"].startswith("reader.") for e in prefixed)
        assert {"reader.added", "reader.revoked"} <= {e["action"] for e in prefixed}
        by_actor, _ = audit_trail.audit_trail(s, sid, audit_trail.AuditFilter(actors=("reader:R002",)))
        assert by_actor and {e["actor"] for e in by_actor} == {"reader:R002"}
        early, _ = audit_trail.audit_trail(s, sid, audit_trail.AuditFilter(actions=("answer.submitted",),
                                                           until=T0 + timedelta(days=1)))
        late, _ = audit_trail.audit_trail(s, sid, audit_trail.AuditFilter(actions=("answer.submitted",),
                                                          since=T0 + timedelta(days=1)))
        assert [e["actor"] for e in early] == ["reader:R001"] and [e["actor"] for e in late] == ["reader:R002"]
        with pytest.raises(ValueError, match="no reader 'R999'"):
            audit_trail.audit_trail(s, sid, audit_trail.AuditFilter(reader="R999"))
        text, n = committed(audit_export.export_audit, s, sid, audit_trail.AuditFilter(actions=("reader.*",)), actor=ACTOR)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == list(audit_export.AUDIT_COLUMNS) and len(rows) == n + 1
    cells = [c for row in rows[1:] for c in row]
    assert not any(c[:1] in ("=", "+", "@") for c in cells)  # no cell a spreadsheet would run
    assert "'=HYPERLINK(\"http://evil\")" in cells
    assert any('"reason": "+SUM(1)"' in c for c in cells)  # the reason sits inside JSON
    with Session() as s:
        exported = audit_rows(s, AuditEvent.action == "audit.exported")
        assert len(exported) == 1 and exported[0].actor == ACTOR
        assert exported[0].after["events"] == n and exported[0].after["filter"] == {
            "actions": ["reader.*"], "with_global": True}
        assert exported[0].after["file"]["bytes"] == len(text.encode())


def test_parse_when_days_and_times():
    zone = timezone(timedelta(hours=1))
    assert timefmt.parse_when("2026-12-01", zone=zone) == datetime(2026, 12, 1, tzinfo=zone)
    assert timefmt.parse_when("2026-12-01", end=True, zone=zone) == datetime(2026, 12, 2, tzinfo=zone)
    assert timefmt.parse_when("2026-12-01T14:05Z", zone=zone) == datetime(2026, 12, 1, 14, 5, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="not a date"):
        timefmt.parse_when("yesterday")


def test_case_browser_reference_ai_per_version_and_readings(Session, make_study):
    sid, case_ids, codes = make_study(n_cases=4, n_readers=2)
    rid = next(iter(codes))
    with Session() as s:
        item, _ = read(s, rid, 30, T0, "c1")
        newer = {**CARD, "version": "ffff000011112222", "name": "newer"}
        case = s.scalar(select(Answer).where(Answer.reader_id == rid)).assignment_id
        from study.storage.models import Assignment
        case_id = s.get(Assignment, case).case_id
        committed(store_ai_output, s, case_id, model_card=newer, label_set="revision_findings", probabilities={"amd": 0.9})
        listing = {r["case_id"]: r for r in monitoring.case_list(s, sid)}
        assert set(listing) == set(case_ids)
        assert listing[case_id]["readings"] == 1 and listing[case_id]["ai_outputs"] == 2
        assert listing[case_id]["reference"].startswith("Primary diagnosis")
        detail = monitoring.case_detail(s, sid, case_id)
        assert detail.reference and detail.image_path is None and "cannot be shown" in detail.image_problem
        versions = {o["model_version"]: o for o in detail.ai_outputs}
        assert set(versions) == {CARD["version"], "ffff000011112222"}
        # the study pins no version in this fixture: readers are shown the newest output (study.domain.rules)
        assert versions["ffff000011112222"]["shown_to_readers"] and not versions[CARD["version"]]["shown_to_readers"]
        assert [r["reader"] for r in detail.readings] == ["R001"] and detail.readings[0]["correct"] in (True, False)
        with pytest.raises(ValueError, match="no case with id"):
            monitoring.case_detail(s, sid, 99999)


def test_flags_fast_reads_and_stalled_readers(Session, make_study):
    sid, _, codes = make_study(n_cases=4, n_readers=3)
    fast, slow, idle = list(codes)
    with Session() as s:
        read(s, fast, 1.0, T0, "f1")
        read(s, fast, 2.9, T0 + timedelta(minutes=1), "f2")
        read(s, fast, 3.0, T0 + timedelta(minutes=2), "f3")  # not faster than 3 s: not flagged
        read(s, slow, 40, T0, "s1")
        rows = {r["pseudonym"]: r for r in monitoring.readers_overview(s, sid, now=T0 + timedelta(hours=1))}
        assert (rows["R001"]["fast_reads"], rows["R002"]["fast_reads"], rows["R003"]["fast_reads"]) == (2, 0, 0)
        assert not any(r["stalled"] for r in rows.values())
        later = {r["pseudonym"]: r for r in monitoring.readers_overview(s, sid, now=T0 + timedelta(days=7, hours=1))}
        assert later["R001"]["stalled"] and later["R002"]["stalled"] and later["R001"]["status"] == "stalled"
        assert not later["R003"]["stalled"] and later["R003"]["status"] == "not started"
        assert monitoring.fast_reads_by_session(s, sid) == {("R001", 1): 2}
        assert "3 s" in monitoring.thresholds(s, sid).describe() and "7 days" in monitoring.thresholds(s, sid).describe()


def test_a_reader_waiting_out_the_washout_is_not_stalled(Session, make_study):
    sid, _, codes = make_study(n_cases=4, n_readers=2, washout=28)
    rid = next(iter(codes))
    with Session() as s:
        end = finish_session_one(s, rid, T0)
        row = next(r for r in monitoring.readers_overview(s, sid, now=end + timedelta(days=10)) if r["reader_id"] == rid)
        assert not row["stalled"] and row["status"].startswith("washout: session 2 opens")
        row = next(r for r in monitoring.readers_overview(s, sid, now=end + timedelta(days=40)) if r["reader_id"] == rid)
        assert row["stalled"]  # the washout is over and nothing happened for 40 days


def test_reader_detail_sessions_versions_and_sign_in_events(Session, make_study):
    sid, _, codes = make_study(n_readers=2)
    rid, code = next(iter(codes.items()))
    throttle = signin.SignInThrottle("browser-1")
    assert signin.sign_in(Session, throttle, code).reader_id == rid
    wrong = code[:5] + ("2222-2222" if code[5:] != "2222-2222" else "3333-3333")
    assert signin.sign_in(Session, throttle, wrong).reader_id is None
    with Session() as s:
        _, v1 = read(s, rid, 2, T0, "d1")
        committed(workflow.correct, s, rid, v1.answer_id, {**VALID_ANSWER, "confidence": 20}, "misclicked")
        detail = monitoring.reader_detail(s, rid, now=T0 + timedelta(hours=1))
    assert detail.reader["pseudonym"] == "R001" and detail.reader["display_name"] == "Dr 0"
    first = detail.sessions[0]
    assert (first["session"], first["done"], first["fast_reads"], first["median_seconds"]) == (1, 1, 1, 2.0)
    assert [(a["version"], a["reason"], a["fast"]) for a in detail.answers] == [(1, None, True), (2, "misclicked", False)]
    assert "Confidence" in detail.answers[1]["answer"] and "20" in detail.answers[1]["answer"]
    assert "reader.signed_in" in {e["action"] for e in detail.events}
    assert [e["action"] for e in detail.prefix_failures] == ["reader.sign_in_failed"]


def test_own_answers_show_no_truth_and_no_ai_and_corrections_are_versions(Session, make_study):
    sid, _, codes = make_study(n_cases=4, n_readers=2)
    rid = next(iter(codes))
    with Session() as s:
        assert own_answers.own_answers(s, rid).readings == ()
        item1, r1 = read(s, rid, 20, T0, "o1")
        item2, r2 = read(s, rid, 20, T0 + timedelta(minutes=1), "o2")
        mine = own_answers.own_answers(s, rid)
        assert mine.corrections_allowed and mine.session == 1
        assert [r.answer_id for r in mine.readings] == [r1.answer_id, r2.answer_id]
        assert [r.position for r in mine.readings] == [1, 2]
        dump = json.dumps([asdict(r) for r in mine.readings], default=str)
        for secret in ("SECRET_TRUTH_MARKER", "case0", CARD["version"], "probabilit", "0.1", "saliency"):
            assert secret not in dump, secret
        with pytest.raises(ValueError, match="reason is required"):
            committed(own_answers.correct_own_answer, s, rid, r1.answer_id, {**VALID_ANSWER, "confidence": 5}, "")
        fixed = committed(own_answers.correct_own_answer, s, rid, r1.answer_id, {**VALID_ANSWER, "confidence": 5}, "typo")
        assert fixed.version == 2
        mine = own_answers.own_answers(s, rid)
        assert mine.readings[0].version == 2 and mine.readings[0].payload["confidence"] == 5
        rows = audit_rows(s, AuditEvent.action == "answer.corrected")
        assert [(e.actor, e.after["reason"], e.after["version"]) for e in rows] == [("reader:R001", "typo", 2)]
        other = next(i for i in codes if i != rid)
        with pytest.raises(workflow.NotYourAssignment):
            committed(own_answers.correct_own_answer, s, other, r2.answer_id, VALID_ANSWER, "not mine")
        with pytest.raises(workflow.StaleVersion):  # version 1 was replaced: correct the latest
            committed(own_answers.correct_own_answer, s, rid, r1.answer_id, {**VALID_ANSWER, "confidence": 6}, "again")


def test_answers_of_an_earlier_session_are_closed_to_corrections(Session, make_study):
    sid, _, codes = make_study(n_cases=4, n_readers=2, washout=0)
    rid = next(iter(codes))
    with Session() as s:
        first_end = finish_session_one(s, rid, T0)
        old = s.scalar(select(Answer.id).where(Answer.reader_id == rid).order_by(Answer.id).limit(1))
        item = committed(workflow.next_item, s, rid, now=first_end)  # session 2 shown: session 1 is closed
        assert item.session == 2
        assert own_answers.own_answers(s, rid).session == 2 and own_answers.own_answers(s, rid).readings == ()
        with pytest.raises(workflow.CorrectionsNotAllowed, match="current session"):
            committed(own_answers.correct_own_answer, s, rid, old, {**VALID_ANSWER, "confidence": 1}, "late change")


def test_sequential_step_one_is_shown_as_locked_once_the_ai_was_shown(Session, make_study):
    sid, _, codes = make_study("sequential", n_cases=2, n_readers=1)
    rid = next(iter(codes))
    with Session() as s:
        read(s, rid, 20, T0, "q1")
        committed(workflow.next_item, s, rid, now=T0 + timedelta(minutes=1))  # step 2 (the AI) shown
        mine = own_answers.own_answers(s, rid)
        assert [r.locked is not None for r in mine.readings] == [True]
        with pytest.raises(workflow.AnswerLocked):
            committed(own_answers.correct_own_answer, s, rid, mine.readings[0].answer_id, {**VALID_ANSWER, "confidence": 1}, "x")


def test_corrections_refused_where_the_study_does_not_allow_them(Session, make_study):
    sid, _, codes = make_study(n_readers=1, corrections=False)
    rid = next(iter(codes))
    with Session() as s:
        _, r1 = read(s, rid, 20, T0, "n1")
        assert not own_answers.own_answers(s, rid).corrections_allowed
        with pytest.raises(workflow.CorrectionsNotAllowed):
            committed(own_answers.correct_own_answer, s, rid, r1.answer_id, {**VALID_ANSWER, "confidence": 1}, "x")


@pytest.mark.parametrize("after_ai", [None, True])
def test_unaided_answers_close_at_the_sessions_first_aided_reading_unless_the_study_says(Session, make_study,
                                                                                         after_ai):
    """Issue 20: a crossover session reads its unaided block, then its AI-assisted block. Once the first aided
    reading is on screen the unaided answers of that session are locked (the AI could change them), as the
    consent page says; a study may keep them open with [study] unaided_corrections_after_ai = true."""
    from study.domain.reader_screen import consent_summary

    sid, _, codes = make_study(n_cases=4, n_readers=1, unaided_corrections_after_ai=after_ai)
    rid = next(iter(codes))
    with Session() as s:
        _, r1 = read(s, rid, 20, T0, "u1")
        _, r2 = read(s, rid, 20, T0 + timedelta(minutes=1), "u2")
        assert [r.locked for r in own_answers.own_answers(s, rid).readings] == [None, None]
        fixed = committed(own_answers.correct_own_answer, s, rid, r1.answer_id, {**VALID_ANSWER, "confidence": 5}, "typo")
        aided = committed(workflow.next_item, s, rid, now=T0 + timedelta(minutes=2))  # the AI-assisted block begins
        assert aided.condition in ("ai", "ai_saliency") and aided.block_start
        mine = own_answers.own_answers(s, rid)
        again = {**VALID_ANSWER, "confidence": 6}
        if after_ai is None:  # the default
            assert [r.locked for r in mine.readings] == [f"locked: {workflow.LOCKED_BY_AIDED_BLOCK}"] * 2
            with pytest.raises(workflow.AnswerLocked, match="AI-assisted readings of this session have begun"):
                committed(own_answers.correct_own_answer, s, rid, fixed.answer_id, again, "after seeing the AI")
            assert len(answer_history(s, r1.assignment_id)) == 2
        else:
            assert [r.locked for r in mine.readings] == [None, None]
            assert committed(own_answers.correct_own_answer, s, rid, r2.answer_id, again, "allowed").version == 2
    summary = consent_summary(Session, rid)
    assert ("until the session's first AI-assisted reading" in summary) == (after_ai is None)
    assert ("including your unaided answers after the AI-assisted readings begin" in summary) == bool(after_ai)
