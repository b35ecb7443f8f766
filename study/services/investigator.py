"""The investigator service: what the investigator's set-up, monitor and export screens call — studies,
cases, readers and their codes, the design, precompute, the study's summary, the monitor, exports.

It also carries the study operations screens (revoke or reissue a code, open a session early, the audit
trail, the case browser, a reader's detail), over the domain library ``study.domain.operations``.

Why a service: the pages hold no transaction. Functions that take a session factory open their own: reads
a read-only ``db.reading`` that never writes; writes a session in which the libraries below
(``study.domain.cases``, ``readers``, ``design``, ``studies``, ``precompute``, ``operations``) still commit. The
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
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from study.domain import operations
from study.domain.cases import ManifestError, import_zip
from study.domain.config import StudyConfigError, parse_text
from study.domain.design import build_design as build
from study.domain.design import verify_design
from study.domain.flags import reading_seconds
from study.domain.operations import MAX_REASON, AuditFilter, CaseDetail, ReaderDetail, Thresholds, day_range, zone_label
from study.domain.readers import add_reader
from study.domain.rules import Progress, latest_version_subquery, progress_by, score
from study.domain.studies import DesignLocked, create_study, get_study, study_config
from study.jobs.precompute import precompute
from study.outputs.export import csv_safe
from study.storage.db import reading
from study.storage.models import AIOutput, Answer, Assignment, Case, Reader, Study
from study.storage.settings import store_root

OperationRefused = ValueError  # what study.domain.operations raises when it refuses an operation (the page shows it)

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
            return create_study(session, config, text, actor=actor).id, []
        except ValueError as exc:
            return None, [str(exc)]


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
        try:   # one transaction: a failure at any row adds nobody
            for row in rows:
                reader, code = add_reader(session, study_id, display_name=row["display_name"],
                                          years_experience=float(row["years_experience"]),
                                          specialty=(row.get("specialty") or None), site=(row.get("site") or None),
                                          actor=actor, commit=False)
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
        return build(session, study_id, actor=actor)


def run_precompute(factory: sessionmaker[Session], study_id: int, *, loaded=None, actor: str = "precompute",
                   on_progress: Callable[[int, int], None] | None = None):
    """Precompute AI outputs in small slices so a page can show a progress bar; resumable."""

    with factory() as session:
        total = session.scalar(select(func.count()).select_from(Case).where(Case.study_id == study_id)) or 0
        return precompute(session, study_id, loaded=loaded, store_root=store_root(), actor=actor,
                          on_progress=on_progress), total


def setup_summary(factory: sessionmaker[Session], study_id: int) -> dict:
    """``study_summary`` in a read-only transaction of its own: the set-up page's counts and readers."""
    with reading(factory) as session:
        return study_summary(session, study_id)


# --- monitor and descriptive accuracy ---------------------------------------------------------------------

def study_summary(session: Session, study_id: int) -> dict:
    """Counts and per-reader progress of one study (read-only): the set-up page's summary and
    ``python -m study status``."""

    study = get_study(session, study_id)

    def count(model, *where):
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0

    prog = progress_by(session, study_id=study.id)  # the one progress rule (study.domain.rules)
    none = Progress(0, 0)
    readers = [{"pseudonym": r.pseudonym, "level": r.level, "site": r.site, "revoked": r.revoked_at is not None,
                "done": prog.get(r.id, none).done, "total": prog.get(r.id, none).total}
               for r in session.scalars(select(Reader).where(Reader.study_id == study.id).order_by(Reader.pseudonym))]
    case_ids = select(Case.id).where(Case.study_id == study.id)
    in_study = Answer.assignment_id.in_(select(Assignment.id).where(Assignment.study_id == study.id))
    return {
        "study": study.name, "id": study.id, "design": study.design, "seed": study.seed,
        "locked_at": study.design_locked_at.isoformat() if study.design_locked_at else None,
        "cases": count(Case, Case.study_id == study.id),
        "ai_outputs": count(AIOutput, AIOutput.case_id.in_(case_ids)),
        "assignments": count(Assignment, Assignment.study_id == study.id),
        "answers": count(Answer, in_study, Answer.version == 1),
        "corrections": count(Answer, in_study, Answer.version > 1),
        "design_check": len(verify_design(session, study.id)),
        "readers": readers,
    }


