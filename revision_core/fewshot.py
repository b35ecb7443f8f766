"""Few-shot linear-probe adaptation of frozen image embeddings: the label-efficiency table.

As in the ReVision paper's adaptation experiments: for each finding a logistic-regression probe on
L2-normalised frozen embeddings is trained on k positive and k negative examples (k = 1, 2, 4, ...),
over several random draws, and its test AUROC is compared with the zero-shot AUROC. This answers
"how many labelled images does a clinic need before adapting beats zero-shot?".

Optionally a prompt-initialised probe (in the spirit of LP++ / CLIP-Adapter) starts from the
zero-shot text embedding and learns only a ridge-penalised correction, so that with one or two
examples it stays near zero-shot instead of discarding the text prior.
"""

from __future__ import annotations

import math
import zlib
from typing import Mapping

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression

from .evaluate import auroc

__all__ = ["l2_normalise", "fit_linear_probe", "fit_prompt_initialised_probe", "label_efficiency"]

COLUMNS = ["finding", "method", "k", "auc_mean", "auc_sd", "repeats", "note"]


def l2_normalise(x) -> np.ndarray:
    """Rows scaled to unit length, as CLIP-style embeddings are compared by cosine."""
    x = np.asarray(x, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D (cases, dim) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("embeddings contain NaN or infinite values")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError("embeddings contain an all-zero row, which cannot be normalised")
    return x / norms


def fit_linear_probe(x: np.ndarray, y: np.ndarray, C: float = 1.0) -> LogisticRegression:
    """Logistic-regression probe on already-normalised embeddings."""
    clf = LogisticRegression(C=C, max_iter=2000)
    clf.fit(x, y)
    return clf


def fit_prompt_initialised_probe(
    x: np.ndarray, y: np.ndarray, text: np.ndarray, C: float = 1.0
) -> tuple[np.ndarray, float]:
    """Probe w = a*t + delta whose correction delta is ridge-penalised towards 0.

    The scale a and bias are free, so the zero-shot direction t is kept at whatever temperature
    fits the examples (a >= 0, so a few examples cannot reverse the prompt); only departures from
    it cost. Returns (weight, bias); score = x @ w + b.
    """
    t = np.asarray(text, dtype=float)
    t = t / np.linalg.norm(t)
    d = x.shape[1]
    yy = np.where(y, 1.0, -1.0)
    lam = 1.0 / (C * len(y))  # same scale as sklearn: C * sum(loss) + |w|^2 / 2

    def loss(p):
        a, b, delta = p[0], p[1], p[2:]
        w = a * t + delta
        m = yy * (x @ w + b)
        # log(1 + exp(-m)), stably
        lo = np.logaddexp(0.0, -m)
        sig = -np.exp(-np.logaddexp(0.0, m))  # d lo / d m = -sigmoid(-m)
        g_lin = sig * yy / len(y)
        gw = x.T @ g_lin
        f = lo.mean() + 0.5 * lam * delta @ delta
        grad = np.concatenate([[gw @ t, g_lin.sum()], gw + lam * delta])
        return f, grad

    p0 = np.zeros(d + 2)
    p0[0] = 1.0
    bounds = [(0.0, None)] + [(None, None)] * (d + 1)  # a >= 0: keep the prompt's direction
    res = minimize(loss, p0, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 2000})
    a, b, delta = res.x[0], res.x[1], res.x[2:]
    return a * t + delta, float(b)


def _labels(arr, n: int, what: str) -> np.ndarray:
    y = np.asarray(arr)
    if y.shape != (n,):
        raise ValueError(f"{what} has shape {y.shape}; expected ({n},) to match the embeddings")
    yf = y.astype(float)
    if np.isnan(yf).any() or not np.isin(yf, (0.0, 1.0)).all():
        raise ValueError(f"{what} must contain only 0/1 labels")
    return yf == 1.0


def _rng(seed: int, finding: str, k: int, rep: int) -> np.random.Generator:
    """Draws depend only on (seed, finding, k, repeat), not on which other findings are run."""
    return np.random.default_rng([seed, zlib.crc32(finding.encode()), k, rep])


def _row(finding, method, k, aucs, note=""):
    a = np.asarray(aucs, dtype=float)
    return {
        "finding": finding,
        "method": method,
        "k": k,
        "auc_mean": float(a.mean()) if a.size else math.nan,
        "auc_sd": float(a.std(ddof=1)) if a.size > 1 else (0.0 if a.size == 1 else math.nan),
        "repeats": int(a.size),
        "note": note,
    }


