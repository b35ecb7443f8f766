"""What a model trained on synthetic photographs makes of real ones, measured against synthetic baselines.

The real photographs (``../shared/real/idrid``: 12 IDRiD photographs, all with diabetic retinopathy, no
normal among them; IDRiD, Porwal et al. 2018, CC BY 4.0) have no real normal to compare with, so the
baseline measured in the same run is the model's DR probability on fresh synthetic normals
(evaluation seeds, never trained on), both as rendered and as photographed by random cameras
(``synthetic.camera``). Printed:

- the DR probability on each real photograph, and the AUROC of real DR photographs against synthetic
  normals (0.5 = no better than chance at telling a real DR photograph from a synthetic normal);
- the real photographs' probabilities as a ratio of the synthetic normals' median;
- a lesion-ablation check: the same real photographs with their small bright lesions (hard exudates)
  removed by a morphological opening; the drop in DR probability says how much of the call rests on them;
- zero-shot AUROC per finding on synthetic cases as rendered and through random cameras.

Plain script: ``python bench/bench_real_photographs.py [--model demo|local-dir:DIR] [--n 300]``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from revision_core.evaluate import auroc  # noqa: E402
from revision_core.model import load_model  # noqa: E402
from revision_core.synthetic import EVAL_SEED_BASE, FINDINGS, generate_case  # noqa: E402
from revision_core.synthetic.camera import photograph  # noqa: E402
from revision_core.zeroshot import ZeroShotClassifier  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared" / "real" / "idrid"
DR = FINDINGS.index("diabetic_retinopathy")


def without_bright_lesions(img: np.ndarray) -> np.ndarray:
    """Remove small bright spots (hard exudates) with a grey opening at 1,024 px, keeping the disc."""
    scale = 1024 / max(img.shape[:2])
    small = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (41, 41))
    opened = cv2.morphologyEx(small, cv2.MORPH_OPEN, kernel)
    # only where a pixel is much brighter and yellower than its surroundings: exudates, not the disc
    diff = small.astype(int) - opened.astype(int)
    spots = (diff[..., 1] > 32) & (diff[..., 0] > 16)
    spots = cv2.dilate(spots.astype(np.uint8), np.ones((5, 5), np.uint8), iterations=2) > 0
    out = small.copy()
    out[spots] = opened[spots]
    return out, float(spots.mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="demo")
    ap.add_argument("--n", type=int, default=300, help="synthetic cases per comparison set")
    ap.add_argument("--size", type=int, default=512, help="synthetic photograph side in px")
    args = ap.parse_args()
    if not REAL.is_dir():
        sys.exit(f"no real photographs at {REAL}: this benchmark needs ../shared/real beside the project")
    clf = ZeroShotClassifier(load_model(args.model))
    files = sorted(REAL.glob("*.jpg"))
    real = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    p_real = clf.predict_images([Image.fromarray(a) for a in real])
    ablated, covered = zip(*(without_bright_lesions(a) for a in real))
    p_ablated = clf.predict_images([Image.fromarray(a) for a in ablated])

    rng = np.random.default_rng(0)
    normals = [generate_case(EVAL_SEED_BASE + 500_000 + i, args.size, findings={}).image for i in range(args.n)]
    cases = [generate_case(EVAL_SEED_BASE + 600_000 + i, args.size) for i in range(args.n)]
    p_norm = clf.predict_images([Image.fromarray(a) for a in normals])
    p_norm_cam = clf.predict_images([Image.fromarray(photograph(a, rng)) for a in normals])
    p_cases = clf.predict_images([Image.fromarray(c.image) for c in cases])
    p_cases_cam = clf.predict_images([Image.fromarray(photograph(c.image, rng)) for c in cases])

    print(f"model: {args.model}")
    print(f"real photographs: {len(files)} IDRiD (all DR); synthetic: {args.n} normals, {args.n} mixed cases "
          f"at {args.size} px")
    print("\nDR probability per real photograph (with bright lesions removed; % of pixels removed):")
    for f, p, q, c in zip(files, p_real[:, DR], p_ablated[:, DR], covered):
        print(f"  {f.name}: {p:.3f}  (without exudates {q:.3f}; {100 * c:.1f}%)")
    base = np.median(p_norm[:, DR])
    print(f"\nDR probability, median [range]: real {np.median(p_real[:, DR]):.3f} "
          f"[{p_real[:, DR].min():.3f}-{p_real[:, DR].max():.3f}]; synthetic normals {base:.3f} "
          f"[{p_norm[:, DR].min():.3f}-{p_norm[:, DR].max():.3f}]; through random cameras "
          f"{np.median(p_norm_cam[:, DR]):.3f}")
    print(f"real / synthetic-normal median ratio: {np.median(p_real[:, DR]) / base:.1f}x")
    print(f"real photographs called DR (p >= 0.5): {int((p_real[:, DR] >= 0.5).sum())} of {len(files)}")
    y = np.r_[np.ones(len(files)), np.zeros(args.n)]
    print(f"AUROC real DR vs synthetic normals: {auroc(y, np.r_[p_real[:, DR], p_norm[:, DR]]):.3f}; "
          f"vs camera-photographed synthetic normals: {auroc(y, np.r_[p_real[:, DR], p_norm_cam[:, DR]]):.3f}")
    print(f"median DR probability drop when exudates are removed: "
          f"{np.median(p_real[:, DR] - p_ablated[:, DR]):.3f}")
    print("\nsynthetic zero-shot AUROC per finding: as rendered | through random cameras")
    labels = np.array([[c.labels[f] for f in FINDINGS] for c in cases])
    clean, cam = [], []
    for j, f in enumerate(FINDINGS):
        a, b = auroc(labels[:, j], p_cases[:, j]), auroc(labels[:, j], p_cases_cam[:, j])
        clean.append(a)
        cam.append(b)
        print(f"  {f}: {a:.3f} | {b:.3f}")
    print(f"  mean: {np.mean(clean):.3f} | {np.mean(cam):.3f}")


if __name__ == "__main__":
    main()
