"""load_reads: validation messages, latest versions, reference levels, study-export columns."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from study.analysis.reads import condition_pairs, findings, load_reads, no_comparison


def _tiny(**over):
    df = pd.DataFrame({
        "reader": ["a", "a", "b", "b"], "level": ["senior", "senior", "junior", "junior"],
        "case": ["c1", "c1", "c1", "c1"], "condition": ["unaided", "ai", "unaided", "ai"], "correct": [0, 1, 1, 1],
    })
    for k, v in over.items():
        df[k] = v
    return df


def test_levels_conditions_and_latest(tmp_path):
    df = _tiny(extra=["x"] * 4, is_latest=[True, True, True, False])
    out = load_reads(df)
    assert len(out) == 3
    assert list(out["condition"].cat.categories) == ["unaided", "ai"]
    assert list(out["level"].cat.categories) == ["junior", "senior"]  # alphabetical
    out = load_reads(_tiny(), level_order=["senior", "junior", "consultant"])
    assert list(out["level"].cat.categories) == ["senior", "junior"]  # study order, unused dropped
    path = tmp_path / "r.csv"
    _tiny().to_csv(path, index=False)
    assert len(load_reads(path)) == 4


@pytest.mark.parametrize("df, msg", [
    (_tiny().drop(columns=["condition"]), r"missing column\(s\) \['condition'\]"),
    (_tiny(correct=[0, 1, 2, 1]), "'correct' must be 0 or 1"),
    (_tiny(level=["junior", "junior", "x", "x"]), "not in level_order"),
])
def test_bad_input_messages(df, msg):
    with pytest.raises(ValueError, match=msg):
        load_reads(df, level_order=["junior", "senior"] if "x" in set(df["level"]) else None)


@pytest.mark.parametrize("conditions, why", [
    (["unaided"] * 4, "every reading so far is in one condition (unaided)"),
    (["ai", "ai_saliency", "ai", "ai_saliency"], "there are no unaided readings yet"),
])
def test_a_study_that_has_only_started_is_loaded_and_says_why_nothing_is_compared(conditions, why):
    """Issue 19: one condition, or no unaided readings, is a study that has only started, not a bad file: the
    reads load (the analysis gives the descriptive table) and ``no_comparison`` says why nothing is compared."""
    out = load_reads(_tiny(condition=conditions))
    assert len(out) == 4 and why in no_comparison(out)
    assert no_comparison(load_reads(_tiny())) is None


def test_every_comparison_of_conditions():
    assert condition_pairs(["unaided", "ai"]) == [("ai", "unaided")]
    assert condition_pairs(["unaided", "ai", "ai_saliency"]) == [
        ("ai", "unaided"), ("ai_saliency", "unaided"), ("ai_saliency", "ai")]
    assert condition_pairs(["ai", "ai_saliency"]) == [("ai_saliency", "ai")]  # no unaided: the arms only


def test_missing_file_message(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_reads(tmp_path / "nope.csv")


def test_study_export_columns_are_mapped():
    """study.domain.answers.answers_table: truth is the reference label, findings ';'-joined, AI probabilities JSON."""
    probs = json.dumps({"normal": 0.3, "dr": 0.7})
    df = _tiny(truth=["dr"] * 4, truth_dr=[1] * 4, primary_diagnosis=["normal", "dr", "dr", "dr"],
               findings=["", "dr", "", ""], ai_top_suggestion=[None, "dr", None, "dr"],
               ai_probabilities=[None, probs, None, probs])
    out = load_reads(df)
    assert list(out["truth"]) == [1, 1, 1, 1]  # derived from reference != normal
    assert list(out["call"]) == [0, 1, 1, 1]
    assert list(out["answer_dr"]) == [0, 1, 1, 1]
    assert findings(out) == ["dr"]
    assert out["ai_prob"].dropna().tolist() == pytest.approx([0.7, 0.7])
    assert out["ai_correct"].dropna().tolist() == [1, 1]
    per_finding = json.dumps({"dr": 0.2, "amd": 0.6})  # no 'normal': P(abnormal) = top finding
    out = load_reads(_tiny(ai_probabilities=[None, per_finding, None, None]))
    assert out["ai_prob"].dropna().tolist() == [0.6]
