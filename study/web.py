"""What the Streamlit pages need from the study database, as plain functions (no Streamlit, no SQL in pages).

Why a separate module: the pages stay thin (widgets and charts), and everything a page decides —
sign-in throttling, consent, the reader's current state, the investigator's monitor — is testable
without a browser. Nothing here imports torch; the model is only touched by :func:`run_precompute`.

Sign-in failures are counted in the database (``study.lockout``) per client, per reader-code prefix and
per investigator user, so a lockout holds across reloads, browser sessions and server processes: after
:data:`MAX_FAILURES` failures further tries in that scope are refused for :data:`LOCKOUT`, and every
failure, lockout and refused try is written to the audit trail (never the typed code or password, nor a
user name other than the configured one).
"""

from __future__ import annotations

import csv
import io
import os
import statistics
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from study import audit, db, lockout
from study.models import AIDED_CONDITIONS, Answer, Assignment, AuditEvent, Case, Reader, Study, utcnow

MAX_FAILURES, LOCKOUT = lockout.MAX_FAILURES, lockout.LOCKOUT  # re-exported for the pages
CONSENT_ACTION = "reader.consented"
USER_ENV, HASH_ENV, PLAIN_ENV = ("REVISION_INVESTIGATOR_USER", "REVISION_INVESTIGATOR_PASSWORD_HASH",
                                 "REVISION_INVESTIGATOR_PASSWORD")
STORE_ENV = "REVISION_STORE_ROOT"
DEFAULT_INVESTIGATOR = "investigator"


# --- sign-in, with lockouts kept in the database (study.lockout) ------------------------------------

