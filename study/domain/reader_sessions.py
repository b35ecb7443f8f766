"""A reader's signed-in sessions: they survive a reload and a dropped connection, and end everywhere at once.

Why in the database: Streamlit keeps a browser's state in one server process's memory, and a reload starts a
new one. The sign-in therefore opens a ``reader_session`` row, and the browser gets a random token in an
HttpOnly, SameSite=Strict cookie (set by ``server.py``'s ``/session`` routes, never readable by the page's
scripts, never in a URL). Only the token's sha256 is stored. A reload, or another server behind the same proxy,
finds the row by the cookie's hash and carries on.

How the cookie gets to the browser: a page cannot set an HttpOnly cookie, so the sign-in makes a one-time
*ticket* (:data:`TICKET_MINUTES`, its hash stored) that the page's script posts to ``/session/claim``; the route
exchanges it (:func:`claim`) for the token and sets the cookie.

Every interaction checks the row (:func:`check`): a session ends at sign-out (all the reader's sessions),
when the reader's code is revoked or reissued (the row records the code's version, ``code_issued_at``), after
:data:`DEFAULT_HOURS` or :data:`DEFAULT_IDLE_MINUTES` without an interaction (settings ``[session] hours`` and
``idle_minutes``). The end is audited once, with its reason, so the page can tell the reader why.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from study.domain import audit
from study.storage import settings
from study.storage.models import Reader, ReaderSession

DEFAULT_HOURS = 12.0
DEFAULT_IDLE_MINUTES = 120.0
TICKET_MINUTES = 10
SEEN_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often (a write per page run is waste)
COOKIE = "revision_session"
ENDED = {  # end reason -> what the reader is told
    "signed_out": "You signed out.",
    "revoked": "Your access code was withdrawn by the study team; your answers are saved.",
    "code_reissued": "Your access code was withdrawn (a new one was issued); your answers are saved. "
                     "Sign in with the new code to go on.",
    "expired": "Your sign-in has expired; your answers are saved. Sign in again with your code.",
    "idle": "You were signed out after a long pause; your answers are saved. Sign in again with your code.",
}


class SessionSettingError(ValueError):
    """``[session] hours`` / ``idle_minutes`` (or their variables) is not a positive number."""


@dataclass(frozen=True)
class Lifetime:
    hours: float = DEFAULT_HOURS
    idle_minutes: float = DEFAULT_IDLE_MINUTES


def _positive(found, default: float, what: str) -> float:
    if found is None:
        return default
    try:
        value = float(found.value)
    except (TypeError, ValueError):
        value = -1.0
    if isinstance(found.value, bool) or not 0 < value <= 24 * 366:
        raise SessionSettingError(f"{found.where} must be a positive number of {what}, e.g. {default:g}")
    return value


def configured_lifetime() -> Lifetime:
    """The session lifetime from the settings (defaults: 12 hours, 120 minutes idle)."""
    hours, idle = settings.session_lifetime()
    return Lifetime(_positive(hours, DEFAULT_HOURS, "hours"), _positive(idle, DEFAULT_IDLE_MINUTES, "minutes"))


def digest(secret: str) -> str:
    """sha256 hex of a token or ticket: what the database keeps of it."""
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def code_version(reader: Reader) -> int | None:
    """The version of the reader's access code (microseconds of its issue time), None when there is no code
    (revoked). A new code is a new version: sessions and photograph links made with the old one stop working."""
    if reader.revoked_at is not None or not reader.code_hash or reader.code_issued_at is None:
        return None
    return int(reader.code_issued_at.timestamp() * 1_000_000)


def open_session(session: Session, reader: Reader, *, client: str | None, now: datetime,
                 lifetime: Lifetime) -> tuple[ReaderSession, str]:
    """A new session for a reader who just signed in, and its one-time ticket (shown to the page only, to be
    exchanged for the cookie). The caller audits the sign-in and commits."""
    ticket = secrets.token_urlsafe(32)
    row = ReaderSession(reader_id=reader.id, ticket_hash=digest(ticket),
                        ticket_expires_at=now + timedelta(minutes=TICKET_MINUTES),
                        code_issued_at=reader.code_issued_at, client=(client or "")[:100] or None, created_at=now,
                        last_seen_at=now, expires_at=now + timedelta(hours=lifetime.hours))
    session.add(row)
    session.flush()
    return row, ticket


def claim(session: Session, ticket: str, now: datetime) -> tuple[ReaderSession, str] | None:
    """Exchange a session's ticket for its cookie token (once; within :data:`TICKET_MINUTES`), or None. The
    caller commits."""
    if not isinstance(ticket, str) or not 20 <= len(ticket) <= 100:
        return None
    row = session.scalar(select(ReaderSession).where(ReaderSession.ticket_hash == digest(ticket)).with_for_update())
    if row is None or row.ended_at is not None or row.token_hash is not None or \
            row.ticket_expires_at is None or now > row.ticket_expires_at:
        return None
    token = secrets.token_urlsafe(32)
    row.token_hash, row.ticket_hash, row.ticket_expires_at = digest(token), None, None
    return row, token


@dataclass(frozen=True)
class SessionCheck:
    """Whether a session may go on: ``reader_id`` and ``session_id`` when it may; ``ended`` is the reason it
    may not (a key of :data:`ENDED`; None for a token nobody knows). ``claimed``: the cookie was handed over."""
    session_id: int | None
    reader_id: int | None
    ended: str | None = None
    claimed: bool = False

    @property
    def ok(self) -> bool:
        return self.reader_id is not None and self.ended is None

    @property
    def message(self) -> str | None:
        return ENDED.get(self.ended) if self.ended else None


def _reason(row: ReaderSession, reader: Reader | None, now: datetime, lifetime: Lifetime) -> str | None:
    if row.ended_at is not None:
        return row.end_reason or "signed_out"
    if reader is None or reader.revoked_at is not None or not reader.code_hash:
        return "revoked"
    if reader.code_issued_at != row.code_issued_at:
        return "code_reissued"
    if now >= row.expires_at:
        return "expired"
    if now - row.last_seen_at >= timedelta(minutes=lifetime.idle_minutes):
        return "idle"
    return None


def find(session: Session, *, session_id: int | None = None, token: str | None = None
         ) -> tuple[ReaderSession, Reader | None] | None:
    """A session row and its reader, by id or by cookie token (read only)."""
    query = select(ReaderSession, Reader).outerjoin(Reader, Reader.id == ReaderSession.reader_id)
    if session_id is not None:
        query = query.where(ReaderSession.id == session_id)
    elif token:
        query = query.where(ReaderSession.token_hash == digest(token))
    else:
        return None
    row = session.execute(query).first()
    return None if row is None else (row[0], row[1])


def needs_write(row: ReaderSession, reader: Reader | None, now: datetime, lifetime: Lifetime) -> bool:
    """Whether :func:`check` would write: the session ends now, or its last interaction is worth recording."""
    if row.ended_at is not None:
        return False
    return _reason(row, reader, now, lifetime) is not None or now - row.last_seen_at >= SEEN_EVERY


def check(session: Session, row: ReaderSession, reader: Reader | None, now: datetime,
          lifetime: Lifetime) -> SessionCheck:
    """Whether ``row`` may go on; a session that must end now is ended and audited, an interaction recorded
    (the caller commits when :func:`needs_write` said so)."""
    reason = _reason(row, reader, now, lifetime)
    if reason is None:
        if now - row.last_seen_at >= SEEN_EVERY:
            row.last_seen_at = now
        return SessionCheck(row.id, row.reader_id, None, row.token_hash is not None)
    if row.ended_at is None:
        _end(session, row, reader, reason, now)
    return SessionCheck(row.id, None, reason, row.token_hash is not None)


def _end(session: Session, row: ReaderSession, reader: Reader | None, reason: str, now: datetime) -> None:
    row.ended_at, row.end_reason = now, reason
    audit.record(session, actor=f"reader:{reader.pseudonym}" if reader is not None else "system",
                 action="reader.session_ended", entity="reader", entity_id=row.reader_id,
                 study_id=reader.study_id if reader is not None else None, at=now,
                 after={"session": row.id, "reason": reason})


def end_reader_sessions(session: Session, reader_id: int, reason: str, now: datetime) -> int:
    """End every open session of a reader (sign-out ends them all: every tab, every device); returns how
    many; audited once. The caller commits."""
    ids = list(session.scalars(select(ReaderSession.id).where(ReaderSession.reader_id == reader_id,
                                                              ReaderSession.ended_at.is_(None))))
    if not ids:
        return 0
    session.execute(update(ReaderSession).where(ReaderSession.id.in_(ids))
                    .values(ended_at=now, end_reason=reason).execution_options(synchronize_session=False))
    reader = session.get(Reader, reader_id)
    audit.record(session, actor=f"reader:{reader.pseudonym}" if reader is not None else "system",
                 action="reader.session_ended", entity="reader", entity_id=reader_id,
                 study_id=reader.study_id if reader is not None else None, at=now,
                 after={"sessions": ids, "reason": reason})
    return len(ids)
