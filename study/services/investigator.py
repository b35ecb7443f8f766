"""The investigator service: what the investigator's set-up, monitor and export screens call — studies,
cases, readers and their codes, the design, precompute, the study's summary, the monitor, exports.

It also carries the study operations screens (revoke or reissue a code, open a session early, the audit
trail, the case browser, a reader's detail), over the domain modules ``study.domain.reader_operations``,
``audit_trail`` and ``monitoring``.

Why a service: the pages hold no transaction. Functions that take a session factory open their own: reads
a read-only ``db.reading`` that never writes; writes a session that the function commits (the domain below,
``study.domain.cases``, ``readers``, ``design``, ``studies``, ``reader_operations``, never commits; the
``precompute`` job commits its batches). The
functions that take a ``session`` (``study_summary``, ``monitor``, ``accuracy_by_condition_level``) are for
callers that hold one already (the commands, the tests); a page calls their factory-taking forms
(``setup_summary``, ``live_monitor``). The analysis has its own service (``study.services.analysis``).
The exceptions and helpers a page needs (``DesignLocked``, ``AuditFilter``, ``MAX_REASON``, ...) are
re-exported here, so each investigator page imports this one service; the operations refuse with
``ValueError`` (``OperationRefused``).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from study.domain import audit_trail as trail
from study.domain import monitoring, reader_operations
from study.domain.audit import MAX_REASON
from study.domain.audit_trail import AuditFilter
from study.domain.cases import ManifestError, import_zip
from study.domain.config import StudyConfigError, parse_text
from study.domain.design import build_design as build
from study.domain.monitoring import (
    CaseDetail,
    ReaderDetail,
    Thresholds,
    accuracy_by_condition_level,
    monitor,
    study_summary,
)
from study.domain.readers import READER_COLUMNS, add_reader, parse_readers_csv
from study.domain.studies import DesignLocked, create_study, get_study, study_config
from study.domain.timefmt import day_range, zone_label
from study.jobs.precompute import precompute
from study.outputs import audit_export
from study.outputs.export import csv_safe
from study.storage.db import reading
from study.storage.models import Case, Study

OperationRefused = ValueError  # what the domain operations raise when it refuses an operation (the page shows it)

__all__ = ["CSV_ALONE", "MAX_REASON", "READER_COLUMNS", "AuditFilter", "CaseDetail", "DesignLocked", "LiveMonitor",
           "OperationRefused", "ReaderCodes", "ReaderDetail", "Thresholds", "accuracy_by_condition_level",
           "add_readers_csv", "audit_filter_choices", "audit_trail", "build_design", "case_detail", "case_list",
           "codes_csv", "create_study_from_toml", "day_range", "export_audit", "import_cases_upload",
           "list_studies", "live_monitor", "monitor", "override_washout", "reader_detail", "readers_overview",
           "readers_with_thresholds", "reissue_code", "revoke_code", "run_precompute", "setup_summary",
           "study_summary", "zone_label"]


# --- set-up -----------------------------------------------------------------------------------------------

def list_studies(factory: sessionmaker[Session]) -> list[tuple[int, str]]:
    """(id, name) of every study, for the investigator's study picker (a read-only transaction)."""
    with reading(factory) as session:
        return [tuple(row) for row in session.execute(select(Study.id, Study.name).order_by(Study.id)).all()]


def create_study_from_toml(factory: sessionmaker[Session], text: str, actor: str) -> tuple[int | None, list[str]]:
    """(study id, []) or (None, every problem) for an uploaded TOML file."""

    try:
        config = parse_text(text, "uploaded TOML")
    except StudyConfigError as exc:
        return None, list(exc.problems)
    with factory() as session:
        try:
            study_id = create_study(session, config, text, actor=actor).id
        except ValueError as exc:
            return None, [str(exc)]
        session.commit()
        return study_id, []


CSV_ALONE = ("a manifest CSV uploaded on its own cannot bring its images (image paths must be inside the "
             "upload): upload a ZIP holding manifest.csv and the images, with image_path relative to the "
             "manifest's folder; or import on the server with `python -m study import-cases MANIFEST.csv`")


def import_cases_upload(factory: sessionmaker[Session], study_id: int, name: str, data: bytes,
                        actor: str) -> tuple[int, list[str]]:
    """Import a ZIP holding one ``manifest.csv`` and its images (``study.domain.cases.import_zip``: bounded by
    ``study.domain.cases.LIMITS``, paths confined to the manifest's folder, checked before anything is extracted).
    Returns (cases imported, the problems as 'row r, column c: reason' or 'member: reason', at most
    ``LIMITS.max_problems`` of them, then a line counting the rest); all or nothing."""

    if not name.lower().endswith(".zip"):
        return 0, [CSV_ALONE]
    with factory() as session:
        try:
            cases = import_zip(session, study_id, data, name=Path(name).name, actor=actor)
        except ManifestError as exc:
            return 0, exc.messages()
        except ValueError as exc:
            return 0, [str(exc)]
        session.commit()
        return len(cases), []




def add_readers_csv(factory: sessionmaker[Session], study_id: int, text: str, actor: str) -> tuple[list[dict], list[str]]:
    """Add readers from CSV (display_name, years_experience[, specialty, site]); returns (rows with the
    plain codes — shown once, stored nowhere —, problems). Nothing is added if any row is wrong."""

    with factory() as session:
        rows, problems = parse_readers_csv(text, study_config(get_study(session, study_id)))
        if problems:
            return [], problems
        out = []
        try:   # one transaction: a failure at any row adds nobody
            for row in rows:
                reader, code = add_reader(session, study_id, display_name=row.display_name,
                                          years_experience=row.years_experience, specialty=row.specialty,
                                          site=row.site, actor=actor)
                out.append({"pseudonym": reader.pseudonym, "display_name": reader.display_name,
                            "level": reader.level, "access_code": code})
            session.commit()
        except BaseException:
            session.rollback()
            raise
        return out, []


