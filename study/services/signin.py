"""The sign-in service: readers with an access code, the investigator with a user and password, and the
readers' sessions that survive a reload.

Why a service: both pages need the same throttling and the same audit rows, and a page must not hold a
transaction. Each function here opens and commits its own transactions; below it, ``study.domain.lockout``
counts failures in the database (per client, per reader-code prefix, for the investigator's sign-in, for the
whole server), ``study.domain.reader_sessions`` keeps the sessions and ``study.domain.audit`` writes the rows,
none of them committing.

Throttling, never a lockout: a wrong try makes the next tries in its scopes wait longer before they are
checked (``study.domain.lockout.CURVES``; at most :data:`MAX_DELAY` seconds), and a correct code or password
gets in once its wait is over. Every wrong code gets the same message, every wrong user name or password the
same message, without tries left or times. An empty form counts nothing. Every failure and every wait is
audited (never the typed code or password, nor a user name other than the configured one).
"""

from __future__ import annotations

import hmac
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from study.domain import audit, client_address, image_links, lockout, reader_sessions
from study.domain.readers import GROUP_LEN, authenticate, generate_code, normalise_code
from study.domain.reader_sessions import COOKIE, SessionCheck
from study.storage import db, settings
from study.storage.models import Reader, utcnow

MAX_DELAY = lockout.MAX_DELAY  # re-exported for the pages
USER_ENV, HASH_ENV, PLAIN_ENV = (settings.INVESTIGATOR_USER_ENV, settings.INVESTIGATOR_HASH_ENV,
                                 settings.INVESTIGATOR_PASSWORD_ENV)
DEFAULT_INVESTIGATOR = "investigator"
CLAIM_ROUTE, END_ROUTE = "/session/claim", "/session/end"  # server.py's routes for the session cookie
WRONG_CODE = "That code is not valid: check it and type it again."
EMPTY_CODE = "Type your access code first."
WRONG_PASSWORD = "Wrong user or password."
EMPTY_PASSWORD = "Type your user name and your password first."
__all__ = ["CLAIM_ROUTE", "COOKIE", "END_ROUTE", "MAX_DELAY", "SessionCheck", "SignInResult", "SignInThrottle", "claim_session",
           "client_address_of", "check_reader_session", "check_settings", "forwarded_https", "session_hours", "investigator_credentials",
           "investigator_sign_in", "new_client_id", "resume_reader_session", "sign_in", "sign_out_reader",
           "sign_out_token", "unlock"]


def wait(seconds: float) -> None:
    """How a throttled try waits (a module function, so that tests can record the waits instead)."""
    time.sleep(seconds)


def new_client_id() -> str:
    """A browser session's identity for the throttle: random, so it says nothing about the person."""

    return uuid.uuid4().hex


def client_address_of(peer: str | None, forwarded_for: str | None) -> str:
    """The client's address for the throttle: the connection's (``peer``; None = this host), or behind a
    trusted proxy (``[server] trusted_proxies``) the one it forwarded (``study.domain.client_address``)."""
    return client_address.client_address(peer, forwarded_for, client_address.configured_trusted())


def forwarded_https(peer: str | None, forwarded_proto: str | None) -> bool:
    """Whether a trusted proxy (``peer``) says the browser reached it over HTTPS (the cookie is then Secure)."""
    try:
        trusted = client_address.configured_trusted()
    except ValueError:
        return False
    return client_address.trusted_peer(peer, trusted) and (forwarded_proto or "").strip().lower() == "https"


def session_hours() -> float:
    """How long a reader's sign-in lasts at most (``[session] hours``): the cookie's lifetime."""
    return reader_sessions.configured_lifetime().hours


def check_settings() -> None:
    """Raise ValueError, saying what to write, for an invalid trusted-proxy, session or photograph-key
    setting: the app stops with that message rather than run half-configured."""
    client_address.configured_trusted()
    reader_sessions.configured_lifetime()
    image_links.configured_secret()


