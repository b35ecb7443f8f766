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
    labels: dict[str, np.ndarray]   # per finding: 0/1 (manifests: float, NaN = not labelled)
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


NORMAL = "normal"  # the study manifest's label for a photograph with none of the findings
STUDY_COLUMNS = ("case_id", "image_path", "label")
_YES, _NO = {"1", "1.0", "true", "yes"}, {"0", "0.0", "false", "no"}


def manifest_set(manifest: str | Path, findings: list[str]) -> LabelledSet:
    """Labelled images from a CSV in either of two formats (image paths relative to the CSV):

    * per-finding columns: ``path`` plus a 0/1 column for any subset of the label set's findings. A missing
      column or an empty cell means "not labelled", never "negative": each finding is scored on the rows
      that label it, and a finding no row labels is not scored.
    * the study's manifest (``case_id,image_path,label[,findings]``, as ``python -m study import-cases``
      reads it): ``label`` is the primary finding (or ``normal``) and ``findings`` lists further ones
      separated by ``;``. Such a row labels every finding: present if named, absent otherwise. A row with
      an empty ``label`` is not labelled.

    Labels are float arrays: 1, 0, or NaN for "not labelled". Rows that label nothing are left out.
    """
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"Manifest not found: {manifest}. Expected a CSV with 'path' and 0/1 finding "
                                "columns, or the study's format (case_id, image_path, label, findings).")
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    table.columns = [c.strip() for c in table.columns]
    if all(c in table.columns for c in STUDY_COLUMNS):
        paths, labels = table["image_path"].str.strip(), _study_labels(table, findings, manifest)
    elif "path" in table.columns:
        paths, labels = table["path"].str.strip(), _column_labels(table, findings, manifest)
    else:
        raise ValueError(f"{manifest} has neither a 'path' column (with 0/1 finding columns) nor the study's "
                         f"columns {', '.join(STUDY_COLUMNS)}; its columns are {list(table.columns)}.")
    labels = {f: y for f, y in labels.items() if not np.isnan(y).all()}  # only labelled findings are scored
    if not labels:
        raise ValueError(f"{manifest} labels none of the label set's findings ({', '.join(findings)}): nothing "
                         "to evaluate. Add a 0/1 column named after a finding, or use the study's format.")
    rows = np.any([~np.isnan(y) for y in labels.values()], axis=0)
    dropped = int((~rows).sum())
    sources = [manifest.parent / p for p, keep in zip(paths, rows) if keep]
    labels = {f: y[rows] for f, y in labels.items()}
    unscored = [f for f in findings if f not in labels]
    description = f"{len(sources)} labelled images from {manifest}"
    if dropped:
        description += f" ({dropped} rows without any label left out)"
    if unscored:
        description += f"; not labelled, so not scored: {', '.join(unscored)}"
    return LabelledSet(sources, labels, {}, description)


def _column_labels(table: pd.DataFrame, findings: list[str], manifest: Path) -> dict[str, np.ndarray]:
    """0/1 columns for the findings the table has; an empty cell is NaN (not labelled)."""
    labels, bad = {}, []
    for f in findings:
        if f not in table.columns:
            continue
        y = np.full(len(table), np.nan)
        for i, v in enumerate(table[f].str.strip().str.lower()):
            if v in _YES:
                y[i] = 1.0
            elif v in _NO:
                y[i] = 0.0
            elif v:
                bad.append(f"{f} = {v!r} (row {i + 2})")
        labels[f] = y
    if bad:
        raise ValueError(f"{manifest}: a finding's cell must be 0, 1 or empty (not labelled); found "
                         f"{', '.join(bad[:5])}" + (f" and {len(bad) - 5} more" if len(bad) > 5 else "") + ".")
    return labels


def _study_labels(table: pd.DataFrame, findings: list[str], manifest: Path) -> dict[str, np.ndarray]:
    """Every finding from the study format's ``label`` and ``findings``; NaN for rows without a label."""
    known = set(findings)
    labels = {f: np.full(len(table), np.nan) for f in findings}
    extra = table["findings"] if "findings" in table.columns else [""] * len(table)
    bad = []
    for i, (label, more) in enumerate(zip(table["label"].str.strip(), extra)):
        if not label:
            continue
        named = [label] + [f.strip() for f in str(more).split(";") if f.strip()]
        unknown = [f for f in named if f not in known and f != NORMAL]
        if unknown:
            bad.append(f"row {i + 2}: {', '.join(map(repr, unknown))}")
            continue
        for f in findings:
            labels[f][i] = float(f in named)
    if bad:
        raise ValueError(f"{manifest}: labels must be findings of the label set ({', '.join(findings)}) or "
                         f"{NORMAL!r}; found {'; '.join(bad[:5])}" + (f" and {len(bad) - 5} more" if len(bad) > 5 else "") + ".")
    return labels
