"""study.domain.rules: one home for correct, the AI's call, the output shown, the latest version and progress,
and every caller agreeing with it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sqlalchemy import select

from study.domain import rules, workflow
from study.storage.models import Reader, Study
from study.services import investigator
from testsupport.studies import CARD, VALID_ANSWER
from testsupport.studies import committed

REPO = Path(__file__).resolve().parents[2]


def test_ai_call_threshold_ties_and_normal():
    assert rules.ai_call({"amd": 0.7, "rvo": 0.2}) == ("amd", 0.7)
    assert rules.ai_call({"amd": 0.3, "rvo": 0.2}) == ("normal", pytest.approx(0.7))  # nothing reaches 0.5
    assert rules.ai_call({"rvo": 0.6, "amd": 0.6})[0] == "amd"  # ties: first by name, whatever the dict order
    assert rules.ai_call({}) == ("normal", 0.5)
    assert rules.ai_call({"amd": 0.5}) == ("amd", 0.5)  # at the threshold counts


def test_every_ai_call_is_the_rule():
    from study.visitor import ministudy
    from study.jobs import simulate_readers as simulate

    probs = {"glaucoma": 0.45, "amd": 0.62, "rvo": 0.62}
    assert simulate.ai_top is rules.ai_call
    assert ministudy.model_call(probs) == rules.ai_call(probs)[0] == "amd"
    assert ministudy.model_call({"amd": 0.2}) == "normal"


def test_p_abnormal():
    assert rules.p_abnormal({"normal": 0.8, "amd": 0.1}) == pytest.approx(0.2)
    assert rules.p_abnormal({"amd": 0.3, "rvo": 0.6}) == 0.6
    assert rules.p_abnormal(None) is None


def test_latest_versions():
    assert rules.latest_versions([(1, 1), (2, 1), (1, 3), (1, 2)]) == {1: 3, 2: 1}


@pytest.mark.parametrize("module", ["study/outputs/export.py", "study/services/investigator.py", "study/services/reader.py",
                                    "study/analysis/reads.py"])
def test_no_copy_of_the_ai_call_left(module):
    tree = ast.parse((REPO / module).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "study.jobs.simulate_readers" not in imported  # export.py used to borrow the simulator's rule
    assert "AI_POSITIVE" not in (REPO / module).read_text()


def test_shown_output_is_the_same_for_workflow_export_and_rule(make_study, Session):
    from study.domain.answers import answers_table
    from study.jobs.precompute import store_ai_output

    sid, case_ids, codes = make_study("sequential", n_cases=2, n_readers=1)
    newer = {**CARD, "version": "newer-model"}
    with Session() as s:
        for cid in case_ids:  # a second model's outputs, stored later: the study pins the first one
            committed(store_ai_output, s, cid, model_card=newer, label_set="revision_findings",
                            probabilities={"amd": 0.9, "rvo": 0.1})
        s.get(Study, sid).model_version = CARD["version"]
        s.commit()
        reader_id = next(iter(codes))
        shown = {}
        while (item := committed(workflow.next_item, s, reader_id)) is not None:
            if hasattr(item, "ai"):
                shown[item.case_id] = item.ai.model_version
            committed(workflow.submit, s, reader_id, item.assignment_id, VALID_ANSWER, f"k{item.assignment_id}")
        table = answers_table(s, sid)
        rule = {cid: rules.shown_ai_output(s, CARD["version"], cid).model_version for cid in case_ids}
    assert set(shown.values()) == set(rule.values()) == {CARD["version"]}
    aided = table[table.condition != "unaided"]
    assert set(aided["ai_model_version"]) == {CARD["version"]}
    assert (aided["ai_top_suggestion"] == "pathologic_myopia").all()  # 0.1 ... 0.5 in LABELS order
    with Session() as s:  # no pinned version: the newest output of any version
        assert rules.shown_ai_output(s, None, case_ids[0]).model_version == "newer-model"


def test_progress_one_count_for_workflow_monitor_and_status(make_study, Session):
    sid, _, codes = make_study("crossover", n_cases=4, n_readers=2, unaided_corrections_after_ai=True)
    reader_id = next(iter(codes))
    with Session() as s:
        first = None
        for k in range(3):
            item = committed(workflow.next_item, s, reader_id)
            res = committed(workflow.submit, s, reader_id, item.assignment_id, VALID_ANSWER, f"k{k}")
            first = first or res
        answer_id = s.scalar(select(workflow.Answer.id).where(workflow.Answer.reader_id == reader_id)
                             .order_by(workflow.Answer.id).limit(1))
        committed(workflow.correct, s, reader_id, answer_id, {**VALID_ANSWER, "primary_diagnosis": "rvo"}, "typo")
        p = rules.reader_progress(s, reader_id)
        assert (p.done, p.total, p.complete) == (3, 8, False)  # a correction is not a new reading
        wp = workflow.progress(s, reader_id)
        assert (wp.done, wp.total) == (p.done, p.total)
        pseudonym = s.get(Reader, reader_id).pseudonym
        status = {r["pseudonym"]: r for r in investigator.study_summary(s, sid)["readers"]}
        assert (status[pseudonym]["done"], status[pseudonym]["total"]) == (3, 8)
        mon = [r for r in investigator.monitor(s, sid) if r["reader"] == pseudonym]
        assert sum(r["done"] for r in mon) == 3 and sum(r["total"] for r in mon) == 8


def test_correct_is_the_same_in_export_and_monitor(make_study, Session):
    from study.domain.answers import answers_table

    sid, _, codes = make_study("crossover", n_cases=6, n_readers=2)
    with Session() as s:
        for reader_id in codes:
            for k, answer in enumerate([VALID_ANSWER, {**VALID_ANSWER, "primary_diagnosis": "normal"}] * 3):
                item = committed(workflow.next_item, s, reader_id)
                committed(workflow.submit, s, reader_id, item.assignment_id, answer, f"k{reader_id}-{k}")
        table = answers_table(s, sid)
        cells = investigator.accuracy_by_condition_level(s, sid)
    latest = table[table.is_latest]
    assert sum(c["readings"] for c in cells) == latest["correct"].notna().sum()
    assert sum(round(c["accuracy"] * c["readings"]) for c in cells) == int(latest["correct"].sum())
    assert list(table["level"].cat.categories) == ["junior", "intermediate", "senior"]  # the study's order
