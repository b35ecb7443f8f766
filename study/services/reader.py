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

import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from study.domain import audit, drafts, image_links, reader_screen, reader_sessions, workflow
from study.domain.audit import MAX_REASON
from study.domain.cases import study_store
from study.domain.config import AnswerInvalid
from study.domain import own_answers as own
from study.domain.image_links import LinkInvalid
from study.domain.own_answers import OwnAnswers, OwnReading, own_photo
from study.domain.reader_screen import CaseDisplay, consent_summary, describe_answer, eye_label
from study.domain.rules import ranked_findings
from study.domain.workflow import WorkflowError
from study.services.signin import check_reader_session  # the sign-in service owns the session rules
from study.storage import db
from study.storage.models import AIDED_CONDITIONS, AuditEvent, Reader, Study, utcnow

__all__ = ["AnswerInvalid", "CONSENT_ACTION", "LinkInvalid", "MAX_REASON", "OwnAnswers", "OwnReading", "ReaderState",
           "SessionEnded", "WorkflowError", "case_display", "consent_summary", "correct_own_answer", "describe_answer",
           "eye_label", "has_consented", "is_aided", "link_key", "load_draft", "own_answers", "own_photo", "photograph",
           "ranked_findings", "reader_state", "record_consent", "save_draft", "submit_answer"]


class SessionEnded(WorkflowError):
    """The reader's session ended (signed out elsewhere, code withdrawn, expired): nothing was stored; the
    message says why, for the reader."""


def _require_session(factory: sessionmaker[Session], session_id: int | None, reader_id: int) -> None:
    """Refuse (:class:`SessionEnded`) unless ``session_id`` is a live session of ``reader_id`` (None: a caller
    without a browser session, the tests and the load test)."""
    if session_id is None:
        return
    checked = check_reader_session(factory, session_id)
    if not checked.ok or checked.reader_id != reader_id:
        raise SessionEnded(checked.message or reader_sessions.ENDED["signed_out"])

CONSENT_ACTION = "reader.consented"


def has_consented(session: Session, reader_id: int) -> bool:
    return session.scalar(select(AuditEvent.id).where(AuditEvent.entity == "reader",
                                                      AuditEvent.entity_id == str(reader_id),
                                                      AuditEvent.action == CONSENT_ACTION).limit(1)) is not None


def record_consent(factory: sessionmaker[Session], reader_id: int, text_version: str,
                   session_id: int | None = None) -> None:
    """Store the reader's acknowledgement of the instructions and consent (audited, once)."""
    try:
        _require_session(factory, session_id, reader_id)
    except SessionEnded:
        return  # the page's next run says why
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
    reader_id: int | None = None
    code_version: int | None = None  # of the reader's access code: photograph links are made for it
    store_root: str | None = None  # where the study's photographs are

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
                            has_consented(session, reader.id), reader.revoked_at is not None, prog.done, prog.total,
                            reader_id=reader.id, code_version=reader_sessions.code_version(reader),
                            store_root=study.store_root)
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
                  idempotency_key: str, session_id: int | None = None):
    """Store an answer (retried on a dropped connection; the key makes a repeat store nothing new). With the
    page's ``session_id``, refused (:class:`SessionEnded`) once that session has ended."""

    _require_session(factory, session_id, reader_id)

    def submit(session: Session):
        result = workflow.submit(session, reader_id, assignment_id, answer, idempotency_key)
        session.commit()
        return result

    return db.run_with_retry(factory, submit)


_keys: dict[str, bytes] = {}
_keys_lock = threading.Lock()


def link_key(factory: sessionmaker[Session]) -> bytes:
    """The key photograph links are signed with (``study.domain.image_links``): ``[server] image_secret`` when
    set, else the database's, made by the first server that needs it; read once per process and database.
    Call it outside any open transaction (it may write)."""
    configured = image_links.configured_secret()
    if configured is not None:
        return configured
    bind = factory.kw.get("bind")
    url = bind.url.render_as_string(hide_password=True) if bind is not None else ""
    with _keys_lock:
        if url in _keys:
            return _keys[url]
    for attempt in range(3):
        try:
            with factory() as session:
                key = image_links.stored_key(session)
                session.commit()
            break
        except IntegrityError:  # another server stored it first: read theirs
            if attempt == 2:
                raise
    with _keys_lock:
        return _keys.setdefault(url, key)


