"""Every string column at its limit and one past it, with NUL and U+202E, on SQLite and PostgreSQL (issue 20):
the same values are stored or refused on both, before any SQL is sent, with a message naming the field and
never the value; no SQL parameters (a code hash) in any database error; the entry points (a study's TOML, a
readers CSV, a reader added by hand, a reason) say which field and what to do."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone

import pytest
from sqlalchemy import String, Text, select
from sqlalchemy.exc import IntegrityError

from study.domain import audit, readers
from study.services import investigator
from study.storage.models import (AIOutput, AIOverlay, Answer, AnswerDraft, Assignment, AuditEvent, Base, Case, Reader,
                                  ReaderSession, ServerKey, SignInCounter, StoredTextInvalid, Study,
                                  WashoutOverride)
from testsupport.studies import study_toml

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
_UNIQUE = itertools.count(1000)
STRING_COLUMNS = [(table.name, column.name) for table in Base.metadata.sorted_tables for column in table.columns
                  if isinstance(column.type, String)]


def _row(session, model, study_id: int):
    """A new, valid row of ``model`` (its foreign keys pointing at the study's rows)."""
    reader = session.scalar(select(Reader).where(Reader.study_id == study_id))
    case = session.scalar(select(Case).where(Case.study_id == study_id))
    assignment = session.scalar(select(Assignment).where(Assignment.reader_id == reader.id))
    n = next(_UNIQUE)
    rows = {
        Study: lambda: Study(name=f"study {n}", config_toml="", config={}, design="crossover", seed=1),
        Case: lambda: Case(study_id=study_id, case_key=f"c{n}", image_ref="x.png", reference_labels={}),
        Reader: lambda: Reader(study_id=study_id, pseudonym=f"P{n}", display_name="Dr X", years_experience=1.0,
                               level="junior"),
        Assignment: lambda: Assignment(study_id=study_id, reader_id=reader.id, case_id=case.id, condition="ai_saliency",
                                       session=9, position=n, seed=1),
        Answer: lambda: Answer(assignment_id=assignment.id, reader_id=reader.id, version=n, payload={},
                               idempotency_key=f"k{n}", submitted_at=NOW),
        AIOutput: lambda: AIOutput(case_id=case.id, model_version=f"m{n}", label_set="x", probabilities={},
                                   model_card={}),
        WashoutOverride: lambda: WashoutOverride(reader_id=reader.id, session=n, granted_by="x", reason="x",
                                                 granted_at=NOW),
        SignInCounter: lambda: SignInCounter(scope=f"s{n}", failures=0, window_start=NOW, updated_at=NOW),
        ReaderSession: lambda: ReaderSession(reader_id=reader.id, expires_at=NOW),
        AnswerDraft: lambda: AnswerDraft(reader_id=reader.id, assignment_id=assignment.id, payload={}),
        ServerKey: lambda: ServerKey(name=f"k{n}", value="00"),
        AuditEvent: lambda: AuditEvent(actor="x", action="x", entity="x"),
        AIOverlay: lambda: AIOverlay(ai_output_id=_flushed(session, rows[AIOutput]()).id, finding=f"f{n}", rank=1,
                                     method="x", params={}, png=b"", sha256="0" * 64, width=1, height=1),
    }
    return rows[model]()


def _flushed(session, row):
    session.add(row)
    session.flush()
    return row


MODELS = {m.__tablename__: m for m in (Study, Case, Reader, Assignment, Answer, AIOutput, AIOverlay, WashoutOverride,
                                       SignInCounter, ReaderSession, AnswerDraft, ServerKey, AuditEvent)}


def test_every_string_column_is_covered():
    assert {t for t, _ in STRING_COLUMNS} <= set(MODELS), "a new table needs a row in _row"


@pytest.mark.parametrize("table, column", STRING_COLUMNS)
def test_each_string_column_at_its_limit_one_past_it_with_nul_and_bidi(Session, make_study, table, column):
    study_id, _, _ = make_study(n_cases=2, n_readers=1)
    model = MODELS[table]
    col = model.__table__.c[column]
    limit = col.type.length or 20_000  # a Text column: a long text is stored, on both databases
    multiline = isinstance(col.type, Text)

    def store(value: str):
        with Session() as s:
            row = _row(s, model, study_id)
            setattr(row, col.key, value)
            s.add(row)
            s.commit()
            return s.scalar(select(col).where(model.__table__.c.id == row.id))

    at_limit = "é" * (limit - 1) + "1"  # characters, not bytes: PostgreSQL counts characters too
    assert store(at_limit) == at_limit
    for bad, words in (("é" * limit + "2", f"at most {limit:,} allowed"),
                       ("a\x00b", "U+0000 NUL"), ("a\u202eb", "U+202E")):
        if words.startswith("at most") and col.type.length is None:
            continue
        with pytest.raises(StoredTextInvalid) as err:
            store(bad)
        message = str(err.value)
        assert message.startswith(f"{table}.{column}: ") and words in message
        assert bad not in message
    if multiline:
        assert store("line 1\nline 2\ttab") == "line 1\nline 2\ttab"


def test_database_errors_carry_no_sql_parameters(Session, make_study):
    """A constraint error names its statement only: never the values (here a new reader's argon2 hash)."""
    study_id, _, _ = make_study(n_cases=2, n_readers=1)
    with Session() as s:
        taken = s.scalar(select(Reader.pseudonym).where(Reader.study_id == study_id))
        reader = Reader(study_id=study_id, pseudonym=taken, display_name="Dr Twin", years_experience=1, level="junior",
                        code_hash=readers.HASHER.hash("SECRETCODE12"))
        s.add(reader)
        with pytest.raises(IntegrityError) as err:
            s.flush()
    assert "argon2" not in str(err.value) and "Dr Twin" not in str(err.value)


def test_a_study_reader_and_reason_say_which_field_is_wrong_on_both_databases(Session, make_study):
    factory = Session
    study_id, _, _ = make_study(n_cases=2, n_readers=1)
    for name, words in (("x" * 250, "[study] name: 250 characters long, at most 200 allowed"),
                        ("a\\u0000b", "[study] name: contains a control character (U+0000 NUL)"),
                        ("a\\u202eb", "[study] name: contains a bidirectional control character (U+202E")):
        sid, problems = investigator.create_study_from_toml(factory, study_toml(name=name), "investigator:lead")
        assert sid is None and any(p.startswith(words) for p in problems), problems
    csv = "display_name,years_experience,site\n" + "D" * 300 + ",3,A\nDr Ok,4,B\u202eC\nDr Nul,5,x\x00y\n"
    rows, problems = investigator.add_readers_csv(factory, study_id, csv, "investigator:lead")
    assert rows == [] and problems == [
        "row 2, column display_name: 300 characters long, at most 200 allowed: shorten it",
        "row 3, column site: contains a bidirectional control character (U+202E RIGHT-TO-LEFT OVERRIDE), which can "
        "make text show in a misleading order: remove it",
        "row 4, column site: contains a control character (U+0000 NUL): remove it"]
    with Session() as s:
        with pytest.raises(ValueError, match=r"^reader name: 300 characters long"):
            readers.add_reader(s, study_id, display_name="D" * 300, years_experience=3)
        with pytest.raises(ValueError, match=r"^the reason contains a bidirectional control character"):
            audit.require_reason("because\u202e")
    with Session() as s:
        assert s.scalar(select(Reader).where(Reader.display_name.like("DDD%"))) is None
