"""Server-side viewer transforms and the mini-study scoring."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from study.visitor import ministudy
from study.visitor.viewer import ViewSettings, adjust, blend, crop_box, render_view


def img():
    arr = np.zeros((40, 80, 3), dtype=np.uint8)
    arr[..., 0], arr[..., 1], arr[..., 2] = 200, 100, 50
    return Image.fromarray(arr)


def test_red_free_is_the_green_channel_in_grey():
    out = np.asarray(adjust(img(), red_free=True))
    assert (out == 100).all()


def test_brightness_and_contrast():
    assert np.asarray(adjust(img(), brightness=2.0))[0, 0].tolist() == [255, 200, 100]
    assert np.asarray(adjust(img(), contrast=2.0))[0, 0].tolist() == [255, 72, 0]
    with pytest.raises(ValueError):
        adjust(img(), brightness=0)


def test_zoom_crops_at_full_resolution_and_stays_inside():
    assert crop_box((80, 40), 1, 0.5, 0.5) == (0, 0, 80, 40)
    assert crop_box((80, 40), 4, 0.5, 0.5) == (30, 15, 50, 25)
    assert crop_box((80, 40), 4, 1.0, 0.0) == (60, 0, 80, 10)
    assert render_view(img(), ViewSettings(zoom=2)).size == (40, 20)


def test_blend_opacity():
    white = Image.new("RGB", (80, 40), "white")
    assert np.asarray(blend(img(), white, 0.0)).tolist() == np.asarray(img()).tolist()
    assert (np.asarray(blend(img(), white, 1.0)) == 255).all()


def test_mini_study_half_aided_and_scored_against_the_model():
    labels = [{"amd": 1, "rvo": 0}, {"amd": 0, "rvo": 0}] * 5
    probs = [{"amd": 0.9, "rvo": 0.1}] * 10
    m = ministudy.start(3, labels, probs)
    assert sorted(m.conditions) == ["ai"] * 5 + ["unaided"] * 5
    m.answers = ["amd" if i % 2 == 0 else "normal" for i in range(10)]
    res = {r["condition"]: r for r in ministudy.results(m)}
    assert res["with AI"]["your accuracy"] == 1.0 and res["without AI"]["your accuracy"] == 1.0
    assert sum(r["model accuracy"] * r["cases"] for r in res.values()) == 5