@dataclass
class SignInThrottle:
    """What a page keeps in its session state: who this browser is. The counts live in the database
    (``study.domain.lockout``), so a reload, a new browser session or another server process sees them too."""

    client_id: str
    ip: str | None = None  # the client's address (client_address_of); None: not known, the browser session counts

    @property
    def client_scope(self) -> str:
        """The client as the audit names it: its address when known, else its browser session."""
        return lockout.address_scope(self.ip) if self._ip() else f"client:session:{self.client_id[:64]}"

    @property
    def client_scopes(self) -> list[str]:
        """The browser session and, when known, the address (which has more free tries and a lower cap: one
        address may be a whole site behind a NAT)."""
        session = f"client:session:{self.client_id[:64]}"
        return [session] + ([lockout.address_scope(self.ip)] if self._ip() else [])

    def _ip(self) -> bool:
        return isinstance(self.ip, str) and bool(self.ip)


@dataclass(frozen=True)
class SignInResult:
    reader_id: int | None
    message: str
    waited: float = 0.0  # seconds this try waited before it was checked
    session_id: int | None = None  # the reader's new session (reader_sessions), on success
    ticket: str | None = None  # its one-time ticket for the cookie (``/session/claim``), on success

    @property
    def ok(self) -> bool:
        return self.reader_id is not None


def reader_scopes(throttle: SignInThrottle, code: str) -> list[str]:
    """The throttle scopes of a typed code: the client, and the code's prefix when it has a code's shape
    (the prefix is the non-secret first group, the one ``reader.code_lookup`` stores in clear)."""

    flat = normalise_code(code or "")
    return throttle.client_scopes + ([lockout.reader_code_scope(flat[:GROUP_LEN])] if flat else [])


def sign_in(factory: sessionmaker[Session], throttle: SignInThrottle, code: str, *, now: datetime | None = None,
            sleep: Callable[[float], None] | None = None) -> SignInResult:
    """Check an access code after the wait its scopes call for (never refused: a correct code gets in); on
    success open the reader's session (:mod:`study.domain.reader_sessions`). Audited, never the typed code."""

    if not isinstance(code, str) or not code.strip():
        return SignInResult(None, EMPTY_CODE)  # an empty press is not a try
    now = now or utcnow()
    scopes = reader_scopes(throttle, code)
    lifetime = reader_sessions.configured_lifetime()

    def check():
        with db.reading(factory) as session:
            reader = authenticate(session, code)
            return None if reader is None else reader.id

    def signed_in(session: Session, reader_id: int, at: datetime):
        reader = session.get(Reader, reader_id)
        row, ticket = reader_sessions.open_session(session, reader, client=throttle.client_scope, now=at,
                                                   lifetime=lifetime)
        audit.record(session, actor=f"reader:{reader.pseudonym}", action="reader.signed_in", entity="reader",
                     entity_id=reader.id, study_id=reader.study_id, at=at,
                     after={"client": throttle.client_scope[:100], "session": row.id})
        return reader.pseudonym, row.id, ticket

    attempt = _guarded_sign_in(factory, scopes, now, kind="reader", entity="sign_in_client",
                               entity_id=throttle.client_scope[:100], detail={"scopes": scopes}, check=check,
                               on_success=signed_in, sleep=sleep)
    if attempt.found is None:
        return SignInResult(None, WRONG_CODE, attempt.waited)
    pseudonym, session_id, ticket = attempt.result
    return SignInResult(attempt.found, f"Signed in as {pseudonym}.", attempt.waited, session_id, ticket)


@dataclass(frozen=True)
class _Attempt:
    """How a guarded sign-in ended: ``found`` (what ``check`` returned) and ``result`` (``on_success``'s) on
    success; ``waited``: the seconds it waited before the check."""
    found: Any = None
    result: Any = None
    waited: float = 0.0


