"""Simulated readers: fill a study with plausible answers through the real reader workflow.

Why through ``workflow.next_item``/``workflow.submit`` (with simulated ``now=`` clocks, no sleeping):
the simulated answers then pass the same validation, ordering, washout gate, timing and audit trail
as a real reader's, so the exports and analysis pages are exercised end to end on realistic data.

The behaviour model (all draws from seeds derived from the study seed label, so a run is
reproducible whatever the order of the calls):

- Own read: P(correct) = expit(skill_reader - difficulty_case). A reader's skill rises with the rank
  of their experience level (junior < intermediate < senior) plus a per-reader deviation; a wrong
  read picks another diagnosis uniformly.
- Own confidence (0-100) is drawn higher for a correct read than for a wrong one (so confidence
  ratings carry information and an ROC/MRMC analysis on them is meaningful).
- Aided reads: the AI's top suggestion is its most probable finding, or ``normal`` when no finding
  reaches :data:`AI_POSITIVE`. Where it differs from the reader's own read, the reader switches to it
  with probability expit(a_level + b * (AI probability - 0.5) - c * (own confidence - 60) / 20): less
  sure readers and more confident AI outputs mean more switching, including to a wrong suggestion
  (automation bias; juniors switch to wrong suggestions most). Agreement raises confidence.
- The constants are calibrated (Monte Carlo, see :func:`expected_accuracy`) so that with a good AI
  (top suggestion right ~90% of the time) accuracy rises by about 15 percentage points at every
  level, the size the ReVision reader study reported.
- Reading time: log-normal, median ~70 s (junior) to ~40 s (senior), times 0.9 when aided, with
  reader, case and residual variation; then a short pause before the next item. Session 2 of a
  crossover starts one to five days after the washout ends.

In a sequential design step 2 starts from the reader's own locked step-1 answer (``prior_answer``).

Atomic and resumable (:func:`simulate`): the readers, their codes and the rebuilt design are stored in
one transaction, so a killed run leaves all of them or none. Simulated readers are known by their
display name ("Simulated reader k") and site ("simulation"); the run's size and seed are in a
``simulation.started`` audit row. The same call again answers what the readers left open. Every draw is
keyed by reader + case + condition (the pause after an answer too), and a resumed reader's clock is
recomputed from their latest stored answer, so an interrupted and resumed run stores what an
uninterrupted one would; answers keep their idempotency keys ``sim:study:reader:assignment``.
One run per study at a time (:func:`_exclusive_run`): a second run started while one is going, from any
process, is refused with :class:`SimulationRunning` and changes nothing; started after it, it resumes.

Studies with their own ``[[question]]`` tables (:func:`custom_answer`): the primary question is read
right with the same P(correct); a wrong ordinal grade lands one grade off (two, now and then); an
aided read adds :data:`AI_SKILL` to the reader's log-odds (the AI's findings need not match the
question's options); other questions get plausible values (a reference-backed question is read like
the primary, numbers on their step within range, text empty or a short note). Where the study
allows it, :data:`UNGRADABLE_RATE` of readings are "Image ungradable", drawn from a stream of their
own so the other answers do not change.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from study.domain import audit, rules, workflow
from study.domain import readers as readers_mod
from study.domain.config import NORMAL, ExperienceLevel, StudyConfig
from study.domain.design import build_design, derive_seed
from study.domain.scoring import reference
from study.domain.studies import get_study, has_answers, study_config
from study.storage import db
from study.storage.models import Answer, Assignment, AuditEvent, Case, Reader, utcnow

AI_POSITIVE = rules.AI_POSITIVE  # a finding probability at or above this makes it the AI suggestion

# Calibrated by expected_accuracy(): unaided ~0.61 / 0.67 / 0.72, aided (AI right 90%) ~+0.15 each.
SKILL_BASE, SKILL_STEP, SKILL_SD = 0.55, 0.3, 0.35
CASE_SD = 0.8
FOLLOW_BASE = (-1.5, -0.85, 0.1)  # junior, intermediate, senior (interpolated by level rank)
FOLLOW_AI, FOLLOW_CONF = 3.0, 0.9
CONF_RIGHT, CONF_WRONG, CONF_SD = 74.0, 50.0, 12.0
TIME_MEDIAN = (70.0, 40.0)  # seconds, junior -> senior
TIME_AIDED = 0.9
AI_SKILL = 0.9  # log-odds a custom-protocol aided read gains
UNGRADABLE_RATE = 0.03


def _expit(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _interp(pair_or_triple, rank: float) -> float:
    """Value at ``rank`` in [0, 1] along evenly spaced anchor values."""
    vals = list(pair_or_triple)
    pos = rank * (len(vals) - 1)
    i = min(int(pos), len(vals) - 2)
    return vals[i] + (vals[i + 1] - vals[i]) * (pos - i)


@dataclass(frozen=True)
class SimReader:
    """A virtual reader's traits; ``rank`` is the level's position in [0, 1] (0 junior, 1 senior)."""

    rank: float
    skill: float  # log-odds of a correct own read on an average case
    time_factor: float  # multiplies reading times
    follow_shift: float  # per-reader deviation in reliance on the AI


@dataclass(frozen=True)
class SimCase:
    difficulty: float
    time_factor: float


ai_top = rules.ai_call  # the AI's call is the study's rule (study.domain.rules), not the simulator's


def make_reader(seed: int, pseudonym: str, rank: float) -> SimReader:
    rng = random.Random(derive_seed(seed, "sim-reader", pseudonym))
    return SimReader(rank=rank, skill=SKILL_BASE + SKILL_STEP * 2 * rank + rng.gauss(0, SKILL_SD),
                     time_factor=math.exp(rng.gauss(0, 0.25)), follow_shift=rng.gauss(0, 0.3))


def make_case(seed: int, case_key: str) -> SimCase:
    rng = random.Random(derive_seed(seed, "sim-case", case_key))
    return SimCase(difficulty=rng.gauss(0, CASE_SD), time_factor=math.exp(rng.gauss(0, 0.3)))


def _confidence(rng: random.Random, correct: bool, rank: float) -> int:
    mu = (CONF_RIGHT + 6 * rank) if correct else (CONF_WRONG + 2 * rank)
    return int(min(100, max(0, round(rng.gauss(mu, CONF_SD)))))


def own_read(rng: random.Random, reader: SimReader, case: SimCase, truth: str, options: list[str]) -> tuple[str, int]:
    """The reader's unaided diagnosis and confidence."""
    correct = rng.random() < _expit(reader.skill - case.difficulty)
    wrong = [o for o in options if o != truth]
    primary = truth if correct or not wrong else rng.choice(wrong)
    return primary, _confidence(rng, primary == truth, reader.rank)


