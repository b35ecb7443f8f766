"""Does the model read real lesions? Remove the expert-marked lesions and watch the DR probability.

On IDRiD's 69 lesion photographs (``../shared/real/idrid-lesions``; Porwal et al., Data 2018, 3(3):25,
CC BY 4.0; never trained on, never used to pick a checkpoint), each photograph is scored three times:

* as it is;
* with every marked lesion (microaneurysms, haemorrhages, hard exudates, cotton-wool spots; masks grown by
  ``--grow`` px) removed by inpainting (``cv2.inpaint``, Telea): the retina without its lesions;
* a placebo: the same amount of inpainting elsewhere (the lesion mask turned half a turn about the field's
  centre, off the lesions), which shows what inpainting itself does to the score.

Printed: in how many photographs the DR probability falls when the lesions go (goal >= 80%), the median
drop (goal >= 0.2), the same for the placebo; the AUROC of each photograph against itself without its
lesions (a real-photograph stand-in for real DR against real normals, which we do not have); how often the
other findings are called on these photographs (IDRiD grades DR only, so such calls are probably false
positives on real eyes); and the pointing game of integrated gradients
(``revision_core.saliency``, the playground's default): how often the peak of the DR saliency map lies on
a marked lesion (within 2% of the image width, as in ``saliency-check``), against the share of the field
such a tolerance band covers (what a random point would score). Only the centre square of each
photograph reaches the model (its preprocessing crops to the shorter side), so only lesions there count.

``python bench/bench_lesion_reading.py [--model demo|local-dir:DIR] [--limit N] [--json-out FILE]``
Skips, saying why, when ``../shared`` is absent.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared" / "real" / "idrid-lesions"
SUFFIXES = ("MA", "HE", "EX", "SE")


def lesion_mask(folder: Path, stem: str, shape) -> np.ndarray:
    mask = np.zeros(shape, bool)
    for suffix in SUFFIXES:
        path = folder / f"{stem}_{suffix}.png"
        if path.is_file():
            mask |= cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 0
    return mask


def inpaint(image: np.ndarray, mask: np.ndarray, grow: int) -> np.ndarray:
    m = cv2.dilate(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2))
    return cv2.inpaint(image, m * 255, 5, cv2.INPAINT_TELEA)


def placebo_mask(mask: np.ndarray, field: np.ndarray, centre: tuple[float, float]) -> np.ndarray:
    """The lesion mask turned half a turn about the field's centre, inside the field and off every lesion."""
    h, w = mask.shape
    m = cv2.warpAffine(mask.astype(np.uint8), cv2.getRotationMatrix2D(centre, 180, 1.0), (w, h),
                       flags=cv2.INTER_NEAREST) > 0
    return m & field & ~cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)


