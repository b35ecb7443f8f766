"""Do saliency maps point at the lesion, and does the model's score depend on what they highlight?

Measured on synthetic positive cases, whose lesion masks are known (glaucoma: the cup; pathologic
myopia: the atrophy crescent; RVO: haemorrhages + the occluded vein; DR/AMD: the lesions):

* pointing game: is the map's maximum inside the finding's mask, dilated by ``tolerance`` (2% of the
  image width: maps come from a 256-px input and lesions can be a few pixels wide)? Maps are brought to
  the image size first, and the maximum is taken on the unclipped signed map, so ties cannot decide it.
* energy in mask: the fraction of positive attribution inside the same dilated mask. For reference,
  ``mask_area`` is the dilated mask's share of the image: a uniform map scores exactly that.
* deletion: the most salient input pixels are replaced by the blurred baseline in ``deletion_steps``
  equal steps and the finding's score (the attributed log-odds) is tracked. The curve is normalised to
  run from 1 (intact image) to 0 (everything deleted = the baseline): (s_k - s_end) / (s_0 - s_end), with
  the denominator floored at 0.5 log-odds so cases where the blur barely changes the score cannot dominate
  the mean. ``deletion_auc`` is the area under it over the deleted fraction; deleting pixels in random
  order gives ``random_deletion_auc`` (same endpoints, so the same normalisation). Lower is better; a
  faithful map beats random. Log-odds rather than probabilities, because a confident model's probability
  saturates near 1 and hides how much evidence each step removed.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from .saliency import METHODS, check_choice, explain, make_baseline, score_function, smoothed, to_image_geometry

TOLERANCE_FRACTION = 0.02


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """The mask grown by ``radius`` pixels (a disc), so a near miss at map resolution still counts."""
    import cv2

    mask = np.asarray(mask, dtype=bool)
    if radius <= 0:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def tolerance_px(width: int) -> int:
    return max(1, int(round(TOLERANCE_FRACTION * width)))


def pointing_game(saliency_map: np.ndarray, mask: np.ndarray, tolerance: int | None = None) -> float:
    """1.0 if the map's maximum lies in the (dilated) mask, else 0.0."""
    m = np.nan_to_num(np.asarray(saliency_map, dtype=np.float64), nan=-np.inf)
    if m.shape != np.shape(mask):
        raise ValueError(f"map {m.shape} and mask {np.shape(mask)} must have the same shape")
    tol = tolerance_px(m.shape[1]) if tolerance is None else tolerance
    y, x = np.unravel_index(int(np.argmax(m)), m.shape)
    return float(dilate(mask, tol)[y, x])


def energy_in_mask(saliency_map: np.ndarray, mask: np.ndarray, tolerance: int | None = None) -> float:
    """Share of the positive attribution inside the (dilated) mask; 0 if the map has no positive part."""
    m = np.maximum(np.nan_to_num(np.asarray(saliency_map, dtype=np.float64)), 0)
    if m.shape != np.shape(mask):
        raise ValueError(f"map {m.shape} and mask {np.shape(mask)} must have the same shape")
    tol = tolerance_px(m.shape[1]) if tolerance is None else tolerance
    total = m.sum()
    return float(m[dilate(mask, tol)].sum() / total) if total > 0 else 0.0


