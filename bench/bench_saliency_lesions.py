"""Does the saliency map point at real lesions? The pointing game on the 69 IDRiD photographs with expert
lesion masks in ../shared/real/idrid-lesions (1024 x 680; IDRiD, Porwal et al. 2018, CC BY 4.0).

For each photograph, the demo model's map for diabetic retinopathy (every one of these photographs shows it)
is computed as the study's precompute computes it (``[ai]`` defaults: integrated gradients, 32 steps,
blurred baseline). Reported:

1. Pointing game: how often the map's peak (its highest pixel) falls on a marked lesion (microaneurysm,
   haemorrhage, hard or soft exudate), exactly and within 10 px (1% of the width: a lesion's neighbourhood
   at this size); against the baseline of a random point on the retina (the share of retina pixels on or
   within 10 px of a lesion, averaged over the photographs), measured on the same masks.
2. The strongest band the reader sees (the top 1% of the retina, ``saliency_render.LEVELS``): the share of
   its pixels on a lesion, against the lesions' share of the retina.
3. The same for the optic disc (``_OD`` mask), which is not a lesion: a map that lights the disc is
   looking at anatomy.

    nice -n 10 .venv/bin/python bench/bench_saliency_lesions.py [--n 69] [--method integrated_gradients]

Skips (exit 0) with the reason when ../shared/real/idrid-lesions is absent.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _app_server import load_note  # noqa: E402

from testsupport.app import REPO_ROOT  # noqa: E402

LESIONS = REPO_ROOT.parent / "shared" / "real" / "idrid-lesions"
KINDS = ("MA", "HE", "EX", "SE")
TOLERANCE = 10


def _mask(photo: Path, kinds) -> "np.ndarray | None":
    import numpy as np
    from PIL import Image

    out = None
    for kind in kinds:
        path = photo.with_name(f"{photo.stem}_{kind}.png")
        if path.is_file():
            m = np.asarray(Image.open(path).convert("L")) > 0
            out = m if out is None else out | m
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=69)
    ap.add_argument("--method", default="integrated_gradients")
    ap.add_argument("--steps", type=int, default=32)
    args = ap.parse_args()
    if not LESIONS.is_dir():
        print(f"bench_saliency_lesions: SKIPPED: {LESIONS} is absent")
        return 0
    import cv2
    import numpy as np

    from revision_core.imageio import load_image
    from revision_core.model import load_model
    from revision_core.saliency import explain
    from revision_core.saliency_render import LEVELS, band_edges, retina_mask
    from revision_core.zeroshot import ZeroShotClassifier

    print(f"bench_saliency_lesions: {load_note()} (at start)")
    loaded = load_model("demo")
    clf = ZeroShotClassifier(loaded)
    photos = sorted(p for p in LESIONS.glob("IDRiD_*.jpg"))[:args.n]
    rows = []
    started = time.perf_counter()
    for photo in photos:
        image = load_image(photo)
        lesion, disc = _mask(photo, KINDS), _mask(photo, ("OD",))
        if lesion is None:
            continue
        sal = explain(loaded, clf, image, "diabetic_retinopathy", args.method, steps=args.steps, threads=1)
        m, retina = sal.map, retina_mask(image)
        y, x = np.unravel_index(int(np.argmax(m)), m.shape)
        near = cv2.dilate(lesion.astype(np.uint8), cv2.getStructuringElement(
            cv2.MORPH_ELLIPSE, (2 * TOLERANCE + 1, 2 * TOLERANCE + 1))) > 0
        edges = band_edges(m, retina)
        top = (m >= edges[-1]) & retina if edges is not None else np.zeros_like(retina)
        p_dr = float(clf.predict_images([image])[0][clf.findings.index("diabetic_retinopathy")])
        rows.append({"hit": bool(lesion[y, x]), "hit_near": bool(near[y, x]),
                     "chance": float(lesion[retina].mean()), "chance_near": float(near[retina].mean()),
                     "top_on_lesion": float(lesion[top].mean()) if top.any() else float("nan"),
                     "disc_peak": bool(disc[y, x]) if disc is not None else False,
                     "disc_share": float(disc[retina].mean()) if disc is not None else 0.0,
                     "top_on_disc": float(disc[top].mean()) if disc is not None and top.any() else 0.0,
                     "p": p_dr})
    seconds = time.perf_counter() - started
    n = len(rows)

    def mean(key):
        return statistics.fmean(r[key] for r in rows if r[key] == r[key])

    print(f"  {n} IDRiD lesion-set photographs (1024 x 680), map of diabetic retinopathy by {args.method} "
          f"({args.steps} steps), demo model {loaded.card.version}; {seconds / max(1, n):.2f} s per photograph")
    print(f"  DR probability: median {statistics.median(r['p'] for r in rows):.2f}, called (p >= 0.5) in "
          f"{sum(r['p'] >= 0.5 for r in rows)} of {n}")
    print(f"  1. pointing game: the peak on a marked lesion in {sum(r['hit'] for r in rows)} of {n} "
          f"({mean('hit'):.0%}); random point on the retina {mean('chance'):.1%}")
    print(f"     within {TOLERANCE} px of a lesion: {sum(r['hit_near'] for r in rows)} of {n} ({mean('hit_near'):.0%}); "
          f"random point on the retina {mean('chance_near'):.0%}")
    print(f"  2. strongest band (top {1 - LEVELS[-1]:.0%} of the retina): {mean('top_on_lesion'):.1%} of its pixels "
          f"on a lesion; lesions cover {mean('chance'):.1%} of the retina")
    print(f"  3. optic disc (anatomy, not a lesion): the peak on the disc in {sum(r['disc_peak'] for r in rows)} of "
          f"{n}; {mean('top_on_disc'):.1%} of the strongest band on the disc, which covers {mean('disc_share'):.1%} "
          "of the retina")
    print(f"bench_saliency_lesions: {load_note()} (at end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
