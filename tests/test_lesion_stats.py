"""Lesion statistics (revision_core.lesion_stats): what they measure of a lesion drawn with known contrast, size
and blur, and of real ones. Real photographs (../shared/real/idrid-lesions, IDRiD) are only read; the test that
needs them skips where they are absent."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from revision_core import lesion_stats as ls

REAL = Path(__file__).resolve().parents[2] / "shared" / "real" / "idrid-lesions"


def _flat_photo(contrast, radius_px, size=400):
    """A flat orange field with one round lesion of a known log contrast, a disc and a fovea."""
    rng = np.random.default_rng(0)
    base = np.array([0.7, 0.35, 0.12])
    img = np.ones((size, size, 3)) * base * np.exp(rng.normal(0, 0.01, (size, size, 1)))
    yy, xx = np.mgrid[:size, :size]
    lesion = np.hypot(xx - 150, yy - 220) <= radius_px
    img[lesion] *= np.exp(np.asarray(contrast))
    image = np.clip(img * 255, 0, 255).astype(np.uint8)
    fov = np.hypot(xx - 200, yy - 200) < 190
    image[~fov] = 0
    return ls.Photo("flat", image, {"haem": lesion}, None, (300.0, 200.0), 70.0, (120.0, 210.0), (200.0, 200.0, 190.0))


def test_a_drawn_lesion_is_measured_back():
    contrast = (-0.08, -0.25, -0.15)
    rows = ls.measure_photo(_flat_photo(contrast, 6), dd_unit_px=70.0)
    assert len(rows) == 1 and rows[0]["kind"] == "haem"
    assert np.allclose(rows[0]["core"], contrast, atol=0.02), rows[0]["core"]
    assert abs(rows[0]["diameter"] * 70.0 - 12.5) < 1.5             # px: the mask's equivalent diameter
    assert abs(rows[0]["fovea_dist"] * 70.0 - np.hypot(30, 10)) < 1.0
    assert rows[0]["elongation"] < 1.2


def test_edge_fit_recovers_a_known_blur():
    from scipy.special import erfc

    d = ls.EDGE_BINS.astype(float)
    for sigma in (0.7, 1.5, 3.0):
        off, s = ls.edge_fit(0.5 * erfc((d - 0.3) / (np.sqrt(2) * sigma)))
        assert abs(s - sigma) < 0.05 and abs(off - 0.3) < 0.05


@pytest.mark.skipif(not REAL.is_dir(), reason=f"real lesion photographs not found at {REAL} (../shared is absent)")
def test_real_lesions_are_measured_with_the_expected_signs(tmp_path):
    for stem in ("IDRiD_13", "IDRiD_20"):
        for f in REAL.glob(f"{stem}*"):
            shutil.copy(f, tmp_path / f.name)                # a two-photograph folder, outside the repository
    photos = ls.load_idrid_lesion_set(tmp_path)
    assert len(photos) == 2
    for p in photos:
        assert 380 < p.fov[2] < 440 and 90 < p.disc_diameter < 180           # IDRiD at 1024 x 680
        assert 1.8 < np.hypot(p.fovea[0] - p.disc[0], p.fovea[1] - p.disc[1]) / p.disc_diameter < 3.3
    rows, _ = ls.measure_set(photos)
    by_kind = {k: np.median([r["core"][1] for r in rows if r["kind"] == k]) for k in ("ma", "haem", "exudate")}
    assert by_kind["ma"] < -0.03 and by_kind["haem"] < -0.03 and by_kind["exudate"] > 0.03, by_kind
    # the command writes a table the renderer can read, crediting IDRiD
    from revision_core.cli import main as cli_main

    out = tmp_path / "fit.json"
    assert cli_main(["fit-lesions", "--real", str(tmp_path), "--out", str(out)]) == 0
    table = json.loads(out.read_text())
    assert "IDRiD" in table["credit"] and table["geometry"]["n_photos"] == 2
    assert table["exudate"]["contrast_mean"][1] > 0 > table["haem"]["contrast_mean"][1]
    assert cv2.imread(str(tmp_path / "IDRiD_13.jpg")) is not None
