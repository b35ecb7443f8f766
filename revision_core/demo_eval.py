"""Small, cached-friendly evaluations for the public demo pages: ROC/AUROC on a synthetic labelled set,
the few-shot label-efficiency curve, and a mini reader study's case list.

Why here: the pages only draw what these functions return (plain numbers and tables); all model and
torch code stays in ``revision_core``. Synthetic cases come from the evaluation seed range, never
used in training.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .evaluate import evaluate_scores, roc_curve_points
from .fewshot import label_efficiency
from .synthetic import EVAL_SEED_BASE, generate_case


def _cases(n: int, seed: int, size: int):
    return [generate_case(EVAL_SEED_BASE + seed + i, size=size) for i in range(n)]


@torch.no_grad()
def embed(classifier, images, batch_size: int = 16) -> np.ndarray:
    """Normalised image embeddings (n, dim) for PIL images."""
    from PIL import Image

    out = []
    for i in range(0, len(images), batch_size):
        batch = [im if isinstance(im, Image.Image) else Image.fromarray(im) for im in images[i:i + batch_size]]
        pixels = torch.stack([classifier.loaded.preprocess(im) for im in batch])
        out.append(classifier.encode(pixels).cpu().numpy())
    return np.concatenate(out)


def roc_evaluation(classifier, n: int = 60, seed: int = 0, size: int = 224) -> dict:
    """Zero-shot scores on ``n`` synthetic cases: per-finding ROC points and the AUROC table with DeLong CIs."""
    cases = _cases(n, seed, size)
    feats = torch.from_numpy(embed(classifier, [c.image for c in cases]))
    probs = classifier.probabilities_from_features(feats.to(classifier.pos.device))
    labels = {f: np.array([c.labels.get(f, 0) for c in cases]) for f in classifier.findings}
    scores = {f: probs[:, j] for j, f in enumerate(classifier.findings)}
    table = evaluate_scores(labels, scores)
    curves = {}
    for f in classifier.findings:
        if 0 < labels[f].sum() < len(cases):
            fpr, tpr, _ = roc_curve_points(labels[f], scores[f])
            curves[f] = (fpr.tolist(), tpr.tolist())
    rows = [{"finding": classifier.label_set.finding(f).name, "auroc": e["auc"],
             "ci_low": e["ci"][0] if e["ci"] else None, "ci_high": e["ci"][1] if e["ci"] else None,
             "positives": e["n_pos"], "negatives": e["n_neg"], "note": e.get("note", "")}
            for f, e in table["auroc"].items()]
    aucs = {f: e["auc"] for f, e in table["auroc"].items()}
    return {"table": rows, "mean_auroc": table["mean_auroc"], "curves": curves, "aucs": aucs, "n": n}


NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def overlapping_curves(curves: dict, aucs: dict) -> list[list[str]]:
    """Groups (two or more findings) whose ROC curves are the same line, in ``curves``' order: a plot
    draws them on top of each other, so the page must say so in words."""
    groups: dict[tuple, list[str]] = {}
    for f, (fpr, tpr) in curves.items():
        groups.setdefault(_vertices(fpr, tpr), []).append(f)
    return [g for g in groups.values() if len(g) > 1]


def _vertices(fpr, tpr) -> tuple:
    """The corners of a ROC polyline (repeated and collinear points dropped): two curves drawn as the same
    line have the same corners, whatever their number of thresholds."""
    pts = []
    for p in zip(np.round(fpr, 9).tolist(), np.round(tpr, 9).tolist()):
        if pts and p == pts[-1]:
            continue
        if len(pts) >= 2:
            (x0, y0), (x1, y1) = pts[-2], pts[-1]
            if abs((x1 - x0) * (p[1] - y0) - (y1 - y0) * (p[0] - x0)) < 1e-12:
                pts[-1] = p  # the middle point lies on the line: extend it
                continue
        pts.append(p)
    return tuple(pts)


def overlap_sentence(group: list[str], names: dict, auc: float | None) -> str:
    """E.g. "Three curves at AUROC 1.00 overlap (glaucoma, vein occlusion and myopia): one line shows them all"."""
    count = NUMBER_WORDS[len(group)] if len(group) < len(NUMBER_WORDS) else str(len(group))
    listed = [names.get(f, f) for f in group]
    words = ", ".join(listed[:-1]) + " and " + listed[-1]
    at = f" at AUROC {auc:.2f}" if auc is not None else ""
    return f"{count.capitalize()} curves{at} overlap ({words}): they are drawn on top of each other."


def fewshot_curve(classifier, n_train: int = 60, n_test: int = 40, ks=(1, 2, 4, 8), repeats: int = 3,
                  seed: int = 0, size: int = 224) -> pd.DataFrame:
    """Label-efficiency: k-shot linear-probe test AUROC per finding, with zero-shot at k = 0."""
    train, test = _cases(n_train, seed + 10_000, size), _cases(n_test, seed + 20_000, size)
    xtr, xte = embed(classifier, [c.image for c in train]), embed(classifier, [c.image for c in test])
    ytr = {f: np.array([c.labels.get(f, 0) for c in train]) for f in classifier.findings}
    yte = {f: np.array([c.labels.get(f, 0) for c in test]) for f in classifier.findings}
    probs = classifier.probabilities_from_features(torch.from_numpy(xte).to(classifier.pos.device))
    zs = {f: probs[:, j] for j, f in enumerate(classifier.findings)}
    return label_efficiency(xtr, ytr, xte, yte, zero_shot_scores=zs, ks=ks, repeats=repeats, seed=seed)


def mini_study_cases(n: int = 10, seed: int = 0, size: int = 384) -> list:
    """``n`` synthetic cases for the 'Try the study' page (evaluation seed range)."""
    return _cases(n, seed + 30_000, size)
