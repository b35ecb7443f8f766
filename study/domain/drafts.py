"""Answer drafts: what a reader has ticked or typed for the reading on screen, kept until they submit it.

Why: the reading form lives in the browser, and a reload, a dropped connection or a new sign-in used to show
the case again with a blank form. Each change is stored here (one row per reading, replaced), and the form
starts from it. A draft is never an answer: it is not validated as one, not analysed, not exported; only what
the reader submits is (``study.domain.workflow.submit``). Only question ids of the study and plain values
are kept; text goes through the stored-text rules (``study.storage.text``), so a draft holds nothing a
submitted answer could not.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from study.storage import text as stored_text
from study.storage.models import Answer, AnswerDraft, Assignment

MAX_TEXT = 20_000  # characters of one typed value
MAX_ITEMS = 500  # ticked options of one question


def _clean(value: Any) -> Any:
    """A draft value as stored (None when it cannot be)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value if value == value and abs(value) < 1e15 else None
    if isinstance(value, str):
        return value if stored_text.problem(value, MAX_TEXT, multiline=True) is None else None
    if isinstance(value, (list, tuple)) and len(value) <= MAX_ITEMS:
        items = [v for v in value if isinstance(v, str) and stored_text.problem(v, 200) is None]
        return items if len(items) == len(value) else None
    return None


def clean_draft(question_ids, draft: dict) -> dict:
    """The storable part of ``draft``: known question ids (and ``ungradable``) with plain values."""
    known = set(question_ids) | {"ungradable"}
    out = {}
    for key, value in (draft or {}).items():
        if key in known:
            cleaned = _clean(value)
            if cleaned is not None or value is None:
                out[key] = cleaned
    return out


def save_draft(session: Session, reader_id: int, assignment_id: int, draft: dict, question_ids, now: datetime
               ) -> bool:
    """Keep ``draft`` for one of the reader's unanswered readings (False, storing nothing, for a reading
    that is not theirs or already answered). The caller commits."""
    owned = session.scalar(select(Assignment.id).where(
        Assignment.id == assignment_id, Assignment.reader_id == reader_id,
        ~exists().where(Answer.assignment_id == Assignment.id)))
    if owned is None:
        return False
    payload = clean_draft(question_ids, draft)
    row = session.scalar(select(AnswerDraft).where(AnswerDraft.assignment_id == assignment_id).with_for_update())
    if row is None:
        try:
            with session.begin_nested():
                session.add(AnswerDraft(reader_id=reader_id, assignment_id=assignment_id, payload=payload,
                                        saved_at=now))
            return True
        except IntegrityError:  # another tab saved the first draft meanwhile: replace it
            row = session.scalar(select(AnswerDraft).where(AnswerDraft.assignment_id == assignment_id))
    row.payload, row.saved_at = payload, now
    return True


def load_draft(session: Session, reader_id: int, assignment_id: int) -> tuple[dict, datetime] | None:
    """(the draft, when it was saved) of one of the reader's readings, or None."""
    row = session.scalar(select(AnswerDraft).where(AnswerDraft.assignment_id == assignment_id,
                                                   AnswerDraft.reader_id == reader_id))
    return None if row is None else (dict(row.payload), row.saved_at)
