"""Labelled image sets for evaluation: fresh synthetic cases or a manifest of real labelled images.

Both give the same shape (images or paths, 0/1 labels per finding, optional grades) so that the
evaluation and few-shot commands treat synthetic and real data alike.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .synthetic import EVAL_SEED_BASE, generate_case


@dataclass
class LabelledSet:
    sources: list            # PIL images or file paths
    labels: dict[str, np.ndarray]
    grades: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. DR severity per case ("none" if absent)
    description: str = ""


def synthetic_set(n: int, seed: int, size: int, findings: list[str]) -> LabelledSet:
    """Cases from seeds EVAL_SEED_BASE + seed + i: never used in training."""
    if n < 1:
        raise ValueError(f"--synthetic needs at least 1 case, got {n}")
    cases = [generate_case(EVAL_SEED_BASE + seed + i, size=size) for i in range(n)]
    unknown = [f for f in findings if f not in cases[0].labels]
    if unknown:
        raise ValueError(f"The synthetic generator has no finding {unknown}; it knows {sorted(cases[0].labels)}.")
    labels = {f: np.array([c.labels[f] for c in cases]) for f in findings}
    grades = {f: np.array([c.severity.get(f, "none") for c in cases]) for f in findings}
    return LabelledSet([Image.fromarray(c.image) for c in cases], labels, grades,
                       f"{n} synthetic cases, seeds {EVAL_SEED_BASE + seed}..{EVAL_SEED_BASE + seed + n - 1}, {size}px")


def manifest_set(manifest: str | Path, findings: list[str]) -> LabelledSet:
    """A CSV with a ``path`` column (relative to the CSV) and one 0/1 column per finding."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"Manifest not found: {manifest}. Expected a CSV with a 'path' column and one "
                                "0/1 column per finding.")
    table = pd.read_csv(manifest)
    missing = [c for c in ["path", *findings] if c not in table.columns]
    if missing:
        raise ValueError(f"{manifest} lacks the columns {missing}; it needs 'path' and a 0/1 column for each "
                         f"finding of the label set: {findings}.")
    bad = [f"{f} (row {i + 2})" for f in findings for i, v in enumerate(table[f]) if v not in (0, 1)]
    if bad:
        raise ValueError(f"{manifest}: label values must be 0 or 1; found other values in {', '.join(bad[:5])}.")
    paths = [manifest.parent / p for p in table["path"]]
    return LabelledSet(paths, {f: table[f].to_numpy(dtype=int) for f in findings}, {},
                       f"{len(paths)} labelled images from {manifest}")