def label_efficiency(
    train_emb,
    train_labels: Mapping[str, np.ndarray],
    test_emb,
    test_labels: Mapping[str, np.ndarray],
    zero_shot_scores: Mapping[str, np.ndarray] | None = None,
    ks=(1, 2, 4, 8, 16),
    repeats: int = 5,
    seed: int = 0,
    C: float = 1.0,
    text_emb: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Test AUROC of k-shot linear probes (k positives + k negatives) per finding and k.

    Columns: finding, method ("zero-shot" with k=0, "linear probe", and "prompt-initialised
    probe" when text_emb is given), k, auc_mean, auc_sd (over draws, ddof=1), repeats, note. When
    a finding has fewer than k positives or negatives to draw from, that row has repeats 0, NaN AUC
    and a note instead of an error. Deterministic for a given seed.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    ks = [int(k) for k in ks]
    if any(k < 1 for k in ks):
        raise ValueError(f"every k must be a positive integer, got {ks}")
    xtr = l2_normalise(train_emb)
    xte = l2_normalise(test_emb)
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(
            f"train embeddings have dimension {xtr.shape[1]} but test embeddings {xte.shape[1]}"
        )
    rows = []
    for finding, lab_te in test_labels.items():
        if finding not in train_labels:
            raise ValueError(f"finding {finding!r} has test labels but no training labels")
        yte = _labels(lab_te, len(xte), f"test_labels[{finding!r}]")
        ytr = _labels(train_labels[finding], len(xtr), f"train_labels[{finding!r}]")
        n_te_pos, n_te_neg = int(yte.sum()), int((~yte).sum())
        if n_te_pos == 0 or n_te_neg == 0:
            note = "test set has no positive cases" if n_te_pos == 0 else "test set has no negative cases"
            if zero_shot_scores is not None:
                rows.append(_row(finding, "zero-shot", 0, [], note))
            for k in ks:
                rows.append(_row(finding, "linear probe", k, [], note))
            continue
        if zero_shot_scores is not None:
            if finding not in zero_shot_scores:
                raise ValueError(f"no zero-shot scores given for finding {finding!r}")
            zs = np.asarray(zero_shot_scores[finding], dtype=float)
            if zs.shape != (len(xte),) or not np.isfinite(zs).all():
                raise ValueError(
                    f"zero_shot_scores[{finding!r}] must be {len(xte)} finite numbers, one per test case"
                )
            rows.append(_row(finding, "zero-shot", 0, [auroc(yte, zs)]))
        text = None
        if text_emb is not None:
            if finding not in text_emb:
                raise ValueError(f"no text embedding given for finding {finding!r}")
            text = np.asarray(text_emb[finding], dtype=float).ravel()
            if text.shape != (xtr.shape[1],):
                raise ValueError(
                    f"text_emb[{finding!r}] has {text.size} values; expected {xtr.shape[1]}"
                )
        pos_idx = np.flatnonzero(ytr)
        neg_idx = np.flatnonzero(~ytr)
        for k in ks:
            if len(pos_idx) < k or len(neg_idx) < k:
                note = (
                    f"only {len(pos_idx)} positive and {len(neg_idx)} negative training cases; "
                    f"{k}-shot needs {k} of each"
                )
                rows.append(_row(finding, "linear probe", k, [], note))
                if text is not None:
                    rows.append(_row(finding, "prompt-initialised probe", k, [], note))
                continue
            lp, pi = [], []
            for rep in range(repeats):
                rng = _rng(seed, finding, k, rep)
                idx = np.concatenate(
                    [rng.choice(pos_idx, k, replace=False), rng.choice(neg_idx, k, replace=False)]
                )
                x, y = xtr[idx], ytr[idx]
                lp.append(auroc(yte, fit_linear_probe(x, y, C).decision_function(xte)))
                if text is not None:
                    w, b = fit_prompt_initialised_probe(x, y, text, C)
                    pi.append(auroc(yte, xte @ w + b))
            rows.append(_row(finding, "linear probe", k, lp))
            if text is not None:
                rows.append(_row(finding, "prompt-initialised probe", k, pi))
    return pd.DataFrame(rows, columns=COLUMNS)
