"""Tests for revision_core.synthetic: determinism, geometry, lesion masks/scale, reports, dataset IO."""

from __future__ import annotations

import csv
import re

import cv2
import numpy as np
import pytest
from scipy import ndimage

from revision_core.synthetic import (
    DR_SEVERITIES,
    EVAL_SEED_BASE,
    FINDINGS,
    MANIFEST_COLUMNS,
    generate_case,
    generate_cases,
    to_manifest_row,
    write_dataset,
)
from revision_core.synthetic import generator as gen
from revision_core.synthetic.anatomy import FIELD_FRAC
from revision_core.cli import main as cli_main

# keywords that name a finding in a report; a clause with one of them is positive unless negated
KEYWORDS = {
    "diabetic_retinopathy": [r"diabetic", r"\bdr\b", r"\bnpdr\b", r"retinopathy", r"microaneurysm",
                             r"\bmas\b", r"exudate"],
    "amd": [r"drusen", r"\bamd\b", r"\barmd\b", r"macular degeneration", r"geographic atrophy"],
    "glaucoma": [r"glaucom", r"cupping", r"notch", r"rim thinning", r"thin .*rim"],
    "rvo": [r"vein occlusion", r"\bbrvo\b", r"\brvo\b", r"venous occlusion", r"branch vein"],
    "pathologic_myopia": [r"myopi", r"tessellat", r"tigroid", r"peripapillary atrophy", r"\bppa\b"],
}
NEGATION = re.compile(r"\b(no|not|without|nil|absent|negative|free of)\b")


def _clauses(report: str) -> list[str]:
    return [c.strip() for c in re.split(r"[.;:,\n()]| - ", report.lower()) if c.strip()]


def _mentions(report: str, finding: str) -> tuple[int, int]:
    """(# positive clauses, # negated clauses) that mention ``finding``."""
    pos = neg = 0
    for c in _clauses(report):
        if any(re.search(k, c) for k in KEYWORDS[finding]):
            if NEGATION.search(c):
                neg += 1
            else:
                pos += 1
    return pos, neg


def _fov(size: int, margin: float) -> np.ndarray:
    c = (size - 1) / 2
    yy, xx = np.mgrid[:size, :size]
    return np.hypot(yy - c, xx - c) <= FIELD_FRAC * size + margin


# ------------------------------------------------------------------------------ basic contract
def test_same_seed_identical_and_different_seeds_differ():
    a, b = generate_case(7, 224), generate_case(7, 224)
    assert a.image.tobytes() == b.image.tobytes()
    assert a.report == b.report and a.labels == b.labels and a.quality == b.quality
    assert a.masks.keys() == b.masks.keys()
    for f in a.masks:
        assert np.array_equal(a.masks[f], b.masks[f])
    c = generate_case(8, 224)
    assert np.abs(a.image.astype(int) - c.image.astype(int)).mean() > 3
    assert a.report != c.report


@pytest.mark.parametrize("size", [224, 300, 512])
def test_shapes_dtypes_and_black_outside_field(size):
    case = generate_case(11, size, {"diabetic_retinopathy": "moderate"})
    assert case.image.shape == (size, size, 3) and case.image.dtype == np.uint8
    assert set(case.labels) == set(FINDINGS) and all(v in (0, 1) for v in case.labels.values())
    assert case.eye in ("OD", "OS")
    outside = ~_fov(size, 1.0)
    assert case.image[outside].max() == 0
    inside = _fov(size, -0.1 * size)
    assert case.image[inside].mean() > 40           # a lit fundus, not a black frame
    red, green, blue = (case.image[inside][:, i].mean() for i in range(3))
    assert red > green > blue                        # orange-red fundus
    for m in case.masks.values():
        assert m.shape == (size, size) and m.dtype == bool


@pytest.mark.parametrize("bad", [223, 1025, 0, 256.0, "512", True])
def test_size_validation(bad):
    with pytest.raises(ValueError, match="size"):
        generate_case(1, bad)


def test_invalid_findings_rejected():
    with pytest.raises(ValueError):
        generate_case(1, 224, {"cataract": True})
    with pytest.raises(ValueError):
        generate_case(1, 224, {"diabetic_retinopathy": "proliferative"})
    with pytest.raises(ValueError):
        generate_case(-1, 224)


def test_sizes_share_anatomy_labels_and_report():
    small, big = generate_case(21, 224), generate_case(21, 448)
    assert small.report == big.report and small.labels == big.labels
    assert small.eye == big.eye and small.cdr == big.cdr and small.severity == big.severity
    down = cv2.resize(np.ascontiguousarray(big.image), (224, 224), interpolation=cv2.INTER_AREA)
    diff = np.abs(down.astype(int) - small.image.astype(int))[_fov(224, -3)].mean()
    other = np.abs(generate_case(22, 224).image.astype(int) - small.image.astype(int))[_fov(224, -3)].mean()
    assert diff < 9 and diff < 0.6 * other


