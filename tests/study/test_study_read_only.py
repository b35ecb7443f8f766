"""Read-only transactions: they refuse writes on both back ends, leave their pooled connection writable,
and a long one (the investigator's analysis) does not hold up a reader's submit (on SQLite it takes
neither SQLite's write lock nor the in-process one)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from study import audit, db, workflow
from study.models import Answer, AuditEvent, Reader
from tests.study.helpers import VALID_ANSWER


def test_a_write_in_a_reading_session_is_refused(Session, make_study):
    make_study(n_readers=1)
    with db.reading(Session) as s:
        before = s.scalar(select(func.count()).select_from(AuditEvent))
        audit.record(s, actor="test", action="should.fail", entity="nothing")
        with pytest.raises(DBAPIError, match="(?i)read.?only"):
            s.flush()
    with Session() as s:  # nothing was written, and the same pooled connection writes again
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == before
        audit.record(s, actor="test", action="written", entity="something")
        s.commit()
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == before + 1


def test_begin_read_covers_one_transaction_only(Session, make_study):
    _, _, codes = make_study(n_readers=1)
    rid = next(iter(codes))
    with Session() as s:
        db.begin_read(s)
        assert s.get(Reader, rid) is not None
        with pytest.raises(DBAPIError, match="(?i)read.?only"):
            s.execute(text("UPDATE reader SET site = 'x'"))
        s.rollback()
        s.execute(text("UPDATE reader SET site = 'site B'"))  # the next transaction writes normally
        s.commit()
        assert s.scalar(select(Reader.site).where(Reader.id == rid)) == "site B"


def test_a_session_closed_inside_a_read_leaves_its_connection_writable(engine, Session, make_study):
    make_study(n_readers=1)
    s = db.reading(Session).__enter__()
    s.scalar(select(func.count()).select_from(Reader))
    s.close()  # the connection goes back to the pool mid-transaction
    for _ in range(engine.pool.size() + 1):  # whichever pooled connection comes next can write
        with Session() as w:
            w.execute(text("UPDATE reader SET site = site"))
            w.commit()


def test_next_item_and_submit_work_inside_a_reading_page(Session, make_study):
    """The reader page reads its state read-only, then next_item writes shown_at in its own transaction."""
    _, _, codes = make_study(n_readers=1)
    rid = next(iter(codes))
    with Session() as s:
        db.begin_read(s)
        assert s.get(Reader, rid) is not None
        item = workflow.next_item(s, rid)
        assert item is not None and item.shown_at is not None
        result = workflow.submit(s, rid, item.assignment_id, VALID_ANSWER, "read-only-page")
    with Session() as s:
        stored = s.get(Answer, result.answer_id)
        assert stored.shown_at == item.shown_at


def test_a_long_read_does_not_hold_up_a_submit(Session, make_study):
    _, _, codes = make_study(n_readers=2)
    rid = next(iter(codes))
    with Session() as s:
        item = workflow.next_item(s, rid)
    submitted = threading.Event()

    def reader_submits():
        with Session() as s:
            workflow.submit(s, rid, item.assignment_id, VALID_ANSWER, "during-analysis")
        submitted.set()

    with db.reading(Session) as analysis:  # an open read transaction, as while an export is built
        analysis.scalar(select(func.count()).select_from(Answer))
        worker = threading.Thread(target=reader_submits)
        worker.start()
        finished_during_read = submitted.wait(timeout=20)
        analysis.scalar(select(func.count()).select_from(Answer))
    worker.join(timeout=60)
    assert finished_during_read, "the submit waited for the investigator's read transaction to end"
