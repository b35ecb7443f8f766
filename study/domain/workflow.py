"""A reader's path through a study: next item, submit, correct, resume, timing.

Plain functions over a SQLAlchemy session, so the web pages, the tests and the load tests drive the
same code. They never commit: the caller (the reader service, a job, a test) commits the transaction; an
error rolls back and leaves nothing behind.
All state lives in the database, so resuming after a restart is just calling :func:`next_item` again:
it returns the first unanswered assignment in (session, position) order, with its original
``shown_at`` (the first time it was shown; reading time = ``submitted_at - shown_at``, server clock).

What a reader sees is built field by field here, never from the ORM row: an unaided item is an
:class:`Item`, which has no AI field at all; only :class:`AidedItem` carries the AI panel. Reference
labels are never read by this module.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from revision_core.saliency_methods import method_name
from study.domain import audit
from study.domain.overlays import OverlayMap, maps_of
from study.domain.config import StudyConfig, validate_answer
from study.domain.rules import (
    Progress,
    latest_answer,
    reader_progress,
    shown_ai_output,  # the one rule for the output shown
)
from study.domain.studies import lock_design, study_config
from study.storage import db
from study.storage.models import (
    AIDED_CONDITIONS,
    AIOutput,
    Answer,
    Assignment,
    Case,
    Reader,
    Study,
    WashoutOverride,
    utcnow,
)

MAX_KEY = 200


class WorkflowError(RuntimeError):
    """A request the workflow refuses; the message says why in words a page can show."""

class ReaderRevoked(WorkflowError):
    pass


class NotYourAssignment(WorkflowError):
    pass


class NotShownYet(WorkflowError):
    pass


class AlreadyAnswered(WorkflowError):
    pass


class IdempotencyConflict(WorkflowError):
    """The key was already used for a different answer: never silently return or overwrite it."""

class CorrectionsNotAllowed(WorkflowError):
    pass


class AnswerLocked(WorkflowError):
    """A sequential step-1 answer after the AI (step 2) was shown."""

class StaleVersion(WorkflowError):
    pass


class AIOutputMissing(WorkflowError):
    pass


class WashoutPending(WorkflowError):
    def __init__(self, session_number: int, available_at: datetime):
        self.session_number, self.available_at = session_number, available_at
        super().__init__(f"session {session_number} opens on {available_at:%Y-%m-%d %H:%M} UTC "
                         "(washout after the previous session)")


@dataclass(frozen=True, kw_only=True)
class Item:
    """What a reader is shown for one reading. No AI fields, no reference labels."""

    assignment_id: int
    case_id: str
    image_ref: str
    condition: str
    step: int
    session: int
    questions: tuple[dict[str, Any], ...]
    position: int  # k of n, 1-based
    total: int
    shown_at: datetime
    prior_answer: dict[str, Any] | None = None  # sequential step 2: the reader's own locked step-1 answer
    allow_ungradable: bool = False  # the form offers "Image ungradable" (answer {"ungradable": true})
    eye: str | None = None  # "right" (OD) or "left" (OS), as the manifest gave it
    sessions: int = 1  # how many sessions this reader has ("session 1 of 2")
    session_position: int = 1  # k of n within this session ("Case 3 of 60, session 1 of 2")
    session_total: int = 1
    block_start: bool = False  # the first reading of a block of this condition within a session
    next_image_ref: str | None = None  # the reader's next photograph, for the browser to prefetch

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shown_at"] = self.shown_at.isoformat()
        d["questions"] = list(self.questions)
        return d


@dataclass(frozen=True, kw_only=True)
class AIPanel:
    model_version: str
    model_card: dict[str, Any]
    probabilities: dict[str, float]
    saliency_png: bytes | None = None  # ai_saliency only: one rendered picture (outputs stored before ai_overlay)
    saliency_path: str | None = None
    label_set: str | None = None  # whose finding names the panel shows
    saliency_label: str | None = None  # the saliency method in words, e.g. "Integrated gradients"
    maps: tuple[OverlayMap, ...] = ()  # ai_saliency only: where the model looked, per top finding
    # the next reading's maps, for the browser to preload: only when this reading and the next are both in the
    # saliency arm, so a map never reaches a page that shows no saliency (an unaided one least of all)
    next_maps: tuple[OverlayMap, ...] = ()


@dataclass(frozen=True, kw_only=True)
class AidedItem(Item):
    ai: AIPanel

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if self.ai.saliency_png is not None:
            d["ai"]["saliency_png"] = f"<{len(self.ai.saliency_png)} bytes png>"
        for key in ("maps", "next_maps"):
            d["ai"][key] = [{**m, "png": f"<{len(m['png'])} bytes png>"} for m in d["ai"][key]]
        return d


@dataclass(frozen=True)
class SubmitResult:
    answer_id: int
    assignment_id: int
    version: int
    shown_at: datetime | None
    submitted_at: datetime
    seconds: float | None
    replayed: bool = field(default=False, compare=False)  # True when the key had already been stored


# --- reading -----------------------------------------------------------------------------------------

def _reader(session: Session, reader_id: int, *, active: bool = True) -> Reader:
    reader = session.get(Reader, reader_id)
    if reader is None:
        raise ValueError(f"no reader with id {reader_id}")
    if active and reader.revoked_at is not None:
        raise ReaderRevoked("this access code has been revoked; ask the study team for a new one")
    return reader


def _answered():
    return exists().where(Answer.assignment_id == Assignment.id)


def progress(session: Session, reader_id: int) -> Progress:
    """The reader's progress: ``study.domain.rules.reader_progress``, the one count the monitor and status use."""
    return reader_progress(session, reader_id)


