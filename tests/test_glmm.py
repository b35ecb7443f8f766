"""study.analysis.stats.glmm: agreement with lme4::glmer, and behaviour that needs no R."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from study.analysis.stats._crossed import CrossedStructure
from study.analysis.stats._design import build_design
from study.analysis.stats.glmm import BLME_NORMAL, _LaplaceFit, fit_glmm, fit_lmm_log_time, simulate_reader_study
from testsupport.glmer import BLME_HINT, INSTALL_HINT, glmer_available, run_glmer

FORMULA = "correct ~ condition * experience + (1|reader) + (1|case)"


@pytest.fixture(scope="module")
def study() -> pd.DataFrame:
    return simulate_reader_study(30, 150, effect_log_odds=0.4, reader_sd=0.35, case_sd=1.0, seed=11)


@pytest.fixture(scope="module")
def fitted(study):
    return fit_glmm(FORMULA, study)


# --- agreement with glmer ------------------------------------------------------------------


@pytest.mark.r
def test_matches_glmer_laplace(study, fitted):
    if not glmer_available():
        pytest.skip(INSTALL_HINT)
    ref = run_glmer(study, FORMULA)
    assert ref["converged"]
    fe = fitted.fixed_effects.set_index("term")
    assert sorted(fe.index) == sorted(r["term"] for r in ref["fixed_effects"])
    for r in ref["fixed_effects"]:
        ours = fe.loc[r["term"]]
        assert abs(ours.estimate - r["estimate"]) < 0.02, (r["term"], ours.estimate, r["estimate"])
        assert abs(ours.se / r["se"] - 1) < 0.10, (r["term"], ours.se, r["se"])
    assert abs(fitted.reader_sd / ref["random_effects"]["reader_sd"] - 1) < 0.10
    assert abs(fitted.case_sd / ref["random_effects"]["case_sd"] - 1) < 0.10
    # Same objective: our maximum of the Laplace log-likelihood is at least glmer's.
    assert fitted.loglik > ref["loglik"] - 0.05


def _unbalanced(seed: int = 7) -> pd.DataFrame:
    """20 readers, 30% of readings missing at random: the shape that once stalled at SD = 0."""
    df = simulate_reader_study(20, 100, 0.4, 0.3, 1.0, seed=seed)
    return df.sample(frac=0.7, random_state=1).reset_index(drop=True)


@pytest.mark.r
def test_matches_glmer_on_unbalanced_small_study():
    if not glmer_available():
        pytest.skip(INSTALL_HINT)
    df = _unbalanced()
    ours = fit_glmm(FORMULA, df)
    ref = run_glmer(df, FORMULA)
    fe = ours.fixed_effects.set_index("term")
    for r in ref["fixed_effects"]:
        assert abs(fe.loc[r["term"]].estimate - r["estimate"]) < 0.02
        assert abs(fe.loc[r["term"]].se / r["se"] - 1) < 0.10
    assert abs(ours.reader_sd / ref["random_effects"]["reader_sd"] - 1) < 0.10
    assert ours.loglik > ref["loglik"] - 0.05


# --- estimation without R -------------------------------------------------------------------


def test_small_reader_sd_is_not_a_stall_at_zero():
    # A bounded optimiser used to land on SD = 0 (zero gradient there) for these data.
    df = _unbalanced()
    res = fit_glmm(FORMULA, df)
    assert res.reader_sd > 0.05 and res.converged
    only_reader = fit_glmm("correct ~ condition + (1|reader)", simulate_reader_study(20, 100, 0.4, 0.3, 1.0, seed=7))
    assert only_reader.groups == ("reader",)
    assert only_reader.reader_sd > 0.05



def test_recovers_known_effect_and_variance_components(fitted):
    fe = fitted.fixed_effects.set_index("term")
    aided = fe.loc["condition[T.aided]"]
    assert aided.ci_low < 0.4 < aided.ci_high
    assert abs(aided.estimate - 0.4) < 0.2
    assert fitted.converged
    assert 0.15 < fitted.reader_sd < 0.6
    assert 0.8 < fitted.case_sd < 1.25
    for term in ("condition[T.aided]:experience[T.junior]", "condition[T.aided]:experience[T.senior]"):
        assert abs(fe.loc[term].estimate) < 0.3


def test_term_names_and_default_reference_levels(fitted):
    assert list(fitted.fixed_effects.term) == [
        "Intercept",
        "condition[T.aided]",
        "experience[T.junior]",
        "experience[T.senior]",
        "condition[T.aided]:experience[T.junior]",
        "condition[T.aided]:experience[T.senior]",
    ]
    assert list(fitted.fixed_effects.columns) == ["term", "estimate", "se", "z", "p", "ci_low", "ci_high", "odds_ratio"]
    np.testing.assert_allclose(fitted.fixed_effects.odds_ratio, np.exp(fitted.fixed_effects.estimate))


def test_reference_levels_argument_and_groups_argument(study):
    res = fit_glmm("correct ~ condition * experience", study, groups=("reader", "case"),
                   reference_levels={"experience": "junior"})
    assert "experience[T.intermediate]" in set(res.fixed_effects.term)
    assert "experience[T.junior]" not in set(res.fixed_effects.term)
    assert res.n_groups == {"reader": 30, "case": 150}


def test_gradient_matches_finite_differences():
    df = simulate_reader_study(8, 40, 0.5, 0.4, 0.9, seed=2)
    d = build_design("correct ~ condition * experience", df, ("reader", "case"), None, binary_response=True)
    fit = _LaplaceFit(d.y, d.X, CrossedStructure(d.codes, [len(lv) for lv in d.levels]))
    x = np.array([0.5, 0.8, 0.7, 0.3, -0.2, 0.1, 0.05, -0.1])
    f0, g = fit.fun_grad(x)
    h = 1e-5
    fd = [(fit.fun_grad(x + e)[0] - fit.fun_grad(x - e)[0]) / (2 * h) for e in np.eye(len(x)) * h]
    np.testing.assert_allclose(g, fd, rtol=1e-4, atol=1e-4)


def test_zero_reader_variance_is_a_flagged_boundary_fit():
    df = simulate_reader_study(12, 60, 0.4, reader_sd=0.0, case_sd=1.0, seed=5)
    res = fit_glmm(FORMULA, df)
    assert res.reader_sd < 0.15
    assert np.isfinite(res.fixed_effects.se).all()


def test_to_dict_is_json_with_the_agreed_shape(fitted):
    d = json.loads(json.dumps(fitted.to_dict()))
    assert set(d["random_effects"]) == {"reader_sd", "case_sd"}
    assert d["random_effects"]["case_sd"] == pytest.approx(fitted.case_sd)
    first = d["fixed_effects"][1]
    assert set(first) == {"term", "estimate", "se", "ci", "p"}
    assert first["term"] == "condition[T.aided]"
    assert first["ci"][0] < first["estimate"] < first["ci"][1]
    assert d["n_obs"] == 30 * 150 * 2


def test_marginal_effects_match_beta_contrasts_and_integration(fitted):
    me = fitted.marginal_effects(by="experience").set_index("experience")
    fe = fitted.fixed_effects.set_index("term").estimate
    assert me.loc["intermediate", "log_or"] == pytest.approx(fe["condition[T.aided]"])
    assert me.loc["senior", "log_or"] == pytest.approx(
        fe["condition[T.aided]"] + fe["condition[T.aided]:experience[T.senior]"]
    )
    # Percentage points = population-averaged probabilities: check against Monte Carlo.
    rng = np.random.default_rng(0)
    b = rng.normal(0, 1, 400_000) * np.hypot(fitted.reader_sd, fitted.case_sd)
    eta_u = fe["Intercept"] + fe["experience[T.senior]"]
    eta_a = eta_u + fe["condition[T.aided]"] + fe["condition[T.aided]:experience[T.senior]"]
    mc = 100 * (expit(eta_a + b).mean() - expit(eta_u + b).mean())
    assert me.loc["senior", "pp_diff"] == pytest.approx(mc, abs=0.1)
    assert (me.pp_ci_low < me.pp_diff).all() and (me.pp_diff < me.pp_ci_high).all()
    assert (me.or_ci_low < me.odds_ratio).all() and (me.odds_ratio < me.or_ci_high).all()
    overall = fitted.marginal_effects(by=None)
    assert len(overall) == 1 and me.pp_diff.min() <= overall.pp_diff.iloc[0] <= me.pp_diff.max()


# --- input validation -----------------------------------------------------------------------


def test_missing_column_is_a_clear_error(study):
    with pytest.raises(ValueError, match="missing column.*experience"):
        fit_glmm(FORMULA, study.drop(columns="experience"))
    with pytest.raises(ValueError, match="missing column.*reader"):
        fit_glmm(FORMULA, study.drop(columns="reader"))


def test_condition_with_one_level_is_rejected(study):
    with pytest.raises(ValueError, match="condition"):
        fit_glmm(FORMULA, study[study.condition == "aided"])


def test_condition_without_unaided_reference_is_rejected(study):
    df = study.assign(condition=study.condition.map({"aided": "AI", "unaided": "none"}))
    with pytest.raises(ValueError, match="unaided"):
        fit_glmm(FORMULA, df)


def test_non_binary_outcome_is_rejected(study):
    with pytest.raises(ValueError, match="binary"):
        fit_glmm(FORMULA, study.assign(correct=study.correct * 2))
    with pytest.raises(ValueError, match="binary"):
        fit_glmm(FORMULA, study.assign(correct=np.where(study.correct == 1, "yes", "no")))


# --- log reading time LMM -------------------------------------------------------------------


def test_lmm_log_time_matches_statsmodels_reml():
    import statsmodels.formula.api as smf

    df = simulate_reader_study(10, 30, 0.4, 0.3, 1.0, seed=3)
    res = fit_lmm_log_time("seconds ~ condition * experience + (1|reader) + (1|case)", df)
    df = df.assign(log_s=np.log(df.seconds), all=1)
    sm = smf.mixedlm(
        "log_s ~ C(condition, Treatment('unaided')) * experience", df, groups="all", re_formula="0",
        vc_formula={"reader": "0 + C(reader)", "case": "0 + C(case)"},
    ).fit(reml=True)
    np.testing.assert_allclose(res.fixed_effects.estimate, sm.fe_params.to_numpy(), atol=1e-4)
    np.testing.assert_allclose(res.fixed_effects.se, sm.bse_fe.to_numpy(), rtol=1e-3)
    vc = dict(zip(sm.model.exog_vc.names, np.sqrt(sm.vcomp)))
    assert res.reader_sd == pytest.approx(vc["reader"], rel=1e-3)
    assert res.case_sd == pytest.approx(vc["case"], rel=1e-3)
    assert res.residual_sd == pytest.approx(np.sqrt(sm.scale), rel=1e-3)
    assert "condition[T.aided]" in set(res.fixed_effects.term)


def test_lmm_recovers_time_effect_and_rejects_nonpositive_times():
    df = simulate_reader_study(20, 80, 0.4, 0.3, 1.0, seed=4, time_effect_log=-0.2)
    res = fit_lmm_log_time("seconds ~ condition", df)
    row = res.fixed_effects.set_index("term").loc["condition[T.aided]"]
    assert abs(row.estimate + 0.2) < 4 * row.se  # 40 seeds: mean -0.203, 95% CI coverage 0.95
    assert row.se < 0.03
    assert row.time_ratio == pytest.approx(np.exp(row.estimate))
    with pytest.raises(ValueError, match="positive"):
        fit_lmm_log_time("seconds ~ condition", df.assign(seconds=0.0))


# --- cases nested in patients (two eyes per patient) ------------------------------------------

NESTED = "correct ~ condition * level + (1|reader) + (1|patient/case)"


def _two_eyes(n_readers=6, n_patients=40, seed=3, crossed=True) -> pd.DataFrame:
    """Each patient has eyes 'OD' and 'OS' (ids repeat across patients, as in a manifest) sharing a
    patient effect; fully crossed (every eye read unaided and aided) or split by patient."""
    rng = np.random.default_rng(seed)
    b_r, b_p, b_e = rng.normal(0, 0.3, n_readers), rng.normal(0, 1.0, n_patients), rng.normal(0, 0.5, (n_patients, 2))
    arm = rng.permutation(np.arange(n_patients) % 2)
    rows = [(r, p, e, a) for r in range(n_readers) for p in range(n_patients) for e in (0, 1)
            for a in ((0, 1) if crossed else (arm[p],))]
    r, p, e, a = (np.array(x) for x in zip(*rows))
    eta = 0.5 + 0.5 * a + 0.2 * (r % 2) + b_r[r] + b_p[p] + b_e[p, e]
    return pd.DataFrame({"reader": [f"R{i}" for i in r], "level": np.where(r % 2, "senior", "junior"),
                         "patient": [f"P{i:02d}" for i in p], "case": np.where(e == 0, "OD", "OS"),
                         "condition": np.where(a == 1, "aided", "unaided"),
                         "correct": (rng.random(len(eta)) < expit(eta)).astype(int)})


@pytest.mark.r
def test_nested_patients_matches_glmer():
    if not glmer_available():
        pytest.skip(INSTALL_HINT)
    df = _two_eyes(n_readers=8, n_patients=60, crossed=False)  # the patient clustering matters here
    ours = fit_glmm(NESTED, df)
    ref = run_glmer(df, NESTED)
    assert ref["converged"] and ours.converged
    fe = ours.fixed_effects.set_index("term")
    assert sorted(fe.index) == sorted(r["term"] for r in ref["fixed_effects"])
    for r in ref["fixed_effects"]:
        assert abs(fe.loc[r["term"]].estimate - r["estimate"]) < 2e-3, r
        assert abs(fe.loc[r["term"]].se / r["se"] - 1) < 0.02, r
    # lme4 names the inner factor "case:patient"; so do we
    for g in ("reader", "patient", "case:patient"):
        assert ours.random_effect_sds[g] == pytest.approx(ref["random_effects"][f"{g}_sd"], abs=2e-3), g
    assert ours.loglik > ref["loglik"] - 1e-3  # same Laplace objective; ours is maximised at least as far


def test_nested_term_expands_to_patient_and_case_within_patient():
    df = _two_eyes(n_readers=4, n_patients=30, seed=5)
    res = fit_glmm(NESTED, df)
    assert res.groups == ("reader", "patient", "case:patient")
    assert res.n_groups == {"reader": 4, "patient": 30, "case:patient": 60}  # 'OD'/'OS' alone would be 2 cases
    assert set(res.to_dict()["random_effects"]) == {"reader_sd", "patient_sd", "case:patient_sd"}
    # with case ids already unique, (1|patient/case) is (1|patient) + (1|case)
    unique = df.assign(case=df.patient + df.case)
    a = fit_glmm(NESTED, unique)
    b = fit_glmm("correct ~ condition * level + (1|reader) + (1|patient) + (1|case)", unique)
    assert a.loglik == pytest.approx(b.loglik, abs=1e-6)
    np.testing.assert_allclose(a.fixed_effects.estimate, b.fixed_effects.estimate, atol=1e-5)
    me = res.marginal_effects(by="level")
    assert list(me.level) == ["junior", "senior"] and np.isfinite(me.pp_diff).all()
    with pytest.raises(ValueError, match="patient"):
        fit_glmm(NESTED, df.drop(columns="patient"))


def test_ignoring_patients_understates_the_se_of_a_between_patient_effect():
    # Split design: each patient's two eyes are read in one arm, so the AI effect compares patients.
    # Coverage (clustered ~95%, naive ~89%) is measured in bench/bench_cluster_coverage.py.
    df = _two_eyes(n_readers=6, n_patients=60, seed=8, crossed=False)
    nested = fit_glmm("correct ~ condition + (1|reader) + (1|patient/case)", df)
    naive = fit_glmm("correct ~ condition + (1|reader) + (1|case)", df.assign(case=df.patient + df.case))
    se = lambda f: f.fixed_effects.set_index("term").loc["condition[T.aided]", "se"]  # noqa: E731
    assert nested.random_effect_sds["patient"] > 0.5
    assert se(nested) > 1.1 * se(naive)


# --- separation: blme's normal fixed-effect prior (issue 19) ------------------------------------


def _separated(seed: int = 3) -> pd.DataFrame:
    """Junior readers are always right when aided: the interaction's ML estimate is infinite."""
    df = simulate_reader_study(6, 40, 0.5, 0.4, 1.0, levels=("junior", "senior"), seed=seed)
    df.loc[(df.experience == "junior") & (df.condition == "aided"), "correct"] = 1
    return df


