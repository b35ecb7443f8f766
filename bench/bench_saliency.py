"""Per-image cost of each saliency method, as a multiple of one forward+backward pass of the same model.

Plain script: ``python bench/bench_saliency.py [--model demo] [--repeats 3]``. The unit is one
forward+backward of the finding's score for one image, timed in the same run, so the ratios carry over
between machines; absolute times are printed too. CPU seconds of this process are reported alongside
wall-clock seconds because other jobs may share the machine. Targets: Grad-CAM <= 3x, IG (32 steps) <= 40x.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from revision_core.model import load_model  # noqa: E402
from revision_core.saliency import METHODS, explain, score_function  # noqa: E402
from revision_core.synthetic import EVAL_SEED_BASE, generate_case  # noqa: E402
from revision_core.zeroshot import ZeroShotClassifier  # noqa: E402

TARGETS = {"gradcam": 3.0, "integrated_gradients": 40.0}


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats: int, device) -> tuple[float, float]:
    """Median (wall, CPU) seconds of ``fn()`` after one warm-up call."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        _sync(device)
        t, c = time.perf_counter(), time.process_time()
        fn()
        _sync(device)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="demo")
    ap.add_argument("--checkpoint")
    ap.add_argument("--device")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--finding", default="diabetic_retinopathy")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_model(args.model, args.checkpoint, device=args.device)
    clf = ZeroShotClassifier(loaded)
    image = Image.fromarray(generate_case(EVAL_SEED_BASE, findings={args.finding: True}).image)
    scorer = score_function(loaded, clf, args.finding)
    pixels = loaded.preprocess(image).unsqueeze(0).to(loaded.device, torch.float32)

    def forward_backward():
        x = pixels.clone().requires_grad_(True)
        scorer(x).sum().backward()

    unit_wall, unit_cpu = timed(forward_backward, max(5, args.repeats * 3), loaded.device)
    print(f"model {loaded.card.name} ({loaded.card.architecture}, {loaded.card.version}) on {loaded.device}, "
          f"input {pixels.shape[-1]} px, {args.threads} thread(s)")
    print(f"forward+backward: {unit_wall * 1e3:.1f} ms wall, {unit_cpu * 1e3:.1f} ms CPU")
    print(f"{'method':22s} {'wall s':>8s} {'CPU s':>8s} {'x fwd+bwd (wall)':>17s} {'(CPU)':>7s} {'target':>7s}")
    for method in METHODS:
        wall, cpu = timed(lambda: explain(loaded, clf, image, args.finding, method, steps=args.steps),
                          args.repeats, loaded.device)
        target = TARGETS.get(method)
        verdict = "" if target is None else (f"<= {target:g}x " + ("ok" if wall / unit_wall <= target else "MISSED"))
        print(f"{method:22s} {wall:8.3f} {cpu:8.3f} {wall / unit_wall:17.1f} {cpu / unit_cpu:7.1f} {verdict}")


if __name__ == "__main__":
    main()