def codes_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["pseudonym", "display_name", "level", "access_code"])
    writer.writeheader()
    writer.writerows({k: csv_safe(v) for k, v in row.items()} for row in rows)  # display names are typed by people
    return buf.getvalue()


@dataclass
class ReaderCodes:
    rows: list[dict] = field(default_factory=list)
    downloaded: bool = False


def build_design(factory: sessionmaker[Session], study_id: int, actor: str) -> int:
    with factory() as session:
        count = build(session, study_id, actor=actor)
        session.commit()
        return count


def run_precompute(factory: sessionmaker[Session], study_id: int, *, loaded=None, actor: str = "precompute",
                   on_progress: Callable[[int, int], None] | None = None):
    """Precompute AI outputs in small slices so a page can show a progress bar; resumable."""

    with factory() as session:
        total = session.scalar(select(func.count()).select_from(Case).where(Case.study_id == study_id)) or 0
        return precompute(session, study_id, loaded=loaded, actor=actor,
                          on_progress=on_progress), total


def setup_summary(factory: sessionmaker[Session], study_id: int) -> dict:
    """``study_summary`` in a read-only transaction of its own: the set-up page's counts and readers."""
    with reading(factory) as session:
        return study_summary(session, study_id)


# --- monitor and descriptive accuracy ---------------------------------------------------------------------


@dataclass
class LiveMonitor:
    """What the live monitor draws, read in one transaction."""
    rows: list[dict]  # per reader and session (``monitor``)
    fast_reads: dict[tuple[str, int], int]  # (reader, session) -> fast reads
    readers: list[dict]  # ``study.domain.monitoring.readers_overview``: the flags per reader
    thresholds: Thresholds


def live_monitor(factory: sessionmaker[Session], study_id: int) -> LiveMonitor:
    with reading(factory) as session:
        return LiveMonitor(monitor(session, study_id), monitoring.fast_reads_by_session(session, study_id),
                           monitoring.readers_overview(session, study_id), monitoring.thresholds(session, study_id))


# --- study operations: readers' codes, the washout, the audit trail, cases, a reader (study.domain) ---

def readers_overview(factory: sessionmaker[Session], study_id: int) -> list[dict]:
    """Every reader of the study with code, progress, washout and flags (read-only)."""
    with reading(factory) as session:
        return monitoring.readers_overview(session, study_id)


def readers_with_thresholds(factory: sessionmaker[Session], study_id: int) -> tuple[list[dict], Thresholds]:
    """(``readers_overview``, the study's flag thresholds), read in one transaction."""
    with reading(factory) as session:
        return monitoring.readers_overview(session, study_id), monitoring.thresholds(session, study_id)


def reader_detail(factory: sessionmaker[Session], reader_id: int) -> ReaderDetail:
    with reading(factory) as session:
        return monitoring.reader_detail(session, reader_id)


def revoke_code(factory: sessionmaker[Session], reader_id: int, *, actor: str, reason: str) -> str:
    """Revoke a reader's access code (audited with the reason); returns the reader's pseudonym."""
    with factory() as session:
        pseudonym = reader_operations.revoke_code(session, reader_id, actor=actor, reason=reason).pseudonym
        session.commit()
        return pseudonym


def reissue_code(factory: sessionmaker[Session], reader_id: int, *, actor: str, reason: str) -> str:
    """A new access code for the reader (audited with the reason); returns the plain code, to show once."""
    with factory() as session:
        code = reader_operations.reissue_code(session, reader_id, actor=actor, reason=reason)
        session.commit()
        return code


def override_washout(factory: sessionmaker[Session], reader_id: int, session_number: int | None = None, *,
                     actor: str, reason: str) -> int:
    """Open the reader's next session (or ``session_number``) before the washout ends; returns the session."""
    with factory() as session:
        number = reader_operations.override_washout(session, reader_id, session_number, actor=actor, reason=reason)
        session.commit()
        return number


def audit_filter_choices(factory: sessionmaker[Session], study_id: int) -> tuple[list[str], list[str], list[str]]:
    """(actors, event types, reader pseudonyms) the audit trail's filters offer (read-only)."""
    with reading(factory) as session:
        actors, actions = trail.audit_choices(session, study_id)
        return actors, actions, [r["pseudonym"] for r in monitoring.readers_overview(session, study_id)]


def audit_trail(factory: sessionmaker[Session], study_id: int, flt: AuditFilter = AuditFilter(), *,
                limit: int | None = None, newest_first: bool = False) -> tuple[list[dict], int]:
    """(events, how many match in all) under ``flt`` (read-only)."""
    with reading(factory) as session:
        return trail.audit_trail(session, study_id, flt, limit=limit, newest_first=newest_first)


def export_audit(factory: sessionmaker[Session], study_id: int, flt: AuditFilter = AuditFilter(), *,
                 actor: str) -> tuple[str, int]:
    """(CSV text, events) of the filtered trail; the export is itself audited."""
    with factory() as session:
        exported = audit_export.export_audit(session, study_id, flt, actor=actor)
        session.commit()
        return exported


def case_list(factory: sessionmaker[Session], study_id: int) -> list[dict]:
    with reading(factory) as session:
        return monitoring.case_list(session, study_id)


def case_detail(factory: sessionmaker[Session], study_id: int, case_id: int) -> CaseDetail:
    with reading(factory) as session:
        return monitoring.case_detail(session, study_id, case_id)


# --- exports ----------------------------------------------------------------------------------------------
