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
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import astuple, dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from study import audit
from study.config import DesignConfig
from study.models import Assignment, Case, Reader, Study
from study.studies import ensure_unlocked, get_study, study_config


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


def plan(design: DesignConfig, case_keys: list[str], readers: list[tuple[str, str]], seed: int) -> list[Planned]:
    """Every reading of the study, deterministically from ``seed``."""
    if len(set(case_keys)) != len(case_keys):
        raise ValueError("case keys must be unique")
    out: list[Planned] = []
    if design.type == "sequential":
        for pseudonym, _level in sorted(readers):
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
    sessions = 2 if design.type == "crossover" else 1
    for pseudonym, _level in sorted(readers):
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


def _current_inputs(session: Session, study: Study) -> tuple[list[str], list[tuple[str, str]]]:
    cases = list(session.scalars(select(Case.case_key).where(Case.study_id == study.id)))
    readers = [(r.pseudonym, r.level) for r in session.scalars(select(Reader).where(Reader.study_id == study.id))]
    return cases, readers


def build_design(session: Session, study_id: int, *, actor: str = "investigator") -> int:
    """(Re)build and store every assignment of the study; refused once it has answers. Returns the count."""
    study = get_study(session, study_id)
    ensure_unlocked(session, study)
    config = study_config(study)
    case_keys, readers = _current_inputs(session, study)
    if not case_keys or not readers:
        raise ValueError(f"study {study.name!r} needs cases and readers before its design can be built "
                         f"({len(case_keys)} cases, {len(readers)} readers)")
    planned = plan(config.design, case_keys, readers, study.seed)
    previous = session.scalar(select(Assignment.id).where(Assignment.study_id == study.id).limit(1))
    # delete step-2 rows first: they reference step-1 rows
    session.execute(delete(Assignment).where(Assignment.study_id == study.id, Assignment.depends_on_id.is_not(None)))
    session.execute(delete(Assignment).where(Assignment.study_id == study.id))
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
    audit.record(session, actor=actor, action="design.rebuilt" if previous else "design.built", entity="study",
                 entity_id=study.id, study_id=study.id,
                 after={"design": config.design.type, "seed": study.seed, "assignments": len(planned),
                        "readers": len(readers), "cases": len(case_keys), "digest": plan_digest(planned)})
    session.commit()
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
    case_keys, readers = _current_inputs(session, study)
    expected = set(plan(study_config(study).design, case_keys, readers, study.seed))
    actual = set(stored_plan(session, study_id))
    problems = [f"missing from the database: {p}" for p in sorted(expected - actual)]
    problems += [f"not produced by the seed: {p}" for p in sorted(actual - expected)]
    return problems
