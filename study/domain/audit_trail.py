"""Reading the audit trail: filters (actors, actions, a reader, a time window) and the matching rows. Writing an
event is ``study.domain.audit``; the trail as a formula-safe CSV is ``study.outputs.audit_export``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, and_, cast, func, or_, select
from sqlalchemy.orm import Session

from study.domain.reader_operations import find_reader
from study.domain.studies import get_study
from study.storage.models import Answer, Assignment, AuditEvent, Reader


@dataclass(frozen=True)
class AuditFilter:
    """Which audit events to list. ``actors`` / ``actions``: exact names, or a prefix ending in ``*``
    (``reader:*``, ``reader.*``); ``reader``: a pseudonym (their own actions and everything about them, their
    readings and answers); ``since`` inclusive, ``until`` exclusive; ``with_global``: also the events tied to
    no study (investigator sign-ins, failed sign-ins)."""
    actors: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    reader: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    with_global: bool = True

    def described(self) -> dict:
        return {k: v for k, v in {"actors": list(self.actors), "actions": list(self.actions), "reader": self.reader,
                                  "since": self.since, "until": self.until,
                                  "with_global": self.with_global}.items() if v not in (None, [])}


def _matches(column, patterns: tuple[str, ...]):
    conds = []
    for p in patterns:
        if p.endswith("*"):
            prefix = p[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conds.append(column.like(prefix + "%", escape="\\"))
        else:
            conds.append(column == p)
    return or_(*conds)


def _about_reader(reader: Reader):
    as_text = lambda col: cast(col, String)  # noqa: E731 - entity_id is text; ids are integers
    return or_(AuditEvent.actor == f"reader:{reader.pseudonym}",
               and_(AuditEvent.entity == "reader", AuditEvent.entity_id == str(reader.id)),
               and_(AuditEvent.entity == "assignment", AuditEvent.entity_id.in_(
                   select(as_text(Assignment.id)).where(Assignment.reader_id == reader.id))),
               and_(AuditEvent.entity == "answer", AuditEvent.entity_id.in_(
                   select(as_text(Answer.id)).where(Answer.reader_id == reader.id))))


def _audit_query(session: Session, study_id: int, flt: AuditFilter):
    study = get_study(session, study_id)
    scope = AuditEvent.study_id == study.id
    query = select(AuditEvent).where(or_(scope, AuditEvent.study_id.is_(None)) if flt.with_global else scope)
    if flt.actors:
        query = query.where(_matches(AuditEvent.actor, flt.actors))
    if flt.actions:
        query = query.where(_matches(AuditEvent.action, flt.actions))
    if flt.reader:
        query = query.where(_about_reader(find_reader(session, study.id, flt.reader)))
    if flt.since is not None:
        query = query.where(AuditEvent.at >= _aware(flt.since))
    if flt.until is not None:
        query = query.where(AuditEvent.at < _aware(flt.until))
    return query


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("give times with their zone (study.domain.timefmt / parse_when make them)")
    return value


def event_row(e: AuditEvent) -> dict:
    return {"id": e.id, "at": e.at, "study_id": e.study_id, "actor": e.actor, "action": e.action,
            "entity": e.entity, "entity_id": e.entity_id, "before": e.before, "after": e.after}


def audit_trail(session: Session, study_id: int, flt: AuditFilter = AuditFilter(), *, limit: int | None = None,
                newest_first: bool = False) -> tuple[list[dict], int]:
    """(events as dicts, how many match in all) of one study's audit trail under ``flt``; at most ``limit``."""
    query = _audit_query(session, study_id, flt)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    query = query.order_by(AuditEvent.id.desc() if newest_first else AuditEvent.id)
    if limit is not None:
        query = query.limit(limit)
    return [event_row(e) for e in session.scalars(query)], int(total)


def audit_choices(session: Session, study_id: int) -> tuple[list[str], list[str]]:
    """(actors, actions) that occur in the study's trail (and in events tied to no study), sorted."""
    where = or_(AuditEvent.study_id == study_id, AuditEvent.study_id.is_(None))
    actors = list(session.scalars(select(AuditEvent.actor).where(where).distinct().order_by(AuditEvent.actor)))
    actions = list(session.scalars(select(AuditEvent.action).where(where).distinct().order_by(AuditEvent.action)))
    return actors, actions