def _guarded_sign_in(factory: sessionmaker[Session], scopes: list[str], now: datetime, *, kind: str, entity: str,
                     entity_id: str, detail: dict, check: Callable[[], Any],
                     on_success: Callable[[Session, Any, datetime], Any],
                     sleep: Callable[[float], None] | None) -> _Attempt:
    """The throttle around one sign-in, shared by readers and investigators: count the try in every scope
    first, wait what the scopes call for (audited), run ``check`` (argon2) outside any write transaction,
    then clear the scopes and run ``on_success``, or audit the failure. ``kind`` prefixes the audit actions;
    ``detail`` goes into each row."""
    reservation = _reserve(factory, scopes, now)
    if reservation.delay > 0:
        with factory() as session:
            audit.record(session, actor="anonymous", action=f"{kind}.sign_in_throttled", entity=entity,
                         entity_id=entity_id, at=now,
                         after={"delay_seconds": reservation.delay, "slowest": reservation.slowest,
                                "failures": reservation.failures, **detail})
            session.commit()
        (wait if sleep is None else sleep)(reservation.delay)
    at = now + timedelta(seconds=reservation.delay)
    found = check()
    with factory() as session:
        if found:
            lockout.clear(session, scopes)
            result = on_success(session, found, at)
            session.commit()
            return _Attempt(found, result, reservation.delay)
        lockout.settle_failure(session, at)
        audit.record(session, actor="anonymous", action=f"{kind}.sign_in_failed", entity=entity,
                     entity_id=entity_id, at=at,
                     after={"failures": {s: n + 1 for s, n in reservation.failures.items()},
                            "waited_seconds": reservation.delay, **detail})
        session.commit()
        return _Attempt(None, None, reservation.delay)


def _reserve(factory: sessionmaker[Session], scopes: list[str], now: datetime) -> lockout.Reservation:
    """Count the try in its own committed transaction (study.domain.lockout.reserve), reading again when
    another process made one of its scopes' rows first."""
    for attempt in range(3):
        try:
            with factory() as session:
                reservation = lockout.reserve(session, scopes, now)
                session.commit()
                return reservation
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def unlock(factory: sessionmaker[Session], scopes: list[str] | None, *, actor: str, reason: str,
           now: datetime | None = None) -> list[str]:
    """Forget the counted failures of ``scopes`` (None: all), so their tries wait no longer; audited with the
    actor and the reason. Returns the scopes that had failures."""
    reason = audit.require_reason(reason)
    with factory() as session:
        found = lockout.unlock(session, scopes)
        audit.record(session, actor=actor, action="sign_in.unlocked", entity="sign_in_counter",
                     entity_id=",".join(scopes)[:100] if scopes else "all", at=now or utcnow(),
                     after={"scopes": found, "asked": scopes or "all", "reason": reason})
        session.commit()
    return found


# --- the reader's session (study.domain.reader_sessions) ------------------------------------------------

def claim_session(factory: sessionmaker[Session], ticket: str, *, now: datetime | None = None) -> str | None:
    """The cookie token for a one-time ticket (``/session/claim``), or None (unknown, used or too old)."""
    with factory() as session:
        found = reader_sessions.claim(session, ticket, now or utcnow())
        if found is None:
            session.rollback()
            return None
        session.commit()
        return found[1]


def _check(factory: sessionmaker[Session], now: datetime | None, **which) -> SessionCheck | None:
    now, lifetime = now or utcnow(), reader_sessions.configured_lifetime()
    with db.reading(factory) as session:
        found = reader_sessions.find(session, **which)
        if found is None:
            return None
        if not reader_sessions.needs_write(*found, now, lifetime):
            return reader_sessions.check(session, *found, now, lifetime)
    with factory() as session:  # the session ends now, or its interaction is recorded: a short write
        found = reader_sessions.find(session, **which)
        result = reader_sessions.check(session, *found, now, lifetime)
        session.commit()
        return result


def check_reader_session(factory: sessionmaker[Session], session_id: int, *,
                         now: datetime | None = None) -> SessionCheck:
    """Whether a signed-in page's session may go on (every interaction asks); an ended one says why."""
    return _check(factory, now, session_id=session_id) or SessionCheck(session_id, None, "signed_out")


def resume_reader_session(factory: sessionmaker[Session], token: str | None, *,
                          now: datetime | None = None) -> SessionCheck | None:
    """The session a browser's cookie names (a reload, another server), or None for no or an unknown cookie."""
    if not isinstance(token, str) or not 20 <= len(token) <= 100:
        return None
    return _check(factory, now, token=token)


def sign_out_reader(factory: sessionmaker[Session], session_id: int, *, now: datetime | None = None) -> int:
    """Sign out: every open session of this session's reader ends (every tab, every device); audited."""
    with factory() as session:
        found = reader_sessions.find(session, session_id=session_id)
        if found is None:
            return 0
        ended = reader_sessions.end_reader_sessions(session, found[0].reader_id, "signed_out", now or utcnow())
        session.commit()
        return ended


