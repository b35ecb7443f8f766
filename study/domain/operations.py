"""Study operations that the investigator's screens and the command line share: revoke or reissue an access
code, open a reader's next session early, the audit trail (filters, CSV), the case browser, a reader's
detail, the monitor's flags, and a reader's review and correction of their own answers.

Why one module: a page and a CLI command doing the same operation must not each decide which reader it
means, what is checked or what is audited. Every write here takes the actor and a reason, and the reason
is in the audit trail in the same transaction as the change. Rules that live elsewhere are called, never
restated: access codes (``study.domain.readers``), the washout and corrections (``study.domain.workflow``), the flags
(``study.domain.flags``), what is correct and which AI output was shown (``study.domain.rules``). Read functions take a
session and do not commit; write functions commit (the library calls below them do).

What a reader may see is built field by field (:class:`OwnReading`): no case key, no reference answer and
no AI output, for any reading.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import String, and_, cast, func, or_, select
from sqlalchemy.orm import Session

from study.domain import audit, flags, readers, rules, workflow
from study.domain.cases import display_files
from study.domain.reader_screen import describe_answer
from study.domain.studies import get_study, study_config
from study.outputs import timefmt
from study.outputs.export import csv_safe
from study.storage.models import AIOutput, Answer, Assignment, AuditEvent, Case, Reader, Study, WashoutOverride, utcnow
from study.storage.settings import store_root
from study.storage.settings import store_root as configured_root

MAX_REASON = 2000
CONDITION_WORDS = {"unaided": "Unaided", "ai": "AI-assisted", "ai_saliency": "AI-assisted with overlay"}
SIGN_IN_FAILURES = ("reader.sign_in_failed", "reader.sign_in_locked", "reader.sign_in_refused")
READER_EVENTS = ("reader.added", "reader.signed_in", "reader.consented", "reader.revoked", "reader.code_issued",
                 "reader.revoke_requested", "reader.reissue_requested", "washout.overridden")
AUDIT_COLUMNS = ("id", "at_utc", "study_id", "actor", "action", "entity", "entity_id", "before", "after")


# --- which reader ------------------------------------------------------------------------------------

def find_reader(session: Session, study_id: int, who: str | int) -> Reader:
    """A reader of this study by pseudonym (``R001``, any case) or database id; a ValueError that lists the
    study's readers otherwise."""
    study = get_study(session, study_id)
    text = str(who).strip()
    query = select(Reader).where(Reader.study_id == study.id)
    reader = session.scalar(query.where(func.upper(Reader.pseudonym) == text.upper()))
    if reader is None and text.isdigit():
        reader = session.scalar(query.where(Reader.id == int(text)))
    if reader is None:
        names = list(session.scalars(select(Reader.pseudonym).where(Reader.study_id == study.id)
                                     .order_by(Reader.pseudonym).limit(21)))
        listed = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") if names else "none yet"
        raise ValueError(f"no reader {text[:50]!r} in study {study.name!r} (readers: {listed})")
    return reader


def _reason(reason: Any) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("a reason is required: it goes into the audit trail with your name")
    if len(reason) > MAX_REASON:
        raise ValueError(f"the reason is {len(reason)} characters long; at most {MAX_REASON}")
    return reason.strip()


def _reader(session: Session, reader_id: int) -> Reader:
    reader = session.get(Reader, reader_id)
    if reader is None:
        raise ValueError(f"no reader with id {reader_id}")
    return reader


# --- access codes --------------------------------------------------------------------------------------

def _requested(session: Session, reader: Reader, *, actor: str, action: str, reason: str) -> None:
    """The investigator's request and reason, added to the session so that it commits with the change the
    ``study.domain.readers`` call then makes (one transaction: no request without its change, nor the reverse)."""
    audit.record(session, actor=actor, action=action, entity="reader", entity_id=reader.id,
                 study_id=reader.study_id, after={"pseudonym": reader.pseudonym, "reason": reason})


def revoke_code(session: Session, reader_id: int, *, actor: str, reason: str) -> Reader:
    """Disable a reader's access code (their answers stay); audited with the actor and the reason."""

    reason = _reason(reason)
    reader = _reader(session, reader_id)
    if reader.revoked_at is not None:
        raise ValueError(f"{reader.pseudonym}'s access code is already revoked; reissue gives them a new one")
    try:
        _requested(session, reader, actor=actor, action="reader.revoke_requested", reason=reason)
        readers.revoke(session, reader.id, actor=actor)
    except BaseException:
        session.rollback()
        raise
    return reader


