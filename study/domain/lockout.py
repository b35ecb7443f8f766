"""Sign-in throttling kept in the database, so it holds across browser sessions, reloads and server processes.

Why throttling and not a lockout: a lockout refuses the right code too. Behind a hospital's NAT or a reverse
proxy every reader shares one address, so 20 wrong codes from anyone kept everyone out, and five wrong
passwords every ten minutes kept the investigator out for good. Here a wrong try is never refused and never
refuses anyone: it makes the next tries in its *scopes* wait longer before they are checked, and a correct
credential always gets in once its wait is over.

A try is counted in every scope it belongs to: the client (an address, see ``study.domain.client_address``,
or the browser session when no address is known), the reader-code prefix typed (the first group, stored in
clear on ``reader.code_lookup`` and not secret on its own), the investigator's sign-in (one scope whatever
user name was typed, so the waits do not tell a configured name from any other), and the whole server
(:data:`GLOBAL`, a cap on the rate of wrong tries of everyone together). Each scope kind has a :class:`Curve`:
so many free failures, then a wait doubling from ``base`` seconds up to ``cap``. A try waits the longest of
its scopes' waits. Failures are forgotten :data:`WINDOW` after a scope's last failure.

Why the try is counted, and committed, *before* the credential is checked (:func:`reserve`) and settled after
(:func:`clear` on success): argon2 takes tens of milliseconds and must not run inside a write transaction
(on SQLite that would hold up every reader's submit), and counting first means a burst of parallel tries,
from one process or several, sees ever longer waits. A try whose process dies before settling stays
counted as a failure (fail closed).

The rows are a mutable counter (unlike the append-only audit trail): the audit trail is where failures and
waits are recorded for the record, by the callers in ``study.services.signin``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from study.storage.models import SignInCounter

WINDOW = timedelta(minutes=15)  # a scope's failures are forgotten this long after its last failure
GLOBAL = "global"
INVESTIGATOR = "investigator:sign-in"
UNKNOWN_USER = "unknown user"  # how the audit names a typed user name that is not the configured one


@dataclass(frozen=True)
class Curve:
    """The wait before a try is checked, given the failures already counted in a scope: none for the first
    ``free`` failures, then ``base`` seconds doubling with each further failure, at most ``cap``."""
    free: int
    base: float
    cap: float

    def delay(self, failures: int) -> float:
        if failures < self.free:
            return 0.0
        return min(self.cap, self.base * 2 ** min(failures - self.free, 30))


# by scope kind (the scope up to its last ':'); a whole site behind one address gets more free tries and a
# lower cap, the server as a whole a cap on everyone's rate of wrong tries
CURVES = {
    "reader_code": Curve(free=3, base=1.0, cap=30.0),
    "investigator": Curve(free=3, base=1.0, cap=30.0),
    "client:session": Curve(free=3, base=1.0, cap=30.0),
    "client:ip": Curve(free=10, base=1.0, cap=10.0),
    GLOBAL: Curve(free=100, base=0.5, cap=5.0),
}
MAX_DELAY = max(c.cap for c in CURVES.values())
# scopes a success forgets (the credential's own and the browser's); a client address and the server keep
# counting, so that one good sign-in behind a NAT does not reset an attacker's waits there
PERSONAL = ("reader_code:", "investigator:", "client:session:")


def reader_code_scope(prefix: str) -> str:
    """The scope of a reader-code prefix (the code's first group)."""
    return f"reader_code:{prefix}"


def address_scope(address: str) -> str:
    """The scope of a client address."""
    return f"client:ip:{address[:80]}"


def curve(scope: str) -> Curve:
    kind = scope if scope == GLOBAL else scope.rsplit(":", 1)[0]
    return CURVES.get(kind, CURVES["reader_code"])


def _rows(session: Session, scopes: list[str]) -> dict[str, SignInCounter]:
    # one lock order for every caller (PostgreSQL row locks): two sign-ins sharing scopes cannot deadlock
    query = (select(SignInCounter).where(SignInCounter.scope.in_(scopes)).order_by(SignInCounter.scope)
             .with_for_update())
    return {row.scope: row for row in session.scalars(query)}


def _expire(row: SignInCounter, now: datetime) -> None:
    """Start counting afresh once a scope has had no failure for a window."""
    if now - row.updated_at >= WINDOW:
        row.failures, row.window_start = 0, now


@dataclass(frozen=True)
class Reservation:
    """One try, counted: how long it waits before it is checked, and the failures each scope had before it."""
    delay: float
    failures: dict[str, int]

    @property
    def slowest(self) -> str | None:
        """The scope that set the wait (None when there is none)."""
        if self.delay <= 0:
            return None
        return max(self.failures, key=lambda s: curve(s).delay(self.failures[s]))


def reserve(session: Session, scopes: list[str], now: datetime) -> Reservation:
    """Count this try as a failure in every scope and in :data:`GLOBAL` (undone by :func:`clear` when it
    succeeds) and return how long it must wait: the longest wait of its scopes. The caller commits at once,
    before the wait and the check, and reads again on an IntegrityError (another process made a scope's
    row first)."""
    scopes = list(dict.fromkeys([*scopes, GLOBAL]))
    rows = _rows(session, scopes)
    for scope in scopes:
        if scope not in rows:
            rows[scope] = SignInCounter(scope=scope, failures=0, window_start=now, updated_at=now)
            session.add(rows[scope])
        _expire(rows[scope], now)
    before = {scope: rows[scope].failures for scope in scopes}
    for scope in scopes:
        rows[scope].failures += 1
        rows[scope].updated_at = now
    session.flush()
    return Reservation(max(curve(s).delay(n) for s, n in before.items()), before)


def settle_failure(session: Session, now: datetime) -> None:
    """After a failed try (already counted by :func:`reserve`): forget the counters nobody has touched for a
    window (the caller commits with its audit rows)."""
    session.execute(delete(SignInCounter).where(SignInCounter.updated_at < now - WINDOW))


def clear(session: Session, scopes: list[str]) -> None:
    """A successful sign-in: its personal scopes (:data:`PERSONAL`) forget their failures, the others
    (client address, the server) take back the one this try reserved (the caller commits)."""
    personal = [s for s in scopes if s.startswith(PERSONAL)]
    session.execute(delete(SignInCounter).where(SignInCounter.scope.in_(personal)))
    for row in _rows(session, [s for s in dict.fromkeys([*scopes, GLOBAL]) if s not in personal]).values():
        row.failures = max(0, row.failures - 1)


def unlock(session: Session, scopes: list[str] | None) -> list[str]:
    """Forget the failures of ``scopes`` (None: every scope); returns the scopes that had any (the caller
    audits and commits)."""
    query = select(SignInCounter.scope).where(SignInCounter.failures > 0)
    if scopes is not None:
        query = query.where(SignInCounter.scope.in_(scopes))
    found = list(session.scalars(query.order_by(SignInCounter.scope)))
    if found:
        session.execute(delete(SignInCounter).where(SignInCounter.scope.in_(found)))
    return found