def aided_read(rng: random.Random, reader: SimReader, own: tuple[str, int], top: str, top_p: float,
               truth: str) -> tuple[str, int]:
    """Combine the reader's own read with the AI's top suggestion (switch, keep, or agree)."""
    primary, conf = own
    if top == primary:
        return primary, min(100, conf + int(round(abs(rng.gauss(6, 3)))))
    follow = _expit(_interp(FOLLOW_BASE, reader.rank) + reader.follow_shift + FOLLOW_AI * (top_p - 0.5)
                    - FOLLOW_CONF * (conf - 60) / 20)
    if rng.random() < follow:
        # switching: confidence is lent by the AI, tempered by the reader's own doubt
        return top, int(min(100, max(0, round(rng.gauss(45 + 40 * top_p, CONF_SD)))))
    return primary, conf


def reading_seconds(rng: random.Random, reader: SimReader, case: SimCase, aided: bool) -> float:
    median = _interp(TIME_MEDIAN, reader.rank) * reader.time_factor * case.time_factor * (TIME_AIDED if aided else 1)
    return max(4.0, median * math.exp(rng.gauss(0, 0.35)))


def expected_accuracy(rank: float, ai_accuracy: float = 0.9, n: int = 20000, seed: int = 0) -> tuple[float, float]:
    """Monte Carlo (unaided, aided) accuracy of this model at level ``rank`` (for calibration and tests)."""
    rng = random.Random(seed)
    options = ["a", "b", "c", "d", "e", NORMAL]
    right = [0, 0]
    for i in range(n):
        reader = make_reader(seed, f"r{i % 200}", rank)
        case = make_case(seed, f"c{i % 300}")
        truth = options[i % len(options)]
        own = own_read(rng, reader, case, truth, options)
        top = truth if rng.random() < ai_accuracy else rng.choice([o for o in options if o != truth])
        aided = aided_read(rng, reader, own_read(rng, reader, case, truth, options), top,
                           min(0.97, max(0.5, rng.gauss(0.8, 0.1))), truth)
        right[0] += own[0] == truth
        right[1] += aided[0] == truth
    return right[0] / n, right[1] / n