def reissue_code(session: Session, reader_id: int, *, actor: str, reason: str) -> str:
    """Give a reader a new access code (the old one stops working; a revoked reader is active again).
    Returns the plain code: show it once; only its argon2 hash is stored, and it is never audited."""

    reason = _reason(reason)
    reader = _reader(session, reader_id)
    try:
        _requested(session, reader, actor=actor, action="reader.reissue_requested", reason=reason)
        return readers.issue_code(session, reader.id, actor=actor)
    except BaseException:
        session.rollback()
        raise


# --- the washout -----------------------------------------------------------------------------------------

def _open_sessions(session: Session, reader_id: int) -> dict[int, tuple[int, int]]:
    """{session: (readings, answered)} of one reader."""
    answered = select(Answer.assignment_id).distinct().subquery()
    return {s: (int(n), int(done)) for s, n, done in session.execute(
        select(Assignment.session, func.count(Assignment.id), func.count(answered.c.assignment_id))
        .outerjoin(answered, answered.c.assignment_id == Assignment.id)
        .where(Assignment.reader_id == reader_id).group_by(Assignment.session))}


def next_session(session: Session, reader_id: int) -> int | None:
    """The session of the reader's next unanswered reading (None when all are answered)."""
    return session.scalar(select(func.min(Assignment.session)).where(
        Assignment.reader_id == reader_id, ~Assignment.id.in_(select(Answer.assignment_id))))


def washout_until(session: Session, reader: Reader, now: datetime | None = None) -> tuple[int, datetime] | None:
    """(session, opening time) while the workflow's washout holds the reader's next session closed, else None.
    Asks the workflow's own gate, so an override or a passed washout count exactly as they do for reading."""
    number = next_session(session, reader.id)
    if number is None or number <= 1:
        return None
    config = study_config(session.get(Study, reader.study_id))
    try:
        workflow.washout_gate(session, reader, config, number, now or utcnow())
    except workflow.WashoutPending as exc:
        return exc.session_number, exc.available_at
    return None


def override_washout(session: Session, reader_id: int, session_number: int | None = None, *, actor: str,
                     reason: str, now: datetime | None = None) -> int:
    """Open a reader's next session (or ``session_number``) before the washout ends; returns the session.
    Audited by ``workflow.grant_washout_override`` with the actor and the reason."""
    reason = _reason(reason)
    reader = _reader(session, reader_id)
    config = study_config(session.get(Study, reader.study_id))
    sessions = _open_sessions(session, reader.id)
    if config.design.washout_days <= 0 or len(sessions) < 2:
        raise ValueError("this study has no washout between sessions: there is nothing to open early")
    number = session_number if session_number is not None else next_session(session, reader.id)
    if number is None:
        raise ValueError(f"{reader.pseudonym} has answered every reading: there is no session left to open")
    if number not in sessions or number <= 1:
        later = ", ".join(str(s) for s in sorted(sessions) if s > 1)
        raise ValueError(f"{reader.pseudonym} has no session {number} that a washout holds (sessions: {later})")
    readings, answered = sessions[number]
    if answered >= readings:
        raise ValueError(f"{reader.pseudonym} has already finished session {number}")
    granted = session.scalar(select(WashoutOverride).where(WashoutOverride.reader_id == reader.id,
                                                           WashoutOverride.session == number))
    if granted is not None:
        raise ValueError(f"session {number} of {reader.pseudonym} was already opened early by {granted.granted_by} "
                         f"({timefmt.minute(granted.granted_at)})")
    if number == next_session(session, reader.id) and washout_until(session, reader, now) is None:
        raise ValueError(f"session {number} of {reader.pseudonym} is open already: the washout has passed")
    session.rollback()  # the checks above were reads; the grant is one transaction of its own
    workflow.grant_washout_override(session, reader.id, number, actor=actor, reason=reason, now=now)
    return number


# --- the audit trail -------------------------------------------------------------------------------------

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
        raise ValueError("give times with their zone (study.outputs.timefmt / parse_when make them)")
    return value


def _event_row(e: AuditEvent) -> dict:
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
    return [_event_row(e) for e in session.scalars(query)], int(total)