def washout_gate(session: Session, reader: Reader, config: StudyConfig, session_number: int, now: datetime) -> None:
    """Raise :class:`WashoutPending` while ``session_number`` is still closed to ``reader`` (washout not over, no
    override); the one gate that reading and the investigator's screens ask."""
    if session_number <= 1 or config.design.washout_days <= 0:
        return
    last = session.scalar(select(func.max(Answer.submitted_at)).join(Assignment, Answer.assignment_id == Assignment.id)
                          .where(Assignment.reader_id == reader.id, Assignment.session == session_number - 1,
                                 Answer.version == 1))
    if last is None:
        return
    available = last + timedelta(days=config.design.washout_days)
    if now >= available:
        return
    if session.scalar(select(exists().where(WashoutOverride.reader_id == reader.id,
                                            WashoutOverride.session == session_number))):
        return
    raise WashoutPending(session_number, available)


def _ai_output(session: Session, study: Study, case_id: int) -> AIOutput:
    out = shown_ai_output(session, study.model_version, case_id)
    if out is None:
        raise AIOutputMissing("the AI suggestion for this case has not been computed yet; "
                              "the study team must run precompute before aided reading")
    return out


def _neighbours(session: Session, a: Assignment) -> tuple[bool, int, Assignment | None, int, int]:
    """(block start, sessions, next reading, k and n of "case k of n in this session") for assignment ``a``:
    what the screen says around the case (and what the browser may preload).

    The AI-assisted block starts at an aided reading whose previous reading in the same session (designs
    group a session's readings by condition) was unaided, or that opens its session; in a sequential
    design every case alternates, so no block is announced there."""
    prev = session.scalar(select(Assignment.condition).where(
        Assignment.reader_id == a.reader_id, Assignment.session == a.session, Assignment.position < a.position)
        .order_by(Assignment.position.desc()).limit(1))
    per_session = {number: (readings, answered) for number, readings, answered in session.execute(
        select(Assignment.session, func.count(Assignment.id), func.count(Assignment.id).filter(_answered()))
        .where(Assignment.reader_id == a.reader_id).group_by(Assignment.session))}
    in_session, answered_in_session = per_session[a.session]
    nxt = session.scalar(select(Assignment).where(
        Assignment.reader_id == a.reader_id, ~_answered(), Assignment.id != a.id,
        or_(Assignment.session > a.session, (Assignment.session == a.session) & (Assignment.position > a.position)))
        .order_by(Assignment.session, Assignment.position).limit(1))
    block_start = a.depends_on_id is None and a.condition in AIDED_CONDITIONS and prev not in AIDED_CONDITIONS
    return block_start, max(per_session), nxt, answered_in_session + 1, in_session


def _saliency_label(out: AIOutput) -> str:
    """The method that made the maps, in words (e.g. "integrated gradients")."""
    method = ((out.model_card or {}).get("saliency") or {}).get("method") or "gradcam"
    name = method_name(method)  # in a sentence: "integrated gradients", but "Grad-CAM", "SmoothGrad"
    return name if any(c.isupper() for c in name[1:]) else name.lower()


