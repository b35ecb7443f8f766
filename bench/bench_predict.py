"""Batch prediction from image files against the raw ``encode_image`` on decoded tensors.

The pipeline (decode, preprocess, encode, score; ``ZeroShotClassifier.predict_files``) and the
baseline (``model.encode_image`` on already-preprocessed tensors) run on the same images with the same
batch size in the same run; the ratio pipeline/baseline is the number that matters (target >= 0.85).
Plain script: ``python bench/bench_predict.py [--n 256] [--format jpg|png] [--model demo]``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from revision_core.imageio import load_image  # noqa: E402
from revision_core.model import load_model  # noqa: E402
from revision_core.synthetic import EVAL_SEED_BASE, generate_case  # noqa: E402
from revision_core.zeroshot import ZeroShotClassifier  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--size", type=int, default=512, help="side of the photographs on disk")
    ap.add_argument("--format", default="jpg", choices=["jpg", "png"])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--model", default="demo")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    clf = ZeroShotClassifier(load_model(args.model))
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.n):
            path = Path(tmp) / f"case{i}.{args.format}"
            Image.fromarray(generate_case(EVAL_SEED_BASE + i, size=args.size).image).save(path, quality=92)
            paths.append(path)
        pixels = torch.stack([clf.loaded.preprocess(load_image(p)) for p in paths])

        def baseline():
            with torch.no_grad():
                for i in range(0, args.n, args.batch_size):
                    clf.loaded.model.encode_image(pixels[i:i + args.batch_size].to(clf.loaded.device, clf.loaded.dtype))

        def pipeline():
            result = clf.predict_files(paths, batch_size=args.batch_size)
            assert not result.errors, result.errors

        baseline(), pipeline()  # warm-up
        times = {"baseline": [], "pipeline": []}
        for _ in range(args.repeats):  # interleaved, so that load from other processes hits both alike
            times["baseline"].append(_timed(baseline))
            times["pipeline"].append(_timed(pipeline))
        raw, full = args.n / min(times["baseline"]), args.n / min(times["pipeline"])
    card = clf.loaded.card
    print(f"model {card.name} ({card.architecture}, {card.input_size}px) on {card.device}, "
          f"{args.n} {args.size}px {args.format.upper()} files, batch {args.batch_size}, torch threads {torch.get_num_threads()}")
    print(f"baseline encode_image on decoded tensors: {raw:8.1f} images/s")
    print(f"pipeline decode+preprocess+encode+score : {full:8.1f} images/s")
    print(f"ratio pipeline / baseline               : {full / raw:8.3f}  (target >= 0.85)")


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
