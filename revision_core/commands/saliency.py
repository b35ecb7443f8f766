"""``saliency IMAGE --finding F --method M --out overlay.png``: where a suggestion comes from, as an overlay."""
from __future__ import annotations

import json

from ._model_args import add_model_arguments, load_classifier

METHODS = ("integrated_gradients", "smoothgrad", "gradcam", "occlusion")  # = saliency.METHODS (no torch at --help)
STYLES = ("filled", "outline")  # = saliency_render.STYLES


def configure(p) -> None:
    p.add_argument("image", help="image file (JPEG, PNG, TIFF, DICOM)")
    p.add_argument("--finding", required=True, help="finding key from the label set, e.g. diabetic_retinopathy")
    p.add_argument("--method", default="integrated_gradients", help=f"one of: {', '.join(METHODS)}")
    p.add_argument("--out", required=True, help="PNG file for the overlay")
    p.add_argument("--opacity", type=float, default=1.0, help="of the bands, 0-1")
    p.add_argument("--style", default="filled", help=f"one of: {', '.join(STYLES)} (the bands of the retina's "
                   "top 10%%, 5%% and 1%% attribution, as the reading station draws them)")
    p.add_argument("--baseline", default="blurred", help="blurred (default) or black")
    p.add_argument("--steps", type=int, default=32, help="integration steps (IG, SmoothGrad)")
    add_model_arguments(p)
    p.add_argument("--json", action="store_true", help="print a JSON summary")


def run(args) -> int:
    from pathlib import Path

    from ..imageio import image_sha256, load_image
    from ..saliency import BASELINES, check_choice, explain
    from ..saliency import METHODS as _METHODS
    from ..saliency_render import STYLES as _STYLES
    from ..saliency_render import cache_key, render_overlay

    check_choice(args.method, _METHODS, "method")
    check_choice(args.style, _STYLES, "style")
    check_choice(args.baseline, BASELINES, "baseline")
    image = load_image(args.image)            # ImageLoadError (a ValueError) -> "error: ..." exit 2
    clf = load_classifier(args)
    sal = explain(clf.loaded, clf, image, args.finding, args.method, baseline=args.baseline, steps=args.steps)
    png = render_overlay(image, sal.map, style=args.style, opacity=args.opacity)
    Path(args.out).write_bytes(png)
    key = cache_key(clf.loaded.card.version, image_sha256(image), args.finding, args.method, sal.params)
    summary = {"out": args.out, "finding": args.finding, "method": args.method, "params": sal.params,
               "score": sal.score, "baseline_score": sal.baseline_score, "cache_key": key,
               "model": clf.loaded.card.to_dict()}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{args.out}: {args.method} map of {args.finding} (log-odds {sal.score:+.2f}) from "
              f"{clf.loaded.card.name} {clf.loaded.card.version}")
        print(clf.loaded.card.disclaimer)
    return 0
