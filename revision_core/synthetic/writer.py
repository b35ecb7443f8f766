"""Write a synthetic dataset to disk: PNG images, PNG masks and a manifest CSV.

Why PNG + CSV: lossless, viewable, and readable by pandas / the training loader without this package.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2

from .generator import FINDINGS, case_id, generate_case, to_manifest_row

MANIFEST_COLUMNS = ("id", "path", "eye", "labels", "report", *FINDINGS, "dr_severity")


def write_dataset(n: int, seed: int, out_dir: str | Path, size: int = 512) -> Path:
    """Render cases ``seed .. seed + n - 1`` into ``out_dir``; returns the manifest path."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(MANIFEST_COLUMNS))
        w.writeheader()
        for i in range(n):
            case = generate_case(seed + i, size)
            cid = case_id(case)
            rel = f"images/{cid}.png"
            if not cv2.imwrite(str(out / rel), cv2.cvtColor(case.image, cv2.COLOR_RGB2BGR)):
                raise OSError(f"could not write {out / rel}")
            for f, m in case.masks.items():
                cv2.imwrite(str(out / "masks" / f"{cid}_{f}.png"), m.astype("uint8") * 255)
            w.writerow(to_manifest_row(case, rel))
    return manifest