def monitor(session: Session, study_id: int) -> list[dict]:
    """Per reader and session: cases done/total (``study.domain.rules.progress_by``), median seconds per case of the
    first answers, last activity (UTC)."""

    prog = progress_by(session, study_id=study_id, by_session=True)
    rows = session.execute(
        select(Reader.id, Reader.pseudonym, Reader.level, Assignment.session, Assignment.shown_at,
               Answer.submitted_at)
        .join(Assignment, Assignment.reader_id == Reader.id)
        .outerjoin(Answer, (Answer.assignment_id == Assignment.id) & (Answer.version == 1))
        .where(Reader.study_id == study_id)).all()
    groups: dict[tuple, dict] = {}
    for reader_id, pseudonym, level, sess, shown, submitted in rows:
        p = prog[(reader_id, sess)]
        g = groups.setdefault((pseudonym, sess), {"reader": pseudonym, "level": level, "session": sess,
                                                  "done": p.done, "total": p.total, "_times": [],
                                                  "last_activity": None})
        seconds = reading_seconds(shown, submitted)
        if seconds is not None:
            g["_times"].append(seconds)
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
    ``study.domain.rules``; ungradable readings are counted apart (``ungradable``), not in the accuracy."""

    primary = study_config(get_study(session, study_id)).primary_question
    latest = latest_version_subquery()
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


@dataclass
class LiveMonitor:
    """What the live monitor draws, read in one transaction."""
    rows: list[dict]  # per reader and session (``monitor``)
    fast_reads: dict[tuple[str, int], int]  # (reader, session) -> fast reads
    readers: list[dict]  # ``study.domain.operations.readers_overview``: the flags per reader
    thresholds: Thresholds


def live_monitor(factory: sessionmaker[Session], study_id: int) -> LiveMonitor:
    with reading(factory) as session:
        return LiveMonitor(monitor(session, study_id), operations.fast_reads_by_session(session, study_id),
                           operations.readers_overview(session, study_id), operations.thresholds(session, study_id))


# --- study operations: readers' codes, the washout, the audit trail, cases, a reader (study.domain.operations) ---

def readers_overview(factory: sessionmaker[Session], study_id: int) -> list[dict]:
    """Every reader of the study with code, progress, washout and flags (read-only)."""
    with reading(factory) as session:
        return operations.readers_overview(session, study_id)


def readers_with_thresholds(factory: sessionmaker[Session], study_id: int) -> tuple[list[dict], Thresholds]:
    """(``readers_overview``, the study's flag thresholds), read in one transaction."""
    with reading(factory) as session:
        return operations.readers_overview(session, study_id), operations.thresholds(session, study_id)


def reader_detail(factory: sessionmaker[Session], reader_id: int) -> ReaderDetail:
    with reading(factory) as session:
        return operations.reader_detail(session, reader_id)


def revoke_code(factory: sessionmaker[Session], reader_id: int, *, actor: str, reason: str) -> str:
    """Revoke a reader's access code (audited with the reason); returns the reader's pseudonym."""
    with factory() as session:
        return operations.revoke_code(session, reader_id, actor=actor, reason=reason).pseudonym


def reissue_code(factory: sessionmaker[Session], reader_id: int, *, actor: str, reason: str) -> str:
    """A new access code for the reader (audited with the reason); returns the plain code, to show once."""
    with factory() as session:
        return operations.reissue_code(session, reader_id, actor=actor, reason=reason)


def override_washout(factory: sessionmaker[Session], reader_id: int, session_number: int | None = None, *,
                     actor: str, reason: str) -> int:
    """Open the reader's next session (or ``session_number``) before the washout ends; returns the session."""
    with factory() as session:
        return operations.override_washout(session, reader_id, session_number, actor=actor, reason=reason)


def audit_filter_choices(factory: sessionmaker[Session], study_id: int) -> tuple[list[str], list[str], list[str]]:
    """(actors, event types, reader pseudonyms) the audit trail's filters offer (read-only)."""
    with reading(factory) as session:
        actors, actions = operations.audit_choices(session, study_id)
        return actors, actions, [r["pseudonym"] for r in operations.readers_overview(session, study_id)]


def audit_trail(factory: sessionmaker[Session], study_id: int, flt: AuditFilter = AuditFilter(), *,
                limit: int | None = None, newest_first: bool = False) -> tuple[list[dict], int]:
    """(events, how many match in all) under ``flt`` (read-only)."""
    with reading(factory) as session:
        return operations.audit_trail(session, study_id, flt, limit=limit, newest_first=newest_first)


def export_audit(factory: sessionmaker[Session], study_id: int, flt: AuditFilter = AuditFilter(), *,
                 actor: str) -> tuple[str, int]:
    """(CSV text, events) of the filtered trail; the export is itself audited."""
    with factory() as session:
        return operations.export_audit(session, study_id, flt, actor=actor)


def case_list(factory: sessionmaker[Session], study_id: int) -> list[dict]:
    with reading(factory) as session:
        return operations.case_list(session, study_id)


def case_detail(factory: sessionmaker[Session], study_id: int, case_id: int) -> CaseDetail:
    with reading(factory) as session:
        return operations.case_detail(session, study_id, case_id)


# --- exports ----------------------------------------------------------------------------------------------
