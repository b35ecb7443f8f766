"""Reader workflow: no AI when unaided, no truth ever, idempotent submits, versioned corrections, resume, washout."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from study.storage import db
from study.domain import workflow
from study.domain.config import AnswerInvalid
from study.storage.models import Answer, Assignment, AuditEvent, utcnow
from tests.study.helpers import answer_history
from testsupport.studies import CARD, SALIENCY, VALID_ANSWER, committed

AI_WORDS = ("probabilit", "model_card", "model_version", "saliency", "abc123def4567890", '"ai"')


def _walk(session, rid, now=None, limit=1000):
    """Answer every item available now (stopping at a washout); returns the items seen."""
    seen = []
    for i in range(limit):
        try:
            item = committed(workflow.next_item, session, rid, now=now)
        except workflow.WashoutPending:
            break
        if item is None:
            break
        seen.append(item)
        committed(workflow.submit, session, rid, item.assignment_id, VALID_ANSWER, f"{rid}-{item.assignment_id}", now=now)
    return seen


@pytest.mark.parametrize("kind", ["sequential", "crossover", "multi_arm"])
def test_items_never_leak_truth_and_unaided_has_no_ai(Session, make_study, kind):
    _, _, codes = make_study(kind, n_cases=6, n_readers=3)
    with Session() as s:
        conditions = set()
        for rid in codes:
            later = utcnow() + timedelta(days=400)
            items = _walk(s, rid) + _walk(s, rid, now=later)  # second call: past the washout
            assert len(items) == s.scalar(select(func.count()).select_from(Assignment)
                                          .where(Assignment.reader_id == rid))
            for item in items:
                conditions.add(item.condition)
                serial = json.dumps(item.to_dict())
                assert "SECRET_TRUTH_MARKER" not in serial and "reference" not in serial.lower()
                assert "reference_labels" not in {f for f in vars(item)}
                if item.condition == "unaided":
                    assert type(item) is workflow.Item and not hasattr(item, "ai")
                    assert not any(w in serial.lower() for w in AI_WORDS), serial
                else:
                    assert isinstance(item, workflow.AidedItem)
                    assert set(item.ai.probabilities) >= {"amd", "glaucoma"}
                    assert item.ai.model_version == "abc123def4567890"
                    assert (item.ai.saliency_png == SALIENCY) == (item.condition == "ai_saliency")
    assert conditions == ({"unaided", "ai", "ai_saliency"} if kind == "multi_arm" else {"unaided", "ai"})


def test_sequential_step2_shows_own_locked_answer_and_locks_step1(Session, make_study):
    _, _, codes = make_study("sequential", n_cases=3, n_readers=1)
    rid = next(iter(codes))
    with Session() as s:
        first = committed(workflow.next_item, s, rid)
        assert (first.condition, first.step, first.prior_answer) == ("unaided", 1, None)
        res = committed(workflow.submit, s, rid, first.assignment_id, VALID_ANSWER, "s1")
        # before the AI is shown, the unaided answer can still be corrected
        changed = {**VALID_ANSWER, "confidence": 55}
        res2 = committed(workflow.correct, s, rid, res.answer_id, changed, "typo")
        second = committed(workflow.next_item, s, rid)
        assert (second.condition, second.step, second.case_id) == ("ai", 2, first.case_id)
        assert second.prior_answer == changed
        with pytest.raises(workflow.AnswerLocked):
            committed(workflow.correct, s, rid, res2.answer_id, VALID_ANSWER, "changed my mind after AI")


def test_submit_idempotent_and_timed(Session, make_study):
    _, _, codes = make_study(n_cases=3, n_readers=1)
    rid = next(iter(codes))
    t0 = utcnow()
    with Session() as s:
        item = committed(workflow.next_item, s, rid, now=t0)
        again = committed(workflow.next_item, s, rid, now=t0 + timedelta(seconds=30))
        assert again.assignment_id == item.assignment_id and again.shown_at == t0  # first-shown time kept
        r1 = committed(workflow.submit, s, rid, item.assignment_id, VALID_ANSWER, "key-1", now=t0 + timedelta(seconds=42))
        r2 = committed(workflow.submit, s, rid, item.assignment_id, VALID_ANSWER, "key-1", now=t0 + timedelta(seconds=99))
        assert r1 == r2 and not r1.replayed and r2.replayed
        assert r1.seconds == pytest.approx(42)
        assert s.scalar(select(func.count()).select_from(Answer)) == 1
        with pytest.raises(workflow.IdempotencyConflict):
            committed(workflow.submit, s, rid, item.assignment_id, {**VALID_ANSWER, "confidence": 1}, "key-1")
        with pytest.raises(workflow.AlreadyAnswered):
            committed(workflow.submit, s, rid, item.assignment_id, VALID_ANSWER, "key-2")
        nxt = committed(workflow.next_item, s, rid)
        assert nxt.assignment_id != item.assignment_id and nxt.position == 2
        with pytest.raises(AnswerInvalid):
            committed(workflow.submit, s, rid, nxt.assignment_id, {"primary_diagnosis": "nonsense"}, "key-3")
        # an item not yet shown cannot be answered (no timing, out of order)
        unseen = s.scalar(select(Assignment).where(Assignment.reader_id == rid, Assignment.shown_at.is_(None)).limit(1))
        with pytest.raises(workflow.NotShownYet):
            committed(workflow.submit, s, rid, unseen.id, VALID_ANSWER, "key-4")
        assert s.scalar(select(func.count()).select_from(Answer)) == 1


def test_other_readers_assignment_refused(Session, make_study):
    _, _, codes = make_study(n_cases=2, n_readers=2)
    a, b = list(codes)
    with Session() as s:
        item = committed(workflow.next_item, s, a)
        with pytest.raises(workflow.NotYourAssignment):
            committed(workflow.submit, s, b, item.assignment_id, VALID_ANSWER, "x")


def test_concurrent_duplicate_submits_store_one_answer(Session, make_study):
    _, _, codes = make_study(n_cases=4, n_readers=2)
    rids = list(codes)
    items = {}
    with Session() as s:
        for rid in rids:
            items[rid] = committed(workflow.next_item, s, rid)
    results, errors = [], []
    barrier = threading.Barrier(8)

    def worker(i):
        rid = rids[i % 2]
        try:
            barrier.wait()
            with Session() as s:
                results.append((rid, committed(workflow.submit, s, rid, items[rid].assignment_id, VALID_ANSWER, f"dup-{rid}")))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(results) == 8
    with Session() as s:
        assert s.scalar(select(func.count()).select_from(Answer)) == 2
        for rid in rids:
            mine = {r for r_id, r in results if r_id == rid}
            assert len(mine) == 1  # every caller got the same result
            assert sum(not r.replayed for r_id, r in results if r_id == rid) == 1
        assert s.scalar(select(func.count()).select_from(AuditEvent)
                        .where(AuditEvent.action == "answer.submitted")) == 2


def test_corrections_versioned_and_audited(Session, make_study):
    _, _, codes = make_study(n_cases=2, n_readers=1)
    rid = next(iter(codes))
    with Session() as s:
        item = committed(workflow.next_item, s, rid)
        v1 = committed(workflow.submit, s, rid, item.assignment_id, VALID_ANSWER, "v1")
        new = {**VALID_ANSWER, "primary_diagnosis": "glaucoma", "findings": ["glaucoma"]}
        with pytest.raises(ValueError, match="reason"):
            committed(workflow.correct, s, rid, v1.answer_id, new, "  ")
        v2 = committed(workflow.correct, s, rid, v1.answer_id, new, "clicked the wrong option", idempotency_key="c1")
        assert committed(workflow.correct, s, rid, v1.answer_id, new, "clicked the wrong option", idempotency_key="c1") == v2
        assert v2.version == 2
        with pytest.raises(workflow.StaleVersion):
            committed(workflow.correct, s, rid, v1.answer_id, VALID_ANSWER, "again")
        history = answer_history(s, item.assignment_id)
        assert [(h.version, h.payload["primary_diagnosis"], h.reason) for h in history] == [
            (1, "amd", None), (2, "glaucoma", "clicked the wrong option")]
        ev = s.scalar(select(AuditEvent).where(AuditEvent.action == "answer.corrected"))
        assert ev.before["payload"] == VALID_ANSWER and ev.after["payload"]["primary_diagnosis"] == "glaucoma"
        assert ev.after["reason"] == "clicked the wrong option" and ev.actor.startswith("reader:")
        # a correction does not make the item current again
        assert committed(workflow.next_item, s, rid).assignment_id != item.assignment_id


def test_corrections_refused_when_not_allowed(Session, make_study):
    _, _, codes = make_study(n_cases=2, n_readers=1, corrections=False)
    rid = next(iter(codes))
    with Session() as s:
        item = committed(workflow.next_item, s, rid)
        v1 = committed(workflow.submit, s, rid, item.assignment_id, VALID_ANSWER, "v1")
        with pytest.raises(workflow.CorrectionsNotAllowed):
            committed(workflow.correct, s, rid, v1.answer_id, {**VALID_ANSWER, "confidence": 1}, "oops")
        assert len(answer_history(s, item.assignment_id)) == 1


def test_resume_with_a_new_engine(db_url, make_study):
    _, _, codes = make_study(n_cases=4, n_readers=1)
    rid = next(iter(codes))
    eng = db.make_engine(db_url)
    with db.session_factory(eng)() as s:
        for k in range(3):
            item = committed(workflow.next_item, s, rid)
            committed(workflow.submit, s, rid, item.assignment_id, VALID_ANSWER, f"r{k}")
        pending = committed(workflow.next_item, s, rid)  # shown, not answered: the "browser closed" moment
    eng.dispose()
    eng2 = db.make_engine(db_url)
    with db.session_factory(eng2)() as s:
        resumed = committed(workflow.next_item, s, rid)
        assert resumed.assignment_id == pending.assignment_id
        assert resumed.shown_at == pending.shown_at and resumed.position == 4
        assert workflow.progress(s, rid).done == 3
    eng2.dispose()


def test_crossover_washout_enforced_and_override_audited(Session, make_study):
    _, _, codes = make_study("crossover", n_cases=4, n_readers=2, washout=28)
    a, b = list(codes)
    t0 = utcnow()
    with Session() as s:
        for rid in (a, b):
            assert {i.session for i in _walk(s, rid, now=t0)} == {1}
            with pytest.raises(workflow.WashoutPending) as err:
                committed(workflow.next_item, s, rid, now=t0 + timedelta(days=27))
            assert err.value.available_at.date() == (t0 + timedelta(days=28)).date()
        assert committed(workflow.next_item, s, a, now=t0 + timedelta(days=28, minutes=1)).session == 2
        committed(workflow.grant_washout_override, s, b, 2, actor="investigator:pi", reason="reader leaving the site")
        assert committed(workflow.next_item, s, b, now=t0 + timedelta(days=1)).session == 2
        ev = s.scalar(select(AuditEvent).where(AuditEvent.action == "washout.overridden"))
        assert ev.actor == "investigator:pi" and ev.after == {"session": 2, "reason": "reader leaving the site"}


def test_revoked_reader_stopped(Session, make_study):
    from study.domain import readers
    _, _, codes = make_study(n_cases=2, n_readers=1)
    rid = next(iter(codes))
    with Session() as s:
        item = committed(workflow.next_item, s, rid)
        committed(readers.revoke, s, rid)
        with pytest.raises(workflow.ReaderRevoked):
            committed(workflow.next_item, s, rid)
        with pytest.raises(workflow.ReaderRevoked):
            committed(workflow.submit, s, rid, item.assignment_id, VALID_ANSWER, "z")


def test_aided_item_without_ai_output_is_refused(Session, make_study):
    _, _, codes = make_study("sequential", n_cases=2, n_readers=1, with_ai=False)
    rid = next(iter(codes))
    with Session() as s:
        item = committed(workflow.next_item, s, rid)
        committed(workflow.submit, s, rid, item.assignment_id, VALID_ANSWER, "u")
        with pytest.raises(workflow.AIOutputMissing):
            committed(workflow.next_item, s, rid)
        aided = s.scalar(select(Assignment).where(Assignment.reader_id == rid, Assignment.condition == "ai",
                                                  Assignment.case_id == s.get(Assignment, item.assignment_id).case_id))
        assert aided.shown_at is None  # never marked shown without its AI


def test_every_write_is_audited(Session, make_study):
    _, _, codes = make_study(n_cases=3, n_readers=1)
    rid = next(iter(codes))
    with Session() as s:
        items = _walk(s, rid)
        actions = [e.action for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions.count("study.created") == 1 and actions.count("case.added") == 3
    assert actions.count("ai_output.stored") == 3 and actions.count("reader.added") == 1
    assert actions.count("design.built") == 1 and actions.count("design.locked") == 1
    assert actions.count("assignment.shown") == len(items) == actions.count("answer.submitted")


def test_saliency_maps_only_for_the_saliency_arm_and_preloaded_only_towards_it(Session, make_study):
    """The item of a saliency reading carries its case's maps (most probable finding first) and the next
    reading's maps only when that reading is a saliency one too; an AI-only item carries none; an unaided
    item has no AI field at all."""
    from revision_core.saliency_batch import Map
    from study.jobs import precompute
    from study.storage.models import Case

    sid, case_ids, codes = make_study("multi_arm", n_cases=9, n_readers=3, with_ai=False)
    with Session() as s:
        for cid in case_ids:
            probs = {"amd": 0.7, "glaucoma": 0.2, "rvo": 0.5, "diabetic_retinopathy": 0.1}
            maps = [Map(f, f"png-{cid}-{f}".encode(), 8, 6, {"steps": 32}) for f in ("amd", "rvo", "glaucoma")]
            precompute.store_ai_output(s, cid, model_card={**CARD, "saliency": {"method": "integrated_gradients"}},
                                       label_set="revision_findings", probabilities=probs, maps=maps)
        s.commit()
        keys = {c.id: c.case_key for c in s.scalars(select(Case))}
        for rid in codes:
            items = _walk(s, rid)
            for item, nxt in zip(items, items[1:] + [None]):
                json.dumps(item.to_dict())  # the maps' bytes are summarised, never serialised
                if item.condition == "unaided":
                    assert not hasattr(item, "ai")
                    continue
                if item.condition == "ai":
                    assert item.ai.maps == () and item.ai.next_maps == ()
                    continue
                assert [(m.finding, m.probability) for m in item.ai.maps] == [("amd", 0.7), ("rvo", 0.5),
                                                                             ("glaucoma", 0.2)]
                assert {m.png for m in item.ai.maps} == {f"png-{c}-{f}".encode() for c in keys
                                                         if keys[c] == item.case_id for f in ("amd", "rvo", "glaucoma")}
                if nxt is not None and nxt.condition == "ai_saliency":
                    assert [m.png for m in item.ai.next_maps] == [m.png for m in nxt.ai.maps]
                else:
                    assert item.ai.next_maps == ()
            assert [i.condition for i in items].count("ai_saliency") == 3