SEPARATED = "correct ~ condition * experience + (1|reader) + (1|case)"


def test_separation_is_detected_by_the_linear_programme():
    from study.analysis.stats.separation import is_separated

    df = _separated()
    d = build_design(SEPARATED, df, ("reader", "case"), None, binary_response=True)
    assert is_separated(d.X, d.y)
    additive = build_design("correct ~ condition + experience + (1|reader) + (1|case)", df, ("reader", "case"), None,
                            binary_response=True)
    assert not is_separated(additive.X, additive.y)  # a pure cell does not separate the additive model
    clean = build_design(SEPARATED, simulate_reader_study(6, 40, 0.5, 0.4, 1.0, levels=("junior", "senior"), seed=3),
                         ("reader", "case"), None, binary_response=True)
    assert not is_separated(clean.X, clean.y)
    X = np.column_stack([np.ones(6), [0, 0, 0, 1, 1, 1]])
    assert is_separated(X, np.array([0, 1, 0, 1, 1, 1]))  # quasi-complete: x = 1 always a success
    assert not is_separated(X, np.array([0, 1, 0, 1, 0, 1]))


def test_prior_gives_finite_estimates_where_ml_runs_away():
    df = _separated()
    ml = fit_glmm(SEPARATED, df)
    prior = fit_glmm(SEPARATED, df, fixef_prior=BLME_NORMAL)
    term = "condition[T.aided]"
    ml_est = ml.fixed_effects.set_index("term").loc[term]
    pr_est = prior.fixed_effects.set_index("term").loc[term]
    assert ml_est.estimate > pr_est.estimate and ml_est.se > 2 * pr_est.se  # ML drifts off towards infinity
    assert 2 < pr_est.estimate < 8 and np.isfinite(prior.fixed_effects[["estimate", "se"]].to_numpy()).all()
    assert prior.to_dict()["fixef_prior_sd"] == [10.0, 2.5] and "normal priors" in prior.to_dict()["model"]
    # without separation a weak prior moves the estimates only a little
    clean = simulate_reader_study(10, 60, 0.4, 0.4, 1.0, seed=4)
    a, b = fit_glmm(FORMULA, clean), fit_glmm(FORMULA, clean, fixef_prior=BLME_NORMAL)
    np.testing.assert_allclose(a.fixed_effects.estimate, b.fixed_effects.estimate, atol=0.05)


