"""MRMC with the jackknife over patients (several photographs per patient): equal to the case jackknife
with one case per patient, each pseudo-value equal to the figure of merit without that patient, and
a larger variance when a patient's eyes are positively correlated."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from study.analysis.stats.mrmc import binary_mrmc_analysis, empirical_auc, load_crossed, mrmc_analysis
from study.analysis.stats.mrmc_patients import auc_cluster_jackknife, mean_cluster_jackknife

from tests.conftest import needs_reference



@needs_reference
@pytest.mark.parametrize("fom", ["auc", "sensitivity", "specificity", "pc"])
def test_one_case_per_patient_equals_the_case_jackknife(vandyke, fom):
    patients = vandyke.assign(patient="P" + (200 - vandyke["case"]).astype(str))  # other label order
    if fom == "auc":
        cases, clustered = mrmc_analysis(vandyke), mrmc_analysis(patients, cluster="patient")
    else:
        cases = binary_mrmc_analysis(vandyke, fom=fom, threshold=3)
        clustered = binary_mrmc_analysis(patients, fom=fom, threshold=3, cluster="patient")
    assert clustered.n_clusters == 114 and clustered.cluster == "patient"
    np.testing.assert_allclose(clustered.cov_matrix, cases.cov_matrix, rtol=1e-11, atol=1e-17)
    a, b = clustered.rrrc, cases.rrrc
    assert (a.F, a.ddf, a.p, a.se) == pytest.approx((b.F, b.ddf, b.p, b.se), rel=1e-10)


@needs_reference
def test_pseudo_values_leave_out_every_case_of_a_patient(vandyke):
    d = load_crossed(vandyke, "rating", needs_truth=True)
    x, truth = d.values.reshape(10, -1), d.truth
    rng = np.random.default_rng(4)
    cluster = rng.integers(0, 40, size=len(truth))  # 1-8 cases per patient, mixed truth
    cluster = np.unique(cluster, return_inverse=True)[1]
    jk = auc_cluster_jackknife(x, truth, cluster)
    for g in range(cluster.max() + 1):
        keep = cluster != g
        np.testing.assert_allclose(jk[:, g], empirical_auc(x[:, keep], truth[keep]), rtol=1e-13)
    calls = (x >= 3).astype(float)
    sens = mean_cluster_jackknife(calls, truth == 1, cluster)
    with_diseased = np.unique(cluster[truth == 1])
    assert sens.shape == (10, len(with_diseased))  # only patients that enter sensitivity
    for col, g in enumerate(with_diseased):
        keep = (cluster != g) & (truth == 1)
        np.testing.assert_allclose(sens[:, col], calls[:, keep].mean(axis=1), rtol=1e-13)


def _two_eye_study(seed: int, n_patients: int = 60, shared_sd: float = 1.0) -> pd.DataFrame:
    """Both eyes of a patient share truth and a patient effect (overall and per modality) on every
    reader's rating."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        diseased = int(rng.random() < 0.4)
        u = rng.normal(0, shared_sd, size=3)  # overall, modality 0, modality 1
        for eye in (0, 1):
            case = 2 * p + eye
            for reader in range(4):
                for modality in (0, 1):
                    mu = (1.0 + 0.3 * modality) * diseased + u[0] + u[1 + modality]
                    rating = mu + rng.normal(0, 1)
                    rows.append({"reader": reader, "modality": modality, "case": case, "patient": p,
                                 "truth": diseased, "rating": rating})
    return pd.DataFrame(rows)


def test_correlated_eyes_increase_the_variance():
    df = _two_eye_study(seed=1)
    naive, clustered = mrmc_analysis(df), mrmc_analysis(df, cluster="patient")
    assert clustered.n_clusters == 60
    np.testing.assert_array_equal(naive.theta, clustered.theta)  # same estimates, other variance
    # eyes share truth and a patient effect: the per-patient contributions add up, so every
    # error (co)variance is larger than when the two eyes are treated as independent
    for name in ("var_error", "cov1", "cov2", "cov3"):
        assert getattr(clustered.components, name) > 1.3 * getattr(naive.components, name)
    assert clustered.rrrc.se > naive.rrrc.se
    sens_naive = binary_mrmc_analysis(df, fom="sensitivity", threshold=0.5)
    sens_clustered = binary_mrmc_analysis(df, fom="sensitivity", threshold=0.5, cluster="patient")
    assert sens_clustered.components.var_error > 1.3 * sens_naive.components.var_error


def test_independent_eyes_give_about_the_case_variance():
    # Without a shared patient effect the clustered variance is close to the naive one (same
    # truth per patient only): the clustering is not a blanket inflation.
    ratios = []
    for seed in range(5):
        df = _two_eye_study(seed=seed, shared_sd=0.0)
        ratios.append(mrmc_analysis(df, cluster="patient").components.var_error
                      / mrmc_analysis(df).components.var_error)
    assert 0.7 < np.mean(ratios) < 1.3


def test_cluster_errors():
    df = _two_eye_study(seed=2, n_patients=10)
    with pytest.raises(ValueError, match="belong to more than one 'patient'"):
        mrmc_analysis(df.assign(patient=np.where(df["reader"] == 1, df["patient"] + 100, df["patient"])),
                      cluster="patient")
    with pytest.raises(ValueError, match=r"missing required column\(s\) \['patient_pseudonym'\]"):
        mrmc_analysis(df, cluster="patient_pseudonym")
    with pytest.raises(ValueError, match="uses the jackknife over 'patient'"):
        mrmc_analysis(df, cluster="patient", covariance="unbiased")
    everyone_sick = df.assign(patient=np.where(df["truth"] == 1, 0, df["patient"] + 1))
    with pytest.raises(ValueError, match="removes every diseased or every non-diseased case"):
        mrmc_analysis(everyone_sick, cluster="patient")


def test_cli_cluster(tmp_path, capsys):
    from study.cli import main

    path = tmp_path / "eyes.csv"
    _two_eye_study(seed=3, n_patients=20).to_csv(path, index=False)
    assert main(["mrmc", "--input", str(path), "--cluster", "patient", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cluster"] == "patient" and out["n_clusters"] == 20 and out["n_cases"] == 40


@needs_reference
def test_patients_on_a_design_that_is_not_fully_crossed(vandyke):
    # Cases nested within tests (MRMCaov's case3 coding): with one case per patient the patient
    # jackknife is the case jackknife; pairing each case with its twin in the other test makes a
    # two-photograph patient read in both tests, which restores the Cov1/Cov3 terms.
    case3 = vandyke.assign(case=vandyke["modality"].astype(str) + "." + vandyke["case"].astype(str))
    by_case = mrmc_analysis(case3, incomplete=True)
    one = mrmc_analysis(case3.assign(patient=case3["case"]), incomplete=True, cluster="patient")
    np.testing.assert_allclose(one.cov_matrix, by_case.cov_matrix, rtol=1e-11, atol=1e-18)
    twins = mrmc_analysis(case3.assign(patient=vandyke["case"]), incomplete=True, cluster="patient")
    assert twins.n_clusters == 114
    crossed = mrmc_analysis(vandyke)
    np.testing.assert_allclose(twins.cov_matrix, crossed.cov_matrix, rtol=1e-11, atol=1e-18)
