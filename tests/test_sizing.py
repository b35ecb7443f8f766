"""Analytic OR sizing against RJafroc's published sample-size results, plus its invariants.

The RJafroc numbers are the expectations of its own tests (tests/testthat/test-SsSampleSizeRoc.R,
``goodValues361``: ``SsPowerGivenJK`` / ``SsSampleSizeKGivenJ`` with method "OR", FOM "Wilcoxon")
on dataset02 (Van Dyke) and dataset03 (Franken), which are tests/data/vandyke.csv and
franken.csv. They are printed to 7-8 decimals; we match to half a unit of the last printed digit.

FRRC (issue 19): by default the statistic is referred to F(1, K - 1), as RJafroc's
``SsPowerGivenJKOrVarComp`` does (RJafroc 1.x-2.x; Chakraborty's RJafrocBook prints K = 133, power
0.8011167 for Van Dyke at J = 10); RJafroc 3.6.1 refers it to chi-square(1) (goodValues361: K = 131,
0.80091813), which stays available as ``frrc_reference="chi2"``. Both are pinned below.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from study.analysis.stats.mrmc_sizing import (ORComponents, cases_for_power, or_power, pilot_components, power_grid,
                                  sample_size_table)
from tests.conftest import REFERENCE, needs_reference

VANDYKE, FRANKEN = REFERENCE / "vandyke.csv", REFERENCE / "franken.csv"

# Van Dyke OR components as published in tests/data/README.md (jackknife, 114 cases).
VD = ORComponents(var_tr=0.000200402523581, cov1=0.000346613709441, cov2=0.000344074828861,
                  cov3=0.000239028370892, var_error=0.000802288265572, n_cases=114)


@pytest.fixture(scope="module")
def vandyke(reference_data):
    return pilot_components(VANDYKE)


@needs_reference
@pytest.mark.parametrize("J, K, analysis, reference, expected", [
    (10, 165, "rrrc", "f", 0.80541995),
    (10, 131, "frrc", "chi2", 0.80091813),  # RJafroc 3.6.1 (chi-square)
    (10, 53, "rrfc", "f", 0.80496663),
])
def test_rjafroc_vandyke_power_given_j_k(vandyke, J, K, analysis, reference, expected):
    res = or_power(vandyke, -0.043800322, J, K, frrc_reference=reference)
    assert res[analysis].power == pytest.approx(expected, abs=5e-9)


@needs_reference
def test_frrc_is_referred_to_f_with_k_minus_1_by_default(vandyke):
    """RJafroc's SsPowerGivenJKOrVarComp: F(1, K - 1). The RJafrocBook's SsSampleSizeKGivenJ(dataset02, J = 10,
    option = "FRRC") prints K = 133, power 0.8011167; with chi-square(1) the same K gives 0.807."""
    f = or_power(vandyke, None, 10, 133)["frrc"]
    assert f.ddf == 132 and f.test == "F(1, ddf), two-sided"
    assert f.power == pytest.approx(0.8011167, abs=5e-8)
    chi = or_power(vandyke, None, 10, 133, frrc_reference="chi2")["frrc"]
    assert chi.ddf is None and chi.ncp == pytest.approx(f.ncp) and chi.power == pytest.approx(0.8068194, abs=5e-7)
    assert cases_for_power(vandyke, None, 10, analysis="frrc") == 133
    assert cases_for_power(vandyke, None, 10, analysis="frrc", frrc_reference="chi2") == 131
    for k in (20, 60, 200, 1000):  # F(1, K - 1) never has more power than its chi-square limit
        assert (or_power(vandyke, None, 10, k)["frrc"].power
                <= or_power(vandyke, None, 10, k, frrc_reference="chi2")["frrc"].power)
    with pytest.raises(ValueError, match="frrc_reference"):
        or_power(vandyke, None, 10, 133, frrc_reference="t")


@needs_reference
def test_rjafroc_vandyke_observed_effect_and_sample_size(vandyke):
    # SsPowerGivenJK(dataset02, J = 6, K = 111, method = "OR")$powerRRRC = 0.5526116 (observed effect)
    assert vandyke.effect == pytest.approx(-0.0438003220612, abs=1e-12)
    assert or_power(vandyke, None, 6, 111)["rrrc"].power == pytest.approx(0.5526116, abs=5e-8)
    # SsSampleSizeKGivenJ(dataset02, J = 6, method = "OR")$KRRRC = 251; SsPowerTable row: 6, 251, 0.801
    assert cases_for_power(vandyke, None, 6) == 251
    assert round(or_power(vandyke, None, 6, 251)["rrrc"].power, 3) == 0.801
    table = sample_size_table(vandyke, None, readers=range(2, 12)).set_index("readers")
    assert table.loc[6, "cases"] == 251 and round(table.loc[6, "power"], 3) == 0.801
    assert table["cases"].dropna().is_monotonic_decreasing  # more readers, fewer cases
    assert (table["power"].dropna() >= 0.8).all()


@needs_reference
def test_rjafroc_franken_sample_size_with_cov2_below_cov3():
    # SsSampleSizeKGivenJ(dataset03, effectSize = 0.05, J = 6, method = "OR"): K = 121, power 0.8004469
    franken = pilot_components(FRANKEN)
    assert franken.cov2 < franken.cov3 and franken.var_tr < 0  # both truncations are exercised
    assert cases_for_power(franken, 0.05, 6) == 121
    assert or_power(franken, 0.05, 6, 121)["rrrc"].power == pytest.approx(0.8004469, abs=5e-8)


@needs_reference
def test_given_components_equal_the_pilot(vandyke):
    a, b = or_power(vandyke, 0.05, 7, 200), or_power(VD, 0.05, 7, 200)
    for k in a:
        assert a[k].power == pytest.approx(b[k].power, rel=1e-9)
        assert (a[k].ddf is None) == (b[k].ddf is None)


def test_power_is_alpha_without_effect():
    for alpha in (0.05, 0.01):
        res = or_power(VD, 0.0, 6, 120, alpha=alpha)
        for r in res.values():
            assert r.power == pytest.approx(alpha, abs=1e-12) and r.ncp == 0
        # non-inferiority: at the margin (effect = -M) the one-sided test has size alpha
        for r in or_power(VD, -0.03, 6, 120, alpha=alpha, margin=0.03).values():
            assert r.power == pytest.approx(alpha, abs=1e-12)
        for r in or_power(VD, 0.0, 6, 120, alpha=alpha, margin=0.0).values():
            assert r.power == pytest.approx(alpha, abs=1e-12)


def test_power_rises_with_readers_and_cases():
    grid = power_grid(VD, 0.04, readers=[3, 5, 8, 12, 20], cases=[40, 80, 160, 320])
    for name in ("rrrc", "frrc", "rrfc"):
        table = grid.pivot(index="readers", columns="cases", values=f"power_{name}").to_numpy()
        assert (np.diff(table, axis=0) > 0).all(), name
        assert (np.diff(table, axis=1) > 0).all(), name


def test_non_inferiority_is_one_sided_and_helped_by_the_margin():
    two = or_power(VD, 0.0, 8, 150)
    ni = or_power(VD, 0.0, 8, 150, margin=0.05)
    for k in two:
        assert ni[k].power > two[k].power
        assert ni[k].ncp > 0 and ni[k].test.endswith("non-inferiority")
    # FRRC: a t(K - 1) test by default, a normal test with the chi-square reference: Phi(ncp - z_{1 - alpha})
    from scipy import stats
    f = ni["frrc"]
    assert f.ddf == 149 and f.power == pytest.approx(stats.nct.sf(stats.t.isf(0.05, 149), 149, f.ncp))
    n = or_power(VD, 0.0, 8, 150, margin=0.05, frrc_reference="chi2")["frrc"]
    assert n.ddf is None and n.power == pytest.approx(stats.norm.cdf(n.ncp - stats.norm.isf(0.05)))


def test_bad_input():
    with pytest.raises(ValueError, match="readers"):
        or_power(VD, 0.05, 1, 100)
    with pytest.raises(ValueError, match="effect"):
        or_power(VD, None, 5, 100)
    with pytest.raises(ValueError, match="margin"):
        or_power(VD, 0.05, 5, 100, margin=-0.1)
    assert cases_for_power(VD, 0.001, 3, max_cases=1000) is None


@needs_reference
def test_cli_json(capsys):
    from study.cli import main

    rc = main(["power", "--pilot", str(VANDYKE), "--effect", "-0.043800322", "--readers", "10", "--cases", "165",
               "--grid-readers", "5,10", "--grid-cases", "100,200", "--target-power", "0.8", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"rrrc", "frrc", "rrfc", "grid", "cases_for_power"}
    assert set(out["rrrc"]) >= {"power", "ddf", "ncp"}
    assert out["rrrc"]["power"] == pytest.approx(0.80541995, abs=5e-9)
    assert out["frrc"]["ddf"] == 164 and out["rrfc"]["ddf"] == 9  # FRRC: F(1, K - 1)
    assert len(out["grid"]) == 4
    rc = main(["power", "--pilot", str(VANDYKE), "--readers", "10", "--cases", "131", "--frrc-reference", "chi2",
               "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["frrc"]["ddf"] is None and out["frrc"]["power"] == pytest.approx(0.80091813, abs=5e-8)
    rc = main(["power", "--var-tr", "0.0002", "--cov1", "0.00035", "--cov2", "0.00034", "--cov3", "0.00024",
               "--var-error", "0.0008", "--pilot-cases", "114", "--effect", "0.05", "--readers", "6",
               "--cases", "100", "--margin", "0.02", "--json"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["rrrc"]["test"].endswith("non-inferiority")