def _build_item(session: Session, study: Study, config: StudyConfig, a: Assignment, case: Case, position: int,
                total: int, shown_at: datetime) -> Item:
    block_start, sessions, nxt, session_position, session_total = _neighbours(session, a)
    next_image = nxt.case.image_ref if nxt is not None else None
    common = dict(assignment_id=a.id, case_id=case.case_key, image_ref=case.image_ref, condition=a.condition,
                  step=a.step, session=a.session, questions=tuple(q.to_dict() for q in config.questions),
                  position=position, total=total, shown_at=shown_at, eye=case.eye, sessions=sessions,
                  session_position=session_position, session_total=session_total,
                  allow_ungradable=config.allow_ungradable,
                  block_start=block_start and study.design != "sequential",
                  next_image_ref=next_image if next_image != case.image_ref else None)
    if a.depends_on_id is not None:
        prior = latest_answer(session, a.depends_on_id)
        common["prior_answer"] = dict(prior.payload) if prior else None
    if a.condition not in AIDED_CONDITIONS:
        return Item(**common)
    out = _ai_output(session, study, case.id)
    with_saliency = a.condition == "ai_saliency"
    next_maps = ()
    if with_saliency and nxt is not None and nxt.condition == "ai_saliency" and nxt.case_id != case.id:
        ahead = shown_ai_output(session, study.model_version, nxt.case_id)
        next_maps = maps_of(ahead) if ahead is not None else ()
    panel = AIPanel(model_version=out.model_version, model_card=dict(out.model_card),
                    probabilities={k: float(v) for k, v in out.probabilities.items()},
                    saliency_png=out.saliency_png if with_saliency else None,
                    saliency_path=out.saliency_path if with_saliency else None, label_set=out.label_set,
                    saliency_label=_saliency_label(out) if with_saliency else None,
                    maps=maps_of(out) if with_saliency else (), next_maps=next_maps)
    return AidedItem(**common, ai=panel)


def next_item(session: Session, reader_id: int, now: datetime | None = None) -> Item | None:
    """The reader's current item (the same one until it is answered), or None when all are done.

    Raises :class:`WashoutPending` between crossover sessions until the washout has passed.
    Called outside a transaction, the reading is a read-only transaction (on SQLite it takes no lock) that
    ends here; only the first showing of an item writes ``shown_at``, in a new transaction that the caller
    commits (called inside one, everything happens in it).
    """
    now = now or utcnow()
    began_read = not session.in_transaction()
    try:
        db.begin_read(session)
        reader = _reader(session, reader_id)
        a = session.scalar(select(Assignment).where(Assignment.reader_id == reader.id, ~_answered())
                           .order_by(Assignment.session, Assignment.position).limit(1))
        if a is None:
            if began_read:
                session.rollback()
            return None
        study = session.get(Study, reader.study_id)
        config = study_config(study)
        washout_gate(session, reader, config, a.session, now)
        prog = progress(session, reader.id)
        item = _build_item(session, study, config, a, a.case, prog.done + 1, prog.total, a.shown_at or now)
        first_showing = a.shown_at is None
        if began_read:
            session.rollback()  # the end of the read-only transaction (it wrote nothing)
        if first_showing:
            item = replace(item, shown_at=_mark_shown(session, a.id, reader.pseudonym, study.id, now))
        return item
    except BaseException:
        session.rollback()
        raise


def _mark_shown(session: Session, assignment_id: int, pseudonym: str, study_id: int, now: datetime) -> datetime:
    """Record the first time an item was shown; the stored time wins when two tabs race."""
    marked = session.execute(update(Assignment).where(Assignment.id == assignment_id, Assignment.shown_at.is_(None))
                             .values(shown_at=now).execution_options(synchronize_session=False)).rowcount
    if marked == 1:
        audit.record(session, actor=f"reader:{pseudonym}", action="assignment.shown", entity="assignment",
                     entity_id=assignment_id, study_id=study_id, at=now, after={"shown_at": now})
        session.flush()
        return now
    return session.scalar(select(Assignment.shown_at).where(Assignment.id == assignment_id))


def grant_washout_override(session: Session, reader_id: int, session_number: int, *, actor: str, reason: str,
                           now: datetime | None = None) -> None:
    """Open a reader's next session before the washout ended (investigator decision, audited)."""
    if not reason or not reason.strip():
        raise ValueError("a washout override needs a reason")
    now = now or utcnow()
    reader = _reader(session, reader_id, active=False)
    row = WashoutOverride(reader_id=reader.id, session=session_number, granted_by=actor, reason=reason.strip(),
                          granted_at=now)
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="washout.overridden", entity="reader", entity_id=reader.id,
                 study_id=reader.study_id, at=now, after={"session": session_number, "reason": row.reason})
    session.flush()


# --- writing -----------------------------------------------------------------------------------------

def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY:
        raise ValueError(f"idempotency_key must be a non-empty string of at most {MAX_KEY} characters")


