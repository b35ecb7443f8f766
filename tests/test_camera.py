"""Camera randomisation (training-time domain randomisation) and the tower's camera-invariant input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

from revision_core.synthetic import generate_case
from revision_core.synthetic.anatomy import grid
from revision_core.synthetic.camera import photograph, photograph_batch
from revision_core.towers import CameraInvariantInput, fundus_cnn_small_ci, input_transform, prepared_input


def _pixels(img: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255
    return (x - torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)) / torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def case():
    return generate_case(11, 256, {"diabetic_retinopathy": "moderate"})


def test_photograph_is_reproducible_and_varies_between_draws(case):
    a = photograph(case.image, np.random.default_rng(5))
    b = photograph(case.image, np.random.default_rng(5))
    c = photograph(case.image, np.random.default_rng(6))
    assert a.shape == case.image.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 5


def test_cameras_cover_a_wide_range_of_exposure_and_field_of_view(case):
    rng = np.random.default_rng(0)
    shots = photograph_batch(np.stack([case.image] * 40), rng)
    lit = [s[s.max(axis=2) > 10] for s in shots]
    red = np.array([px[:, 0].mean() for px in lit])
    field = np.array([len(px) / (256 * 256) for px in lit])
    source_red = case.image[grid(256).fov][:, 0].mean()
    # brighter than the renderer (real photographs such as IDRiD's are about twice as bright) and darker too
    assert red.max() > 1.6 * source_red and red.min() < 0.95 * source_red
    # sometimes the field of view fills and overflows the frame, as in many real cameras
    assert field.max() > 0.85 and field.min() < 0.7
    # still a fundus: red above green above blue on average
    means = np.mean([px.mean(axis=0) for px in lit], axis=0)
    assert means[0] > means[1] > means[2]


def test_corners_stay_black_outside_the_field(case):
    shot = photograph(case.image, np.random.default_rng(3))
    corner = shot.max(axis=2)[:8, :8]   # no part of the eye lands there, even at the largest zoom
    assert (corner <= 3).all() or corner.mean() < 3


def test_invariant_input_ignores_camera_gains_and_smooth_illumination(case):
    ci = CameraInvariantInput()
    img = case.image.astype(np.float32) / 255 * 0.6          # headroom, so no channel clips
    base = ci(_pixels(img * 255))
    gains = np.array([1.5, 1.2, 0.8], np.float32)
    yy, xx = np.mgrid[:256, :256] / 255.0
    light = (0.75 + 0.5 * xx)[..., None].astype(np.float32)   # a smooth left-to-right fall-off
    gained = ci(_pixels(np.clip(img * gains * 255, 0, 255)))
    lit = ci(_pixels(np.clip(img * light * 255, 0, 255)))
    scale = base.abs().mean()
    field = torch.from_numpy(grid(256).fov.copy())
    gain_change = (gained - base).abs()[0, :3][:, field].mean() / scale       # global branch: gains cancel
    assert gain_change < 0.08
    assert ((lit - base).abs()[0, 3:][:, field].mean() / scale) < 0.1          # local branch: illumination cancels
    # the same change moves a plain normalised input several times more
    plain, plain_gained = _pixels(img * 255)[0][:, field], _pixels(np.clip(img * gains * 255, 0, 255))[0][:, field]
    assert gain_change < 0.4 * (plain_gained - plain).abs().mean() / plain.abs().mean()
    assert base[0, :, ~field].abs().max() == 0                                 # nothing outside the field


def test_prepared_input_gives_the_same_embedding(case):
    tower = fundus_cnn_small_ci(num_classes=0).eval()
    x = _pixels(case.image.astype(np.float32))
    with torch.no_grad():
        direct = tower(x)
        with prepared_input(tower):
            prepared = tower(input_transform(tower)(x))
    assert torch.allclose(direct, prepared)
    assert not tower.input_prepared
