"""Images per second of the synthetic fundus generator at 224 and 512 px (single process, one core).

Plain script: ``python bench/bench_synthetic.py [--n N]``. Threads of OpenCV are pinned to 1 so the
number reflects one core, which is what a data-loader worker gets. The CPU-second rate is what one
uncontended core would deliver when other jobs share the machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402

from revision_core.synthetic import generate_case  # noqa: E402


def bench(size: int, n: int, seed0: int = 0) -> tuple[float, float]:
    """(images per wall-clock second, images per CPU second of this process)."""
    generate_case(seed0, size)                      # warm the per-size caches
    t, c = time.perf_counter(), time.process_time()
    for s in range(seed0, seed0 + n):
        generate_case(s, size)
    return n / (time.perf_counter() - t), n / (time.process_time() - c)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=60, help="images per size")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    for size in (224, 512):
        wall, cpu = bench(size, args.n)
        print(f"{size:4d} px: {wall:6.1f} images/s wall-clock, {cpu:6.1f} images per CPU-second")


if __name__ == "__main__":
    main()
