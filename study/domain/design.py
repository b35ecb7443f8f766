"""Build, persist and verify a study's assignments from its design and its stored seed.

Every random choice comes from a seed derived from the study seed and a label ("blocks", "groups",
"order" + reader + session), so :func:`plan` is a pure function: the stored assignments can be
rebuilt and checked at any time (:func:`verify_design`).

Designs (``k`` = number of conditions):
- sequential: one session; per case two linked assignments, step 1 ``unaided`` then step 2 ``ai``
  (``depends_on`` = step 1) at consecutive positions. Two rows rather than one two-step row, so each
  reading has one condition, one answer history and one time; the workflow locks step 1 once step 2
  has been shown.
- crossover (k = 2) and multi_arm (k = len(arms)): cases split into k blocks, readers into k groups
  (balanced within each experience level). Crossover has 2 sessions and reader group g reads case
  block b in session s under condition ``(g + b + s) mod 2``: a 2x2 Latin square, every reader reads
  every case once per condition. Multi-arm has one session and group g reads block b under arm
  ``(g + b) mod k``: a k x k Latin square across readers, every case read under every arm.
- Within a session, a reader's items are grouped by condition in the configured order (unaided
  first, so AI exposure cannot leak into that session's unaided reads) and shuffled within a group.

The lock (the study's first answer): from then on the design is never rebuilt, and the cases never
change (``study.domain.cases`` refuses an import; :class:`StudyLocked` says what to do instead). A reader added
after the lock is *appended* (:func:`extend_design`): they read every case, like every other reader, in
the reader group that has the fewest readers (then the fewest of their experience level, then the lowest
number), so two readers added one after the other form a complete balanced block of a crossover. Each
append is a ``design.extended`` audit row naming the readers in order; :func:`plan` takes that order
(``late``), so :func:`verify_design` rebuilds the appended readers too and stays clean.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import astuple, dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from study.domain import audit
from study.domain.config import DesignConfig
from study.domain.studies import DesignLocked, get_study, has_answers, study_config
from study.domain.timefmt import minute
from study.storage.models import Assignment, AuditEvent, Case, Reader, Study

EXTENDED = "design.extended"  # the audit action of an append: after = {"readers": [pseudonyms, in order], ...}


class StudyLocked(DesignLocked, ValueError):
    """Refused because the study has answers. A ValueError too, so the command line (exit 2) and the app
    (a listed problem) show the message as a user's mistake, never as a crash."""


def is_locked(session: Session, study: Study) -> bool:
    """Whether the study's first answer exists (its lock time is set with that answer)."""
    return study.design_locked_at is not None or has_answers(session, study.id)


def ensure_open(session: Session, study: Study, refused: str, instead: str) -> None:
    """Raise :class:`StudyLocked` once the study has answers: ``refused`` says what cannot be done,
    ``instead`` what to do; the lock time is in the investigator's time zone, to the minute."""
    if not is_locked(session, study):
        return

    since = f" since {minute(study.design_locked_at)}" if study.design_locked_at is not None else ""
    raise StudyLocked(f"study {study.name!r} is locked: readers have been answering{since}, and every reader's "
                      f"assignments were built from its cases. {refused}. {instead}")


@dataclass(frozen=True, order=True)
class Planned:
    """One planned reading, identified by stable keys (reader pseudonym, case key)."""

    reader: str
    session: int
    position: int
    case: str
    condition: str
    step: int
    depends_on_condition: str | None  # sequential step 2: the condition of its step 1 (same case)
    reader_group: int
    case_block: int
    seed: int


