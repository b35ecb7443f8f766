"""Sign-in lockouts kept in the database, so they hold across browser sessions, reloads and server processes.

A sign-in attempt is counted in every *scope* it belongs to: the client (an IP address, or the browser
session when Streamlit reports no address), the reader-code prefix typed (the first group, stored in
clear on ``reader.code_lookup`` and not secret on its own), or the investigator user name (only the
configured user by name; every other name shares one ``investigator:unknown-user`` scope, so nothing a
visitor typed into the "User" field, say a password, is ever stored). After a scope's limit of failures
within :data:`WINDOW`, every attempt in that scope is refused for :data:`LOCKOUT`.

Why the attempt is counted *before* the code is verified (:func:`reserve`) and settled after
(:func:`settle_failure` / :func:`clear`): argon2 takes tens of milliseconds and must not run inside a
write transaction (on SQLite that would hold up every reader's submit), and counting first means a burst
of parallel tries, from one process or several, cannot get more than the limit verified. An attempt whose
process dies before settling stays counted as a failure (fail closed).

The rows are a mutable counter (unlike the append-only audit trail): the audit trail is where failures,
lockouts and refused tries are recorded for the record, by the callers in ``study.services.signin``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from study.storage.models import SignInCounter

MAX_FAILURES = 5  # per reader-code prefix, investigator user, or browser session
CLIENT_MAX_FAILURES = 20  # per IP address: one address may be a whole hospital behind a NAT
WINDOW = timedelta(minutes=15)  # failures older than this (and not locked) are forgotten
LOCKOUT = timedelta(minutes=10)
UNKNOWN_USER = "investigator:unknown-user"


def limit(scope: str) -> int:
    return CLIENT_MAX_FAILURES if scope.startswith("client:ip:") else MAX_FAILURES


def _rows(session: Session, scopes: list[str]) -> dict[str, SignInCounter]:
    # one lock order for every caller (PostgreSQL row locks): two sign-ins sharing scopes cannot deadlock
    query = (select(SignInCounter).where(SignInCounter.scope.in_(scopes)).order_by(SignInCounter.scope)
             .with_for_update())
    return {row.scope: row for row in session.scalars(query)}


def _expire(row: SignInCounter, now: datetime) -> None:
    """Start counting afresh once a lockout has passed or the window of the first failure has closed."""
    over = row.locked_until is not None and now >= row.locked_until
    stale = row.locked_until is None and now - row.window_start >= WINDOW
    if over or stale:
        row.failures, row.window_start, row.locked_until = 0, now, None


def reserve(factory: sessionmaker[Session], scopes: list[str], now: datetime) -> datetime | None:
    """The end of a lockout that refuses this attempt, or None after counting the attempt as a failure in
    every scope (undone by :func:`clear` if it succeeds)."""
    for attempt in range(3):
        try:
            with factory() as session:
                rows = _rows(session, scopes)
                for scope in scopes:
                    if scope not in rows:
                        rows[scope] = SignInCounter(scope=scope, failures=0, window_start=now, updated_at=now)
                        session.add(rows[scope])
                    _expire(rows[scope], now)
                locked = [r.locked_until for r in rows.values() if r.locked_until is not None]
                full = [s for s in scopes if rows[s].failures >= limit(s)]  # tries in flight reached the limit
                if full and not locked:
                    for s in full:
                        rows[s].locked_until, rows[s].updated_at = now + LOCKOUT, now
                    locked = [now + LOCKOUT]
                if locked:
                    session.commit()
                    return max(locked)
                for scope in scopes:
                    rows[scope].failures += 1
                    rows[scope].updated_at = now
                session.commit()
                return None
        except IntegrityError:  # another process inserted the same scope first: read it again
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def settle_failure(session: Session, scopes: list[str], now: datetime) -> tuple[datetime | None, int, int]:
    """After a failed attempt (already counted by :func:`reserve`): lock every scope at its limit.
    Returns (locked until or None, the most failures in a scope, attempts left before a lockout);
    the caller commits (with its audit rows)."""
    rows = _rows(session, scopes)
    until, worst, left = None, 0, None
    for scope in scopes:
        row = rows.get(scope)
        if row is None:
            continue
        worst = max(worst, row.failures)
        remaining = limit(scope) - row.failures
        left = remaining if left is None else min(left, remaining)
        if row.failures >= limit(scope):
            if row.locked_until is None:
                row.locked_until = now + LOCKOUT
            row.updated_at = now
            until = max(until or row.locked_until, row.locked_until)
    _prune(session, now)
    return until, worst, max(0, left if left is not None else 0)


def _prune(session: Session, now: datetime) -> None:
    """Forget counters nobody has touched for a window and a lockout (they would be reset anyway), so
    tries from ever new browser sessions or prefixes do not grow the table without end."""
    stale = now - WINDOW - LOCKOUT
    session.execute(delete(SignInCounter).where(SignInCounter.updated_at < stale,
                                                or_(SignInCounter.locked_until.is_(None),
                                                    SignInCounter.locked_until < now)))


def clear(session: Session, scopes: list[str]) -> None:
    """A successful sign-in forgets the failures of its scopes (the caller commits)."""
    session.execute(delete(SignInCounter).where(SignInCounter.scope.in_(scopes)))


def locked_until(factory: sessionmaker[Session], scopes: list[str], now: datetime) -> datetime | None:
    """The end of a lockout in force on any of ``scopes`` (read only; for pages that want to say so)."""
    with factory() as session:
        ends = [r.locked_until for r in session.scalars(select(SignInCounter)
                                                        .where(SignInCounter.scope.in_(scopes)))
                if r.locked_until is not None and now < r.locked_until]
    return max(ends) if ends else None