def audit_choices(session: Session, study_id: int) -> tuple[list[str], list[str]]:
    """(actors, actions) that occur in the study's trail (and in events tied to no study), sorted."""
    where = or_(AuditEvent.study_id == study_id, AuditEvent.study_id.is_(None))
    actors = list(session.scalars(select(AuditEvent.actor).where(where).distinct().order_by(AuditEvent.actor)))
    actions = list(session.scalars(select(AuditEvent.action).where(where).distinct().order_by(AuditEvent.action)))
    return actors, actions


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
    session.commit()
    return text, total


def parse_when(text: str, *, end: bool = False, zone=None) -> datetime:
    """A CLI time: ``2026-12-01`` (a day in the investigator's zone; with ``end`` the day after it, so that
    ``--until`` includes the day) or ``2026-12-01T14:05`` (a zone in the text wins). A clear ValueError else."""
    zone = zone or timefmt.display_zone()
    value = (text or "").strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day + timedelta(days=1 if end else 0), time(), tzinfo=zone)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (2026-12-01) or a time (2026-12-01T14:05)") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def zone_label() -> str:
    """The abbreviation of the zone times are shown in (``study.outputs.timefmt``), e.g. ``CET``."""
    return timefmt.local(utcnow()).strftime("%Z") or "UTC offset " + timefmt.local(utcnow()).strftime("%z")


def day_range(first: date | None, last: date | None, zone=None) -> tuple[datetime | None, datetime | None]:
    """(since, until) covering the days ``first`` to ``last`` inclusive in the investigator's zone."""
    zone = zone or timefmt.display_zone()
    since = datetime.combine(first, time(), tzinfo=zone) if first else None
    until = datetime.combine(last + timedelta(days=1), time(), tzinfo=zone) if last else None
    return since, until


# --- flags: fast reads and stalled readers (study.domain.flags) ------------------------------------------------

@dataclass(frozen=True)
class Thresholds:
    fast_read_seconds: float
    stalled_days: float

    def describe(self) -> str:
        fast = (f"a read faster than {self.fast_read_seconds:g} s (photograph shown to answer)"
                if self.fast_read_seconds > 0 else "fast-read flag off")
        return (f"Flags: {fast}; stalled: readings open to the reader and no activity for "
                f"{self.stalled_days:g} days ([monitor] in the study's TOML).")


def thresholds(session: Session, study_id: int) -> Thresholds:
    config = study_config(get_study(session, study_id))
    return Thresholds(config.fast_read_seconds, config.stalled_days)


def _first_reads(session: Session, *where):
    """(reader id, session, shown_at, submitted_at) of every first answer (version 1: a read; a correction
    is not a read)."""
    return session.execute(select(Answer.reader_id, Assignment.session, Answer.shown_at, Answer.submitted_at)
                           .join(Assignment, Assignment.id == Answer.assignment_id)
                           .where(Answer.version == 1, *where)).all()


def fast_reads_by_session(session: Session, study_id: int) -> dict[tuple[str, int], int]:
    """{(pseudonym, session): fast reads} under the study's threshold."""
    limit = thresholds(session, study_id).fast_read_seconds
    names = dict(session.execute(select(Reader.id, Reader.pseudonym).where(Reader.study_id == study_id)).all())
    out: dict[tuple[str, int], int] = {}
    for reader_id, number, shown, submitted in _first_reads(session, Assignment.study_id == study_id):
        if flags.is_fast_read(flags.reading_seconds(shown, submitted), limit):
            key = (names[reader_id], number)
            out[key] = out.get(key, 0) + 1
    return out