def centre_square(shape) -> np.ndarray:
    h, w = shape
    s = min(h, w)
    out = np.zeros(shape, bool)
    out[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s] = True
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="demo")
    ap.add_argument("--grow", type=int, default=2, help="px to grow each lesion mask before inpainting")
    ap.add_argument("--steps", type=int, default=32, help="integrated-gradients steps")
    ap.add_argument("--limit", type=int, help="only the first N photographs")
    ap.add_argument("--no-saliency", action="store_true")
    ap.add_argument("--json-out", help="also write the per-photograph results as JSON")
    args = ap.parse_args()
    if not REAL.is_dir():
        print(f"skipped: the real lesion photographs are not at {REAL} (../shared is absent beside the project)")
        return 0

    import torch

    from revision_core.faithfulness import dilate, tolerance_px
    from revision_core.lesion_stats import field_of_view
    from revision_core.model import load_model
    from revision_core.saliency import explain, smoothed, to_image_geometry
    from revision_core.zeroshot import ZeroShotClassifier

    torch.set_num_threads(1)
    loaded = load_model(args.model)
    clf = ZeroShotClassifier(loaded)
    dr = clf.findings.index("diabetic_retinopathy")
    files = sorted(REAL.glob("*.jpg"))[: args.limit]
    rows = []
    t0 = time.time()
    for f in files:
        image = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
        mask = lesion_mask(REAL, f.stem, image.shape[:2])
        cx, cy, _, field = field_of_view(image)
        seen = mask & centre_square(mask.shape)
        clean = inpaint(image, mask, args.grow)
        placebo = inpaint(image, placebo_mask(mask, field, (cx, cy)), args.grow)
        probs = clf.predict_images([Image.fromarray(a) for a in (image, clean, placebo)])
        p = probs[:, dr]
        row = {"photo": f.stem, "p": float(p[0]), "p_without_lesions": float(p[1]), "p_placebo": float(p[2]),
               "others": {k: float(probs[0, j]) for j, k in enumerate(clf.findings) if j != dr},
               "others_without_lesions": {k: float(probs[1, j]) for j, k in enumerate(clf.findings) if j != dr},
               "lesion_share_of_field": float(mask[field].mean()), "lesion_share_seen": float(seen.sum() / max(mask.sum(), 1))}
        if not args.no_saliency and seen.any():
            sal = explain(loaded, clf, Image.fromarray(image), "diabetic_retinopathy", "integrated_gradients",
                          steps=args.steps, threads=1)
            full = to_image_geometry(smoothed(sal.raw, "integrated_gradients"), (image.shape[1], image.shape[0]),
                                     loaded.preprocess)
            full[~(field & centre_square(mask.shape))] = -np.inf       # the peak of what the model saw
            y, x = np.unravel_index(int(np.argmax(full)), full.shape)
            tol = tolerance_px(image.shape[1])
            grown = dilate(seen, tol)
            row["ig_peak_on_lesion"] = bool(grown[y, x])
            row["chance"] = float(grown[field & centre_square(mask.shape)].mean())
        rows.append(row)
        print(f"  {f.stem}: DR {row['p']:.3f} -> {row['p_without_lesions']:.3f} without lesions "
              f"(placebo {row['p_placebo']:.3f}); lesions {100 * row['lesion_share_of_field']:.1f}% of the field"
              + (f"; IG peak on a lesion: {'yes' if row['ig_peak_on_lesion'] else 'no'}" if "ig_peak_on_lesion" in row else ""),
              flush=True)

    from revision_core.evaluate import auroc

    p = np.array([r["p"] for r in rows])
    q = np.array([r["p_without_lesions"] for r in rows])
    z = np.array([r["p_placebo"] for r in rows])
    others = [k for k in clf.findings if k != "diabetic_retinopathy"]
    summary = {
        "model": loaded.card.to_dict(), "n_photographs": len(rows), "grow_px": args.grow,
        "dr_probability_median": float(np.median(p)), "called_dr": int((p >= 0.5).sum()),
        "falls_when_lesions_removed": float(np.mean(q < p)), "median_drop": float(np.median(p - q)),
        "mean_drop": float(np.mean(p - q)),
        "placebo_falls": float(np.mean(z < p)), "placebo_median_drop": float(np.median(p - z)),
        "auroc_with_vs_without_lesions": float(auroc(np.r_[np.ones(len(p)), np.zeros(len(q))], np.r_[p, q])),
        "without_lesions_called_dr": int((q >= 0.5).sum()), "without_lesions_median": float(np.median(q)),
        "other_findings_called": {k: int(sum(r["others"][k] >= 0.5 for r in rows)) for k in others},
        "other_findings_called_without_lesions": {k: int(sum(r["others_without_lesions"][k] >= 0.5 for r in rows))
                                                  for k in others},
        "seconds": round(time.time() - t0, 1),
    }
    if any("ig_peak_on_lesion" in r for r in rows):
        hits = [r for r in rows if "ig_peak_on_lesion" in r]
        summary["ig_pointing_game"] = float(np.mean([r["ig_peak_on_lesion"] for r in hits]))
        summary["ig_pointing_chance"] = float(np.mean([r["chance"] for r in hits]))
        summary["ig_photographs"] = len(hits)
    print(f"\nmodel: {args.model} (version {loaded.card.version}); {len(rows)} IDRiD lesion photographs, all DR")
    print(f"DR probability: median {summary['dr_probability_median']:.3f}, called DR (p >= 0.5) in "
          f"{summary['called_dr']} of {len(rows)}")
    print(f"lesions removed by inpainting: the DR probability falls in {100 * summary['falls_when_lesions_removed']:.0f}% "
          f"(goal >= 80%), median drop {summary['median_drop']:.3f} (goal >= 0.2), mean drop {summary['mean_drop']:.3f}")
    print(f"placebo (same inpainting elsewhere): falls in {100 * summary['placebo_falls']:.0f}%, median drop "
          f"{summary['placebo_median_drop']:.3f}")
    print(f"without their lesions: DR probability median {summary['without_lesions_median']:.3f}, called DR in "
          f"{summary['without_lesions_called_dr']} of {len(rows)}; AUROC with vs without lesions "
          f"{summary['auroc_with_vs_without_lesions']:.3f}")
    print("other findings called (p >= 0.5; IDRiD grades DR only, so probably false positives), as is | without "
          "lesions: " + ", ".join(f"{k} {summary['other_findings_called'][k]} | "
                                  f"{summary['other_findings_called_without_lesions'][k]}" for k in others))
    if "ig_pointing_game" in summary:
        print(f"integrated gradients: peak on a marked lesion in {100 * summary['ig_pointing_game']:.0f}% of "
              f"{summary['ig_photographs']} (a random point in the field: {100 * summary['ig_pointing_chance']:.0f}%)")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"summary": summary, "photographs": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
