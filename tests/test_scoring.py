"""study.domain.scoring: one rule for "correct" per question kind; the legacy rule is unchanged."""

from __future__ import annotations

import pytest

from study.domain.config import Question, parse_text
from study.domain.scoring import reference, score
from testsupport.studies import study_toml

GRADE = Question("g", "ordinal", "Grade", options=(("0", "none"), ("1", "mild"), ("2", "mod"), ("3", "sev")),
                 truth="grade", primary=True)
YESNO = Question("dme", "boolean", "DME", truth="dme", primary=True)
MULTI = Question("les", "multi_choice", "Lesions", options=(("a", "A"), ("b", "B"), ("c", "C")), truth="les")
CHOICE = Question("dx", "single_choice", "Dx", options=(("x", "X"), ("y", "Y")), truth="dx")


def test_legacy_primary_matches_the_old_rule():
    cfg = parse_text(study_toml())
    for labels, answer in [({"label": "amd"}, "amd"), ({"label": "amd"}, "normal"), ({}, "normal"), ({}, "amd"),
                           ({"primary": "rvo"}, "rvo")]:
        old = int(answer == (labels.get("label") or labels.get("primary") or "normal"))
        s = score(cfg, labels, {"primary_diagnosis": answer, "confidence": 50, "referral": True})
        assert s.correct == old and s.answer == answer and not s.ungradable


def test_ordinal_exact_match_and_distance():
    s = score(GRADE, {"grade": "3"}, {"g": "1"})
    assert (s.correct, s.distance, s.answer_grade, s.truth_grade) == (0, 2, 1, 3)
    s = score(GRADE, {"grade": "2.0"}, {"g": "2"})  # numeric spellings of a key match
    assert (s.correct, s.distance) == (1, 0)
    assert score(GRADE, {"grade": "7"}, {"g": "2"}).correct is None  # not a grade: no usable reference
    assert score(GRADE, {}, {"g": "2"}).correct is None


def test_boolean_multi_and_single_choice():
    assert score(YESNO, {"dme": "yes"}, {"dme": True}).correct == 1
    assert score(YESNO, {"dme": "0"}, {"dme": True}).correct == 0
    assert score(YESNO, {"dme": "maybe"}, {"dme": True}).correct is None
    assert score(MULTI, {"les": "b;a"}, {"les": ["a", "b"]}).correct == 1
    assert score(MULTI, {"les": "a"}, {"les": ["a", "b"]}).correct == 0
    assert score(MULTI, {"les": "a;b"}, {"les": ["a", "b"]}).answer == "a;b"
    assert reference(MULTI, {"les": "c; a"}) == ["a", "c"]
    assert score(CHOICE, {"dx": "y"}, {"dx": "y"}).correct == 1
    assert score(CHOICE, {"dx": "y"}, {"dx": "x"}).correct == 0


@pytest.mark.parametrize("q,labels", [(GRADE, {"grade": "1"}), (YESNO, {"dme": "yes"})])
def test_ungradable_is_its_own_category(q, labels):
    s = score(q, labels, {"ungradable": True})
    assert s.ungradable and s.correct is None and s.answer is None and s.truth is not None
