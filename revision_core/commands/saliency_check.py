"""``saliency-check --synthetic N``: pointing game, energy in mask and deletion AUC of each saliency method."""
from __future__ import annotations

import json
import sys

from ._model_args import add_model_arguments, load_classifier
from .saliency import METHODS


def configure(p) -> None:
    p.add_argument("--synthetic", type=int, required=True, metavar="N", help="number of positive synthetic cases")
    p.add_argument("--seed", type=int, default=0, help="cases use seeds EVAL_SEED_BASE + seed + i")
    p.add_argument("--methods", nargs="+", default=list(METHODS), help=f"any of: {', '.join(METHODS)}")
    p.add_argument("--baseline", default="blurred", help="blurred (default) or black")
    p.add_argument("--steps", type=int, default=32, help="integration steps (IG, SmoothGrad)")
    p.add_argument("--nt-samples", type=int, default=8, help="SmoothGrad noisy samples")
    p.add_argument("--smoothgrad-steps", type=int, help="integration steps per SmoothGrad sample (default: --steps)")
    p.add_argument("--size", type=int, default=512, help="synthetic image size in pixels")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    add_model_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args) -> int:
    import torch

    from ..faithfulness import evaluate_synthetic
    from ..saliency import check_choice

    if args.threads:
        torch.set_num_threads(args.threads)

    if args.synthetic < 1:
        raise ValueError(f"--synthetic must be at least 1, got {args.synthetic}")
    for m in args.methods:
        check_choice(m, METHODS, "method")
    clf = load_classifier(args)

    def progress(i, n):
        if i % 10 == 0 or i == n:
            print(f"saliency-check: {i}/{n} cases", file=sys.stderr, flush=True)

    result = evaluate_synthetic(clf.loaded, clf, args.synthetic, args.seed, args.methods, size=args.size,
                                baseline=args.baseline, steps=args.steps, nt_samples=args.nt_samples,
                                progress=progress,
                                method_kwargs={"smoothgrad": {"steps": args.smoothgrad_steps or args.steps}})
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"model: {clf.loaded.card.name} (version {clf.loaded.card.version}); {args.synthetic} positive cases")
    print(f"{'method':22s} {'pointing':>9s} {'energy':>8s} {'deletion':>9s} {'random':>8s}")
    for m, s in result["methods"].items():
        print(f"{m:22s} {s['pointing_game']:9.3f} {s['energy_in_mask']:8.3f} {s['deletion_auc']:9.3f} "
              f"{s['random_deletion_auc']:8.3f}")
    return 0