def _result(ans: Answer, replayed: bool) -> SubmitResult:
    seconds = (ans.submitted_at - ans.shown_at).total_seconds() if ans.shown_at else None
    return SubmitResult(ans.id, ans.assignment_id, ans.version, ans.shown_at, ans.submitted_at, seconds, replayed)


def _replay(session: Session, key: str, reader_id: int, assignment_id: int, payload: dict,
            reason: str | None = None) -> SubmitResult | None:
    """The stored result of an earlier request with this key (ending the transaction: there is nothing
    to write), or None when the key is new."""
    ans = session.scalar(select(Answer).where(Answer.idempotency_key == key))
    return _replay_of(session, ans, reader_id, assignment_id, payload, reason)


def _replay_of(session: Session, ans: Answer | None, reader_id: int, assignment_id: int, payload: dict,
               reason: str | None = None) -> SubmitResult | None:
    if ans is None:
        return None
    if ans.reader_id != reader_id or ans.assignment_id != assignment_id or ans.payload != payload or (
            reason is not None and ans.reason != reason):
        raise IdempotencyConflict("this idempotency key was already used for a different answer; "
                                  "use a new key for a new answer")
    result = _result(ans, True)
    session.rollback()
    return result


def _keyed_and_latest(session: Session, key: str, assignment_id: int) -> tuple[Answer | None, Answer | None]:
    """The answer stored under ``key`` and the assignment's latest answer, from one query (one snapshot)."""
    rows = session.scalars(select(Answer).where(or_(Answer.idempotency_key == key, Answer.assignment_id == assignment_id))
                           .order_by(Answer.version.desc())).all()
    keyed = next((r for r in rows if r.idempotency_key == key), None)
    latest = next((r for r in rows if r.assignment_id == assignment_id), None)
    return keyed, latest


def _assignment_of(session: Session, reader_id: int, assignment_id: int) -> tuple[Assignment, Reader, Study]:
    """The assignment with its reader and study in one query; refused unless it is this reader's."""
    row = session.execute(select(Assignment, Reader, Study).join(Reader, Assignment.reader_id == Reader.id)
                          .join(Study, Assignment.study_id == Study.id).where(Assignment.id == assignment_id)
                          ).one_or_none()
    if row is None or row[1].id != reader_id:
        _reader(session, reader_id, active=False)  # an unknown reader is a ValueError, as everywhere
        raise NotYourAssignment(f"assignment {assignment_id} is not one of this reader's")
    return row[0], row[1], row[2]


def submit(session: Session, reader_id: int, assignment_id: int, answer: dict, idempotency_key: str,
           now: datetime | None = None) -> SubmitResult:
    """Store the reader's first answer to an assignment; the same key again returns the same result."""
    _check_key(idempotency_key)
    now = now or utcnow()
    try:
        a, reader, study = _assignment_of(session, reader_id, assignment_id)
        config = study_config(study)
        payload = validate_answer(config.questions, answer, allow_ungradable=config.allow_ungradable)
        keyed, latest = _keyed_and_latest(session, idempotency_key, a.id)
        if (replay := _replay_of(session, keyed, reader.id, a.id, payload)) is not None:
            return replay
        if reader.revoked_at is not None:
            raise ReaderRevoked("this access code has been revoked; ask the study team for a new one")
        if a.shown_at is None:
            raise NotShownYet("this item has not been shown to the reader yet; ask for the next item first")
        if latest is not None:
            raise AlreadyAnswered("this item is already answered; a change must go through a correction")
        ans = Answer(assignment_id=a.id, reader_id=reader.id, version=1, payload=payload,
                     idempotency_key=idempotency_key, shown_at=a.shown_at, submitted_at=now)
        try:
            with session.begin_nested():
                session.add(ans)
                session.flush()
        except IntegrityError:
            # a concurrent request with this key (or for this assignment) committed first
            if (replay := _replay(session, idempotency_key, reader.id, a.id, payload)) is not None:
                return replay
            raise AlreadyAnswered("this item was answered concurrently; a change must go through a correction")
        if study.design_locked_at is None:  # a lock is never lifted, so a locked study needs no UPDATE
            lock_design(session, a.study_id, actor=f"reader:{reader.pseudonym}", now=now)
        audit.record(session, actor=f"reader:{reader.pseudonym}", action="answer.submitted", entity="answer",
                     entity_id=ans.id, study_id=a.study_id, at=now,
                     after={"assignment_id": a.id, "version": 1, "payload": payload, "idempotency_key": idempotency_key,
                            "shown_at": a.shown_at, "submitted_at": now})
        session.flush()
        return _result(ans, False)
    except BaseException:
        session.rollback()
        raise


