"""A reader's review and correction of their own answers.

What a reader may see is built field by field (:class:`OwnReading`): no case key, no reference answer and no AI
output, for any reading. Whether an answer can be corrected is ``study.domain.workflow``'s rule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from study.domain import rules, workflow
from study.domain.audit import require_reason
from study.domain.cases import display_files
from study.domain.reader_operations import reader_by_id
from study.domain.reader_screen import describe_answer
from study.domain.studies import study_config
from study.storage.models import Answer, Assignment, Case, Study

CONDITION_WORDS = {"unaided": "Unaided", "ai": "AI-assisted", "ai_saliency": "AI-assisted with overlay"}


@dataclass(frozen=True)
class OwnReading:
    """One of a reader's answered readings as the reader may see it: where it was, what kind of reading, the
    reader's own answer. Built field by field: no case key, no reference answer, no AI output."""
    assignment_id: int
    answer_id: int  # the latest version: the one a correction replaces
    session: int
    position: int  # k in "case k of this session"
    reading: str  # "Unaided", "AI-assisted", ...
    step: int
    version: int
    answer: tuple[tuple[str, str], ...]  # (question, answer in words)
    payload: dict  # the reader's own answer, to pre-fill the correction form
    submitted_at: datetime
    image_ref: str
    locked: str | None = None  # why this answer cannot be corrected, in words


@dataclass(frozen=True)
class OwnAnswers:
    study_id: int
    revoked: bool
    corrections_allowed: bool
    session: int | None  # the reader's current session (of the reading shown last); None before any
    questions: tuple[dict, ...]
    allow_ungradable: bool
    readings: tuple[OwnReading, ...]
    store_root: str | None = None  # where the study's photographs are (``Study.store_root``)


def current_session(session: Session, reader_id: int) -> int | None:
    """The session a reader is in: that of the last reading shown to them. Earlier sessions are closed to
    corrections (a crossover's unaided answers must not be changed after the AI-assisted session)."""
    return session.scalar(select(func.max(Assignment.session))
                          .where(Assignment.reader_id == reader_id, Assignment.shown_at.is_not(None)))


def own_answers(session: Session, reader_id: int) -> OwnAnswers:
    """A reader's answered readings of their current session, latest version each, for review."""

    reader = reader_by_id(session, reader_id)
    study = session.get(Study, reader.study_id)
    config = study_config(study)
    questions = tuple(q.to_dict() for q in config.questions)
    number = current_session(session, reader.id)
    if number is None:
        return OwnAnswers(reader.study_id, reader.revoked_at is not None, config.corrections_allowed, None,
                          questions, config.allow_ungradable, (), study.store_root)
    latest = rules.latest_version_subquery()
    out = []
    rows = session.execute(
        select(Assignment.id, Assignment.session, Assignment.position, Assignment.condition, Assignment.step,
               Case.image_ref, Answer.id, Answer.version, Answer.payload, Answer.submitted_at)
        .join(Case, Case.id == Assignment.case_id)
        .join(latest, latest.c.assignment_id == Assignment.id)
        .join(Answer, (Answer.assignment_id == Assignment.id) & (Answer.version == latest.c.v))
        .where(Assignment.reader_id == reader.id, Assignment.session == number)
        .order_by(Assignment.position)).all()
    firsts = {p: k for k, p in enumerate(sorted(session.scalars(select(Assignment.position).where(
        Assignment.reader_id == reader.id, Assignment.session == number))), start=1)}
    followed = workflow.locked_after_ai(session, [row[0] for row in rows])
    blocked = set() if config.unaided_corrections_after_ai else workflow.locked_by_aided_block(session, [r[0] for r in rows])
    for aid, sess, position, condition, step, image_ref, answer_id, version, payload, submitted in rows:
        locked = (f"locked: {workflow.LOCKED_AFTER_AI}" if aid in followed else
                  f"locked: {workflow.LOCKED_BY_AIDED_BLOCK}" if aid in blocked else None)
        out.append(OwnReading(assignment_id=aid, answer_id=answer_id, session=sess, position=firsts[position],
                              reading=CONDITION_WORDS.get(condition, condition), step=step, version=version,
                              answer=tuple(describe_answer(questions, payload)), payload=dict(payload),
                              submitted_at=submitted, image_ref=image_ref, locked=locked))
    return OwnAnswers(reader.study_id, reader.revoked_at is not None, config.corrections_allowed, number,
                      questions, config.allow_ungradable, tuple(out), study.store_root)


def own_photo(study_id: int, image_ref: str, store_root: str | None = None):
    """The screen-size file of a reader's own case photograph (no overlay), or None when it cannot be made;
    ``store_root``: the study's (``OwnAnswers.store_root``), else the configured one."""

    try:
        return display_files(study_id, image_ref, store_root).screen
    except Exception:  # noqa: BLE001 - the review works without the photograph
        return None


def correct_own_answer(session: Session, reader_id: int, answer_id: int, new_answer: dict, reason: str,
                       idempotency_key: str | None = None):
    """A reader's correction of one of their current session's answers: a new version with the reason
    (``workflow.correct`` checks the study allows it, that it is the latest version and not locked, and
    audits it)."""
    reason = require_reason(reason)
    ans = session.get(Answer, answer_id)
    if ans is None or ans.reader_id != reader_id:
        raise workflow.NotYourAssignment(f"answer {answer_id} is not one of yours")
    number = current_session(session, reader_id)
    if session.get(Assignment, ans.assignment_id).session != number:
        raise workflow.CorrectionsNotAllowed("only answers of your current session can be corrected")
    return workflow.correct(session, reader_id, answer_id, new_answer, reason, idempotency_key)
