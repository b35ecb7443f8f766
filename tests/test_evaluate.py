"""Checks of revision_core.evaluate against pROC's published values and sklearn."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from revision_core.evaluate import (
    auroc_ci,
    delong_covariance,
    evaluate_scores,
    paired_delong,
    roc_curve_points,
)

from tests.conftest import REFERENCE

ASAH = REFERENCE / "asah.csv"
TOL = 1e-9


@pytest.fixture(scope="module")
def asah(reference_data):
    import pandas as pd

    d = pd.read_csv(ASAH)
    return d["outcome_poor"].to_numpy(), {m: d[m].to_numpy(float) for m in ("wfns", "ndka", "s100b")}


# --------------------------------------------------------------------------- pROC reference


def test_asah_aucs_and_variances(asah):
    y, s = asah
    auc, cov = delong_covariance(y, np.vstack([s["wfns"], s["ndka"], s["s100b"]]))
    assert auc[0] == pytest.approx(0.823678861788618, abs=TOL)
    assert auc[1] == pytest.approx(0.611957994579946, abs=TOL)
    assert cov[0, 0] == pytest.approx(0.00146991470882363, abs=TOL)
    assert cov[1, 1] == pytest.approx(0.0031908105493913, abs=TOL)
    assert cov[2, 2] == pytest.approx(0.00266868245717244, abs=TOL)
    assert cov[0, 1] == pytest.approx(-0.000532967856762438, abs=TOL)
    assert cov[1, 2] == pytest.approx(-0.000756164938056579, abs=TOL)
    assert cov[2, 0] == pytest.approx(0.00119615567376754, abs=TOL)
    np.testing.assert_allclose(cov, cov.T, atol=1e-15)


def test_asah_single_marker_matches_joint(asah):
    y, s = asah
    auc, cov = delong_covariance(y, s["s100b"])
    assert auc.shape == (1,) and cov.shape == (1, 1)
    assert cov[0, 0] == pytest.approx(0.00266868245717244, abs=TOL)


def test_asah_ci_ndka(asah):
    y, s = asah
    r = auroc_ci(y, s["ndka"])
    assert r.auc == pytest.approx(0.611957994579946, abs=TOL)
    assert r.variance == pytest.approx(0.0031908105493913, abs=TOL)
    assert r.ci[0] == pytest.approx(0.501244999271703, abs=TOL)
    assert r.ci[1] == pytest.approx(0.722670989888189, abs=TOL)


@pytest.mark.parametrize(
    "a,b,z,p",
    [
        ("wfns", "s100b", 2.20898359144091, 0.0271757822291882),
        ("wfns", "ndka", 2.79777591868904, 0.00514557970691098),
        ("ndka", "s100b", -1.39077002573558, 0.164295175223054),
    ],
)
def test_asah_paired(asah, a, b, z, p):
    y, s = asah
    r = paired_delong(y, s[a], s[b])
    assert r.z == pytest.approx(z, abs=TOL)
    assert r.p == pytest.approx(p, abs=TOL)
    assert r.diff == pytest.approx(r.auc_a - r.auc_b, abs=1e-15)
    assert r.ci[0] < r.diff < r.ci[1]
    # swapping the order flips the sign of z but not p
    r2 = paired_delong(y, s[b], s[a])
    assert r2.z == pytest.approx(-z, abs=TOL) and r2.p == pytest.approx(p, abs=TOL)


# --------------------------------------------------------------------------- properties


def _random(n, seed, ties=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = rng.normal(size=n) + 0.8 * y
    if ties:
        s = np.round(s * 2) / 2  # heavy ties
    return y, s


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [False, True])
def test_matches_sklearn(seed, ties):
    y, s = _random(300, seed, ties)
    auc, _ = delong_covariance(y, s)
    assert auc[0] == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_ties_count_half():
    y = np.array([1, 1, 0, 0])
    s = np.array([1.0, 0.0, 1.0, 0.0])  # pairs: tie, win, loss, tie -> (0.5+1+0+0.5)/4
    assert delong_covariance(y, s)[0][0] == pytest.approx(0.5)
    assert delong_covariance(y, np.ones(4))[0][0] == pytest.approx(0.5)


def test_brute_force_variance():
    """Placement-value variance computed the slow way agrees with the vectorised one."""
    y, s = _random(60, 7, ties=True)
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    var = v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg)
    auc, cov = delong_covariance(y, s)
    assert auc[0] == pytest.approx(psi.mean(), abs=1e-12)
    assert cov[0, 0] == pytest.approx(var, abs=1e-12)


def test_flip_scores_gives_complement():
    y, s = _random(200, 3, ties=True)
    a, va = delong_covariance(y, s)
    b, vb = delong_covariance(y, -s)
    assert a[0] + b[0] == pytest.approx(1.0, abs=1e-12)
    assert va[0, 0] == pytest.approx(vb[0, 0], abs=1e-15)
    c, _ = delong_covariance(1 - y, s)
    assert c[0] == pytest.approx(1 - a[0], abs=1e-12)


def test_ci_clipped_and_level():
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    r = auroc_ci(y, s)
    assert r.auc == 1.0 and r.ci[1] <= 1.0
    y, s = _random(150, 1)
    r95, r80 = auroc_ci(y, s), auroc_ci(y, s, level=0.8)
    assert r80.ci[0] > r95.ci[0] and r80.ci[1] < r95.ci[1]


def test_identical_scores_paired():
    y, s = _random(100, 2)
    r = paired_delong(y, s, s)
    assert r.diff == 0.0 and r.p == 1.0


def test_large_n_is_fast():
    import time

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 100_000)
    s = rng.normal(size=(2, 100_000)) + y
    t = time.perf_counter()
    auc, cov = delong_covariance(y, s)
    assert time.perf_counter() - t < 5.0
    assert auc[0] == pytest.approx(roc_auc_score(y, s[0]), abs=1e-10)


# --------------------------------------------------------------------------- ROC points


def test_roc_points():
    y, s = _random(120, 4, ties=True)
    fpr, tpr, thr = roc_curve_points(y, s)
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert np.isinf(thr[0]) and np.all(np.diff(thr) < 0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    # each point is the operating point of "score >= threshold"
    for f, t, th in zip(fpr[1:], tpr[1:], thr[1:]):
        assert t == pytest.approx(np.mean(s[y == 1] >= th))
        assert f == pytest.approx(np.mean(s[y == 0] >= th))


# --------------------------------------------------------------------------- evaluate_scores


def test_evaluate_scores_json_and_degenerate():
    y, s = _random(100, 5)
    labels = {"dr": y, "amd": np.zeros(100, int), "glaucoma": 1 - y}
    scores = {"dr": s, "amd": s, "glaucoma": s}
    out = evaluate_scores(labels, scores)
    json.dumps(out)  # must be serialisable
    dr = out["auroc"]["dr"]
    assert dr["auc"] == pytest.approx(roc_auc_score(y, s))
    assert dr["ci"][0] < dr["auc"] < dr["ci"][1]
    assert dr["n_pos"] == int(y.sum()) and dr["n_neg"] == 100 - int(y.sum())
    amd = out["auroc"]["amd"]
    assert amd["auc"] is None and "no positive" in amd["note"]
    assert out["mean_auroc"] == pytest.approx((dr["auc"] + out["auroc"]["glaucoma"]["auc"]) / 2)


def test_evaluate_scores_all_degenerate():
    out = evaluate_scores({"x": np.ones(5)}, {"x": np.arange(5.0)})
    assert out["mean_auroc"] is None and "no negative" in out["auroc"]["x"]["note"]


def test_evaluate_scores_key_mismatch():
    with pytest.raises(ValueError, match="no scores given"):
        evaluate_scores({"a": [0, 1]}, {"b": [0.1, 0.2]})


# --------------------------------------------------------------------------- validation


def test_errors():
    with pytest.raises(ValueError, match="same length"):
        auroc_ci([0, 1, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        auroc_ci([0, 1, 0, 1], [0.1, np.nan, 0.3, 0.4])
    with pytest.raises(ValueError, match="0/1"):
        auroc_ci([0, 2, 0, 1], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="0/1"):
        auroc_ci(["a", "b"], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        auroc_ci([0, np.nan, 1, 1], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="no positive"):
        auroc_ci([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="at least 2"):
        auroc_ci([0, 0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="same length"):
        paired_delong([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        evaluate_scores({"dr": [0, 1, 0, 1]}, {"dr": [0.1, 0.2, np.nan, 0.4]})


# --------------------------------------------------------------------------- labelled manifests (issue 13)

FINDINGS = ["diabetic_retinopathy", "amd", "glaucoma", "rvo", "pathologic_myopia"]


@pytest.fixture
def photographs(tmp_path):
    """Eight synthetic photographs (224 px) in tmp_path/imgs, as img0.png ... img7.png."""
    from PIL import Image

    from revision_core.synthetic import generate_case

    (tmp_path / "imgs").mkdir()
    for i in range(8):
        Image.fromarray(generate_case(100 + i, size=224).image).save(tmp_path / "imgs" / f"img{i}.png")
    return tmp_path


def _write(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n")
    return path


PARTLY = """
path,amd,glaucoma,comment
imgs/img0.png,1,,a
imgs/img1.png,0,1,b
imgs/img2.png,,0,c
imgs/img3.png,1,,d
imgs/img4.png,0,1,e
imgs/img5.png,,0,f
imgs/img6.png,1,1,g
imgs/img7.png,,,no label at all
"""

STUDY = """
case_id,image_path,label,findings,eye
C0,imgs/img0.png,amd,,OD
C1,imgs/img1.png,normal,,OS
C2,imgs/img2.png,glaucoma,amd;rvo,OD
C3,imgs/img3.png,diabetic_retinopathy,,OD
C4,imgs/img4.png,normal,,OS
C5,imgs/img5.png,amd,,OD
C6,imgs/img6.png,,,OD
C7,imgs/img7.png,glaucoma,,OS
"""


def test_partly_labelled_manifest_keeps_unlabelled_cells_apart(photographs):
    from revision_core.labelled_sets import manifest_set

    data = manifest_set(_write(photographs / "partly.csv", PARTLY), FINDINGS)
    assert list(data.labels) == ["amd", "glaucoma"]  # the missing columns are not labelled, not negative
    assert len(data.sources) == 7 and data.sources[0] == photographs / "imgs" / "img0.png"  # img7 labels nothing
    np.testing.assert_array_equal(data.labels["amd"], [1, 0, np.nan, 1, 0, np.nan, 1])
    np.testing.assert_array_equal(data.labels["glaucoma"], [np.nan, 1, 0, np.nan, 1, 0, 1])
    assert "1 rows without any label left out" in data.description
    assert "not scored: diabetic_retinopathy, rvo, pathologic_myopia" in data.description


def test_study_manifest_labels_every_finding_from_label_and_findings(photographs):
    from revision_core.labelled_sets import manifest_set

    data = manifest_set(_write(photographs / "manifest.csv", STUDY), FINDINGS)
    assert list(data.labels) == FINDINGS and len(data.sources) == 7  # C6 has no label: left out
    assert data.sources[6] == photographs / "imgs" / "img7.png"
    np.testing.assert_array_equal(data.labels["amd"], [1, 0, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(data.labels["glaucoma"], [0, 0, 1, 0, 0, 0, 1])
    np.testing.assert_array_equal(data.labels["rvo"], [0, 0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(data.labels["pathologic_myopia"], np.zeros(7))


@pytest.mark.parametrize("text, message", [
    ("path,amd\nimgs/img0.png,2\n", "must be 0, 1 or empty"),
    ("path,drusen\nimgs/img0.png,1\n", "labels none of the label set's findings"),
    ("path,amd\nimgs/img0.png,\n", "labels none of the label set's findings"),
    ("file,amd\nimgs/img0.png,1\n", "neither a 'path' column"),
    ("case_id,image_path,label\nC0,imgs/img0.png,drusen\n", "'drusen'"),
    ("case_id,image_path,label,findings\nC0,imgs/img0.png,amd,amd;cataract\n", "row 2: 'cataract'"),
])
def test_manifest_errors_say_what_is_wrong(tmp_path, text, message):
    from revision_core.labelled_sets import manifest_set

    with pytest.raises(ValueError, match=message):
        manifest_set(_write(tmp_path / "m.csv", text), FINDINGS)


def _evaluate(manifest: Path, checkpoint: Path, capsys) -> dict:
    from revision_core.cli import main

    assert main(["evaluate", "--manifest", str(manifest), "--model", "revision-tiny-cnn", "--checkpoint",
                 str(checkpoint), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _probabilities(checkpoint: Path, paths) -> np.ndarray:
    from revision_core.model import load_model
    from revision_core.zeroshot import ZeroShotClassifier

    clf = ZeroShotClassifier(load_model("revision-tiny-cnn", str(checkpoint)))
    return clf.predict_files(paths).probabilities


def test_evaluate_scores_each_finding_on_the_images_that_label_it(photographs, tiny_cnn_checkpoint, capsys):
    from revision_core.evaluate import auroc

    manifest = _write(photographs / "partly.csv", PARTLY)
    result = _evaluate(manifest, tiny_cnn_checkpoint, capsys)
    assert set(result["auroc"]) == {"amd", "glaucoma"}
    assert result["not_labelled"] == ["diabetic_retinopathy", "rvo", "pathologic_myopia"]
    assert (result["auroc"]["amd"]["n_pos"], result["auroc"]["amd"]["n_neg"]) == (3, 2)  # empties are not negatives
    assert (result["auroc"]["glaucoma"]["n_pos"], result["auroc"]["glaucoma"]["n_neg"]) == (3, 2)
    probs = _probabilities(tiny_cnn_checkpoint, [photographs / "imgs" / f"img{i}.png" for i in (0, 1, 3, 4, 6)])
    assert result["auroc"]["amd"]["auc"] == pytest.approx(auroc([1, 0, 1, 0, 1], probs[:, FINDINGS.index("amd")]))
    aucs = [e["auc"] for e in result["auroc"].values()]
    assert result["mean_auroc"] == pytest.approx(sum(aucs) / len(aucs))


def test_evaluate_reads_the_study_manifest(photographs, tiny_cnn_checkpoint, capsys):
    from revision_core.evaluate import auroc

    result = _evaluate(_write(photographs / "manifest.csv", STUDY), tiny_cnn_checkpoint, capsys)
    assert result["n"] == 7 and set(result["auroc"]) == set(FINDINGS) and "not_labelled" not in result
    assert (result["auroc"]["amd"]["n_pos"], result["auroc"]["amd"]["n_neg"]) == (3, 4)
    assert result["auroc"]["pathologic_myopia"]["auc"] is None  # no positive: noted, left out of the mean
    paths = [photographs / "imgs" / f"img{i}.png" for i in (0, 1, 2, 3, 4, 5, 7)]
    probs = _probabilities(tiny_cnn_checkpoint, paths)
    assert result["auroc"]["glaucoma"]["auc"] == pytest.approx(
        auroc([0, 0, 1, 0, 0, 0, 1], probs[:, FINDINGS.index("glaucoma")]))
