"""The audit trail: one append-only row per write, in the same transaction as the write.

Why in the same transaction: an audit row can then never exist without its change, nor a change
without its audit row. Callers pass JSON-able ``before``/``after`` snapshots; datetimes and bytes are
converted here so every caller records them the same way.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from study.storage import text as stored_text
from study.storage.models import AuditEvent, utcnow


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return {"sha256": hashlib.sha256(value).hexdigest(), "bytes": len(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    return value


def record(session: Session, *, actor: str, action: str, entity: str, entity_id: Any = None,
           before: dict | None = None, after: dict | None = None, study_id: int | None = None,
           at: datetime | None = None) -> AuditEvent:
    """Add an audit event to ``session`` (committed with the caller's change)."""
    event = AuditEvent(study_id=study_id, at=at or utcnow(), actor=actor, action=action, entity=entity,
                       entity_id=None if entity_id is None else str(entity_id),
                       before=_jsonable(before) if before is not None else None,
                       after=_jsonable(after) if after is not None else None)
    session.add(event)
    return event


def history(session: Session, entity: str, entity_id: Any) -> list[AuditEvent]:
    """Every audit event about one entity, oldest first."""
    return list(session.scalars(select(AuditEvent).where(AuditEvent.entity == entity,
                                                         AuditEvent.entity_id == str(entity_id))
                                .order_by(AuditEvent.id)))


MAX_REASON = 2000


def require_reason(reason: Any) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("a reason is required: it is kept with the change in the audit trail")
    if len(reason) > MAX_REASON:
        raise ValueError(f"the reason is {len(reason)} characters long; at most {MAX_REASON}")
    if (why := stored_text.char_problem(reason, multiline=True)) is not None:
        raise ValueError(f"the reason {why}")
    return reason.strip()
