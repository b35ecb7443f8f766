"""Designs: the Latin squares are balanced, the stored plan is the seed's plan, and it locks at the first answer."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from study.domain import design, readers, studies, workflow
from study.domain.config import parse_text
from study.storage.models import Assignment, AuditEvent
from testsupport.studies import VALID_ANSWER, study_toml
from testsupport.studies import committed

CASES = [f"c{i:02d}" for i in range(12)]
READERS = [(f"R{i:03d}", lvl) for i, lvl in enumerate(["junior", "junior", "senior", "senior", "intermediate",
                                                        "intermediate"], start=1)]


def _design(kind, **kw):
    return parse_text(study_toml(kind, **kw)).design


def test_crossover_is_a_balanced_2x2_latin_square():
    planned = design.plan(_design("crossover"), CASES, READERS, seed=7)
    assert len(planned) == len(READERS) * len(CASES) * 2
    per_reader = Counter((p.reader, p.case, p.condition) for p in planned)
    assert set(per_reader.values()) == {1} and len(per_reader) == len(READERS) * len(CASES) * 2
    for r, _ in READERS:
        mine = [p for p in planned if p.reader == r]
        for s in (1, 2):
            sess = [p for p in mine if p.session == s]
            # each session: half the cases unaided, the other half aided, each case once
            assert len({p.case for p in sess}) == len(CASES) == len(sess)
            assert Counter(p.condition for p in sess) == {"unaided": 6, "ai": 6}
            assert [p.position for p in sess] == list(range(len(sess)))
            # unaided block first within a session
            conds = [p.condition for p in sorted(sess, key=lambda p: p.position)]
            assert conds == sorted(conds, key=("unaided", "ai").index)
        # a case unaided in session 1 is aided in session 2
        s1 = {p.case: p.condition for p in mine if p.session == 1}
        s2 = {p.case: p.condition for p in mine if p.session == 2}
        assert all(s1[c] != s2[c] for c in CASES)
    assert Counter(p.reader_group for p in planned if p.session == 1 and p.position == 0) == {0: 3, 1: 3}
    assert Counter(p.case_block for p in planned if p.reader == "R001" and p.session == 1) == {0: 6, 1: 6}
    # groups balanced within each experience level
    groups = {p.reader: p.reader_group for p in planned}
    for level in ("junior", "senior", "intermediate"):
        assert sorted(groups[r] for r, lv in READERS if lv == level) == [0, 1]
    # the two groups read a given case in opposite conditions in the same session
    s1_by_group = {(p.reader_group, p.case): p.condition for p in planned if p.session == 1}
    assert all(s1_by_group[(0, c)] != s1_by_group[(1, c)] for c in CASES)


def test_multi_arm_latin_square_across_readers():
    planned = design.plan(_design("multi_arm"), CASES, READERS, seed=7)
    assert len(planned) == len(READERS) * len(CASES)  # every reader reads every case once
    assert {p.session for p in planned} == {1}
    for r, _ in READERS:
        assert Counter(p.condition for p in planned if p.reader == r) == {"unaided": 4, "ai": 4, "ai_saliency": 4}
    for c in CASES:  # with 6 readers in 3 groups each case is read twice under each arm
        assert Counter(p.condition for p in planned if p.case == c) == {"unaided": 2, "ai": 2, "ai_saliency": 2}


def test_sequential_pairs_unaided_then_ai():
    planned = design.plan(_design("sequential"), CASES, READERS, seed=7)
    for r, _ in READERS:
        mine = sorted((p for p in planned if p.reader == r), key=lambda p: p.position)
        assert len(mine) == 2 * len(CASES)
        for first, second in zip(mine[::2], mine[1::2]):
            assert first.case == second.case
            assert (first.condition, first.step, second.condition, second.step) == ("unaided", 1, "ai", 2)
            assert second.depends_on_condition == "unaided"


def test_order_depends_on_seed_reader_and_session():
    d = _design("crossover")
    a, b = design.plan(d, CASES, READERS, 7), design.plan(d, CASES, READERS, 7)
    assert a == b
    c = design.plan(d, CASES, READERS, 8)
    assert a != c
    order = lambda plan, r, s: [p.case for p in plan if p.reader == r and p.session == s]  # noqa: E731
    assert order(a, "R001", 1) != order(a, "R002", 1) or order(a, "R001", 2) != order(a, "R002", 2)
    assert design.plan(d, list(reversed(CASES)), list(reversed(READERS)), 7) == a  # input order irrelevant


@pytest.mark.parametrize("kind", ["sequential", "crossover", "multi_arm"])
def test_stored_design_is_rebuildable_from_the_seed(Session, make_study, kind):
    study_id, _, _ = make_study(kind, n_cases=6, n_readers=3)
    with Session() as s:
        assert design.verify_design(s, study_id) == []
        n = s.query(Assignment).count()
        stored = design.stored_plan(s, study_id)
        assert len(stored) == n > 0
        built = s.scalar(select(AuditEvent).where(AuditEvent.action == "design.built"))
        assert built.after["digest"] == design.plan_digest(stored)
        # tamper with one stored row: the check must notice
        row = s.scalar(select(Assignment).where(Assignment.study_id == study_id).order_by(Assignment.id).limit(1))
        row.condition = "ai_saliency" if row.condition != "ai_saliency" else "unaided"
        s.commit()
        problems = design.verify_design(s, study_id)
        assert any(p.startswith("missing") and "position=0" in p for p in problems)
        assert any(p.startswith("not produced") and f"condition='{row.condition}'" in p for p in problems)


def test_design_locked_after_first_answer(Session, make_study):
    study_id, _, codes = make_study("crossover", n_cases=4, n_readers=2)
    with Session() as s:
        assert committed(design.build_design, s, study_id) == 2 * 4 * 2  # rebuilding before reading is allowed
        assert design.verify_design(s, study_id) == []
        rid = next(iter(codes))
        item = committed(workflow.next_item, s, rid)
        committed(workflow.submit, s, rid, item.assignment_id, VALID_ANSWER, "first")
        st = studies.get_study(s, study_id)
        assert st.design_locked_at is not None
        before = design.stored_plan(s, study_id)
        with pytest.raises(studies.DesignLocked):
            committed(design.build_design, s, study_id)
        cfg = parse_text(study_toml("sequential"))
        with pytest.raises(studies.DesignLocked):
            committed(studies.update_config, s, study_id, cfg, "x")
        assert design.stored_plan(s, study_id) == before
        assert s.query(AuditEvent).filter_by(action="design.locked").count() == 1


def test_build_needs_cases_and_readers(Session):
    text = study_toml()
    with Session() as s:
        st = committed(studies.create_study, s, parse_text(text), text)
        with pytest.raises(ValueError, match="needs cases and readers"):
            committed(design.build_design, s, st.id)
        committed(readers.add_reader, s, st.id, display_name="A", years_experience=1)
        with pytest.raises(ValueError, match="0 cases"):
            committed(design.build_design, s, st.id)
