"""The sign-in service: readers with an access code, the investigator with a user and password.

Why a service: both pages need the same lockout and the same audit rows, and a page must not hold a
transaction. Each function here opens and commits its own transactions; below it, ``study.domain.lockout``
counts failures in the database (per client, per reader-code prefix, per investigator user) and
``study.domain.audit`` writes the rows, neither of them committing.

After :data:`MAX_FAILURES` failures further tries in that scope are refused for :data:`LOCKOUT`, across
reloads, browser sessions and server processes; every failure, lockout and refused try is audited (never
the typed code or password, nor a user name other than the configured one).
"""

from __future__ import annotations

import hmac
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlalchemy.orm import Session, sessionmaker

from study.domain import audit, lockout
from study.domain.readers import GROUP_LEN, authenticate, generate_code, normalise_code
from study.storage import db, settings
from study.storage.models import utcnow

MAX_FAILURES, LOCKOUT = lockout.MAX_FAILURES, lockout.LOCKOUT  # re-exported for the pages
USER_ENV, HASH_ENV, PLAIN_ENV = (settings.INVESTIGATOR_USER_ENV, settings.INVESTIGATOR_HASH_ENV,
                                 settings.INVESTIGATOR_PASSWORD_ENV)
DEFAULT_INVESTIGATOR = "investigator"


def new_client_id() -> str:
    """A browser session's identity for the lockout: random, so it says nothing about the person."""

    return uuid.uuid4().hex


@dataclass
class SignInThrottle:
    """What a page keeps in its session state: who this browser is. The counts live in the database
    (``study.domain.lockout``), so a reload, a new browser session or another server process sees them too;
    ``failures`` / ``locked_until`` only mirror the last answer for the page."""

    client_id: str
    failures: int = 0
    locked_until: datetime | None = None
    ip: str | None = None  # st.context.ip_address (None on localhost and in tests)

    @property
    def client_scope(self) -> str:
        """The client as the audit names it: its IP address when known, else its browser session."""
        return f"client:ip:{self.ip[:80]}" if self._ip() else f"client:session:{self.client_id[:64]}"

    @property
    def client_scopes(self) -> list[str]:
        """The browser session (:data:`MAX_FAILURES`) and, when known, the IP address (a higher limit:
        one address may be a whole site behind a NAT)."""
        session = f"client:session:{self.client_id[:64]}"
        return [session] + ([f"client:ip:{self.ip[:80]}"] if self._ip() else [])

    def _ip(self) -> bool:
        return isinstance(self.ip, str) and bool(self.ip)

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until


@dataclass(frozen=True)
class SignInResult:
    reader_id: int | None
    message: str
    locked: bool = False


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)


def reader_scopes(throttle: SignInThrottle, code: str) -> list[str]:
    """The lockout scopes of a typed code: the client, and the code's prefix when it has a code's shape
    (the prefix is the non-secret first group, the one ``reader.code_lookup`` stores in clear)."""

    flat = normalise_code(code or "")
    return throttle.client_scopes + ([f"reader_code:{flat[:GROUP_LEN]}"] if flat else [])


def sign_in(factory: sessionmaker[Session], throttle: SignInThrottle, code: str, *,
            now: datetime | None = None) -> SignInResult:
    """Check an access code; failures are counted in the database per client and per code prefix, and
    after :data:`MAX_FAILURES` every try in that scope is refused for :data:`LOCKOUT` (all audited,
    never the typed code)."""

    now = now or utcnow()
    scopes = reader_scopes(throttle, code)

    def check():
        with db.reading(factory) as session:
            reader = authenticate(session, code or "")
            return None if reader is None else (reader.id, reader.pseudonym, reader.study_id)

    def signed_in(session: Session, found) -> None:
        reader_id, pseudonym, study_id = found
        audit.record(session, actor=f"reader:{pseudonym}", action="reader.signed_in", entity="reader",
                     entity_id=reader_id, study_id=study_id, at=now,
                     after={"client": throttle.client_scope[:100]})

    attempt = _guarded_sign_in(factory, throttle, scopes, now, kind="reader", entity="sign_in_client",
                               entity_id=throttle.client_scope[:100], detail={"scopes": scopes}, check=check,
                               on_success=signed_in)
    if attempt.refused:
        return SignInResult(None, f"Too many wrong codes. Try again after {attempt.until:%H:%M} UTC.", locked=True)
    if attempt.found is not None:
        return SignInResult(attempt.found[0], f"Signed in as {attempt.found[1]}.")
    if attempt.until is not None:
        return SignInResult(None, f"{attempt.failures} wrong codes: sign-in is locked for {_minutes(LOCKOUT)} "
                                  "minutes.", locked=True)
    return SignInResult(None, f"That code is not valid. {attempt.left} attempt(s) left before a lockout.")


