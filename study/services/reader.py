"""The reader service: what the reader's pages call — consent, the reader's state, submitting an answer,
what the reading screen shows (``study.domain.reader_screen``, re-exported so a page imports one service), and
the reader's own answers with their corrections (``study.domain.own_answers``).

Why a service: the pages hold no transaction. Each function here opens its own and commits it (or retries
it, for a submit; reads run in a read-only ``db.reading``); the workflow and operations below
(``study.domain.workflow``, ``study.domain.own_answers``) take the session they are given and never commit. The
exceptions a page catches
(``AnswerInvalid``, ``WorkflowError``) are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from study.domain import audit, workflow
from study.domain.audit import MAX_REASON
from study.domain.config import AnswerInvalid
from study.domain import own_answers as own
from study.domain.own_answers import OwnAnswers, OwnReading, own_photo
from study.domain.reader_screen import case_display, consent_summary, describe_answer, eye_label
from study.domain.workflow import WorkflowError
from study.storage import db
from study.storage.models import AIDED_CONDITIONS, AuditEvent, Reader, Study

__all__ = ["AnswerInvalid", "CONSENT_ACTION", "MAX_REASON", "OwnAnswers", "OwnReading", "ReaderState",
           "WorkflowError", "case_display", "consent_summary", "correct_own_answer", "describe_answer", "eye_label",
           "has_consented", "is_aided", "own_answers", "own_photo", "reader_state", "record_consent",
           "submit_answer"]

CONSENT_ACTION = "reader.consented"


def has_consented(session: Session, reader_id: int) -> bool:
    return session.scalar(select(AuditEvent.id).where(AuditEvent.entity == "reader",
                                                      AuditEvent.entity_id == str(reader_id),
                                                      AuditEvent.action == CONSENT_ACTION).limit(1)) is not None


def record_consent(factory: sessionmaker[Session], reader_id: int, text_version: str) -> None:
    """Store the reader's acknowledgement of the instructions and consent (audited, once)."""
    with factory() as session:
        if has_consented(session, reader_id):
            return
        reader = session.get(Reader, reader_id)
        audit.record(session, actor=f"reader:{reader.pseudonym}", action=CONSENT_ACTION, entity="reader",
                     entity_id=reader.id, study_id=reader.study_id, after={"text_version": text_version})
        session.commit()


@dataclass
class ReaderState:
    pseudonym: str
    study_id: int
    study_name: str
    design: str
    consented: bool
    revoked: bool
    done: int
    total: int
    item: Any = None  # workflow.Item or workflow.AidedItem
    washout_session: int | None = None
    washout_until: datetime | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.item is None and self.washout_until is None and self.error is None


def reader_state(factory: sessionmaker[Session], reader_id: int, *, now: datetime | None = None,
                 fetch_item: bool = True) -> ReaderState:
    """Everything the reading page shows, from the database (session state only caches the reader id)."""

    with factory() as session:
        db.begin_read(session)  # the state is read without a write lock
        reader = session.get(Reader, reader_id)
        if reader is None:
            raise ValueError(f"no reader with id {reader_id}")
        study = session.get(Study, reader.study_id)
        prog = workflow.progress(session, reader.id)
        state = ReaderState(reader.pseudonym, study.id, study.name, study.design,
                            has_consented(session, reader.id), reader.revoked_at is not None, prog.done, prog.total)
        if state.revoked or not state.consented or not fetch_item:
            return state
        session.rollback()  # the read ends; next_item reads again and writes shown_at in a short transaction
        try:
            state.item = workflow.next_item(session, reader.id, now=now)
            session.commit()
        except workflow.WashoutPending as exc:
            state.washout_session, state.washout_until = exc.session_number, exc.available_at
        except workflow.WorkflowError as exc:
            state.error = str(exc)
        return state


def submit_answer(factory: sessionmaker[Session], reader_id: int, assignment_id: int, answer: dict,
                  idempotency_key: str):
    """Store an answer (retried on a dropped connection; the key makes a repeat store nothing new)."""

    def submit(session: Session):
        result = workflow.submit(session, reader_id, assignment_id, answer, idempotency_key)
        session.commit()
        return result

    return db.run_with_retry(factory, submit)


def is_aided(item) -> bool:
    return hasattr(item, "ai") and item.condition in AIDED_CONDITIONS


# --- the reader's own answers and their corrections (study.domain.own_answers) ----------------------------------

def own_answers(factory: sessionmaker[Session], reader_id: int) -> OwnAnswers:
    """The reader's own answers of the current session, latest version of each (read-only; no case key,
    reference answer or AI output: ``OwnReading``)."""
    with db.reading(factory) as session:
        return own.own_answers(session, reader_id)


def correct_own_answer(factory: sessionmaker[Session], reader_id: int, answer_id: int, new_answer: dict,
                       reason: str, idempotency_key: str | None = None):
    """Store a correction of one of the reader's current-session answers: a new version with the reason
    (audited); returns the workflow's ``SubmitResult``. Raises ``AnswerInvalid``, ``WorkflowError`` or
    ``ValueError`` when it is refused."""
    with factory() as session:
        result = own.correct_own_answer(session, reader_id, answer_id, new_answer, reason, idempotency_key)
        session.commit()
        return result