def deletion_order(order_map: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flat pixel indices, most salient first; ties broken at random (not in raster order)."""
    flat = np.asarray(order_map, dtype=np.float64).ravel()
    return np.lexsort((rng.random(flat.size), -flat))


@torch.no_grad()
def deletion_curve(scorer, pixels: torch.Tensor, baseline: torch.Tensor, order: np.ndarray, steps: int = 20,
                   batch_size: int = 21) -> np.ndarray:
    """The finding's score (log-odds) after deleting 0, 1/steps, ..., all pixels (in ``order``)."""
    h, w = pixels.shape[-2:]
    rank = torch.empty(h * w, dtype=torch.long)
    rank[torch.as_tensor(order)] = torch.arange(h * w)
    rank = rank.view(1, 1, h, w).to(pixels.device)
    counts = [int(round(k * h * w / steps)) for k in range(steps + 1)]
    probs = []
    for i in range(0, len(counts), batch_size):
        chunk = torch.tensor(counts[i:i + batch_size], device=pixels.device).view(-1, 1, 1, 1)
        deleted = rank < chunk                                   # (b, 1, h, w)
        batch = torch.where(deleted, baseline, pixels)
        probs.append(scorer(batch).float().cpu())
    return torch.cat(probs).numpy()


def deletion_auc(curve: np.ndarray, min_drop: float = 0.5) -> float:
    """Area under the normalised score curve (1 at the intact image, 0 when all is deleted) over [0, 1]."""
    curve = np.asarray(curve, dtype=np.float64)
    norm = (curve - curve[-1]) / max(float(curve[0] - curve[-1]), min_drop)
    x = np.linspace(0, 1, len(curve))
    return float(np.sum((norm[1:] + norm[:-1]) * np.diff(x)) / 2)


def _mean(values) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _summarise(rows: list[dict]) -> dict:
    keys = ("pointing_game", "energy_in_mask", "deletion_auc", "random_deletion_auc", "mask_area")
    return {**{k: round(_mean([r[k] for r in rows]), 4) for k in keys}, "n": len(rows)}


def evaluate_synthetic(loaded, classifier, n: int, seed: int = 0, methods=METHODS, *, size: int = 512,
                       deletion_steps: int = 20, progress=None, method_kwargs: dict | None = None,
                       **explain_kwargs) -> dict:
    """Faithfulness of each method on ``n`` forced single-finding positive cases (findings in turn).

    Cases come from seeds EVAL_SEED_BASE + seed + i with the grade drawn from the default distribution,
    so severities are mixed. ``explain_kwargs`` go to every :func:`explain` call, ``method_kwargs[m]``
    override them for method ``m`` (e.g. fewer SmoothGrad steps).
    Returns {"methods": {m: summary}, "per_finding": {f: {m: summary}}, ...}.
    """
    from PIL import Image

    from .synthetic import EVAL_SEED_BASE, FINDINGS, generate_case

    for m in methods:
        check_choice(m, METHODS, "method")
    findings = [f for f in FINDINGS if f in classifier.findings]
    if not findings:
        raise ValueError(f"the label set has none of the synthetic findings {FINDINGS}")
    rows: dict[str, list[dict]] = defaultdict(list)
    per_finding: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    baseline_kind = explain_kwargs.get("baseline", "blurred")
    for i in range(n):
        finding = findings[i % len(findings)]
        case = generate_case(EVAL_SEED_BASE + seed + i, size=size, findings={finding: True})
        image = Image.fromarray(case.image)
        mask = case.masks[finding]
        scorer = score_function(loaded, classifier, finding)
        pixels = loaded.preprocess(image).unsqueeze(0).to(loaded.device, torch.float32)
        deletion_base = make_baseline(pixels, "blurred", loaded.preprocess)
        rng = np.random.default_rng(case.seed)
        h, w = pixels.shape[-2:]
        random_auc = deletion_auc(deletion_curve(scorer, pixels, deletion_base, rng.permutation(h * w),
                                                 deletion_steps))
        tol = tolerance_px(mask.shape[1])
        area = float(dilate(mask, tol).mean())
        for method in methods:
            kwargs = {**explain_kwargs, **(method_kwargs or {}).get(method, {})}
            sal = explain(loaded, classifier, image, finding, method, **kwargs)
            signed = smoothed(sal.raw, method)
            full = to_image_geometry(signed, image.size, loaded.preprocess)
            row = {"pointing_game": pointing_game(full, mask, tol), "energy_in_mask": energy_in_mask(full, mask, tol),
                   "deletion_auc": deletion_auc(deletion_curve(scorer, pixels, deletion_base,
                                                               deletion_order(signed, rng), deletion_steps)),
                   "random_deletion_auc": random_auc, "mask_area": area}
            rows[method].append(row)
            per_finding[finding][method].append(row)
        if progress:
            progress(i + 1, n)
    return {"model": loaded.card.to_dict(), "n_cases": n, "seed": seed, "baseline": baseline_kind,
            "tolerance_fraction": TOLERANCE_FRACTION,
            "methods": {m: _summarise(rows[m]) for m in methods},
            "per_finding": {f: {m: _summarise(per_finding[f][m]) for m in methods}
                            for f in findings if f in per_finding}}
