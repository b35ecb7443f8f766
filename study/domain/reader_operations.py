"""What an investigator does to one reader, each with a reason in the audit trail: find them, revoke or reissue
their access code, open their next session before the washout ends.

Why here and not in the pages or the commands: a page and a CLI command doing the same operation must not each
decide which reader it means, what is checked or what is audited. The access-code rules live in
``study.domain.readers`` and the washout in ``study.domain.workflow``; this module calls them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from study.domain import audit, readers, rules, timefmt, workflow
from study.domain.audit import require_reason
from study.domain.studies import get_study, study_config
from study.storage.models import Answer, Assignment, Reader, Study, WashoutOverride, utcnow


def find_reader(session: Session, study_id: int, who: str | int) -> Reader:
    """A reader of this study by pseudonym (``R001``, any case) or database id; a ValueError that lists the
    study's readers otherwise."""
    study = get_study(session, study_id)
    text = str(who).strip()
    query = select(Reader).where(Reader.study_id == study.id)
    reader = session.scalar(query.where(func.upper(Reader.pseudonym) == text.upper()))
    if reader is None and text.isdigit():
        reader = session.scalar(query.where(Reader.id == int(text)))
    if reader is None:
        names = list(session.scalars(select(Reader.pseudonym).where(Reader.study_id == study.id)
                                     .order_by(Reader.pseudonym).limit(21)))
        listed = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") if names else "none yet"
        raise ValueError(f"no reader {text[:50]!r} in study {study.name!r} (readers: {listed})")
    return reader


def reader_by_id(session: Session, reader_id: int) -> Reader:
    reader = session.get(Reader, reader_id)
    if reader is None:
        raise ValueError(f"no reader with id {reader_id}")
    return reader


def _requested(session: Session, reader: Reader, *, actor: str, action: str, reason: str) -> None:
    """The investigator's request and reason, added to the session so that it commits with the change the
    ``study.domain.readers`` call then makes (one transaction: no request without its change, nor the reverse)."""
    audit.record(session, actor=actor, action=action, entity="reader", entity_id=reader.id,
                 study_id=reader.study_id, after={"pseudonym": reader.pseudonym, "reason": reason})


def revoke_code(session: Session, reader_id: int, *, actor: str, reason: str) -> Reader:
    """Disable a reader's access code (their answers stay); audited with the actor and the reason."""

    reason = require_reason(reason)
    reader = reader_by_id(session, reader_id)
    if reader.revoked_at is not None:
        raise ValueError(f"{reader.pseudonym}'s access code is already revoked; reissue gives them a new one")
    _requested(session, reader, actor=actor, action="reader.revoke_requested", reason=reason)
    readers.revoke(session, reader.id, actor=actor)
    return reader


def reissue_code(session: Session, reader_id: int, *, actor: str, reason: str) -> str:
    """Give a reader a new access code (the old one stops working; a revoked reader is active again).
    Returns the plain code: show it once; only its argon2 hash is stored, and it is never audited."""

    reason = require_reason(reason)
    reader = reader_by_id(session, reader_id)
    _requested(session, reader, actor=actor, action="reader.reissue_requested", reason=reason)
    return readers.issue_code(session, reader.id, actor=actor)


def session_progress(session: Session, reader_id: int) -> dict[int, rules.Progress]:
    """{session: progress} of one reader (``study.domain.rules.progress_by``)."""
    return {number: p for (_, number), p in
            rules.progress_by(session, reader_id=reader_id, by_session=True).items()}


def next_session(session: Session, reader_id: int) -> int | None:
    """The session of the reader's next unanswered reading (None when all are answered)."""
    return session.scalar(select(func.min(Assignment.session)).where(
        Assignment.reader_id == reader_id, ~Assignment.id.in_(select(Answer.assignment_id))))


def washout_until(session: Session, reader: Reader, now: datetime | None = None) -> tuple[int, datetime] | None:
    """(session, opening time) while the workflow's washout holds the reader's next session closed, else None.
    Asks the workflow's own gate, so an override or a passed washout count exactly as they do for reading."""
    number = next_session(session, reader.id)
    if number is None or number <= 1:
        return None
    config = study_config(session.get(Study, reader.study_id))
    try:
        workflow.washout_gate(session, reader, config, number, now or utcnow())
    except workflow.WashoutPending as exc:
        return exc.session_number, exc.available_at
    return None


def override_washout(session: Session, reader_id: int, session_number: int | None = None, *, actor: str,
                     reason: str, now: datetime | None = None) -> int:
    """Open a reader's next session (or ``session_number``) before the washout ends; returns the session.
    Audited by ``workflow.grant_washout_override`` with the actor and the reason."""
    reason = require_reason(reason)
    reader = reader_by_id(session, reader_id)
    config = study_config(session.get(Study, reader.study_id))
    sessions = session_progress(session, reader.id)
    if config.design.washout_days <= 0 or len(sessions) < 2:
        raise ValueError("this study has no washout between sessions: there is nothing to open early")
    number = session_number if session_number is not None else next_session(session, reader.id)
    if number is None:
        raise ValueError(f"{reader.pseudonym} has answered every reading: there is no session left to open")
    if number not in sessions or number <= 1:
        later = ", ".join(str(s) for s in sorted(sessions) if s > 1)
        raise ValueError(f"{reader.pseudonym} has no session {number} that a washout holds (sessions: {later})")
    if sessions[number].complete:
        raise ValueError(f"{reader.pseudonym} has already finished session {number}")
    granted = session.scalar(select(WashoutOverride).where(WashoutOverride.reader_id == reader.id,
                                                           WashoutOverride.session == number))
    if granted is not None:
        raise ValueError(f"session {number} of {reader.pseudonym} was already opened early by {granted.granted_by} "
                         f"({timefmt.minute(granted.granted_at)})")
    if number == next_session(session, reader.id) and washout_until(session, reader, now) is None:
        raise ValueError(f"session {number} of {reader.pseudonym} is open already: the washout has passed")
    workflow.grant_washout_override(session, reader.id, number, actor=actor, reason=reason, now=now)
    return number
