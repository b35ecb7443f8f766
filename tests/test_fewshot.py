"""Label-efficiency table on synthetic embeddings whose class signal is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from revision_core.fewshot import (
    fit_prompt_initialised_probe,
    l2_normalise,
    label_efficiency,
)

D = 32


def _make(n, rng, shift=1.2, axis=0):
    """Gaussian embeddings; positives are shifted along one axis. An offset keeps the norms sane."""
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, D))
    x[:, axis] += shift * y
    x[:, D - 1] += 4.0
    return x, y


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(123)
    xtr, ytr = _make(300, rng, shift=2.0)
    xte, yte = _make(600, rng, shift=2.0)
    # a second finding with signal on another axis, to check findings are kept apart
    xtr2 = xtr.copy()
    y2tr = (rng.random(300) < 0.5).astype(int)
    y2te = (rng.random(600) < 0.5).astype(int)
    xtr2[:, 1] += 2.0 * y2tr
    xte2 = xte.copy()
    xte2[:, 1] += 2.0 * y2te
    return xtr2, {"dr": ytr, "amd": y2tr}, xte2, {"dr": yte, "amd": y2te}


def test_table_shape_and_columns(data):
    xtr, ytr, xte, yte = data
    zs = {f: l2_normalise(xte)[:, i] for i, f in enumerate(["dr", "amd"])}
    df = label_efficiency(xtr, ytr, xte, yte, zs, ks=(1, 4, 16), repeats=3, seed=0)
    assert isinstance(df, pd.DataFrame)
    assert {"finding", "k", "auc_mean", "auc_sd", "repeats", "method", "note"} <= set(df.columns)
    assert len(df) == 2 * (1 + 3)
    z = df[df.method == "zero-shot"]
    assert set(z.k) == {0} and set(z.finding) == {"dr", "amd"}
    assert z.set_index("finding").loc["dr", "auc_mean"] == pytest.approx(
        roc_auc_score(yte["dr"], zs["dr"])
    )
    lp = df[df.method == "linear probe"]
    assert (lp.repeats == 3).all() and lp.auc_mean.between(0, 1).all()
    assert (lp.auc_sd >= 0).all()


def test_auc_rises_with_k(data):
    xtr, ytr, xte, yte = data
    df = label_efficiency(xtr, ytr, xte, yte, None, ks=(1, 2, 4, 8, 16), repeats=8, seed=1)
    for axis, finding in enumerate(("dr", "amd")):
        s = df[df.finding == finding].set_index("k").auc_mean
        oracle = roc_auc_score(yte[finding], xte[:, axis])  # the known signal direction
        assert s[16] > s[1] + 0.1
        assert 0.75 < s[16] <= oracle + 0.02  # most of the known signal is recovered, not more
        # broadly monotone: each doubling of k helps or costs at most a little noise
        assert all(s[b] > s[a] - 0.02 for a, b in [(1, 2), (2, 4), (4, 8), (8, 16)])
        # spread across draws shrinks with more examples
        sd = df[df.finding == finding].set_index("k").auc_sd
        assert sd[16] < sd[1]


def test_deterministic_and_seed_matters(data):
    xtr, ytr, xte, yte = data
    a = label_efficiency(xtr, ytr, xte, yte, None, ks=(2, 4), repeats=3, seed=7)
    b = label_efficiency(xtr, ytr, xte, yte, None, ks=(2, 4), repeats=3, seed=7)
    c = label_efficiency(xtr, ytr, xte, yte, None, ks=(2, 4), repeats=3, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.auc_mean, c.auc_mean)
    # a finding's draws do not depend on which other findings are in the run
    d = label_efficiency(xtr, {"amd": ytr["amd"]}, xte, {"amd": yte["amd"]}, None,
                         ks=(2, 4), repeats=3, seed=7)
    np.testing.assert_allclose(d.auc_mean, a[a.finding == "amd"].auc_mean)


def test_too_few_positives_noted_not_crash():
    rng = np.random.default_rng(0)
    xtr, _ = _make(100, rng)
    ytr = np.zeros(100, int)
    ytr[:3] = 1  # only 3 positives
    xte, yte = _make(100, rng)
    df = label_efficiency(xtr, {"rare": ytr}, xte, {"rare": yte}, None, ks=(1, 2, 4, 8), repeats=2)
    by_k = df.set_index("k")
    assert by_k.loc[2, "repeats"] == 2 and np.isfinite(by_k.loc[2, "auc_mean"])
    for k in (4, 8):
        assert by_k.loc[k, "repeats"] == 0
        assert np.isnan(by_k.loc[k, "auc_mean"])
        assert "only 3 positive" in by_k.loc[k, "note"]


def test_test_set_without_positives_noted():
    rng = np.random.default_rng(0)
    xtr, ytr = _make(50, rng)
    xte, _ = _make(20, rng)
    df = label_efficiency(xtr, {"x": ytr}, xte, {"x": np.zeros(20, int)}, None, ks=(1,), repeats=1)
    assert df.repeats.tolist() == [0] and "no positive" in df.note.iloc[0]


def test_input_errors(data):
    xtr, ytr, xte, yte = data
    with pytest.raises(ValueError, match="dimension"):
        label_efficiency(xtr, ytr, xte[:, :5], yte, None, ks=(1,), repeats=1)
    with pytest.raises(ValueError, match="0/1"):
        label_efficiency(xtr, {"dr": ytr["dr"] * 2}, xte, {"dr": yte["dr"]}, None, ks=(1,))
    with pytest.raises(ValueError, match="no zero-shot scores"):
        label_efficiency(xtr, ytr, xte, yte, {"dr": np.zeros(len(xte))}, ks=(1,), repeats=1)
    with pytest.raises(ValueError, match="all-zero"):
        l2_normalise(np.zeros((2, 3)))


def test_prompt_initialised_uses_text_prior():
    """With one example per class, starting from a good text direction beats a plain probe."""
    rng = np.random.default_rng(5)
    xtr, ytr = _make(200, rng, shift=1.0)
    xte, yte = _make(800, rng, shift=1.0)
    text = np.zeros(D)
    text[0] = 1.0
    df = label_efficiency(xtr, {"dr": ytr}, xte, {"dr": yte}, None, ks=(1, 16), repeats=10,
                          seed=0, text_emb={"dr": text})
    t = df.set_index(["method", "k"]).auc_mean
    assert t["prompt-initialised probe", 1] > t["linear probe", 1] + 0.05
    assert t["prompt-initialised probe", 16] > 0.7


def test_prompt_probe_learns_away_from_bad_prompt():
    """A useless prompt direction is corrected by enough data (the prior is not a cage)."""
    rng = np.random.default_rng(9)
    x, y = _make(400, rng, shift=1.5)
    x = l2_normalise(x)
    bad = np.zeros(D)
    bad[5] = 1.0  # orthogonal to the signal
    w, b = fit_prompt_initialised_probe(x, y == 1, bad, C=10.0)
    assert roc_auc_score(y, x @ w + b) > 0.75
    assert roc_auc_score(y, x @ bad) < 0.6
