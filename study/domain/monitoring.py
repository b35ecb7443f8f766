"""What the investigator watches: a study's counts and progress, the live monitor, the quality flags (fast reads,
stalled readers), the case browser and one reader's detail. Read-only: every function takes a session and
writes nothing. The rules it shows (what is correct, which AI output readers see, progress) are
``study.domain.rules``'; the flags are ``study.domain.flags``'."""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from study.domain import flags, overlays, rules, timefmt
from study.domain.audit_trail import event_row
from study.domain.cases import display_files, store_root_of
from study.domain.design import verify_design
from study.domain.flags import reading_seconds
from study.domain.reader_operations import next_session, reader_by_id, session_progress, washout_until
from study.domain.reader_screen import describe_answer
from study.domain.rules import Progress, latest_version_subquery, progress_by, score
from study.domain.studies import get_study, study_config
from study.storage.models import AIOutput, Answer, Assignment, AuditEvent, Case, Reader, Study, WashoutOverride, utcnow

SIGN_IN_FAILURES = ("reader.sign_in_failed", "reader.sign_in_throttled")  # (sign_in_locked/_refused: before issue 20)


READER_EVENTS = ("reader.added", "reader.signed_in", "reader.consented", "reader.revoked", "reader.code_issued",
                 "reader.revoke_requested", "reader.reissue_requested", "washout.overridden", "reader.session_ended")


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
        detail.image_path = display_files(study.id, case.image_ref, store_root_of(study, store_root)).screen
    except Exception as exc:  # noqa: BLE001 - a missing or unreadable photograph is shown as a message
        print(f"[revision] case browser: case {case.id}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        detail.image_problem = ("the photograph cannot be shown: it is missing from the study's photograph store "
                                "or cannot be read (the server log says which file)")
    shown = rules.shown_ai_output(session, study.model_version, case.id)
    for out in session.scalars(select(AIOutput).where(AIOutput.case_id == case.id)
                               .order_by(AIOutput.created_at.desc(), AIOutput.id.desc())):
        call, p = rules.ai_call(out.probabilities)
        detail.ai_outputs.append({
            "model_version": out.model_version, "model": (out.model_card or {}).get("name"),
            "label_set": out.label_set, "created_at": out.created_at, "shown_to_readers": shown is not None
            and out.id == shown.id, "ai_call": call, "ai_call_probability": p,
            "probabilities": dict(sorted(out.probabilities.items(), key=lambda kv: -kv[1])),
            "saliency_png": out.saliency_png, "maps": overlays.pictures(out, detail.image_path)})
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


@dataclass
class ReaderDetail:
    reader: dict  # pseudonym, display name, level, site, code status, flags (a readers_overview row)
    sessions: list[dict]  # per session: done, total, fast reads, median seconds, first shown, last activity, override
    answers: list[dict]  # every answer version, oldest first
    events: list[dict]  # sign-ins, consent, code changes, overrides (audit rows), newest first
    prefix_failures: list[dict]  # failed and slowed-down sign-ins against this reader's current code prefix


def reader_detail(session: Session, reader_id: int, now: datetime | None = None) -> ReaderDetail:
    """Everything about one reader for the investigator: progress per session, answers with their versions
    and corrections, and the sign-in events (sessions, failures, waits)."""

    reader = reader_by_id(session, reader_id)
    study = session.get(Study, reader.study_id)
    config = study_config(study)
    limit = config.fast_read_seconds
    questions = [q.to_dict() for q in config.questions]
    overview = next(r for r in readers_overview(session, study.id, now) if r["reader_id"] == reader.id)
    overview["display_name"], overview["years_experience"] = reader.display_name, reader.years_experience
    overrides = {o.session: o for o in session.scalars(select(WashoutOverride)
                                                       .where(WashoutOverride.reader_id == reader.id))}
    per: dict[int, dict] = {number: {"session": number, "done": p.done, "total": p.total, "fast_reads": 0, "_t": [],
                                     "first_shown": None, "last_activity": None}
                            for number, p in session_progress(session, reader.id).items()}
    for a in session.scalars(select(Assignment).where(Assignment.reader_id == reader.id)):
        s = per[a.session]
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
    events = [event_row(e) for e in session.scalars(
        select(AuditEvent).where(AuditEvent.entity == "reader", AuditEvent.entity_id == str(reader.id),
                                 AuditEvent.action.in_(READER_EVENTS)).order_by(AuditEvent.id.desc()))]
    failures = []
    if reader.code_lookup:
        scope = f"reader_code:{reader.code_lookup}"
        failures = [event_row(e) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.action.in_(SIGN_IN_FAILURES)).order_by(AuditEvent.id.desc()))
            if scope in ((e.after or {}).get("scopes") or [])]
    return ReaderDetail(overview, sessions, answers, events, failures)


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
