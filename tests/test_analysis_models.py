"""The mixed models' ladder (issue 19): the full model when the data carry it, each step down in the documented
order with its reason in words, the fit that runs equal to lme4's (or blme's) fit of the same model."""

from __future__ import annotations

import pandas as pd
import pytest

from study.analysis.mixed_models import glmm_section, model_ladder, reading_time_section
from study.analysis.reads import prepare_reads
from study.analysis.simulated_reads import shaped_reads
from testsupport.glmer import BLME_HINT, INSTALL_HINT, glmer_available, run_glmer

FULL = "correct ~ condition * level + (1|reader) + (1|case)"


def _reads(per_level, n_cases=30, **kw) -> pd.DataFrame:
    return prepare_reads(shaped_reads(per_level, n_cases, **kw), level_order=[f"L{i}" for i in range(len(per_level))])


def _levels(df):
    return [str(x) for x in df["level"].cat.categories]


def test_the_full_model_when_the_data_carry_it():
    df = _reads((3, 3))
    ladder = model_ladder(df, _levels(df))
    assert [f for f, _ in ladder] == [FULL, "correct ~ condition + level + (1|reader) + (1|case)",
                                      "correct ~ condition + (1|reader) + (1|case)",
                                      "correct ~ condition + (1|case)", "correct ~ condition + (1|reader)"]
    assert ladder[0][1] is None
    glmm, inter, effects = glmm_section(df, _levels(df))
    assert glmm["full_model"] and glmm["fallback"] is None and glmm["formula"] == FULL
    assert glmm["estimation"].startswith("maximum likelihood") and glmm["separation"] is None
    assert inter["ai"] is not None and list(effects["ai"]["level"]) == ["L0", "L1", "all"]


@pytest.mark.parametrize("kw, formula, reason", [
    ({"per_level": (1, 1, 1)}, "correct ~ condition + (1|reader) + (1|case)",
     "one reader per experience level: the level effect cannot be separated from the reader effect"),
    ({"per_level": (4,)}, "correct ~ condition + (1|reader) + (1|case)",
     "there is one experience level"),
    ({"per_level": (1,)}, "correct ~ condition + (1|case)",
     "there is one reader, so reader-to-reader variation cannot be estimated: the results apply to this reader only"),
    ({"per_level": (3, 1), "n_arms": 2, "design": "multi_arm", "partway": 1},
     "correct ~ condition + level + (1|reader) + (1|case)",
     "condition x level cell(s) (L1 readers AI-aided with saliency map): the AI effect cannot be estimated for "
     "each level"),
])
def test_each_step_down_says_why(kw, formula, reason):
    per_level = kw.pop("per_level")
    df = _reads(per_level, **kw)
    glmm, inter, effects = glmm_section(df, _levels(df))
    assert glmm["formula"] == formula, glmm["formula"]
    assert reason in glmm["fallback"] and not glmm["full_model"]
    assert all(e["p"].notna().any() for e in effects.values())
    rt = reading_time_section(df, _levels(df))
    assert rt["formula"] == formula.replace("correct", "seconds") and reason in rt["fallback"]


def test_a_fit_that_fails_moves_to_the_next_step(monkeypatch):
    import study.analysis.mixed_models as mm

    real = mm.fit_glmm

    def failing_full(formula, *a, **kw):
        if "*" in formula:
            raise ValueError("fixed-effects design is rank deficient")
        return real(formula, *a, **kw)

    monkeypatch.setattr(mm, "fit_glmm", failing_full)
    df = _reads((3, 3))
    glmm, _, _ = glmm_section(df, _levels(df))
    assert glmm["formula"] == "correct ~ condition + level + (1|reader) + (1|case)"
    assert glmm["steps"][0]["failed"].startswith("it could not be estimated (fixed-effects design is rank deficient")
    assert FULL in glmm["fallback"]


def test_no_model_when_nothing_can_be_estimated():
    df = _reads((1,), n_cases=1)
    with pytest.raises(ValueError, match="at least two readers or two cases"):
        glmm_section(df, _levels(df))


@pytest.mark.r
def test_the_fallback_model_equals_lme4():
    """The model that runs for a three-arm study with one reader per level is lme4's fit of that model."""
    if not glmer_available():
        pytest.skip(INSTALL_HINT)
    df = _reads((1, 1, 1), n_cases=57, n_arms=2, design="multi_arm", seed=3)
    glmm, _, _ = glmm_section(df, _levels(df))
    ref = run_glmer(df[["reader", "level", "case", "condition", "correct"]].astype({"condition": str}),
                    glmm["formula"])
    ours = {fe["term"]: fe for fe in glmm["fixed_effects"]}
    for r in ref["fixed_effects"]:
        assert abs(ours[r["term"]]["estimate"] - r["estimate"]) < 2e-3, r
        assert abs(ours[r["term"]]["se"] / r["se"] - 1) < 0.02, r


@pytest.mark.r
def test_the_separated_model_equals_blme():
    if not glmer_available("blme"):
        pytest.skip(BLME_HINT)
    df = _reads((3, 3), n_cases=20, cells={("ai", 0): "perfect"}, seed=2)
    glmm, _, _ = glmm_section(df, _levels(df))
    assert glmm["separation"] and glmm["formula"] == FULL
    ref = run_glmer(df[["reader", "level", "case", "condition", "correct"]].astype({"condition": str}),
                    glmm["formula"], reference_levels={"level": "L0"}, fixef_prior=True)
    ours = {fe["term"]: fe for fe in glmm["fixed_effects"]}
    for r in ref["fixed_effects"]:
        assert abs(ours[r["term"]]["estimate"] - r["estimate"]) < 5e-3, r
        assert abs(ours[r["term"]]["se"] / r["se"] - 1) < 0.01, r
