"""The audit trail as a file: formula-safe CSV (UTC times, before/after as JSON) and its export, which is itself
audited (who took which events, and a hash of the file), as REDCap logs its exports."""

from __future__ import annotations

import csv
import io
import json

from sqlalchemy.orm import Session

from study.domain import audit
from study.domain.audit_trail import AuditFilter, audit_trail
from study.outputs.export import csv_safe

AUDIT_COLUMNS = ("id", "at_utc", "study_id", "actor", "action", "entity", "entity_id", "before", "after")

def _json(value) -> str:
    return "" if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)

def audit_csv(rows: list[dict]) -> str:
    """The events as CSV (UTC ISO times, before/after as JSON), every cell formula-safe
    (``study.outputs.export.csv_safe``): actors, ids and typed reasons come from people."""

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(AUDIT_COLUMNS)
    for r in rows:
        cells = (r["id"], r["at"].isoformat(), r["study_id"], r["actor"], r["action"], r["entity"], r["entity_id"],
                 _json(r["before"]), _json(r["after"]))
        writer.writerow([csv_safe("" if c is None else c) for c in cells])
    return buf.getvalue()

def export_audit(session: Session, study_id: int, flt: AuditFilter = AuditFilter(), *, actor: str) -> tuple[str, int]:
    """(CSV text, events) of the filtered trail; the export itself is audited (who took which events, and a
    hash of the file), as REDCap logs its exports."""
    rows, total = audit_trail(session, study_id, flt)
    text = audit_csv(rows)
    audit.record(session, actor=actor, action="audit.exported", entity="study", entity_id=study_id,
                 study_id=study_id, after={"filter": flt.described(), "events": total, "file": text.encode()})
    session.flush()
    return text, total