def test_eye_orientation_disc_on_nasal_side():
    seen = set()
    for seed in range(12):
        case = generate_case(seed, 224, {})
        grey = cv2.GaussianBlur(case.image.astype(np.float32).mean(axis=2), (0, 0), 4)
        col = np.unravel_index(np.argmax(grey), grey.shape)[1]
        assert (col > 112) == (case.eye == "OD"), (seed, case.eye, col)
        seen.add(case.eye)
    assert seen == {"OD", "OS"}


def test_eval_seed_base_works():
    assert EVAL_SEED_BASE == 1_000_000_000
    case = generate_case(EVAL_SEED_BASE + 3, 224)
    assert case.seed == EVAL_SEED_BASE + 3


# -------------------------------------------------------------------------------- findings
def _contrast(img: np.ndarray, mask: np.ndarray, others: np.ndarray, size: int) -> tuple[float, float]:
    """(median |colour - ring median| inside the mask, same for the ring itself), summed over RGB.

    The ring is the band 2..size/60 px outside the mask: the retina right around the lesion.
    """
    halo = ndimage.binary_dilation(mask, iterations=2)          # skip the anti-aliased edge
    ring = ndimage.binary_dilation(mask, iterations=max(4, size // 60)) & ~halo & ~others & _fov(size, -4)
    bg = np.median(img[ring].astype(float), axis=0)             # medians: robust to vessels crossing the ring
    inside = np.median(np.abs(img[mask].astype(float) - bg).sum(axis=1))
    around = np.median(np.abs(img[ring].astype(float) - bg).sum(axis=1))
    return inside, around


def _ring(mask, size):
    halo = ndimage.binary_dilation(mask, iterations=2)
    return ndimage.binary_dilation(mask, iterations=max(4, size // 60)) & ~halo & _fov(size, -4)


FORCED = [
    {"diabetic_retinopathy": "mild"}, {"diabetic_retinopathy": "moderate"}, {"diabetic_retinopathy": "severe"},
    {"amd": "early"}, {"amd": "intermediate"}, {"amd": "late"}, {"glaucoma": True}, {"rvo": True},
    {"pathologic_myopia": True}, {"diabetic_retinopathy": "moderate", "glaucoma": True, "amd": True},
]


@pytest.mark.parametrize("forced", FORCED, ids=lambda f: "+".join(f"{k}:{v}" for k, v in f.items()))
def test_forced_findings_have_visible_masks(forced):
    size = 384
    for seed in (3, 4):
        case = generate_case(seed, size, forced)
        assert {f for f, v in case.labels.items() if v} == set(forced)
        assert set(case.masks) == set(forced) == set(case.severity)
        for f, grade in forced.items():
            if isinstance(grade, str):
                assert case.severity[f] == grade
        fov = _fov(size, 0.5)
        union = np.zeros((size, size), bool)
        for m in case.masks.values():
            union |= m
        for f, m in case.masks.items():
            assert m.sum() >= 4, f
            assert not (m & ~fov).any(), f
            assert m.mean() < 0.15, f                 # a lesion footprint, not the whole fundus
            inside, around = _contrast(case.image, m, union & ~m, size)
            # lesions differ from the retina around them, clearly more than that retina varies
            assert inside > 60 and inside > 1.1 * around, (f, seed, inside, around)
            median_shift = np.abs(np.median(case.image[m].astype(float), axis=0)
                                  - np.median(case.image[_ring(m, size)].astype(float), axis=0)).sum()
            assert median_shift > 30, (f, seed, median_shift)


def test_normal_case_has_no_masks_and_normal_cdr():
    for seed in range(8):
        case = generate_case(seed, 224, {})
        assert case.masks == {} and case.severity == {} and not any(case.labels.values())
        assert case.cdr < 0.6
        assert re.search(r"normal|unremarkable|no abnormality|healthy", case.report.lower())


def test_cdr_separates_glaucoma():
    glauc = [gen.generate_case(s, 224, {"glaucoma": True}).cdr for s in range(6)]
    assert min(glauc) >= 0.7
    from revision_core.synthetic.anatomy import sample_anatomy
    normal = [sample_anatomy(gen._rng(s, "anatomy"), {}).cdr for s in range(150)]
    assert max(normal) < 0.6 and min(normal) >= 0.1
    assert np.mean(np.array(normal) > 0.45) > 0.03       # some borderline normals


def test_microaneurysm_scale_at_512():
    areas, n_comp = [], []
    for seed in range(4):
        case = generate_case(seed, 512, {"diabetic_retinopathy": "mild"})
        lab, n = ndimage.label(case.masks["diabetic_retinopathy"])
        areas += list(np.bincount(lab.ravel())[1:])
        n_comp.append(n)
    assert 3 <= np.median(areas) <= 40, np.median(areas)
    assert min(n_comp) >= 3
    sev = generate_case(0, 512, {"diabetic_retinopathy": "severe"})
    lab, n = ndimage.label(sev.masks["diabetic_retinopathy"])
    assert n > 2 * max(n_comp)
    # severe: lesions in all four quadrants around the image centre
    ys, xs = np.nonzero(sev.masks["diabetic_retinopathy"])
    quads = {(y < 256, x < 256) for y, x in zip(ys, xs)}
    assert len(quads) == 4


# ------------------------------------------------------------------------------------ reports
def test_reports_mention_present_and_negate_absent():
    negated = total_absent = 0
    for seed in range(60):
        case = generate_case(seed, 224)
        for f in FINDINGS:
            pos, neg = _mentions(case.report, f)
            if case.labels[f]:
                assert pos >= 1, (seed, f, case.report)
            else:
                assert pos == 0, (seed, f, case.report)
                total_absent += 1
                negated += neg > 0
        eye_words = {"OD": r"\b(od|right|re|r eye)\b", "OS": r"\b(os|left|le|l eye)\b"}
        assert re.search(eye_words[case.eye], case.report.lower())
        if "diabetic_retinopathy" in case.severity:
            assert case.severity["diabetic_retinopathy"] in case.report.lower()
    assert negated / total_absent > 0.6                  # most absent findings are explicitly negated


def test_report_wording_varies():
    normals = [generate_case(s, 224, {}).report for s in range(20)]
    assert len(set(normals)) == 20
    firsts = {r.split(".")[0] for r in normals}
    assert len(firsts) >= 5
    text = " ".join(generate_case(s, 224, {"diabetic_retinopathy": "moderate", "rvo": True}).report
                    for s in range(25)).lower()
    for a, b in [("haemorrhage", "hemorrhage"), ("brvo", "branch retinal vein occlusion"),
                 ("npdr", "diabetic retinopathy")]:
        assert a in text and b in text, (a, b)


def test_default_distribution():
    res = [gen._resolve(None, gen._rng(s, "labels")) for s in range(3000)]
    normal = np.mean([not r for r in res])
    assert 0.30 < normal < 0.40
    for f in FINDINGS:
        assert 0.16 < np.mean([f in r for r in res]) < 0.22, f
    dr = [r["diabetic_retinopathy"] for r in res if "diabetic_retinopathy" in r]
    frac = [dr.count(s) / len(dr) for s in DR_SEVERITIES]
    assert abs(frac[0] - 0.40) < 0.07 and abs(frac[1] - 0.35) < 0.07 and abs(frac[2] - 0.25) < 0.07


# ------------------------------------------------------------------------------------ dataset
def test_write_dataset_and_cli(tmp_path):
    manifest = write_dataset(5, 40, tmp_path / "ds", size=224)
    with open(manifest, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == MANIFEST_COLUMNS
        rows = list(reader)
    assert len(rows) == 5 and len({r["id"] for r in rows}) == 5
    for i, row in enumerate(rows):
        case = generate_case(40 + i, 224)
        assert row == {k: str(v) for k, v in to_manifest_row(case, row["path"]).items()}
        img = cv2.cvtColor(cv2.imread(str(manifest.parent / row["path"])), cv2.COLOR_BGR2RGB)
        assert np.array_equal(img, case.image)
        present = [f for f in FINDINGS if row[f] == "1"]
        assert row["labels"] == (";".join(present) or "normal")
        assert (row["dr_severity"] == "none") == (row["diabetic_retinopathy"] == "0")
        for f in present:
            m = cv2.imread(str(manifest.parent / "masks" / f"{row['id']}_{f}.png"), cv2.IMREAD_GRAYSCALE)
            assert np.array_equal(m > 0, case.masks[f])
    assert cli_main(["synth", "--n", "2", "--seed", "5", "--out", str(tmp_path / "cli"), "--size", "224"]) == 0
    assert len(list((tmp_path / "cli" / "images").glob("*.png"))) == 2


def test_generate_cases_iterates():
    cases = list(generate_cases([1, 2], 224))
    assert [c.seed for c in cases] == [1, 2]
    assert cases[0].image.tobytes() == generate_case(1, 224).image.tobytes()