def derive_seed(seed: int, *parts: object) -> int:
    """A 31-bit seed from the study seed and labels: independent streams, stable across Python versions."""
    text = "|".join([str(seed), *map(str, parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


def case_blocks(case_keys: list[str], k: int, seed: int) -> dict[str, int]:
    order = sorted(case_keys)
    random.Random(derive_seed(seed, "blocks")).shuffle(order)
    return {c: i % k for i, c in enumerate(order)}


def reader_groups(readers: list[tuple[str, str]], k: int, seed: int) -> dict[str, int]:
    """Readers (pseudonym, level) into k groups, balanced overall and within each experience level."""
    by_level: dict[str, list[str]] = defaultdict(list)
    for pseudonym, level in sorted(readers):
        by_level[level].append(pseudonym)
    order: list[str] = []
    for level in sorted(by_level):
        members = by_level[level]
        random.Random(derive_seed(seed, "groups", level)).shuffle(members)
        order.extend(members)
    return {r: i % k for i, r in enumerate(order)}


def late_groups(groups: dict[str, int], levels: dict[str, str], late: list[tuple[str, str]], k: int) -> dict[str, int]:
    """Groups for readers appended after the lock, in the order they were added: each joins the group with
    the fewest readers, then the fewest of their level, then the lowest number (the others never move)."""
    overall = [0] * k
    by_level: dict[str, list[int]] = defaultdict(lambda: [0] * k)
    for pseudonym, g in groups.items():
        overall[g] += 1
        by_level[levels[pseudonym]][g] += 1
    out: dict[str, int] = {}
    for pseudonym, level in late:
        g = min(range(k), key=lambda j: (overall[j], by_level[level][j], j))
        out[pseudonym] = g
        overall[g] += 1
        by_level[level][g] += 1
    return out


def plan(design: DesignConfig, case_keys: list[str], readers: list[tuple[str, str]], seed: int,
         late: list[tuple[str, str]] = ()) -> list[Planned]:
    """Every reading of the study, deterministically from ``seed``: ``readers`` (pseudonym, level) are the
    readers the design was built with, ``late`` the readers appended after the lock, in the order added."""
    if len(set(case_keys)) != len(case_keys):
        raise ValueError("case keys must be unique")
    late = list(late)
    if set(p for p, _ in late) & set(p for p, _ in readers):
        raise ValueError("a reader cannot be both in the built design and appended after the lock")
    out: list[Planned] = []
    if design.type == "sequential":
        for pseudonym, _level in sorted(list(readers) + late):
            order_seed = derive_seed(seed, "order", pseudonym, 1)
            cases = sorted(case_keys)
            random.Random(order_seed).shuffle(cases)
            for i, case in enumerate(cases):
                out.append(Planned(pseudonym, 1, 2 * i, case, "unaided", 1, None, 0, 0, order_seed))
                out.append(Planned(pseudonym, 1, 2 * i + 1, case, "ai", 2, "unaided", 0, 0, order_seed))
        return out
    conditions = design.conditions
    k = len(conditions)
    blocks = case_blocks(case_keys, k, seed)
    groups = reader_groups(readers, k, seed)
    groups.update(late_groups(groups, dict(list(readers) + late), late, k))
    sessions = 2 if design.type == "crossover" else 1
    for pseudonym, _level in sorted(list(readers) + late):
        g = groups[pseudonym]
        for s in range(sessions):
            order_seed = derive_seed(seed, "order", pseudonym, s + 1)
            rng = random.Random(order_seed)
            by_condition: dict[str, list[str]] = defaultdict(list)
            for case in sorted(case_keys):
                by_condition[conditions[(g + blocks[case] + s) % k]].append(case)
            position = 0
            for condition in conditions:
                cases = by_condition[condition]
                rng.shuffle(cases)
                for case in cases:
                    out.append(Planned(pseudonym, s + 1, position, case, condition, 1, None, g, blocks[case],
                                       order_seed))
                    position += 1
    return out


def appended_readers(session: Session, study_id: int) -> list[str]:
    """Pseudonyms of the readers appended after the lock, in the order they were added (audit trail)."""
    out: list[str] = []
    for after in session.scalars(select(AuditEvent.after).where(AuditEvent.study_id == study_id,
                                                                 AuditEvent.action == EXTENDED)
                                 .order_by(AuditEvent.id)):
        out.extend(p for p in (after or {}).get("readers", []) if p not in out)
    return out


def _current_inputs(session: Session, study: Study
                    ) -> tuple[list[str], list[tuple[str, str]], list[tuple[str, str]]]:
    """(case keys, the readers the design was built with, the readers appended after the lock in order)."""
    cases = list(session.scalars(select(Case.case_key).where(Case.study_id == study.id)))
    levels = {r.pseudonym: r.level for r in session.scalars(select(Reader).where(Reader.study_id == study.id))}
    late = [(p, levels[p]) for p in appended_readers(session, study.id) if p in levels]
    appended = {p for p, _ in late}
    return cases, [(p, lv) for p, lv in levels.items() if p not in appended], late


def _store(session: Session, study: Study, planned: list[Planned]) -> None:
    """Insert the planned rows (step-2 rows linked to their step 1)."""
    case_ids = dict(session.execute(select(Case.case_key, Case.id).where(Case.study_id == study.id)).all())
    reader_ids = dict(session.execute(select(Reader.pseudonym, Reader.id).where(Reader.study_id == study.id)).all())
    rows: dict[tuple[str, str, str], Assignment] = {}
    for p in planned:
        row = Assignment(study_id=study.id, reader_id=reader_ids[p.reader], case_id=case_ids[p.case],
                         condition=p.condition, session=p.session, position=p.position, step=p.step,
                         reader_group=p.reader_group, case_block=p.case_block, seed=p.seed)
        rows[(p.reader, p.case, p.condition)] = row
        session.add(row)
    session.flush()
    for p in planned:
        if p.depends_on_condition is not None:
            rows[(p.reader, p.case, p.condition)].depends_on_id = rows[(p.reader, p.case, p.depends_on_condition)].id


def readers_without_assignments(session: Session, study_id: int) -> list[str]:
    """Pseudonyms of the study's readers who have no assignment (added since the design was built)."""
    has = select(Assignment.id).where(Assignment.reader_id == Reader.id).exists()
    return sorted(session.scalars(select(Reader.pseudonym).where(Reader.study_id == study_id, ~has)))


def extend_design(session: Session, study: Study, pseudonyms: list[str], *, actor: str = "investigator") -> int:
    """Append assignments for readers added after the lock (see the module docstring); returns the count.

    The study row is locked first (PostgreSQL), so two appends at once take their turns and the audit order
    is the order :func:`plan` replays; a reader who already has assignments is refused."""
    # FOR NO KEY UPDATE: it waits for another append, but not for this transaction's own reader insert
    # (whose foreign key holds a KEY SHARE lock on the row): two appends at once queue, never deadlock
    session.execute(select(Study.id).where(Study.id == study.id).with_for_update(key_share=True))
    taken = set(session.scalars(select(Reader.pseudonym).join(Assignment, Assignment.reader_id == Reader.id)
                                .where(Reader.study_id == study.id)))
    if clash := sorted(set(pseudonyms) & taken):
        raise ValueError(f"reader(s) {', '.join(clash)} already have assignments in study {study.name!r}")
    config = study_config(study)
    case_keys, built, late = _current_inputs(session, study)
    new = set(pseudonyms)
    built = [(p, lv) for p, lv in built if p not in new]
    levels = dict(built + late) | {p: lv for p, lv in session.execute(
        select(Reader.pseudonym, Reader.level).where(Reader.study_id == study.id, Reader.pseudonym.in_(new)))}
    late = late + [(p, levels[p]) for p in pseudonyms]
    planned = plan(config.design, case_keys, built, study.seed, late)
    added = [p for p in planned if p.reader in new]
    _store(session, study, added)
    audit.record(session, actor=actor, action=EXTENDED, entity="study", entity_id=study.id, study_id=study.id,
                 after={"readers": list(pseudonyms), "groups": {p.reader: p.reader_group for p in added},
                        "assignments": len(added), "digest": plan_digest(planned)})
    session.flush()
    return len(added)


def build_design(session: Session, study_id: int, *, actor: str = "investigator") -> int:
    """(Re)build and store every assignment of the study; returns the count.

    Once the study has answers it is never rebuilt: readers still without assignments (added since the
    build) are appended (:func:`extend_design`) and the count of their assignments returned; with none,
    :class:`StudyLocked` says so."""
    study = get_study(session, study_id)
    if is_locked(session, study):
        if bare := readers_without_assignments(session, study.id):
            return extend_design(session, study, bare, actor=actor)
        ensure_open(session, study, "Its design can no longer be rebuilt",
                    "Readers added now are given their assignments as they are added (appended in balanced "
                    "reader groups); `python -m study design --verify` checks the stored design")
    config = study_config(study)
    case_keys, readers, _late = _current_inputs(session, study)
    if not case_keys or not readers:
        raise ValueError(f"study {study.name!r} needs cases and readers before its design can be built "
                         f"({len(case_keys)} cases, {len(readers)} readers)")
    planned = plan(config.design, case_keys, readers, study.seed)
    previous = session.scalar(select(Assignment.id).where(Assignment.study_id == study.id).limit(1))
    # delete step-2 rows first: they reference step-1 rows
    session.execute(delete(Assignment).where(Assignment.study_id == study.id, Assignment.depends_on_id.is_not(None)))
    session.execute(delete(Assignment).where(Assignment.study_id == study.id))
    _store(session, study, planned)
    audit.record(session, actor=actor, action="design.rebuilt" if previous else "design.built", entity="study",
                 entity_id=study.id, study_id=study.id,
                 after={"design": config.design.type, "seed": study.seed, "assignments": len(planned),
                        "readers": len(readers), "cases": len(case_keys), "digest": plan_digest(planned)})
    session.flush()
    return len(planned)


def plan_digest(planned: list[Planned]) -> str:
    """A hash of the whole plan, recorded in the audit trail so a later check can compare."""
    h = hashlib.sha256()
    for p in sorted(planned):
        h.update(repr(astuple(p)).encode())
    return h.hexdigest()


def stored_plan(session: Session, study_id: int) -> list[Planned]:
    """The assignments in the database, in the same form as :func:`plan` produces."""
    rows = session.execute(
        select(Assignment, Reader.pseudonym, Case.case_key).join(Reader, Assignment.reader_id == Reader.id)
        .join(Case, Assignment.case_id == Case.id).where(Assignment.study_id == study_id)).all()
    by_id = {a.id: a for a, _, _ in rows}
    return sorted(Planned(pseudonym, a.session, a.position, case_key, a.condition, a.step,
                          by_id[a.depends_on_id].condition if a.depends_on_id else None,
                          a.reader_group, a.case_block, a.seed)
                  for a, pseudonym, case_key in rows)


def verify_design(session: Session, study_id: int) -> list[str]:
    """Rebuild the plan from the stored seed and list every difference with the database (empty: equal)."""
    study = get_study(session, study_id)
    case_keys, readers, late = _current_inputs(session, study)
    expected = set(plan(study_config(study).design, case_keys, readers, study.seed, late))
    actual = set(stored_plan(session, study_id))
    problems = [f"missing from the database: {p}" for p in sorted(expected - actual)]
    problems += [f"not produced by the seed: {p}" for p in sorted(actual - expected)]
    return problems
