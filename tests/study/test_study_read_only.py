"""Read-only transactions: they refuse writes on both back ends, leave their pooled connection writable,
and a long one (the investigator's analysis) does not hold up a reader's submit (on SQLite it takes
neither SQLite's write lock nor the in-process one)."""

from __future__ import annotations

import re
import threading

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from study.domain import audit, workflow
from study.storage import db
from study.storage.models import Answer, AuditEvent, Reader
from testsupport.studies import VALID_ANSWER
from testsupport.studies import committed


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
    """The reader page reads its state read-only and ends that read (``services.reader.reader_state``); then
    next_item reads read-only again, ends that, and writes shown_at in a transaction the caller commits."""
    _, _, codes = make_study(n_readers=1)
    rid = next(iter(codes))
    with Session() as s:
        db.begin_read(s)
        assert s.get(Reader, rid) is not None
        s.rollback()
        item = committed(workflow.next_item, s, rid)
        assert item is not None and item.shown_at is not None
        result = committed(workflow.submit, s, rid, item.assignment_id, VALID_ANSWER, "read-only-page")
    with Session() as s:
        stored = s.get(Answer, result.answer_id)
        assert stored.shown_at == item.shown_at


def test_a_long_read_does_not_hold_up_a_submit(Session, make_study):
    _, _, codes = make_study(n_readers=2)
    rid = next(iter(codes))
    with Session() as s:
        item = committed(workflow.next_item, s, rid)
    submitted = threading.Event()

    def reader_submits():
        with Session() as s:
            committed(workflow.submit, s, rid, item.assignment_id, VALID_ANSWER, "during-analysis")
        submitted.set()

    with db.reading(Session) as analysis:  # an open read transaction, as while an export is built
        analysis.scalar(select(func.count()).select_from(Answer))
        worker = threading.Thread(target=reader_submits)
        worker.start()
        finished_during_read = submitted.wait(timeout=20)
        analysis.scalar(select(func.count()).select_from(Answer))
    worker.join(timeout=60)
    assert finished_during_read, "the submit waited for the investigator's read transaction to end"


def test_only_the_first_showing_of_an_item_writes(engine, Session, make_study):
    """next_item writes shown_at (and its audit row) once; a reload of the same item writes nothing."""
    from sqlalchemy import event

    _, _, codes = make_study(n_readers=1)
    rid = next(iter(codes))
    writes: list[str] = []

    def _log(_conn, _cursor, statement, *_):
        if found := re.match(r'\s*(?:INSERT INTO|UPDATE|DELETE FROM)\s+"?(\w+)', statement, re.IGNORECASE):
            writes.append(found.group(1))

    event.listen(engine, "before_cursor_execute", _log)
    try:
        with Session() as s:
            first = committed(workflow.next_item, s, rid)
        first_writes, writes[:] = list(writes), []
        with Session() as s:
            again = committed(workflow.next_item, s, rid)
    finally:
        event.remove(engine, "before_cursor_execute", _log)
    assert again.assignment_id == first.assignment_id and again.shown_at == first.shown_at
    assert sorted(first_writes) == ["assignment", "audit_event"]
    assert writes == []


def _hold_the_write_lock(engine):
    """Another process's view: a raw driver connection that holds the database's write lock."""
    if engine.dialect.name == "sqlite":
        import sqlite3

        raw = sqlite3.connect(engine.url.database, isolation_level=None, timeout=30)
        raw.execute("BEGIN IMMEDIATE")
        return raw
    import psycopg

    raw = psycopg.connect(engine.url.set(drivername="postgresql").render_as_string(hide_password=False))
    raw.execute("LOCK TABLE assignment, answer, audit_event IN EXCLUSIVE MODE")  # blocks writers, not readers
    return raw


def test_a_reload_reads_while_another_process_writes(engine, Session, make_study):
    """Showing an item that was already shown takes no write lock: it is served while another process
    holds one (before read-only transactions it waited for that process's commit)."""
    _, _, codes = make_study(n_readers=1)
    rid = next(iter(codes))
    with Session() as s:
        first = committed(workflow.next_item, s, rid)
    raw = _hold_the_write_lock(engine)
    result: list = []
    try:
        worker = threading.Thread(target=lambda: result.append(committed(workflow.next_item, Session(), rid)))
        worker.start()
        worker.join(timeout=15)
        served_while_locked = not worker.is_alive()
    finally:
        raw.rollback()
        raw.close()
    worker.join(timeout=60)
    assert served_while_locked, "the reload waited for another process's write lock"
    assert result[0].assignment_id == first.assignment_id and result[0].shown_at == first.shown_at
