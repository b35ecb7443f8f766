"""The investigator's analysis, for the analysis page: results, report, the cut-off's choices and the exports.

Why a service: the page stays widgets only; this opens the read-only transaction (readers' submits are
never held up) and calls the same ``analyze_study`` the command line calls, with the same defaults, so the
app's results JSON equals the CLI's.
"""

from __future__ import annotations

import json
import logging
import tempfile
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from study.analysis.study_analysis import Cutoff
from study.analysis.study_inputs import analyze_study
from study.domain import audit
from study.outputs.export import export
from study.outputs.report import render_html
from study.storage import db
from study.storage.models import Answer, Assignment

__all__ = ["AnalysisError", "Cutoff", "answers_stored", "cutoff", "export_bytes", "report_html", "results",
           "results_json"]

log = logging.getLogger(__name__)


class AnalysisError(Exception):
    """Why the analysis as a whole could not run, in words for the investigator (no data, a cut-off that leaves
    nothing); the sections of an analysis that ran carry their own reasons."""


def answers_stored(factory: sessionmaker[Session], study_id: int) -> int:
    """How many answers (first versions) the study holds: the page offers analysis and exports from one."""

    with db.reading(factory) as session:
        return session.scalar(select(func.count()).select_from(Answer)
                              .join(Assignment, Answer.assignment_id == Assignment.id)
                              .where(Assignment.study_id == study_id, Answer.version == 1)) or 0


def results(factory: sessionmaker[Session], study_id: int, cutoff: Cutoff = Cutoff()) -> dict:
    """The study's results object (``study.analysis.study_inputs.analyze_study``, default settings).

    Raises :class:`AnalysisError` with a sentence for the page; an unexpected failure is logged with its
    traceback (the server log) and the page gets a sentence without it."""
    try:
        with db.reading(factory) as session:
            return analyze_study(session, study_id, cutoff)
    except ValueError as exc:
        raise AnalysisError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - the page must never show a traceback
        log.exception("the analysis of study %s failed unexpectedly", study_id)
        raise AnalysisError("an unexpected problem stopped it; the server log has the details") from exc


def results_json(res: dict) -> str:
    """The results as the CLI writes them (``--json``)."""
    return json.dumps(res, indent=2, allow_nan=False)


def report_html(res: dict) -> str:
    """The HTML report of a results object (``study.outputs.report.render_html``)."""

    return render_html(res)


def cutoff(mode: str, until: datetime | None = None) -> Cutoff:
    """The cut-off the page's control names: 'all', 'completed' or 'until' (with ``until``, UTC)."""
    if mode not in ("all", "completed", "until"):
        raise ValueError(f"unknown cut-off {mode!r}")
    return Cutoff(completed_only=mode == "completed", until=until if mode == "until" else None)


def export_bytes(factory: sessionmaker[Session], study_id: int, fmt: str, *, actor: str | None = None) -> bytes:
    """One export (``study.outputs.export`` format: csv, parquet or imrmc) as bytes for a download button.

    With ``actor`` the export is written to the audit trail (who took which data, when, and a hash of
    what they took), as REDCap logs data exports; the report's internal CSV passes none.
    """

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
