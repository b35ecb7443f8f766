"""Study TOML: the demo parses; every problem in a bad file is reported at once; answers are validated."""

from __future__ import annotations

from pathlib import Path

import pytest

from study.domain.config import AnswerInvalid, StudyConfigError, load_config, parse_text, validate_answer
from testsupport.studies import study_toml

DEMO = Path(__file__).resolve().parents[2] / "studies" / "demo.toml"


def test_demo_config_parses():
    cfg, text = load_config(DEMO)
    assert cfg.design.type == "crossover" and cfg.design.washout_days == 28
    assert cfg.corrections_allowed is True
    ids = [q.id for q in cfg.questions]
    assert ids == ["primary_diagnosis", "findings", "confidence", "referral"]
    primary = cfg.question("primary_diagnosis")
    keys = [k for k, _ in primary.options]
    assert keys[-1] == "normal" and "glaucoma" in keys
    assert "normal" not in [k for k, _ in cfg.question("findings").options]
    assert text.startswith("#")


@pytest.mark.parametrize("years,level", [(0, "junior"), (4.99, "junior"), (5, "intermediate"),
                                         (10, "intermediate"), (10.01, "senior"), (40, "senior")])
def test_default_experience_bins(years, level):
    assert parse_text(study_toml()).level_for(years) == level


def test_custom_bins_and_bad_years():
    cfg = parse_text(study_toml() + '[[experience.level]]\nname = "trainee"\nbelow = 2\n'
                     '[[experience.level]]\nname = "consultant"\n')
    assert cfg.level_for(1.5) == "trainee" and cfg.level_for(2) == "consultant"
    with pytest.raises(ValueError):
        cfg.level_for(-1)


def test_all_problems_listed_together():
    bad = """
[study]
name = ""
label_set = "no_such_set"
corrections_allowed = "yes"
colour = "blue"

[questions]
confidence = 3

[design]
type = "xover"
washout_days = -2
"""
    with pytest.raises(StudyConfigError) as err:
        parse_text(bad, "bad.toml")
    problems = err.value.problems
    text = str(err.value)
    assert len(problems) >= 6
    for needle in ("[study] name", "[study] label_set", "corrections_allowed", "'colour'", "[questions] confidence",
                   "[design] type", "washout_days"):
        assert needle in text, needle
    assert text.startswith("bad.toml has")


def test_bins_must_increase_and_end_with_catch_all():
    with pytest.raises(StudyConfigError, match="increase"):
        parse_text(study_toml() + '[[experience.level]]\nname = "a"\nbelow = 10\n'
                   '[[experience.level]]\nname = "b"\nbelow = 5\n[[experience.level]]\nname = "c"\n')
    with pytest.raises(StudyConfigError, match="last level"):
        parse_text(study_toml() + '[[experience.level]]\nname = "a"\nbelow = 10\n')


def test_multi_arm_arms_validated():
    assert parse_text(study_toml("multi_arm")).design.conditions == ("unaided", "ai", "ai_saliency")
    with pytest.raises(StudyConfigError, match="unknown arm"):
        parse_text(study_toml("multi_arm", arms=["unaided", "robot"]))
    with pytest.raises(StudyConfigError, match="only used by design type"):
        parse_text(study_toml("crossover", arms=["unaided", "ai"]))


def test_invalid_toml_syntax():
    with pytest.raises(StudyConfigError, match="not valid TOML"):
        parse_text("[study\nname=")


def test_validate_answer():
    qs = parse_text(study_toml()).questions
    ok = validate_answer(qs, {"primary_diagnosis": "normal", "confidence": 0, "referral": False})
    assert ok == {"primary_diagnosis": "normal", "findings": [], "confidence": 0, "referral": False}
    assert validate_answer(qs, {"primary_diagnosis": "amd", "findings": ["glaucoma", "amd"], "confidence": 100,
                                "referral": True})["findings"] == ["amd", "glaucoma"]
    with pytest.raises(AnswerInvalid) as err:
        validate_answer(qs, {"primary_diagnosis": "cancer", "findings": ["normal"], "confidence": 101,
                             "referral": "yes", "extra": 1})
    assert len(err.value.problems) == 5
    with pytest.raises(AnswerInvalid, match="required"):
        validate_answer(qs, {"confidence": 50, "referral": True})
    with pytest.raises(AnswerInvalid, match="whole number"):
        validate_answer(qs, {"primary_diagnosis": "amd", "confidence": True, "referral": True})