def test_penalised_gradient_matches_finite_differences():
    df = _separated()
    d = build_design(SEPARATED, df, ("reader", "case"), None, binary_response=True)
    prec = np.array([1 / 100] + [1 / 6.25] * (d.X.shape[1] - 1))
    fit = _LaplaceFit(d.y, d.X, CrossedStructure(d.codes, [len(lv) for lv in d.levels]), prec)
    x = np.array([0.5, 0.8, 0.7, 3.0, 0.2, -2.5])
    g = fit.fun_grad(x)[1]
    h = 1e-5
    fd = [(fit.fun_grad(x + e)[0] - fit.fun_grad(x - e)[0]) / (2 * h) for e in np.eye(len(x)) * h]
    np.testing.assert_allclose(g, fd, rtol=1e-4, atol=1e-4)


@pytest.mark.r
def test_penalised_fit_matches_blme_bglmer():
    """blme::bglmer(fixef.prior = normal, cov.prior = NULL): normal(sd = c(10, 2.5)) on the fixed effects."""
    if not glmer_available("blme"):
        pytest.skip(BLME_HINT)
    for df in (_separated(3), _separated(11)):
        ours = fit_glmm(SEPARATED, df, fixef_prior=BLME_NORMAL)
        ref = run_glmer(df, SEPARATED, fixef_prior=True)
        fe = ours.fixed_effects.set_index("term")
        assert sorted(fe.index) == sorted(r["term"] for r in ref["fixed_effects"])
        for r in ref["fixed_effects"]:
            assert abs(fe.loc[r["term"]].estimate - r["estimate"]) < 5e-3, r
            assert abs(fe.loc[r["term"]].se / r["se"] - 1) < 0.01, r
        for g in ("reader", "case"):
            assert ours.random_effect_sds[g] == pytest.approx(ref["random_effects"][f"{g}_sd"], abs=5e-3), g


