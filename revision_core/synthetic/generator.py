"""One synthetic case = image + masks + labels + report, deterministic from an integer seed.

Why independent random streams: labels, anatomy, lesions, report and acquisition quality each draw
from their own ``SeedSequence([seed, stream])``, so forcing findings or changing the image size never
shifts the other choices; only pixel grain depends on the size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping

import cv2
import numpy as np

from . import anatomy as _anat
from . import lesions as _les
from .reports import write_report

FINDINGS: tuple[str, ...] = ("diabetic_retinopathy", "amd", "glaucoma", "rvo", "pathologic_myopia")
DR_SEVERITIES = ("mild", "moderate", "severe")
AMD_GRADES = ("early", "intermediate", "late")
GLAUCOMA_GRADES = ("moderate", "advanced")
EVAL_SEED_BASE = 1_000_000_000   # seeds >= this are reserved for evaluation, never used in training
MIN_SIZE, MAX_SIZE = 224, 1024
FINDING_PROB = 0.19              # independent per finding -> P(normal) = 0.81**5 ~ 0.35

_GRADES = {"diabetic_retinopathy": DR_SEVERITIES, "amd": AMD_GRADES, "glaucoma": GLAUCOMA_GRADES,
           "rvo": ("present",), "pathologic_myopia": ("present",)}
_GRADE_P = {"diabetic_retinopathy": (0.40, 0.35, 0.25), "amd": (0.45, 0.40, 0.15),
            "glaucoma": (0.6, 0.4), "rvo": (1.0,), "pathologic_myopia": (1.0,)}
_STREAM = {"labels": 0, "anatomy": 1, "lesions": 2, "report": 3, "quality": 4}


@dataclass(frozen=True)
class SyntheticCase:
    seed: int
    image: np.ndarray            # H x W x 3 uint8 RGB
    masks: dict[str, np.ndarray]  # finding -> bool H x W (only for present findings; empty for normal)
    labels: dict[str, int]       # every finding in FINDINGS -> 0/1
    severity: dict[str, str]     # present finding -> grade word
    eye: str                     # "OD" or "OS"
    cdr: float                   # cup-to-disc ratio
    quality: dict                # blur, exposure, colour cast parameters
    report: str


def _rng(seed: int, stream: str, *extra: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, _STREAM.get(stream, 9), *extra]))


def _resolve(findings: Mapping[str, str | bool] | None, rng: np.random.Generator) -> dict[str, str]:
    """Sample findings from the default distribution, or validate forced ones (others absent)."""
    out: dict[str, str] = {}
    draws = rng.random(len(FINDINGS))
    grade_u = rng.random(len(FINDINGS))
    if findings is None:
        for i, f in enumerate(FINDINGS):
            if draws[i] < FINDING_PROB:
                idx = int(np.searchsorted(np.cumsum(_GRADE_P[f]), grade_u[i]))
                out[f] = _GRADES[f][min(idx, len(_GRADES[f]) - 1)]
        return out
    unknown = set(findings) - set(FINDINGS)
    if unknown:
        raise ValueError(f"unknown finding(s) {sorted(unknown)}; expected some of {FINDINGS}")
    for i, f in enumerate(FINDINGS):
        v = findings.get(f, False)
        if v is False or v is None or v == 0:
            continue
        if v is True or v == 1 or v == "present":
            idx = int(np.searchsorted(np.cumsum(_GRADE_P[f]), grade_u[i]))
            out[f] = _GRADES[f][min(idx, len(_GRADES[f]) - 1)]
        elif isinstance(v, str) and v in _GRADES[f]:
            out[f] = v
        else:
            raise ValueError(f"invalid grade {v!r} for {f}; expected True/False or one of {_GRADES[f]}")
    return out


def _sample_quality(rng: np.random.Generator) -> dict:
    cast = np.clip(1 + rng.normal(0, 0.045, 3), 0.9, 1.1)
    return {
        "blur_sigma": float(rng.uniform(0.0, 1.3) if rng.random() < 0.7 else 0.0),   # px at 512
        "exposure": float(rng.uniform(0.8, 1.18)),
        "gamma": float(rng.uniform(0.85, 1.15)),
        "colour_cast": [float(c) for c in cast],
        "vignetting": float(rng.uniform(0.1, 0.35) if rng.random() < 0.3 else 0.0),
        "haze": float(rng.uniform(0.08, 0.25) if rng.random() < 0.15 else 0.0),
        "noise_sigma": float(rng.uniform(0.004, 0.018)),
        "jpeg_quality": int(rng.integers(55, 93)) if rng.random() < 0.6 else None,
        "haze_centre": [float(v) for v in rng.uniform(-0.5, 0.5, 2)],
    }


def _apply_quality(img: np.ndarray, q: dict, size: int, rng: np.random.Generator) -> np.ndarray:
    g = _anat.grid(size)
    k = size / _anat.REF_SIZE
    if q["haze"] > 0:
        hx, hy = q["haze_centre"]
        d2 = (g.xs[None, :] - hx) ** 2 + (g.xs[:, None] - hy) ** 2
        h = (q["haze"] * np.exp(-d2 / 0.5)).astype(np.float32)
        img += h[..., None] * (np.array([0.85, 0.75, 0.65], np.float32) - img)
    if q["vignetting"] > 0:
        img *= (1.0 - q["vignetting"] * np.clip(g.r, 0, 1) ** 2)[..., None]
    img *= np.asarray(q["colour_cast"], np.float32) * q["exposure"]
    np.clip(img, 0.0, 1.0, out=img)
    if abs(q["gamma"] - 1) > 1e-3:
        cv2.pow(img, q["gamma"], dst=img)
    if q["blur_sigma"] * k >= 0.3:
        img = cv2.GaussianBlur(img, (0, 0), q["blur_sigma"] * k)
    img += _anat.noise_crop(size, rng) * np.float32(q["noise_sigma"])
    img *= g.fov_alpha[..., None]
    out = cv2.convertScaleAbs(np.maximum(img, 0.0, out=img), alpha=255.0)   # round + saturate
    if q["jpeg_quality"] is not None:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, q["jpeg_quality"]])
        out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return cv2.bitwise_and(out, out, mask=g.fov_u8)   # exactly black outside the field


def generate_case(seed: int, size: int = 512,
                  findings: Mapping[str, str | bool] | None = None) -> SyntheticCase:
    """Render one case. ``findings=None`` samples (~35% normal); a mapping forces exactly those."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be an integer in [{MIN_SIZE}, {MAX_SIZE}] px, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed, size = int(seed), int(size)
    lrng = _rng(seed, "labels")
    present = _resolve(findings, lrng)
    eye = "OD" if lrng.random() < 0.5 else "OS"
    an = _anat.sample_anatomy(_rng(seed, "anatomy"), present)
    les = _les.sample_lesions(_rng(seed, "lesions"), an, present)
    quality = _sample_quality(_rng(seed, "quality"))
    report = write_report(_rng(seed, "report"), present, an, les, eye, quality)

    pix = _rng(seed, "pixels", size)
    img, illum, masks = _anat.render_anatomy(an, size, pix)
    _les.render_lesions(img, illum, les, size, masks)
    out = _apply_quality(img, quality, size, pix)
    fov = _anat.grid(size).fov
    masks = {f: (masks[f] & fov) for f in FINDINGS if f in masks}
    if eye == "OS":                                   # mirror: disc on the image left for left eyes
        out = np.ascontiguousarray(out[:, ::-1])
        masks = {f: np.ascontiguousarray(m[:, ::-1]) for f, m in masks.items()}
    return SyntheticCase(
        seed=seed, image=out, masks=masks, labels={f: int(f in present) for f in FINDINGS},
        severity=dict(present), eye=eye, cdr=float(an.cdr), quality=quality, report=report)


def generate_cases(seeds: Iterable[int], size: int = 512,
                   findings: Mapping[str, str | bool] | None = None) -> Iterator[SyntheticCase]:
    """Lazily generate one case per seed (for on-the-fly training data)."""
    for s in seeds:
        yield generate_case(int(s), size, findings)


def case_id(case: SyntheticCase) -> str:
    return f"syn{case.seed:010d}"


def to_manifest_row(case: SyntheticCase, path: str) -> dict[str, str | int]:
    """Row for ``manifest.csv``: id, path, eye, labels, report, one 0/1 column per finding, dr_severity."""
    present = [f for f in FINDINGS if case.labels[f]]
    row: dict[str, str | int] = {
        "id": case_id(case), "path": str(path), "eye": case.eye,
        "labels": ";".join(present) if present else "normal", "report": case.report,
    }
    row.update({f: case.labels[f] for f in FINDINGS})
    row["dr_severity"] = case.severity.get("diabetic_retinopathy", "none")
    return row