# --- filling a study ---------------------------------------------------------------------------------

@dataclass
class SimulationReport:
    study: str
    readers: list[str] = field(default_factory=list)  # pseudonyms of the readers added
    codes: dict[str, str] = field(default_factory=dict)  # pseudonym -> plain access code (shown only on request)
    answers: int = 0
    assignments: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    resumed: bool = False  # this call went on with an earlier run's simulated readers
    readers_left: int = 0  # simulated readers that had unanswered items when this call started


def _level_ranges(levels: tuple[ExperienceLevel, ...]) -> list[tuple[str, float, float]]:
    """(name, lowest, highest) whole years that fall in each level."""
    out, low = [], 0.0
    for lv in levels:
        if lv.below is not None:
            high = math.ceil(lv.below) - 1
        elif lv.up_to is not None:
            high = math.floor(lv.up_to)
        else:
            high = max(low, 0) + 20
        out.append((lv.name, low, max(low, high)))
        low = (lv.below if lv.below is not None else math.floor(lv.up_to) + 1) if (
            lv.below is not None or lv.up_to is not None) else low
    return out


def reader_years(config: StudyConfig, n: int, seed: int) -> list[tuple[str, float]]:
    """(level, years) for ``n`` readers spread evenly over the study's levels (whole years within each)."""
    ranges = _level_ranges(config.levels)
    rng = random.Random(derive_seed(seed, "sim-years"))
    out = []
    for i in range(n):
        name, low, high = ranges[i * len(ranges) // n]
        years = float(rng.randint(int(math.ceil(low)), int(high)))
        if config.level_for(years) != name:  # fractional bounds: fall back to the lower edge
            years = float(low)
        out.append((config.level_for(years), years))
    return out


SIM_NAME = "Simulated reader"  # display name "Simulated reader k" + site SIM_SITE: how simulated readers are known
SIM_SITE = "simulation"


def _is_simulated():
    return (Reader.display_name.like(f"{SIM_NAME} %"), Reader.site == SIM_SITE)


def simulated_readers(session: Session, study_id: int) -> list[Reader]:
    """The study's simulated readers (display name "Simulated reader k", site "simulation"), by k."""
    rows = list(session.scalars(select(Reader).where(Reader.study_id == study_id, *_is_simulated())))
    return sorted(rows, key=lambda r: (_sim_index(r) or 0, r.pseudonym))


def _sim_index(reader: Reader) -> int | None:
    tail = reader.display_name[len(SIM_NAME):].strip()
    return int(tail) if tail.isdigit() else None


def _create_readers(session: Session, study_id: int, n: int, *, seed: int, actor: str,
                    skip: set[int] = frozenset()) -> dict[str, str]:
    config = study_config(get_study(session, study_id))
    codes = {}
    for k, (_level, years) in enumerate(reader_years(config, n, seed), start=1):
        if k in skip:
            continue
        reader, code = readers_mod.add_reader(session, study_id, display_name=f"{SIM_NAME} {k}",
                                              years_experience=years, specialty="simulated", site=SIM_SITE,
                                              actor=actor)
        codes[reader.pseudonym] = code
    return codes


def add_simulated_readers(session: Session, study_id: int, n: int, *, seed: int = 0,
                          actor: str = "simulator") -> dict[str, str]:
    """Add ``n`` virtual readers (display name "Simulated reader k"); returns pseudonym -> plain code.

    In the caller's transaction: :func:`simulate` adds them and builds the design in one, so an exception or a
    killed process anywhere inside leaves the database without half of the readers.
    """
    study = get_study(session, study_id)
    if session.scalar(select(Reader.id).where(Reader.study_id == study.id, *_is_simulated()).limit(1)) is not None:
        raise ValueError(f"study {study.name!r} already has simulated readers")
    return _create_readers(session, study.id, n, seed=seed, actor=actor)


def _answer(config: StudyConfig, rng: random.Random, primary: str, conf: int, truth_findings: list[str],
            reader: SimReader, probs: dict[str, float] | None) -> dict:
    """The full answer for the study's questions around the chosen primary diagnosis."""
    ids = {q.id for q in config.questions}
    ans: dict = {"primary_diagnosis": primary}
    if "findings" in ids:
        found = {primary} - {NORMAL}
        for f in config.findings:
            if f in truth_findings and rng.random() < _expit(reader.skill - 0.3):
                found.add(f)
            elif probs and probs.get(f, 0) >= AI_POSITIVE and rng.random() < 0.3:
                found.add(f)
            elif rng.random() < 0.03:
                found.add(f)
        ans["findings"] = [f for f in config.findings if f in found]
    if "confidence" in ids:
        ans["confidence"] = conf
    if "referral" in ids:
        ans["referral"] = primary != NORMAL or rng.random() < 0.1
    return ans


def _read_option(rng: random.Random, p_right: float, keys: list[str], truth: str | None, ordinal: bool) -> str:
    if truth not in keys:
        return rng.choice(keys)
    if rng.random() < p_right or len(keys) == 1:
        return truth
    if not ordinal:
        return rng.choice([k for k in keys if k != truth])
    t = keys.index(truth)
    offset = rng.choice([-1, 1]) * (2 if rng.random() < 0.15 else 1)
    g = t + offset
    if not 0 <= g < len(keys):
        g = t - offset
    return keys[min(len(keys) - 1, max(0, g))]


def _number_value(rng: random.Random, q) -> float:
    step = q.step or 1
    low = q.minimum if q.minimum is not None else 0
    high = q.maximum if q.maximum is not None else low + 100 * step
    k = rng.randint(0, int(math.floor((high - low) / step + 1e-9)))
    value = low + k * step
    return int(value) if float(step).is_integer() and float(low).is_integer() else round(value, 10)


def custom_answer(config: StudyConfig, rng: random.Random, reader: SimReader, case: SimCase, labels: dict,
                  aided: bool) -> dict:
    """A plausible answer to every required question of a ``[[question]]`` study (see module docstring)."""

    p_right = _expit(reader.skill - case.difficulty + (AI_SKILL if aided else 0.0))
    ans: dict = {}
    for q in config.questions:
        ref = reference(q, labels) if q.truth else None
        if q.kind in ("single_choice", "ordinal"):
            if q.truth or q.required:
                ans[q.id] = _read_option(rng, p_right, q.keys, ref, q.kind == "ordinal")
        elif q.kind == "boolean":
            if ref is not None:
                ans[q.id] = ref if rng.random() < p_right else not ref
            elif q.required:
                ans[q.id] = rng.random() < 0.3
        elif q.kind == "multi_choice":
            if ref is not None:
                ans[q.id] = [k for k in q.keys if (k in ref) == (rng.random() < p_right ** 0.5)]
            elif q.required:
                ans[q.id] = [k for k in q.keys if rng.random() < 0.2]
            if q.required and not ans.get(q.id):
                ans.pop(q.id, None)
                ans[q.id] = [rng.choice(q.keys)]
        elif q.kind in ("number", "integer"):
            if q.kind == "integer":
                ans[q.id] = _confidence(rng, rng.random() < p_right, reader.rank)
                ans[q.id] = min(int(q.maximum), max(int(q.minimum), ans[q.id]))
            elif q.required or rng.random() < 0.5:
                ans[q.id] = _number_value(rng, q)
        elif q.kind == "text":
            if q.required or rng.random() < 0.1:
                ans[q.id] = "simulated note"[: q.max_length or None]
    return ans


def _ungradable(config: StudyConfig, seed: int, pseudonym: str, case_id: str, condition: str) -> bool:
    if not config.allow_ungradable:
        return False
    return random.Random(derive_seed(seed, "sim-ungradable", pseudonym, case_id, condition)).random() < UNGRADABLE_RATE


def _pause(seed: int, pseudonym: str, case_key: str, condition: str) -> timedelta:
    """The pause after an answer, from a stream of its own so that a resumed run can recompute it."""
    rng = random.Random(derive_seed(seed, "sim-pause", pseudonym, case_key, condition))
    return timedelta(seconds=rng.uniform(2, 12))


def _last_answer(session: Session, reader_id: int) -> tuple[datetime, int, str, str] | None:
    """(submitted_at, session, case key, condition) of the reader's latest answer, or None."""
    row = session.execute(
        select(Answer.submitted_at, Assignment.session, Case.case_key, Assignment.condition)
        .join(Assignment, Answer.assignment_id == Assignment.id).join(Case, Assignment.case_id == Case.id)
        .where(Answer.reader_id == reader_id).order_by(Answer.submitted_at.desc(), Answer.id.desc()).limit(1)).first()
    return tuple(row) if row is not None else None


def answer_all(factory: sessionmaker[Session], study_id: int, pseudonyms: list[str], *, seed: int = 0,
               start: datetime | None = None, log: Callable[[str], None] | None = None) -> SimulationReport:
    """Answer every assignment of the given readers through the workflow, with simulated clocks.

    Resumable: items already answered are skipped (``workflow.next_item`` serves the next open one) and a
    reader's clock is recomputed from their latest stored answer, so a run interrupted at any point and
    started again stores what one uninterrupted run would have stored.
    """
    with factory() as s:
        study = get_study(s, study_id)
        config = study_config(study)
        name, washout = study.name, config.design.washout_days
        start = start or study.created_at
        rows = list(s.scalars(select(Reader).where(Reader.study_id == study.id, Reader.pseudonym.in_(pseudonyms))
                              .order_by(Reader.pseudonym)))
        cases = {c.case_key: c for c in s.scalars(select(Case).where(Case.study_id == study.id))}
        truths = {k: (rules.reference_label(c.reference_labels), list(c.reference_labels.get("findings") or []))
                  for k, c in cases.items()}
        labels = {k: dict(c.reference_labels or {}) for k, c in cases.items()}
    level_names = [lv.name for lv in config.levels]
    options = [] if config.custom_questions else [k for k, _ in config.question("primary_diagnosis").options]
    report = SimulationReport(name, readers=[r.pseudonym for r in rows], started_at=start)
    sim_cases = {k: make_case(seed, k) for k in cases}
    for idx, r in enumerate(rows):
        rank = level_names.index(r.level) / max(1, len(level_names) - 1) if r.level in level_names else 0.5
        sim = make_reader(seed, r.pseudonym, rank)
        clock = start + timedelta(minutes=17 * idx)
        last_session = None
        with factory() as s:
            db.begin_read(s)
            last = _last_answer(s, r.id)
            s.rollback()
            if last is not None:  # resuming: the clock goes on from the latest stored answer
                submitted_at, last_session, case_key, condition = last
                clock = submitted_at + _pause(seed, r.pseudonym, case_key, condition)
            session_end = clock
            while True:
                try:
                    item = workflow.next_item(s, r.id, now=clock)
                except workflow.WashoutPending as wait:
                    days = random.Random(derive_seed(seed, "sim-gap", r.pseudonym, wait.session_number)).randint(1, 5)
                    clock = max(clock, wait.available_at) + timedelta(days=days)
                    continue
                if item is None:
                    break
                if last_session is not None and item.session != last_session and washout == 0:
                    clock += timedelta(hours=2)
                last_session = item.session
                rng = random.Random(derive_seed(seed, "sim-read", r.pseudonym, item.case_id, item.condition))
                truth, truth_findings = truths[item.case_id]
                case = sim_cases[item.case_id]
                aided = isinstance(item, workflow.AidedItem)
                if _ungradable(config, seed, r.pseudonym, item.case_id, item.condition):
                    answer = {"ungradable": True}
                elif config.custom_questions:
                    answer = custom_answer(config, rng, sim, case, labels[item.case_id], aided)
                    if item.prior_answer and not item.prior_answer.get("ungradable") and rng.random() < 0.6:
                        answer = {k: v for k, v in item.prior_answer.items()}  # step 2 keeps the own read
                else:
                    answer = None
                if answer is None:
                    if item.prior_answer and "primary_diagnosis" in item.prior_answer:  # sequential step 2
                        own = (item.prior_answer["primary_diagnosis"], int(item.prior_answer.get("confidence", 50)))
                    else:
                        own = own_read(rng, sim, case, truth, options)
                    probs = None
                    primary, conf = own
                    if aided:
                        probs = item.ai.probabilities
                        top, top_p = ai_top(probs)
                        primary, conf = aided_read(rng, sim, own, top, top_p, truth)
                    answer = _answer(config, rng, primary, conf, truth_findings, sim, probs)
                seconds = reading_seconds(rng, sim, case, aided)
                done = clock + timedelta(seconds=round(seconds, 3))
                workflow.submit(s, r.id, item.assignment_id, answer,
                                f"sim:{study_id}:{r.pseudonym}:{item.assignment_id}", now=done)
                s.commit()  # each answer on its own: a run killed here resumes after it
                report.answers += 1
                clock = done + _pause(seed, r.pseudonym, item.case_id, item.condition)
                session_end = max(session_end, clock)
        report.finished_at = max(report.finished_at or session_end, session_end)
        if log:
            log(f"  simulated reader {r.pseudonym} ({r.level}, {r.years_experience:g} y) done")
    return report


def _open_items(session: Session, reader_ids: list[int]) -> dict[int, int]:
    """reader id -> number of their assignments without an answer."""
    answered = select(Answer.id).where(Answer.assignment_id == Assignment.id).exists()
    rows = session.execute(select(Assignment.reader_id, func.count())
                           .where(Assignment.reader_id.in_(reader_ids), ~answered)
                           .group_by(Assignment.reader_id)).all()
    return {rid: n for rid, n in rows}


def _assignment_counts(session: Session, reader_ids: list[int]) -> dict[int, int]:
    rows = session.execute(select(Assignment.reader_id, func.count()).where(Assignment.reader_id.in_(reader_ids))
                           .group_by(Assignment.reader_id)).all()
    return {rid: n for rid, n in rows}


def _started_with(session: Session, study_id: int) -> dict | None:
    """The ``simulation.started`` audit row's {"readers", "seed"} (None for runs older than that row)."""
    event = session.scalar(select(AuditEvent).where(AuditEvent.study_id == study_id,
                                                    AuditEvent.action == "simulation.started")
                           .order_by(AuditEvent.id.desc()).limit(1))
    return dict(event.after or {}) if event is not None else None


class SimulationRunning(ValueError):
    """Another ``simulate`` run on the same study holds its run lock (in this or another process)."""

SIM_LOCK_CLASS = 0x53494D55  # "SIMU": PostgreSQL advisory lock (class, study id), one per study


@contextmanager
def _exclusive_run(factory: sessionmaker[Session], study_id: int, name: str) -> Iterator[None]:
    """Hold the study's simulation lock for the whole run, or raise :class:`SimulationRunning`.

    Why a lock that dies with its holder rather than a row: a killed run must be resumable at once.
    PostgreSQL: a session-level advisory lock on a connection kept for the run. SQLite: ``flock`` on a
    file beside the database (same machine, by SQLite's nature). Other databases (or SQLite in memory):
    no lock, as there can be no second process."""
    engine = factory.kw["bind"]
    busy = SimulationRunning(f"a simulation of study {name!r} is already running (another `simulate` started "
                             "first); wait for it to finish. Run the same command again afterwards: it resumes "
                             "whatever is left and adds no reader twice")
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:c, :s)"), {"c": SIM_LOCK_CLASS, "s": study_id}).scalar()
            conn.commit()  # the lock is the connection's, not the transaction's
            if not got:
                raise busy
            try:
                yield
            finally:
                try:
                    conn.execute(text("SELECT pg_advisory_unlock(:c, :s)"), {"c": SIM_LOCK_CLASS, "s": study_id})
                    conn.commit()
                except Exception:  # a broken connection: PostgreSQL drops the lock with it
                    conn.invalidate()
        return
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        yield
        return
    import fcntl

    fd = os.open(f"{database}.simulate-{study_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        yield
    finally:
        os.close(fd)  # releases the flock


def simulate(factory: sessionmaker[Session], study_id: int | str, n_readers: int, *, seed: int = 0,
             start: datetime | None = None, actor: str = "simulator",
             log: Callable[[str], None] | None = None) -> SimulationReport:
    """Add ``n_readers`` virtual readers, rebuild the design, and answer every one of their assignments,
    holding the study's run lock (:func:`_exclusive_run`): a run already going elsewhere raises
    :class:`SimulationRunning`, changing nothing. The rest is :func:`_simulate`."""
    with factory() as s:
        study = get_study(s, study_id)
        sid, name = study.id, study.name
    with _exclusive_run(factory, sid, name):
        return _simulate(factory, sid, n_readers, seed=seed, start=start, actor=actor, log=log)


def backdated_start(n_readers: int, n_cases: int, washout_days: int, now: datetime | None = None) -> datetime:
    """A first clock early enough that the whole simulated run ends before ``now``.

    Why: simulated activity dated in the future shows on the monitor as readers who have not read yet
    and puts "last answer" after the report's own date. The bound is generous: readers start 17 min
    apart, a reading with its pause takes under 2 min (two readings per case at most), a washout is
    followed by 1-5 days, and a day more to spare.
    """
    span = (timedelta(minutes=17 * n_readers) + timedelta(minutes=2 * 2 * n_cases)
            + timedelta(days=washout_days + 5 + 1))
    return (now or utcnow()).replace(microsecond=0) - span


def _simulate(factory: sessionmaker[Session], study_id: int, n_readers: int, *, seed: int = 0,
              start: datetime | None = None, actor: str = "simulator",
              log: Callable[[str], None] | None = None) -> SimulationReport:
    """Add ``n_readers`` virtual readers, rebuild the design, and answer every one of their assignments.

    A fresh run needs a study with cases and no answers yet (the design must still be open: the new
    readers need assignments). The readers, their codes, the rebuilt design and a ``simulation.started``
    audit row are stored in one transaction: all of them, or (killed, or failed) none.

    The same call again resumes: where the study already has its ``n_readers`` simulated readers from
    ``seed``, it answers what they left open (nothing, if they are done) and says so in
    ``report.resumed``. Readers left without assignments by a run of an older, non-atomic version are
    completed and the design rebuilt, if no answer exists yet. A different ``n_readers`` or ``seed``
    is refused: mixing two simulations in one study is not a simulation of either.
    """
    if n_readers < 1:
        raise ValueError("n_readers must be at least 1")
    with factory() as s:
        study = get_study(s, study_id)
        sid, name = study.id, study.name
        if not s.scalar(select(Case.id).where(Case.study_id == sid).limit(1)):
            raise ValueError(f"study {name!r} has no cases; import cases first")
        sims = simulated_readers(s, sid)
        answered = has_answers(s, sid) or study.design_locked_at is not None
        started = _started_with(s, sid)
        washout = study_config(study).design.washout_days
        n_cases = s.scalar(select(func.count(Case.id)).where(Case.study_id == sid)) or 0
    if not sims:
        if answered:
            raise ValueError(f"study {name!r} already has answers; simulated readers can only be added "
                             "before reading starts (the design must include them)")
        if start is None:
            start = backdated_start(n_readers, n_cases, washout)
        with factory() as s:
            codes = add_simulated_readers(s, sid, n_readers, seed=seed, actor=actor)
            build_design(s, sid, actor=actor)
            audit.record(s, actor=actor, action="simulation.started", entity="study", entity_id=sid, study_id=sid,
                         after={"readers": n_readers, "seed": seed, "start": start, "pseudonyms": sorted(codes)})
            s.commit()
        return _finish(factory, sid, seed=seed, start=start, log=log, codes=codes)

    if start is None and started is not None and started.get("start"):  # resume on the first run's clock
        start = datetime.fromisoformat(started["start"])
    k = len(sims)
    if (started is not None and (started.get("readers"), started.get("seed")) != (n_readers, seed)) or k > n_readers:
        was = (f"{started.get('readers')} simulated readers made with seed {started.get('seed')}"
               if started is not None else f"{k} simulated readers")
        what = "answers from" if answered else "its"
        raise ValueError(f"study {name!r} already has {what} {was}; run the same command again "
                         "(same --readers and --seed) to resume them: a study holds one simulation")
    with factory() as s:
        have = _assignment_counts(s, [r.id for r in sims])
    bare = [r for r in sims if not have.get(r.id)]
    codes: dict[str, str] = {}
    if k < n_readers or bare:  # left by an older, non-atomic run: finish creating, then the design
        if answered:
            raise ValueError(f"study {name!r} has {len(bare)} simulated reader(s) without assignments and "
                             f"{n_readers - k} still to add, but it already has answers: its design can no "
                             "longer change, so they cannot be given assignments (simulate into a copy of the study "
                             "made before its first answer instead)")
        with factory() as s:
            codes = _create_readers(s, sid, n_readers, seed=seed, actor=actor,
                                    skip={i for r in sims if (i := _sim_index(r)) is not None})
            build_design(s, sid, actor=actor)
            audit.record(s, actor=actor, action="simulation.started", entity="study", entity_id=sid, study_id=sid,
                         after={"readers": n_readers, "seed": seed, "start": start, "completed_from": k,
                                "pseudonyms": sorted([r.pseudonym for r in sims] + list(codes))})
            s.commit()
        if log:
            log(f"completed the readers of an interrupted run: {n_readers - k} added, design rebuilt")
    return _finish(factory, sid, seed=seed, start=start, log=log, codes=codes, resumed=True, actor=actor)


def _finish(factory: sessionmaker[Session], sid: int, *, seed: int, start: datetime | None,
            log: Callable[[str], None] | None, codes: dict[str, str], resumed: bool = False,
            actor: str = "simulator") -> SimulationReport:
    with factory() as s:
        sims = simulated_readers(s, sid)
        ids = [r.id for r in sims]
        n_assign = sum(_assignment_counts(s, ids).values())
        left = _open_items(s, ids)
        if resumed:
            audit.record(s, actor=actor, action="simulation.resumed", entity="study", entity_id=sid, study_id=sid,
                         after={"readers": len(sims), "readers_with_items_left": len(left),
                                "items_left": sum(left.values()), "seed": seed})
            s.commit()
    # every simulated reader, done or not: a reader's starting clock depends on their place among them
    report = answer_all(factory, sid, [r.pseudonym for r in sims], seed=seed, start=start, log=log)
    report.readers = [r.pseudonym for r in sims]
    report.codes, report.assignments = codes, n_assign
    report.resumed, report.readers_left = resumed, len(left)
    return report


__all__ = ["SimulationReport", "SimulationRunning", "add_simulated_readers", "ai_top", "answer_all", "expected_accuracy", "simulate",
           "simulated_readers"]
