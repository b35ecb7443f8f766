"""The migrated schema is the ORM's, on both back ends; SQLite runs in WAL with foreign keys on."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from study.storage import db
from study.storage.models import Answer, AuditEvent, Base, ImmutableRowError
from testsupport.studies import VALID_ANSWER
from testsupport.studies import committed


def test_migrated_schema_equals_orm_metadata(engine):
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_upgrade_is_idempotent(db_url):
    db.upgrade(db_url)  # already at head: must be a no-op, not an error
    eng = db.make_engine(db_url)
    with eng.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).scalar() == "0005_ai_overlay"
    eng.dispose()


def test_migrations_round_trip(db_url):
    db.downgrade(db_url, "base")
    eng = db.make_engine(db_url)
    assert set(inspect(eng).get_table_names()) <= {"alembic_version"}
    db.upgrade(db_url)
    assert set(Base.metadata.tables) <= set(inspect(eng).get_table_names())
    eng.dispose()


def test_sqlite_pragmas(tmp_path):
    eng = db.make_engine(f"sqlite:///{tmp_path / 'x.sqlite'}")
    with eng.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.BUSY_TIMEOUT_MS
    eng.dispose()


def test_url_resolution(monkeypatch):
    monkeypatch.delenv(db.ENV_VAR, raising=False)
    monkeypatch.setattr(db, "REPO_ROOT", db.REPO_ROOT / "no-such-dir")
    assert db.resolve_url(None) == f"sqlite:///{db.DEFAULT_SQLITE}"
    assert db.DEFAULT_SQLITE.parts[-2:] == ("data", "study.sqlite")
    monkeypatch.setenv(db.ENV_VAR, "postgresql://u:p@h:5432/d")
    assert db.resolve_url(None) == "postgresql+psycopg://u:p@h:5432/d"


def test_foreign_keys_enforced(Session):
    from study.storage.models import Assignment, utcnow
    with Session() as s:
        s.add(Assignment(study_id=999, reader_id=999, case_id=999, condition="unaided", session=1, position=0,
                         seed=1, created_at=utcnow()))
        with pytest.raises(IntegrityError):
            s.flush()


def test_answers_and_audit_are_append_only(Session, make_study):
    from study.domain import workflow
    _, _, codes = make_study(n_cases=2, n_readers=1)
    rid = next(iter(codes))
    with Session() as s:
        item = committed(workflow.next_item, s, rid)
        res = committed(workflow.submit, s, rid, item.assignment_id, VALID_ANSWER, "k1")
    with Session() as s:
        ans = s.get(Answer, res.answer_id)
        ans.payload = {"primary_diagnosis": "glaucoma"}
        with pytest.raises(ImmutableRowError):
            s.flush()
        s.rollback()
        ev = s.query(AuditEvent).first()
        s.delete(ev)
        with pytest.raises(ImmutableRowError):
            s.flush()
        s.rollback()
    with Session() as s:
        assert s.get(Answer, res.answer_id).payload == VALID_ANSWER


def test_database_refuses_raw_update_or_delete_of_answers_and_audit(engine, Session, make_study):
    from sqlalchemy.exc import DBAPIError

    from study.domain import workflow
    _, _, codes = make_study(n_cases=2, n_readers=1)
    rid = next(iter(codes))
    with Session() as s:
        item = committed(workflow.next_item, s, rid)
        committed(workflow.submit, s, rid, item.assignment_id, VALID_ANSWER, "k1")
    for sql in ("UPDATE answer SET reason = 'tampered'", "DELETE FROM answer",
                "UPDATE audit_event SET actor = 'someone else'", "DELETE FROM audit_event"):
        with engine.connect() as conn:
            with pytest.raises(DBAPIError, match="append-only"):
                conn.execute(text(sql))
            conn.rollback()
    with Session() as s:
        assert s.query(Answer).one().reason is None
        assert s.query(AuditEvent).filter(AuditEvent.actor == "someone else").count() == 0