def readers_overview(session: Session, study_id: int, now: datetime | None = None) -> list[dict]:
    """One row per reader: code status, progress, last activity, fast reads, the washout and the stalled flag.
    Last activity is the latest photograph shown or answer stored (corrections included). A reader waiting
    out the washout has no reading open to them, so is not stalled."""
    now = now or utcnow()
    study = get_study(session, study_id)
    limits = thresholds(session, study.id)
    prog = rules.progress_by(session, study_id=study.id)
    shown = dict(session.execute(select(Assignment.reader_id, func.max(Assignment.shown_at))
                                 .where(Assignment.study_id == study.id).group_by(Assignment.reader_id)).all())
    answered = dict(session.execute(select(Answer.reader_id, func.max(Answer.submitted_at))
                                    .join(Assignment, Assignment.id == Answer.assignment_id)
                                    .where(Assignment.study_id == study.id).group_by(Answer.reader_id)).all())
    fast: dict[int, int] = {}
    for reader_id, _s, t0, t1 in _first_reads(session, Assignment.study_id == study.id):
        if flags.is_fast_read(flags.reading_seconds(t0, t1), limits.fast_read_seconds):
            fast[reader_id] = fast.get(reader_id, 0) + 1
    out = []
    for reader in session.scalars(select(Reader).where(Reader.study_id == study.id).order_by(Reader.pseudonym)):
        p = prog.get(reader.id, rules.Progress(0, 0))
        times = [t for t in (shown.get(reader.id), answered.get(reader.id)) if t is not None]
        last = max(times) if times else None
        left = p.total - p.done
        waiting = washout_until(session, reader, now) if left else None
        stalled = flags.is_stalled(last, 0 if waiting else left, now, limits.stalled_days)
        if reader.revoked_at is not None:
            status = "code revoked"
        elif p.total == 0:
            status = "no readings assigned"
        elif p.complete:
            status = "finished"
        elif waiting:
            status = f"washout: session {waiting[0]} opens {timefmt.minute(waiting[1])}"
        elif stalled:
            status = "stalled"
        elif last is None:
            status = "not started"
        else:
            status = "reading"
        out.append({"reader_id": reader.id, "pseudonym": reader.pseudonym, "level": reader.level,
                    "site": reader.site, "code_active": reader.revoked_at is None,
                    "code_issued_at": reader.code_issued_at, "revoked_at": reader.revoked_at,
                    "done": p.done, "total": p.total, "last_activity": last, "fast_reads": fast.get(reader.id, 0),
                    "next_session": next_session(session, reader.id) if left else None,
                    "washout_until": waiting[1] if waiting else None, "stalled": stalled, "status": status})
    return out


# --- the case browser ------------------------------------------------------------------------------------

def _words(questions, payload: dict) -> str:
    return "; ".join(f"{q}: {a}" for q, a in describe_answer(questions, payload))


def _references(config, labels: dict | None) -> dict:
    return {q.id: ref for q in config.questions if q.truth and (ref := rules.reference(q, labels)) is not None}


def case_list(session: Session, study_id: int) -> list[dict]:
    """Every case of the study with its reference answer in words, readings answered and AI outputs stored."""
    study = get_study(session, study_id)
    config = study_config(study)
    questions = [q.to_dict() for q in config.questions]
    reads = dict(session.execute(select(Assignment.case_id, func.count(func.distinct(Answer.assignment_id)))
                                 .join(Answer, Answer.assignment_id == Assignment.id)
                                 .where(Assignment.study_id == study.id).group_by(Assignment.case_id)).all())
    outputs = dict(session.execute(select(AIOutput.case_id, func.count()).join(Case, Case.id == AIOutput.case_id)
                                   .where(Case.study_id == study.id).group_by(AIOutput.case_id)).all())
    return [{"case_id": c.id, "case": c.case_key, "eye": c.eye,
             "reference": _words(questions, _references(config, c.reference_labels)),
             "readings": reads.get(c.id, 0), "ai_outputs": outputs.get(c.id, 0)}
            for c in session.scalars(select(Case).where(Case.study_id == study.id).order_by(Case.case_key))]


@dataclass
class CaseDetail:
    case_id: int
    case: str
    eye: str | None
    patient: str | None
    split: str | None
    reference: list[tuple[str, str]]  # (question, reference answer in words)
    image_path: Any = None  # the screen-size display file, or None with image_problem saying why
    image_problem: str | None = None
    ai_outputs: list[dict] = field(default_factory=list)  # one per model version, newest first
    readings: list[dict] = field(default_factory=list)  # latest answer per reading