def sign_out_token(factory: sessionmaker[Session], token: str | None, *, now: datetime | None = None) -> int:
    """Sign out the reader whose cookie this is (``/session/end``)."""
    if not isinstance(token, str) or not 20 <= len(token) <= 100:
        return 0
    with db.reading(factory) as session:
        found = reader_sessions.find(session, token=token)
    if found is None or found[0].ended_at is not None:
        return 0  # an old cookie (the session ended already): it must not end the reader's newer sessions
    return sign_out_reader(factory, found[0].id, now=now)


# --- investigator credentials ------------------------------------------------------------------------

@dataclass(frozen=True)
class InvestigatorCredentials:
    user: str
    password_hash: str
    source: str  # "environment", "secrets.toml" or "demo default"


_DEMO: InvestigatorCredentials | None = None


def investigator_credentials() -> InvestigatorCredentials:
    """From env (user + argon2 hash), then ``[investigator]`` in secrets.toml, else the demo default:
    user ``investigator`` with ``$REVISION_INVESTIGATOR_PASSWORD`` or a random password printed once
    to the server log at start-up (never a fixed, guessable password)."""
    global _DEMO
    from argon2 import PasswordHasher

    configured = settings.investigator()
    if configured.password_hash:
        return InvestigatorCredentials(configured.user, configured.password_hash, configured.source)
    if _DEMO is None:
        plain = configured.demo_password
        if not plain:

            plain = generate_code()
            print(f"[revision] demo investigator sign-in: user {DEFAULT_INVESTIGATOR!r}, password {plain!r} "
                  f"(set {USER_ENV} + {HASH_ENV} or [investigator] in .streamlit/secrets.toml for a real study)",
                  file=sys.stderr, flush=True)
        _DEMO = InvestigatorCredentials(configured.user or DEFAULT_INVESTIGATOR,
                                        PasswordHasher().hash(plain), "demo default")
    return _DEMO


def verify_investigator(user: str, password: str) -> bool:
    """True for the configured user and password. The argon2 verify runs whatever the user name, so the
    response time does not tell whether a user name exists."""

    from argon2 import PasswordHasher
    from argon2.exceptions import InvalidHashError, VerificationError

    creds = investigator_credentials()
    try:
        ok = PasswordHasher().verify(creds.password_hash, password or "")
    except (VerificationError, InvalidHashError):
        ok = False
    return ok and hmac.compare_digest((user or "").encode(), creds.user.encode())


def _known_user(user: str) -> bool:
    return hmac.compare_digest((user or "").encode(), investigator_credentials().user.encode())


def investigator_scopes(throttle: SignInThrottle, user: str) -> list[str]:
    """The client, and the investigator's sign-in: one scope whatever user name was typed, so that how long
    a try waits never tells the configured name from another (and nothing typed is stored)."""
    return [*throttle.client_scopes, lockout.INVESTIGATOR]


@dataclass(frozen=True)
class InvestigatorSignInResult:
    ok: bool
    message: str
    waited: float = 0.0


def investigator_sign_in(factory: sessionmaker[Session], throttle: SignInThrottle, user: str, password: str, *,
                         now: datetime | None = None,
                         sleep: Callable[[float], None] | None = None) -> InvestigatorSignInResult:
    """Check the investigator's user and password after the wait the throttle calls for (per client and for
    the investigator's sign-in; never refused); audited without the typed password or an unknown user name.
    Every wrong name or password gets the same message."""
    if not isinstance(user, str) or not isinstance(password, str) or not user.strip() or not password:
        return InvestigatorSignInResult(False, EMPTY_PASSWORD)
    now = now or utcnow()
    scopes = investigator_scopes(throttle, user)
    client = throttle.client_scope[:100]
    name = user[:100] if _known_user(user) else lockout.UNKNOWN_USER

    def signed_in(session: Session, _found, at: datetime) -> None:
        audit.record(session, actor=f"investigator:{name}", action="investigator.signed_in",
                     entity="investigator", entity_id=name, at=at, after={"client": client})

    attempt = _guarded_sign_in(factory, scopes, now, kind="investigator", entity="investigator",
                               entity_id=name, detail={"client": client},
                               check=lambda: verify_investigator(user, password), on_success=signed_in, sleep=sleep)
    if attempt.found:
        return InvestigatorSignInResult(True, f"Signed in as {name}.", attempt.waited)
    return InvestigatorSignInResult(False, WRONG_PASSWORD, attempt.waited)