@dataclass
class SignInThrottle:
    """What a page keeps in its session state: who this browser is. The counts live in the database
    (``study.lockout``), so a reload, a new browser session or another server process sees them too;
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
    from study.readers import GROUP_LEN, normalise_code

    flat = normalise_code(code or "")
    return throttle.client_scopes + ([f"reader_code:{flat[:GROUP_LEN]}"] if flat else [])


def sign_in(factory: sessionmaker[Session], throttle: SignInThrottle, code: str, *,
            now: datetime | None = None) -> SignInResult:
    """Check an access code; failures are counted in the database per client and per code prefix, and
    after :data:`MAX_FAILURES` every try in that scope is refused for :data:`LOCKOUT` (all audited,
    never the typed code)."""
    from study.readers import authenticate

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


# --- the reader's state -----------------------------------------------------------------------------

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
    from study import workflow

    with factory() as session:
        db.begin_read(session)  # next_item ends this read and writes shown_at in a short transaction
        reader = session.get(Reader, reader_id)
        if reader is None:
            raise ValueError(f"no reader with id {reader_id}")
        study = session.get(Study, reader.study_id)
        prog = workflow.progress(session, reader.id)
        state = ReaderState(reader.pseudonym, study.id, study.name, study.design,
                            has_consented(session, reader.id), reader.revoked_at is not None, prog.done, prog.total)
        if state.revoked or not state.consented or not fetch_item:
            return state
        try:
            state.item = workflow.next_item(session, reader.id, now=now)
        except workflow.WashoutPending as exc:
            state.washout_session, state.washout_until = exc.session_number, exc.available_at
        except workflow.WorkflowError as exc:
            state.error = str(exc)
        return state


def submit_answer(factory: sessionmaker[Session], reader_id: int, assignment_id: int, answer: dict,
                  idempotency_key: str):
    """Store an answer (retried on a dropped connection; the key makes a repeat store nothing new)."""
    from study import workflow

    return db.run_with_retry(factory, lambda s: workflow.submit(s, reader_id, assignment_id, answer,
                                                                idempotency_key))


def store_root() -> Path | None:
    value = os.environ.get(STORE_ENV)
    return Path(value) if value else None


def describe_answer(questions, payload: dict) -> list[tuple[str, str]]:
    """(question text, answer in words) for each question answered, in the questions' order: what a
    reader reads back, with option labels instead of keys and yes/no instead of True/False."""
    out = [("Image ungradable", "yes")] if payload.get("ungradable") else []
    for q in questions:
        if q["id"] not in payload:
            continue
        labels, value = dict(q.get("options") or ()), payload[q["id"]]
        if isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, (list, tuple)):
            text = ", ".join(labels.get(v, str(v)) for v in value) or "none"
        elif value is None:
            text = "not answered"
        else:
            text = labels.get(value, str(value))
            if q.get("unit") and not labels:
                text = f"{text} {q['unit']}"
        out.append((q["text"], text))
    return out


def is_aided(item) -> bool:
    return hasattr(item, "ai") and item.condition in AIDED_CONDITIONS


# --- investigator credentials ------------------------------------------------------------------------

@dataclass(frozen=True)
class InvestigatorCredentials:
    user: str
    password_hash: str
    source: str  # "environment", "secrets.toml" or "demo default"


_DEMO: InvestigatorCredentials | None = None


def _secrets() -> dict:
    path = db.REPO_ROOT / ".streamlit" / "secrets.toml"
    if not path.is_file():
        return {}
    return (tomllib.loads(path.read_text("utf-8")).get("investigator") or {})


def investigator_credentials() -> InvestigatorCredentials:
    """From env (user + argon2 hash), then ``[investigator]`` in secrets.toml, else the demo default:
    user ``investigator`` with ``$REVISION_INVESTIGATOR_PASSWORD`` or a random password printed once
    to the server log at start-up (never a fixed, guessable password)."""
    global _DEMO
    from argon2 import PasswordHasher

    if os.environ.get(USER_ENV) and os.environ.get(HASH_ENV):
        return InvestigatorCredentials(os.environ[USER_ENV], os.environ[HASH_ENV], "environment")
    sec = _secrets()
    if sec.get("user") and sec.get("password_hash"):
        return InvestigatorCredentials(str(sec["user"]), str(sec["password_hash"]), "secrets.toml")
    if _DEMO is None:
        plain = os.environ.get(PLAIN_ENV)
        if not plain:
            from study.readers import generate_code

            plain = generate_code()
            print(f"[revision] demo investigator sign-in: user {DEFAULT_INVESTIGATOR!r}, password {plain!r} "
                  f"(set {USER_ENV} + {HASH_ENV} or [investigator] in .streamlit/secrets.toml for a real study)",
                  file=sys.stderr, flush=True)
        _DEMO = InvestigatorCredentials(os.environ.get(USER_ENV) or DEFAULT_INVESTIGATOR,
                                        PasswordHasher().hash(plain), "demo default")
    return _DEMO


def verify_investigator(user: str, password: str) -> bool:
    """True for the configured user and password. The argon2 verify runs whatever the user name, so the
    response time does not tell whether a user name exists."""
    import hmac

    from argon2 import PasswordHasher
    from argon2.exceptions import InvalidHashError, VerificationError

    creds = investigator_credentials()
    try:
        ok = PasswordHasher().verify(creds.password_hash, password or "")
    except (VerificationError, InvalidHashError):
        ok = False
    return ok and hmac.compare_digest((user or "").encode(), creds.user.encode())


def _known_user(user: str) -> bool:
    import hmac

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


# --- investigator: set-up -----------------------------------------------------------------------------

def list_studies(session: Session) -> list[tuple[int, str]]:
    return list(session.execute(select(Study.id, Study.name).order_by(Study.id)).all())


def create_study_from_toml(factory: sessionmaker[Session], text: str, actor: str) -> tuple[int | None, list[str]]:
    """(study id, []) or (None, every problem) for an uploaded TOML file."""
    from study.config import StudyConfigError, parse_text
    from study.studies import create_study

    try:
        config = parse_text(text, "uploaded TOML")
    except StudyConfigError as exc:
        return None, list(exc.problems)
    with factory() as session:
        try:
            return create_study(session, config, text, actor=actor).id, []
        except ValueError as exc:
            return None, [str(exc)]


CSV_ALONE = ("a manifest CSV uploaded on its own cannot bring its images (image paths must be inside the "
             "upload): upload a ZIP holding manifest.csv and the images, with image_path relative to the "
             "manifest's folder; or import on the server with `python -m study import-cases MANIFEST.csv`")


def import_cases_upload(factory: sessionmaker[Session], study_id: int, name: str, data: bytes,
                        actor: str) -> tuple[int, list[str]]:
    """Import a ZIP holding one ``manifest.csv`` and its images (``study.cases.import_zip``: bounded by
    ``study.cases.LIMITS``, paths confined to the manifest's folder, checked before anything is extracted).
    Returns (cases imported, the problems as 'row r, column c: reason' or 'member: reason', at most
    ``LIMITS.max_problems`` of them, then a line counting the rest); all or nothing."""
    from study.cases import ManifestError, import_zip

    if not name.lower().endswith(".zip"):
        return 0, [CSV_ALONE]
    with factory() as session:
        try:
            cases = import_zip(session, study_id, data, name=Path(name).name, store_root=store_root(), actor=actor)
        except ManifestError as exc:
            return 0, exc.messages()
        except ValueError as exc:
            return 0, [str(exc)]
        return len(cases), []


READER_COLUMNS = ("display_name", "years_experience", "specialty", "site")


def add_readers_csv(factory: sessionmaker[Session], study_id: int, text: str, actor: str) -> tuple[list[dict], list[str]]:
    """Add readers from CSV (display_name, years_experience[, specialty, site]); returns (rows with the
    plain codes — shown once, stored nowhere —, problems). Nothing is added if any row is wrong."""
    from study.readers import add_reader
    from study.studies import get_study, study_config

    rows = list(csv.DictReader(io.StringIO(text)))
    problems: list[str] = []
    with factory() as session:
        config = study_config(get_study(session, study_id))
        for i, row in enumerate(rows, start=2):
            if not (row.get("display_name") or "").strip():
                problems.append(f"row {i}, column display_name: empty")
            try:
                config.level_for(float(row.get("years_experience") or "nan"))
            except ValueError as exc:
                problems.append(f"row {i}, column years_experience: {exc}")
        if not rows:
            problems.append("the CSV has no readers")
        if problems:
            return [], problems
        out = []
        for row in rows:
            reader, code = add_reader(session, study_id, display_name=row["display_name"],
                                      years_experience=float(row["years_experience"]),
                                      specialty=(row.get("specialty") or None), site=(row.get("site") or None),
                                      actor=actor)
            out.append({"pseudonym": reader.pseudonym, "display_name": reader.display_name, "level": reader.level,
                        "access_code": code})
        return out, []


def codes_csv(rows: list[dict]) -> str:
    from study.export import csv_safe

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["pseudonym", "display_name", "level", "access_code"])
    writer.writeheader()
    writer.writerows({k: csv_safe(v) for k, v in row.items()} for row in rows)  # display names are typed by people
    return buf.getvalue()


def build_design(factory: sessionmaker[Session], study_id: int, actor: str) -> int:
    from study.design import build_design as build

    with factory() as session:
        return build(session, study_id, actor=actor)


def run_precompute(factory: sessionmaker[Session], study_id: int, *, loaded=None, actor: str = "precompute",
                   on_progress: Callable[[int, int], None] | None = None):
    """Precompute AI outputs in small slices so a page can show a progress bar; resumable."""
    from study.precompute import precompute

    with factory() as session:
        total = session.scalar(select(func.count()).select_from(Case).where(Case.study_id == study_id)) or 0
        return precompute(session, study_id, loaded=loaded, store_root=store_root(), actor=actor,
                          on_progress=on_progress), total


# --- investigator: monitor and descriptive accuracy ----------------------------------------------------

def study_summary(session: Session, study_id: int) -> dict:
    from study.commands.status import collect
    from study.studies import get_study

    return collect(session, get_study(session, study_id))


def monitor(session: Session, study_id: int) -> list[dict]:
    """Per reader and session: cases done/total, median seconds per case, last activity (UTC)."""
    rows = session.execute(
        select(Reader.pseudonym, Reader.level, Assignment.session, Assignment.id, Assignment.shown_at,
               Answer.submitted_at)
        .join(Assignment, Assignment.reader_id == Reader.id)
        .outerjoin(Answer, (Answer.assignment_id == Assignment.id) & (Answer.version == 1))
        .where(Reader.study_id == study_id)).all()
    groups: dict[tuple, dict] = {}
    for pseudonym, level, sess, _aid, shown, submitted in rows:
        g = groups.setdefault((pseudonym, sess), {"reader": pseudonym, "level": level, "session": sess, "done": 0,
                                                  "total": 0, "_times": [], "last_activity": None})
        g["total"] += 1
        if submitted is not None:
            g["done"] += 1
            if shown is not None:
                g["_times"].append((submitted - shown).total_seconds())
        for t in (shown, submitted):
            if t is not None and (g["last_activity"] is None or t > g["last_activity"]):
                g["last_activity"] = t
    out = []
    for key in sorted(groups):
        g = groups[key]
        times = g.pop("_times")
        g["median_seconds"] = round(statistics.median(times), 1) if times else None
        out.append(g)
    return out


def accuracy_by_condition_level(session: Session, study_id: int) -> list[dict]:
    """Descriptive accuracy of the primary question (latest answer version) by condition x level, scored by
    ``study.scoring``; ungradable readings are counted apart (``ungradable``), not in the accuracy."""
    from study.scoring import score
    from study.studies import get_study, study_config

    primary = study_config(get_study(session, study_id)).primary_question
    latest = (select(Answer.assignment_id, func.max(Answer.version).label("v")).group_by(Answer.assignment_id)
              .subquery())
    rows = session.execute(
        select(Assignment.condition, Reader.level, Answer.payload, Case.reference_labels)
        .join(latest, latest.c.assignment_id == Assignment.id)
        .join(Answer, (Answer.assignment_id == Assignment.id) & (Answer.version == latest.c.v))
        .join(Reader, Reader.id == Assignment.reader_id).join(Case, Case.id == Assignment.case_id)
        .where(Assignment.study_id == study_id)).all()
    cells: dict[tuple, list[int]] = {}
    ungradable: dict[tuple, int] = {}
    for condition, level, payload, ref in rows:
        sc = score(primary, ref, payload)
        if sc.ungradable:
            ungradable[(condition, level)] = ungradable.get((condition, level), 0) + 1
            cells.setdefault((condition, level), [])
        elif sc.correct is not None:
            cells.setdefault((condition, level), []).append(sc.correct)
    return [{"condition": c, "level": lv, "readings": len(v),
             "accuracy": round(sum(v) / len(v), 3) if v else None, "ungradable": ungradable.get((c, lv), 0)}
            for (c, lv), v in sorted(cells.items())]


def new_client_id() -> str:
    import uuid

    return uuid.uuid4().hex


@dataclass
class ReaderCodes:
    rows: list[dict] = field(default_factory=list)
    downloaded: bool = False


# --- exports and report (other engineers' modules, imported lazily) -----------------------------------

def export_bytes(factory: sessionmaker[Session], study_id: int, fmt: str, *, actor: str | None = None) -> bytes:
    """One export (``study.export`` format: csv, parquet or imrmc) as bytes for a download button.

    With ``actor`` the export is written to the audit trail (who took which data, when, and a hash of
    what they took), as REDCap logs data exports; the report's internal CSV passes none.
    """
    from study.export import export

    with tempfile.TemporaryDirectory(prefix="revision-export-") as tmp:
        out = Path(tmp) / f"export.{fmt}"
        with db.reading(factory) as session:  # an export never holds up a reader's submit
            export(session, study_id, fmt, out)
        data = out.read_bytes()
    if actor is not None:
        with factory() as session:
            audit.record(session, actor=actor, action="study.exported", entity="study", entity_id=study_id,
                         study_id=study_id, after={"format": fmt, "file": data})  # stored as sha256 + size
            session.commit()
    return data


def html_report(factory: sessionmaker[Session], study_id: int, n_boot: int = 200) -> str:
    """The study's HTML analysis report (``study.report``) from its long CSV export."""
    from study.report import analyze_reads, build_figures, render_html

    with tempfile.TemporaryDirectory(prefix="revision-report-") as tmp:
        out = Path(tmp) / "reads.csv"
        out.write_bytes(export_bytes(factory, study_id, "csv"))
        results = analyze_reads(out, n_boot=n_boot)
    return render_html(results, build_figures(results))