def case_detail(session: Session, study_id: int, case_id: int, *, store_root=None) -> CaseDetail:
    """One case for the investigator: photograph (display file), reference, every stored AI output (which
    one readers are shown, by ``study.domain.rules``) and every reading's latest answer, scored."""

    study = get_study(session, study_id)
    case = session.get(Case, case_id)
    if case is None or case.study_id != study.id:
        raise ValueError(f"no case with id {case_id} in study {study.name!r}")
    config = study_config(study)
    questions = [q.to_dict() for q in config.questions]
    detail = CaseDetail(case.id, case.case_key, case.eye, case.patient_pseudonym, case.split,
                        describe_answer(questions, _references(config, case.reference_labels)))
    try:
        detail.image_path = display_files(study.id, case.image_ref,
                                          store_root if store_root is not None else configured_root()).screen
    except Exception as exc:  # noqa: BLE001 - a missing or unreadable photograph is shown as a message
        detail.image_problem = f"the photograph cannot be shown: {exc}"
    shown = rules.shown_ai_output(session, study.model_version, case.id)
    for out in session.scalars(select(AIOutput).where(AIOutput.case_id == case.id)
                               .order_by(AIOutput.created_at.desc(), AIOutput.id.desc())):
        call, p = rules.ai_call(out.probabilities)
        detail.ai_outputs.append({
            "model_version": out.model_version, "model": (out.model_card or {}).get("name"),
            "label_set": out.label_set, "created_at": out.created_at, "shown_to_readers": shown is not None
            and out.id == shown.id, "ai_call": call, "ai_call_probability": p,
            "probabilities": dict(sorted(out.probabilities.items(), key=lambda kv: -kv[1])),
            "saliency_png": out.saliency_png})
    latest = rules.latest_version_subquery()
    for pseudonym, level, a, ans in session.execute(
            select(Reader.pseudonym, Reader.level, Assignment, Answer)
            .join(Assignment, Assignment.reader_id == Reader.id)
            .join(latest, latest.c.assignment_id == Assignment.id)
            .join(Answer, (Answer.assignment_id == Assignment.id) & (Answer.version == latest.c.v))
            .where(Assignment.case_id == case.id).order_by(Reader.pseudonym, Assignment.session, Assignment.step)):
        sc = rules.score(config, case.reference_labels, ans.payload)
        detail.readings.append({"reader": pseudonym, "level": level, "condition": a.condition, "session": a.session,
                                "step": a.step, "version": ans.version, "answer": _words(questions, ans.payload),
                                "correct": None if sc.correct is None else bool(sc.correct),
                                "submitted_at": ans.submitted_at})
    return detail


# --- one reader --------------------------------------------------------------------------------------------

@dataclass
class ReaderDetail:
    reader: dict  # pseudonym, display name, level, site, code status, flags (a readers_overview row)
    sessions: list[dict]  # per session: done, total, fast reads, median seconds, first shown, last activity, override
    answers: list[dict]  # every answer version, oldest first
    events: list[dict]  # sign-ins, consent, code changes, overrides (audit rows), newest first
    prefix_failures: list[dict]  # failed/locked/refused sign-ins against this reader's current code prefix


def reader_detail(session: Session, reader_id: int, now: datetime | None = None) -> ReaderDetail:
    """Everything about one reader for the investigator: progress per session, answers with their versions
    and corrections, and the sign-in and lockout events."""

    reader = _reader(session, reader_id)
    study = session.get(Study, reader.study_id)
    config = study_config(study)
    limit = config.fast_read_seconds
    questions = [q.to_dict() for q in config.questions]
    overview = next(r for r in readers_overview(session, study.id, now) if r["reader_id"] == reader.id)
    overview["display_name"], overview["years_experience"] = reader.display_name, reader.years_experience
    overrides = {o.session: o for o in session.scalars(select(WashoutOverride)
                                                       .where(WashoutOverride.reader_id == reader.id))}
    per: dict[int, dict] = {}
    for a in session.scalars(select(Assignment).where(Assignment.reader_id == reader.id)):
        s = per.setdefault(a.session, {"session": a.session, "done": 0, "total": 0, "fast_reads": 0, "_t": [],
                                       "first_shown": None, "last_activity": None})
        s["total"] += 1
        if a.shown_at is not None:
            s["first_shown"] = min(filter(None, (s["first_shown"], a.shown_at)))
            s["last_activity"] = max(filter(None, (s["last_activity"], a.shown_at)))
    answers = []
    for a, ans in session.execute(select(Assignment, Answer).join(Answer, Answer.assignment_id == Assignment.id)
                                  .where(Assignment.reader_id == reader.id)
                                  .order_by(Assignment.session, Assignment.position, Answer.version)):
        seconds = flags.reading_seconds(ans.shown_at, ans.submitted_at) if ans.version == 1 else None
        fast = flags.is_fast_read(seconds, limit)
        s = per[a.session]
        s["last_activity"] = max(filter(None, (s["last_activity"], ans.submitted_at)))
        if ans.version == 1:
            s["done"] += 1
            s["fast_reads"] += fast
            if seconds is not None:
                s["_t"].append(seconds)
        answers.append({"answer_id": ans.id, "session": a.session, "position": a.position, "case": a.case.case_key,
                        "condition": a.condition, "step": a.step, "version": ans.version,
                        "answer": _words(questions, ans.payload), "reason": ans.reason,
                        "submitted_at": ans.submitted_at, "seconds": seconds, "fast": fast})
    sessions = []
    for number in sorted(per):
        s = per[number]
        times = s.pop("_t")
        s["median_seconds"] = round(statistics.median(times), 1) if times else None
        o = overrides.get(number)
        s["opened_early"] = f"{o.granted_by}: {o.reason}" if o else None
        sessions.append(s)
    events = [_event_row(e) for e in session.scalars(
        select(AuditEvent).where(AuditEvent.entity == "reader", AuditEvent.entity_id == str(reader.id),
                                 AuditEvent.action.in_(READER_EVENTS)).order_by(AuditEvent.id.desc()))]
    failures = []
    if reader.code_lookup:
        scope = f"reader_code:{reader.code_lookup}"
        failures = [_event_row(e) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.action.in_(SIGN_IN_FAILURES)).order_by(AuditEvent.id.desc()))
            if scope in ((e.after or {}).get("scopes") or [])]
    return ReaderDetail(overview, sessions, answers, events, failures)


