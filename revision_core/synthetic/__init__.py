"""Procedural colour fundus photographs with lesion masks and free-text reports.

Real fundus data cannot be downloaded here, so the project renders its own, deterministically from
a seed: ``generate_case(seed)`` -> image, per-finding masks, labels, grades and a report.
Seeds >= ``EVAL_SEED_BASE`` are reserved for evaluation.
"""

from .generator import (
    AMD_GRADES,
    DR_SEVERITIES,
    EVAL_SEED_BASE,
    FINDINGS,
    GLAUCOMA_GRADES,
    SyntheticCase,
    case_id,
    generate_case,
    generate_cases,
    to_manifest_row,
)
from .writer import MANIFEST_COLUMNS, write_dataset

__all__ = [
    "AMD_GRADES", "DR_SEVERITIES", "EVAL_SEED_BASE", "FINDINGS", "GLAUCOMA_GRADES", "MANIFEST_COLUMNS",
    "SyntheticCase", "case_id", "generate_case", "generate_cases", "to_manifest_row", "write_dataset",
]