@dataclass(frozen=True)
class _Attempt:
    """How a guarded sign-in ended: refused while locked out, signed in (``found``), or a failure that
    counted (``failures``, ``left`` before a lockout; ``until`` when it started one)."""
    refused: bool = False
    found: Any = None
    until: datetime | None = None
    failures: int = 0
    left: int = 0


def _guarded_sign_in(factory: sessionmaker[Session], throttle: SignInThrottle, scopes: list[str], now: datetime, *,
                     kind: str, entity: str, entity_id: str, detail: dict, check: Callable[[], Any],
                     on_success: Callable[[Session, Any], None]) -> _Attempt:
    """The lockout around one sign-in, shared by readers and investigators: reserve the attempt in every
    scope (refused, audited, while any is locked), run ``check`` (argon2) outside any write transaction,
    then clear the scopes and audit the success (``on_success``), or count the failure and audit it, and
    the lockout it starts. ``kind`` prefixes the audit actions; ``detail`` goes into each failure row."""
    until = lockout.reserve(factory, scopes, now)
    if until is not None:
        throttle.locked_until = until
        with factory() as session:
            audit.record(session, actor="anonymous", action=f"{kind}.sign_in_refused", entity=entity,
                         entity_id=entity_id, at=now, after={"locked_until": until, **detail})
            session.commit()
        return _Attempt(refused=True, until=until)
    found = check()
    with factory() as session:
        if found:
            lockout.clear(session, scopes)
            on_success(session, found)
            session.commit()
            throttle.failures, throttle.locked_until = 0, None
            return _Attempt(found=found)
        until, failures, left = lockout.settle_failure(session, scopes, now)
        throttle.failures = failures
        audit.record(session, actor="anonymous", action=f"{kind}.sign_in_failed", entity=entity,
                     entity_id=entity_id, at=now, after={"failures": failures, **detail})
        if until is not None:
            throttle.locked_until = until
            audit.record(session, actor="anonymous", action=f"{kind}.sign_in_locked", entity=entity,
                         entity_id=entity_id, at=now, after={"failures": failures, "locked_until": until, **detail})
        session.commit()
        return _Attempt(until=until, failures=failures, left=left)


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
    """The client, and the configured user by name; any other typed name (it may be a password typed
    into the wrong field) shares one scope and is stored nowhere."""
    return [*throttle.client_scopes,
            f"investigator:user:{investigator_credentials().user[:150]}" if _known_user(user) else lockout.UNKNOWN_USER]


def audit_investigator(factory: sessionmaker[Session], user: str, ok: bool, *, now: datetime | None = None,
                       client: str | None = None) -> None:
    """Audit an investigator sign-in; a failed one names the user only when it is the configured one."""
    known = _known_user(user)
    name = user[:100] if known else "unknown user"
    with factory() as session:
        audit.record(session, actor=f"investigator:{name}" if ok else "anonymous",
                     action="investigator.signed_in" if ok else "investigator.sign_in_failed",
                     entity="investigator", entity_id=name, at=now,
                     after={"client": client} if client else None)
        session.commit()


@dataclass(frozen=True)
class InvestigatorSignInResult:
    ok: bool
    message: str
    locked: bool = False


def investigator_sign_in(factory: sessionmaker[Session], throttle: SignInThrottle, user: str, password: str, *,
                         now: datetime | None = None) -> InvestigatorSignInResult:
    """Check the investigator's user and password, with the database lockout of :func:`sign_in` (per client
    and per user); audited without the typed password or an unknown user name."""
    now = now or utcnow()
    scopes = investigator_scopes(throttle, user)
    client = throttle.client_scope[:100]
    name = (user or "")[:100] if _known_user(user) else "unknown user"

    def signed_in(session: Session, _found) -> None:
        audit.record(session, actor=f"investigator:{name}", action="investigator.signed_in",
                     entity="investigator", entity_id=name, at=now, after={"client": client})

    attempt = _guarded_sign_in(factory, throttle, scopes, now, kind="investigator", entity="investigator",
                               entity_id=name, detail={"client": client},
                               check=lambda: verify_investigator(user, password), on_success=signed_in)
    if attempt.refused:
        return InvestigatorSignInResult(False, f"Too many failed sign-ins. Try again after {attempt.until:%H:%M} UTC.",
                                        locked=True)
    if attempt.found:
        return InvestigatorSignInResult(True, f"Signed in as {name}.")
    if attempt.until is not None:
        return InvestigatorSignInResult(False, f"Wrong user or password. {attempt.failures} failed sign-ins: sign-in "
                                               f"is locked for {_minutes(LOCKOUT)} minutes.", locked=True)
    return InvestigatorSignInResult(False, f"Wrong user or password. {attempt.left} attempt(s) left before a lockout.")


