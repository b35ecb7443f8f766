"""The study's tables as a typed SQLAlchemy 2 ORM.

Why these shapes:
- ``Answer`` is append-only: a correction is a new row (version + 1, with a reason), never an UPDATE,
  so every value a reader ever gave stays in the database. The ORM refuses to flush an UPDATE or DELETE
  of an ``Answer`` or ``AuditEvent`` (see ``_refuse_changes``).
- ``Assignment`` is one reading: reader x case x condition x session x position, with the seed that
  ordered it. A sequential study stores two linked assignments per case (step 1 unaided, step 2 aided,
  ``depends_on_id`` pointing at step 1), so every reading has exactly one condition and analysis code
  never has to split an answer in two.
- Reference labels live on ``Case`` only; the workflow never copies them into what a reader sees.
- Constraint names follow a naming convention, so Alembic compares and migrates them identically on
  SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from study.storage import text as stored_text

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

CONDITIONS = ("unaided", "ai", "ai_saliency")
AIDED_CONDITIONS = ("ai", "ai_saliency")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on both back ends (SQLite drops the zone; this puts it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the study database; pass an aware UTC datetime")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class Study(Base):
    __tablename__ = "study"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    config_toml: Mapped[str] = mapped_column(Text)
    config: Mapped[dict[str, Any]]  # the validated, resolved configuration (questions with their options)
    design: Mapped[str] = mapped_column(String(20))
    seed: Mapped[int] = mapped_column(Integer)
    model_version: Mapped[str | None] = mapped_column(String(64))  # which ai_output rows readers see
    design_locked_at: Mapped[datetime | None]
    store_root: Mapped[str | None] = mapped_column(String(1000))  # where its photographs are (first import)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Case(Base):
    __tablename__ = "case"
    __table_args__ = (UniqueConstraint("study_id", "case_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    case_key: Mapped[str] = mapped_column(String(200))
    image_ref: Mapped[str] = mapped_column(String(500))  # sha256 in the study store, or a path
    image_sha256: Mapped[str | None] = mapped_column(String(64))
    reference_labels: Mapped[dict[str, Any]]  # ground truth: never shown to readers
    eye: Mapped[str | None] = mapped_column(String(10))
    patient_pseudonym: Mapped[str | None] = mapped_column(String(100))
    split: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Reader(Base):
    __tablename__ = "reader"
    __table_args__ = (UniqueConstraint("study_id", "pseudonym"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    pseudonym: Mapped[str] = mapped_column(String(50))
    display_name: Mapped[str] = mapped_column(String(200))
    years_experience: Mapped[float] = mapped_column(Float)
    level: Mapped[str] = mapped_column(String(50))
    specialty: Mapped[str | None] = mapped_column(String(200))
    site: Mapped[str | None] = mapped_column(String(200))
    code_lookup: Mapped[str | None] = mapped_column(String(8), index=True)  # first group only, not secret
    code_hash: Mapped[str | None] = mapped_column(String(255))  # argon2 hash of the whole code
    code_issued_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Assignment(Base):
    __tablename__ = "assignment"
    __table_args__ = (
        UniqueConstraint("reader_id", "session", "position"),
        UniqueConstraint("reader_id", "case_id", "condition"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("reader.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"), index=True)
    condition: Mapped[str] = mapped_column(String(20))
    session: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer, default=1)
    depends_on_id: Mapped[int | None] = mapped_column(ForeignKey("assignment.id"))
    reader_group: Mapped[int] = mapped_column(Integer, default=0)
    case_block: Mapped[int] = mapped_column(Integer, default=0)
    seed: Mapped[int] = mapped_column(Integer)  # the per-reader, per-session order seed
    shown_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    case: Mapped[Case] = relationship(lazy="joined")


class Answer(Base):
    __tablename__ = "answer"
    __table_args__ = (UniqueConstraint("assignment_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignment.id"), index=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("reader.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]]
    reason: Mapped[str | None] = mapped_column(Text)  # required for version > 1
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    shown_at: Mapped[datetime | None]
    submitted_at: Mapped[datetime]


class AIOutput(Base):
    __tablename__ = "ai_output"
    __table_args__ = (UniqueConstraint("case_id", "model_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"), index=True)
    model_version: Mapped[str] = mapped_column(String(64))
    label_set: Mapped[str] = mapped_column(String(200))
    probabilities: Mapped[dict[str, Any]]
    model_card: Mapped[dict[str, Any]]
    saliency_png: Mapped[bytes | None] = mapped_column(LargeBinary)  # before ai_overlay: one rendered picture
    saliency_path: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    overlays: Mapped[list[AIOverlay]] = relationship(order_by="AIOverlay.rank")


class AIOverlay(Base):
    """One saliency map of an AI output: where the model looked for one of the case's top findings, in the
    display-ready form the reading station draws (``revision_core.saliency_render.display_png``: a small
    grey PNG whose grey values mark the attribution bands). ``rank`` 1 is the most probable finding."""

    __tablename__ = "ai_overlay"
    __table_args__ = (UniqueConstraint("ai_output_id", "finding"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ai_output_id: Mapped[int] = mapped_column(ForeignKey("ai_output.id"), index=True)
    finding: Mapped[str] = mapped_column(String(100))
    rank: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(40))
    params: Mapped[dict[str, Any]]
    png: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))  # of ``png``: its file name in the study store
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)


class WashoutOverride(Base):
    """An investigator's release of a reader's next session before the washout ended (audited)."""

    __tablename__ = "washout_override"
    __table_args__ = (UniqueConstraint("reader_id", "session"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("reader.id"), index=True)
    session: Mapped[int] = mapped_column(Integer)
    granted_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    granted_at: Mapped[datetime]


class SignInCounter(Base):
    """Failed sign-ins per scope (a reader-code prefix, the investigator's sign-in, a client, the server),
    shared by every browser session and server process; they slow further tries down (``study.domain.lockout``).
    Never holds a typed secret."""

    __tablename__ = "sign_in_counter"

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(200), unique=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReaderSession(Base):
    """A reader's signed-in browser session (``study.domain.reader_sessions``): the browser's HttpOnly cookie
    carries a random token of which only the sha256 is stored here; it ends at sign-out, revocation, a new
    code (``code_issued_at`` no longer the reader's) or expiry, on every server at once."""

    __tablename__ = "reader_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("reader.id"), index=True)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)  # set when the cookie is handed over
    ticket_hash: Mapped[str | None] = mapped_column(String(64), unique=True)  # one-time, to hand the cookie over
    ticket_expires_at: Mapped[datetime | None]
    code_issued_at: Mapped[datetime | None]  # the access code's version this session was opened with
    client: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(50))


class AnswerDraft(Base):
    """What a reader has ticked or typed for a reading not yet submitted (one row per reading, replaced as they
    go), so a reload or a new sign-in shows it again. Never an answer: the analysis, the exports and the
    monitor read ``answer`` only; the submitted answer is what is audited."""

    __tablename__ = "answer_draft"

    id: Mapped[int] = mapped_column(primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("reader.id"), index=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignment.id"), unique=True)
    payload: Mapped[dict[str, Any]]
    saved_at: Mapped[datetime] = mapped_column(default=utcnow)


class ServerKey(Base):
    """A key every server process shares (``study.domain.image_links``: the photograph links' HMAC key),
    made once by whichever process needs it first."""

    __tablename__ = "server_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    value: Mapped[str] = mapped_column(String(128))  # hex
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_entity", "entity", "entity_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int | None] = mapped_column(ForeignKey("study.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    entity: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[str | None] = mapped_column(String(100))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


IMMUTABLE = (Answer, AuditEvent)


class ImmutableRowError(RuntimeError):
    """An attempt to update or delete an answer or audit event: they are append-only."""


@event.listens_for(Session, "before_flush")
def _refuse_changes(session: Session, flush_context, instances) -> None:
    """Answers and audit events are append-only: refuse any UPDATE or DELETE through the ORM."""
    for obj in session.deleted:
        if isinstance(obj, IMMUTABLE):
            raise ImmutableRowError(f"{type(obj).__name__} rows are append-only and cannot be deleted")
    for obj in session.dirty:
        if isinstance(obj, IMMUTABLE) and session.is_modified(obj, include_collections=False):
            raise ImmutableRowError(f"{type(obj).__name__} rows are append-only and cannot be changed; "
                                    "a correction is a new version")


class StoredTextInvalid(ValueError):
    """A string that no column may hold (too long, a NUL, a control or bidirectional character); raised before
    any SQL is sent, so SQLite and PostgreSQL refuse exactly the same values and no statement's parameters
    reach an error message. Entry points check their fields first, with friendlier names
    (``study.storage.text.check``); this is the net under them."""


@event.listens_for(Session, "before_flush")
def _check_text(session: Session, flush_context, instances) -> None:
    """Every string column of every new or changed row, against ``study.storage.text`` (see
    :class:`StoredTextInvalid`)."""
    for obj in (*session.new, *session.dirty):
        table = getattr(obj, "__table__", None)
        if table is None:
            continue
        for column in table.columns:
            if not isinstance(column.type, String):
                continue
            value = getattr(obj, column.key, None)
            if not isinstance(value, str):
                continue
            why = stored_text.column_problem(value, column.type.length, text_column=isinstance(column.type, Text))
            if why is not None:
                raise StoredTextInvalid(f"{table.name}.{column.name}: {why}")