def test_contrasts_between_any_two_arms_of_one_model():
    """Three arms in one model: each pair's effect is the contrast of the same fit (issue 19, multi-arm)."""
    rng = np.random.default_rng(1)
    df = simulate_reader_study(8, 60, 0.5, 0.3, 0.8, seed=6)
    third = df[df.condition == "aided"].assign(condition="aided_map")
    third["correct"] = (rng.random(len(third)) < 0.8).astype(int)
    df = pd.concat([df, third], ignore_index=True)
    fit = fit_glmm(FORMULA, df)
    with pytest.raises(ValueError, match="name the two to compare"):
        fit.marginal_effects(by=None)
    fe = fit.fixed_effects.set_index("term")
    me = fit.marginal_effects(by=None, treat="aided_map", ref="aided").iloc[0]
    rows = pd.DataFrame({"condition": ["aided_map", "aided"], "experience": ["intermediate"] * 2})
    X = fit.design_rows(rows)
    assert np.allclose(X[0] - X[1], [0, -1, 1, 0, 0, 0, 0, 0, 0])  # reference level: the contrast of the two terms
    assert me["odds_ratio"] != pytest.approx(1.0)
    one = fit.marginal_effects(by=None, treat="aided", ref="unaided").iloc[0]
    assert one["log_or"] != pytest.approx(me["log_or"])
    chi2, dof, p = fit.wald_test(np.eye(len(fe))[[1]])
    assert dof == 1 and chi2 == pytest.approx((fe.loc["condition[T.aided]", "estimate"]
                                               / fe.loc["condition[T.aided]", "se"]) ** 2)