def case_display(factory: sessionmaker[Session], state: ReaderState, image_ref: str,
                 next_image_ref: str | None = None, *, maps=(), next_maps=()) -> CaseDisplay:
    """Links to the case photograph (and the next one, to prefetch), and in the saliency arm to the maps the
    item carries, for this reader and their code: they stop working when the code is revoked or reissued
    (``study.domain.image_links``)."""
    if state.code_version is None:
        raise SessionEnded(reader_sessions.ENDED["revoked"])
    return reader_screen.case_display(link_key(factory), state.study_id, image_ref, next_image_ref,
                                      reader_id=state.reader_id, code_version=state.code_version, maps=maps,
                                      next_maps=next_maps, store_root=state.store_root)


def photograph(factory: sessionmaker[Session], token: str) -> Path:
    """The display file a photograph link names (``server.py``'s ``/case-image`` route): :class:`LinkInvalid`
    unless it is signed, current and its reader still holds the code it was made for; FileNotFoundError
    when the file is not in the study's store."""
    link = image_links.verify(link_key(factory), token)
    with db.reading(factory) as session:
        reader = session.get(Reader, link.reader_id)
        study = session.get(Study, link.study_id)
        if reader is None or study is None or reader.study_id != study.id or \
                reader_sessions.code_version(reader) != link.code_version:
            raise LinkInvalid("this photograph link was withdrawn with its access code: sign in again")
        root = study.store_root
    path = study_store(study.id, root) / link.file_name
    if not path.is_file():
        raise FileNotFoundError(link.file_name)
    return path


def save_draft(factory: sessionmaker[Session], session_id: int | None, reader_id: int, assignment_id: int,
               draft: dict, question_ids) -> bool:
    """Keep what the reader has ticked or typed so far for the reading on screen (``study.domain.drafts``);
    False when the session has ended or the reading is no longer open."""
    try:
        _require_session(factory, session_id, reader_id)
    except SessionEnded:
        return False
    with factory() as session:
        saved = drafts.save_draft(session, reader_id, assignment_id, draft, question_ids, utcnow())
        session.commit() if saved else session.rollback()
        return saved


def load_draft(factory: sessionmaker[Session], reader_id: int, assignment_id: int) -> tuple[dict, datetime] | None:
    """The reader's draft of one reading and when it was saved, or None."""
    with db.reading(factory) as session:
        return drafts.load_draft(session, reader_id, assignment_id)


def is_aided(item) -> bool:
    return hasattr(item, "ai") and item.condition in AIDED_CONDITIONS


# --- the reader's own answers and their corrections (study.domain.own_answers) ----------------------------------

def own_answers(factory: sessionmaker[Session], reader_id: int) -> OwnAnswers:
    """The reader's own answers of the current session, latest version of each (read-only; no case key,
    reference answer or AI output: ``OwnReading``)."""
    with db.reading(factory) as session:
        return own.own_answers(session, reader_id)


def correct_own_answer(factory: sessionmaker[Session], reader_id: int, answer_id: int, new_answer: dict,
                       reason: str, idempotency_key: str | None = None, session_id: int | None = None):
    """Store a correction of one of the reader's current-session answers: a new version with the reason
    (audited); returns the workflow's ``SubmitResult``. Raises ``AnswerInvalid``, ``WorkflowError`` (its
    :class:`SessionEnded` once the page's session has ended) or ``ValueError`` when it is refused."""
    _require_session(factory, session_id, reader_id)
    with factory() as session:
        result = own.correct_own_answer(session, reader_id, answer_id, new_answer, reason, idempotency_key)
        session.commit()
        return result