LOCKED_AFTER_AI = "the AI suggestion for this case has been shown"


def locked_after_ai(session: Session, assignment_ids) -> set[int]:
    """The assignments among ``assignment_ids`` whose answer can no longer be corrected: a later step of the
    same case (the sequential design's AI step) has been shown to the reader. The one rule that
    :func:`correct` enforces and the reader's answers screen displays."""
    ids = list(assignment_ids)
    if not ids:
        return set()
    return set(session.scalars(select(Assignment.depends_on_id).where(
        Assignment.depends_on_id.in_(ids), Assignment.shown_at.is_not(None))))


LOCKED_BY_AIDED_BLOCK = "the AI-assisted readings of this session have begun"


def locked_by_aided_block(session: Session, assignment_ids) -> set[int]:
    """The unaided readings among ``assignment_ids`` whose reader has been shown an AI-assisted reading of the
    same session: their answers close to corrections then (unless the study's
    ``[study] unaided_corrections_after_ai`` says otherwise), since the AI could change them. The rule
    :func:`correct` enforces and the reader's answers screen displays."""
    ids = list(assignment_ids)
    if not ids:
        return set()
    aided = aliased(Assignment)
    return set(session.scalars(select(Assignment.id).where(
        Assignment.id.in_(ids), Assignment.condition.not_in(AIDED_CONDITIONS),
        exists().where(aided.reader_id == Assignment.reader_id, aided.session == Assignment.session,
                       aided.condition.in_(AIDED_CONDITIONS), aided.shown_at.is_not(None)))))


def correct(session: Session, reader_id: int, answer_id: int, new_answer: dict, reason: str,
            idempotency_key: str | None = None, now: datetime | None = None) -> SubmitResult:
    """Store a corrected answer as a new version with a reason (only where the study allows corrections)."""
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("a correction needs a reason")
    reason = reason.strip()
    key = idempotency_key or f"correction:{uuid.uuid4()}"
    _check_key(key)
    now = now or utcnow()
    try:
        reader = _reader(session, reader_id, active=False)
        old = session.get(Answer, answer_id)
        if old is None or old.reader_id != reader.id:
            raise NotYourAssignment(f"answer {answer_id} is not one of this reader's")
        a = session.get(Assignment, old.assignment_id)
        config = study_config(session.get(Study, a.study_id))
        if not config.corrections_allowed:
            raise CorrectionsNotAllowed("this study does not allow answers to be corrected")
        payload = validate_answer(config.questions, new_answer, allow_ungradable=config.allow_ungradable)
        if (replay := _replay(session, key, reader.id, a.id, payload, reason)) is not None:
            return replay
        if reader.revoked_at is not None:
            raise ReaderRevoked("this access code has been revoked; ask the study team for a new one")
        latest = latest_answer(session, a.id)
        if latest.id != old.id:
            # a concurrent twin with this key may have committed since the first look
            if (replay := _replay(session, key, reader.id, a.id, payload, reason)) is not None:
                return replay
            raise StaleVersion(f"answer {answer_id} is version {old.version}; correct the latest "
                               f"(version {latest.version}, answer {latest.id})")
        if a.id in locked_after_ai(session, [a.id]):
            raise AnswerLocked(f"the unaided answer is locked: {LOCKED_AFTER_AI}")
        if not config.unaided_corrections_after_ai and a.id in locked_by_aided_block(session, [a.id]):
            raise AnswerLocked(f"the unaided answer is locked: {LOCKED_BY_AIDED_BLOCK}")
        if payload == old.payload:
            raise ValueError("the correction is identical to the current answer")
        ans = Answer(assignment_id=a.id, reader_id=reader.id, version=old.version + 1, payload=payload,
                     reason=reason, idempotency_key=key, shown_at=old.shown_at, submitted_at=now)
        try:
            with session.begin_nested():
                session.add(ans)
                session.flush()
        except IntegrityError:
            if (replay := _replay(session, key, reader.id, a.id, payload, reason)) is not None:
                return replay
            raise StaleVersion("the answer was corrected concurrently; reload and correct the latest version")
        audit.record(session, actor=f"reader:{reader.pseudonym}", action="answer.corrected", entity="answer",
                     entity_id=ans.id, study_id=a.study_id, at=now,
                     before={"answer_id": old.id, "version": old.version, "payload": old.payload},
                     after={"assignment_id": a.id, "version": ans.version, "payload": payload, "reason": reason,
                            "idempotency_key": key, "submitted_at": now})
        session.flush()
        return _result(ans, False)
    except BaseException:
        session.rollback()
        raise
