"""Reader sessions (issue 20): a sign-in opens one, a one-time ticket becomes an HttpOnly cookie whose token only
the browser knows (the database keeps its sha256), a reload or another server resumes it, and sign-out,
revocation, a reissued code, expiry and a long pause end it, on SQLite and PostgreSQL; a submit in an ended
session stores nothing; answer drafts are kept per reading and hold nothing a submitted answer could not."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from study.domain import reader_operations, reader_sessions, workflow
from study.services import reader as reader_service, signin
from study.storage.models import Answer, AnswerDraft, AuditEvent, ReaderSession, utcnow
from testsupport.studies import VALID_ANSWER, committed


def _signed_in(Session, code: str, now=None) -> signin.SignInResult:
    res = signin.sign_in(Session, signin.SignInThrottle(signin.new_client_id()), code, now=now, sleep=lambda s: None)
    assert res.ok and res.session_id and res.ticket
    return res


def test_ticket_becomes_a_cookie_token_once_and_only_hashes_are_stored(db_url, Session, make_study):
    _, _, codes = make_study(n_cases=2, n_readers=1)
    (rid, code), = codes.items()
    res = _signed_in(Session, code)
    token = signin.claim_session(Session, res.ticket)
    assert token and signin.claim_session(Session, res.ticket) is None  # one-time
    assert signin.claim_session(Session, "x" * 40) is None
    resumed = signin.resume_reader_session(Session, token)  # a reload, another server process
    assert resumed.ok and (resumed.reader_id, resumed.session_id) == (rid, res.session_id) and resumed.claimed
    assert signin.resume_reader_session(Session, "y" * 43) is None
    with Session() as s:
        dump = json.dumps([[r.token_hash, r.ticket_hash] for r in s.scalars(select(ReaderSession))])
        dump += json.dumps([e.after for e in s.scalars(select(AuditEvent))], default=str)
    assert token not in dump and res.ticket not in dump and reader_sessions.digest(token) in dump


def test_a_late_ticket_is_refused(Session, make_study):
    _, _, codes = make_study(n_cases=2, n_readers=1)
    res = _signed_in(Session, next(iter(codes.values())), now=utcnow() - timedelta(minutes=11))
    assert signin.claim_session(Session, res.ticket) is None


@pytest.mark.parametrize("how, reason", [("revoke", "revoked"), ("reissue", "code_reissued")])
def test_revoking_or_reissuing_ends_every_open_session_at_its_next_interaction(Session, make_study, how, reason):
    _, _, codes = make_study(n_cases=4, n_readers=1)
    (rid, code), = codes.items()
    first, second = _signed_in(Session, code), _signed_in(Session, code)  # two tabs, or two devices
    token = signin.claim_session(Session, first.ticket)
    reader_service.record_consent(Session, rid, "v1")
    with Session() as s:
        item = committed(workflow.next_item, s, rid)
        if how == "revoke":
            committed(reader_operations.revoke_code, s, rid, actor="investigator:lead", reason="left the hospital")
        else:
            new_code = committed(reader_operations.reissue_code, s, rid, actor="investigator:lead", reason="code shared")
    for session_id in (first.session_id, second.session_id):
        checked = signin.check_reader_session(Session, session_id)
        assert not checked.ok and checked.ended == reason
        assert "your answers are saved" in checked.message
    assert signin.resume_reader_session(Session, token).ended == reason  # a reload after it
    with pytest.raises(reader_service.SessionEnded, match="withdrawn"):
        reader_service.submit_answer(Session, rid, item.assignment_id, VALID_ANSWER, "k1", first.session_id)
    with Session() as s:
        assert s.scalar(select(func.count()).select_from(Answer)) == 0
        ended = s.scalar(select(func.count()).select_from(AuditEvent)
                         .where(AuditEvent.action == "reader.session_ended"))
    assert ended == 2  # each session's end audited once, with its reason
    if how == "reissue":  # the new code opens a new session; the old cookie's sign-out does not end it
        fresh = _signed_in(Session, new_code)
        assert signin.sign_out_token(Session, token) == 0
        assert signin.check_reader_session(Session, fresh.session_id).ok


def test_sign_out_ends_every_session_of_the_reader(Session, make_study):
    _, _, codes = make_study(n_cases=2, n_readers=2)
    (rid, code), (other_id, other_code) = codes.items()
    mine = [_signed_in(Session, code) for _ in range(3)]
    theirs = _signed_in(Session, other_code)
    assert signin.sign_out_reader(Session, mine[0].session_id) == 3
    assert all(signin.check_reader_session(Session, r.session_id).ended == "signed_out" for r in mine)
    assert signin.check_reader_session(Session, theirs.session_id).ok


def test_sessions_expire_and_end_after_a_long_pause(Session, make_study, monkeypatch):
    _, _, codes = make_study(n_cases=2, n_readers=1)
    code = next(iter(codes.values()))
    start = utcnow()
    res = _signed_in(Session, code, now=start)
    assert signin.check_reader_session(Session, res.session_id, now=start + timedelta(minutes=90)).ok
    assert signin.check_reader_session(Session, res.session_id, now=start + timedelta(hours=3, minutes=31)).ended == "idle"
    monkeypatch.setenv("REVISION_SESSION_HOURS", "1")
    res = _signed_in(Session, code, now=start)
    later = start + timedelta(minutes=30)
    assert signin.check_reader_session(Session, res.session_id, now=later).ok
    assert signin.check_reader_session(Session, res.session_id, now=later + timedelta(minutes=31)).ended == "expired"
    monkeypatch.setenv("REVISION_SESSION_HOURS", "soon")
    with pytest.raises(ValueError, match="REVISION_SESSION_HOURS must be a positive number of hours"):
        signin.check_settings()


def test_drafts_are_kept_per_reading_and_never_become_answers(Session, make_study):
    _, _, codes = make_study(n_cases=2, n_readers=1)
    (rid, code), = codes.items()
    res = _signed_in(Session, code)
    reader_service.record_consent(Session, rid, "v1")
    with Session() as s:
        item = committed(workflow.next_item, s, rid)
    ids = [q["id"] for q in item.questions]
    draft = {"primary_diagnosis": "amd", "confidence": 55, "unknown_question": "x", "referral": None}
    assert reader_service.save_draft(Session, res.session_id, rid, item.assignment_id, draft, ids)
    assert reader_service.save_draft(Session, res.session_id, rid, item.assignment_id,
                                     {**draft, "confidence": 60}, ids)  # replaced as the reader goes
    kept, saved_at = reader_service.load_draft(Session, rid, item.assignment_id)
    assert kept == {"primary_diagnosis": "amd", "confidence": 60, "referral": None} and saved_at
    assert reader_service.save_draft(Session, res.session_id, rid, item.assignment_id,
                                     {"primary_diagnosis": "amd\x00\u202e"}, ids)
    assert reader_service.load_draft(Session, rid, item.assignment_id)[0] == {}  # NUL, bidi: not kept
    with Session() as s:
        assert s.scalar(select(func.count()).select_from(Answer)) == 0
        assert s.scalar(select(func.count()).select_from(AnswerDraft)) == 1
    reader_service.submit_answer(Session, rid, item.assignment_id, VALID_ANSWER, "k1", res.session_id)
    assert not reader_service.save_draft(Session, res.session_id, rid, item.assignment_id, draft, ids)  # answered
    signin.sign_out_reader(Session, res.session_id)
    with Session() as s:
        nxt = committed(workflow.next_item, s, rid)
    assert not reader_service.save_draft(Session, res.session_id, rid, nxt.assignment_id, draft, ids)  # signed out