# --- a reader's own answers (the corrections screen) -------------------------------------------------------

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


def current_session(session: Session, reader_id: int) -> int | None:
    """The session a reader is in: that of the last reading shown to them. Earlier sessions are closed to
    corrections (a crossover's unaided answers must not be changed after the AI-assisted session)."""
    return session.scalar(select(func.max(Assignment.session))
                          .where(Assignment.reader_id == reader_id, Assignment.shown_at.is_not(None)))


def own_answers(session: Session, reader_id: int) -> OwnAnswers:
    """A reader's answered readings of their current session, latest version each, for review."""

    reader = _reader(session, reader_id)
    config = study_config(session.get(Study, reader.study_id))
    questions = tuple(q.to_dict() for q in config.questions)
    number = current_session(session, reader.id)
    if number is None:
        return OwnAnswers(reader.study_id, reader.revoked_at is not None, config.corrections_allowed, None,
                          questions, config.allow_ungradable, ())
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
    for aid, sess, position, condition, step, image_ref, answer_id, version, payload, submitted in rows:
        locked = (f"locked: {workflow.LOCKED_AFTER_AI}" if aid in followed else None)
        out.append(OwnReading(assignment_id=aid, answer_id=answer_id, session=sess, position=firsts[position],
                              reading=CONDITION_WORDS.get(condition, condition), step=step, version=version,
                              answer=tuple(describe_answer(questions, payload)), payload=dict(payload),
                              submitted_at=submitted, image_ref=image_ref, locked=locked))
    return OwnAnswers(reader.study_id, reader.revoked_at is not None, config.corrections_allowed, number,
                      questions, config.allow_ungradable, tuple(out))


def own_photo(study_id: int, image_ref: str):
    """The screen-size file of a reader's own case photograph (no overlay), or None when it cannot be made."""

    try:
        return display_files(study_id, image_ref, store_root()).screen
    except Exception:  # noqa: BLE001 - the review works without the photograph
        return None


def correct_own_answer(session: Session, reader_id: int, answer_id: int, new_answer: dict, reason: str,
                       idempotency_key: str | None = None):
    """A reader's correction of one of their current session's answers: a new version with the reason
    (``workflow.correct`` checks the study allows it, that it is the latest version and not locked, and
    audits it)."""
    reason = _reason(reason)
    ans = session.get(Answer, answer_id)
    if ans is None or ans.reader_id != reader_id:
        raise workflow.NotYourAssignment(f"answer {answer_id} is not one of yours")
    number = current_session(session, reader_id)
    if session.get(Assignment, ans.assignment_id).session != number:
        raise workflow.CorrectionsNotAllowed("only answers of your current session can be corrected")
    session.rollback()
    return workflow.correct(session, reader_id, answer_id, new_answer, reason, idempotency_key)


__all__ = ["AuditFilter", "CaseDetail", "OwnAnswers", "OwnReading", "ReaderDetail", "Thresholds", "audit_choices",
           "audit_csv", "audit_trail", "case_detail", "case_list", "correct_own_answer", "current_session",
           "day_range", "export_audit", "fast_reads_by_session", "find_reader", "next_session", "override_washout",
           "own_answers", "own_photo", "parse_when", "reader_detail", "readers_overview", "reissue_code", "revoke_code",
           "thresholds", "washout_until", "zone_label"]
