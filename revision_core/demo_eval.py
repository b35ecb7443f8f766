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
    cis = {f: e["ci"] for f, e in table["auroc"].items()}
    negatives = {f: scores[f][labels[f] == 0].tolist() for f in classifier.findings}  # for the real comparison
    return {"table": rows, "mean_auroc": table["mean_auroc"], "curves": curves, "aucs": aucs, "cis": cis, "n": n,
            "negative_scores": negatives}


def real_evaluation(classifier, images, findings: list[tuple[str, ...]], synthetic: dict) -> dict:
    """The model on real labelled photographs, for the evaluation page, beside the synthetic result.

    ``findings[i]``: the findings photograph ``i`` shows (``()`` = normal); a finding no photograph's source
    lists is not labelled. Per labelled finding: how many real photographs show it, how many the model calls
    (probability >= 0.5) with a Wilson 95% CI (the sensitivity at 0.5), the median probability; the AUROC with
    its DeLong CI where real negatives exist (normal photographs); else, said as such, the AUROC of the real
    positives against the synthetic evaluation's negatives (``synthetic["negative_scores"]``), which mixes two
    sources and is no real-world AUROC. Returns ``{"rows", "n", "normals"}``."""
    from statsmodels.stats.proportion import proportion_confint

    from .evaluate import auroc_ci

    probs = classifier.predict_images(images)
    labelled = sorted({f for fs in findings for f in fs}, key=classifier.findings.index)
    normals = [i for i, fs in enumerate(findings) if not fs]
    rows = []
    for f in labelled:
        j = classifier.findings.index(f)
        pos = np.array([probs[i, j] for i, fs in enumerate(findings) if f in fs])
        neg = np.array([probs[i, j] for i in normals])
        called = int((pos >= 0.5).sum())
        low, high = proportion_confint(called, len(pos), method="wilson")
        row = {"finding": f, "positives": len(pos), "negatives": len(neg), "called": called,
               "sensitivity": called / len(pos), "sens_low": float(low), "sens_high": float(high),
               "median": float(np.median(pos)), "auroc": None, "ci": None, "auroc_vs_synthetic": None,
               "ci_vs_synthetic": None, "synthetic_auroc": synthetic["aucs"].get(f),
               "synthetic_ci": synthetic.get("cis", {}).get(f)}
        if len(neg) >= 2 and len(pos) >= 2:
            r = auroc_ci(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg])
            row["auroc"], row["ci"] = r.auc, list(r.ci)
        synth_neg = np.asarray(synthetic.get("negative_scores", {}).get(f, []))
        if len(synth_neg) >= 2 and len(pos) >= 2:
            r = auroc_ci(np.r_[np.ones(len(pos)), np.zeros(len(synth_neg))], np.r_[pos, synth_neg])
            row["auroc_vs_synthetic"], row["ci_vs_synthetic"] = r.auc, list(r.ci)
        rows.append(row)
    return {"rows": rows, "n": len(images), "normals": len(normals)}


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
