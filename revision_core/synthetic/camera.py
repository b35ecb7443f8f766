"""Camera randomisation: one synthetic fundus, photographed by many different cameras.

Why: a model trained on one rendering of the eye learns that rendering. Real photographs differ by
camera and by visit far more than our renderer varies on its own: exposure (IDRiD's Kowa photographs are
about twice as bright as our renderer's, with a saturated red channel), colour response, uneven
illumination and vignetting, haze from media opacity, soft optics, sensor noise, JPEG, and the field of
view's size and place in the frame (often wider than the frame, clipped top and bottom). Training on
images passed through :func:`photograph` (domain randomisation) teaches the model what stays constant:
the retina. Used only at training time; the generator's own output (and its lesion masks) is unchanged.
Everything is drawn from the given ``rng``, so a run is reproducible.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .anatomy import FIELD_FRAC, grid, noise_crop


@dataclass(frozen=True)
class CameraRanges:
    """The ranges drawn from; the defaults are the demo model's training recipe."""

    zoom: tuple[float, float] = (0.92, 1.4)          # field radius / the generator's (1.4: circle clipped)
    shift: float = 0.05                              # offset of the field centre, fraction of the side
    rotate_deg: float = 12.0
    exposure: tuple[float, float] = (0.75, 2.6)      # log-uniform overall gain
    channel_gain: tuple[tuple[float, float], ...] = ((0.85, 1.25), (0.7, 1.3), (0.5, 1.4))
    gamma: tuple[float, float] = (0.6, 1.5)
    illumination: float = 0.35                       # amplitude of a smooth random multiplicative field
    vignetting: tuple[float, float] = (0.0, 0.55)
    haze: tuple[float, float, float] = (0.0, 0.18, 0.35)   # (min, max, probability)
    soft: tuple[float, float, float] = (0.35, 0.85, 0.5)   # down-up resampling factor range, probability
    blur_sigma: tuple[float, float] = (0.0, 1.2)     # px at the output size
    noise_sigma: tuple[float, float] = (0.0, 0.02)
    jpeg: tuple[int, int, float] = (40, 95, 0.7)     # quality range, probability


DEFAULT_RANGES = CameraRanges()


@lru_cache(maxsize=4)
def _axes(size: int) -> np.ndarray:
    a = np.arange(size, dtype=np.float32)
    a.setflags(write=False)
    return a


def _field(size: int, cx: float, cy: float, radius: float) -> np.ndarray:
    """Distance from (cx, cy) in units of ``radius`` for every pixel."""
    a = _axes(size)
    return cv2.magnitude(np.broadcast_to((a - cx)[None, :], (size, size)).copy(),
                         np.broadcast_to((a - cy)[:, None], (size, size)).copy()) / np.float32(radius)


def photograph(image: np.ndarray, rng: np.random.Generator, ranges: CameraRanges = DEFAULT_RANGES) -> np.ndarray:
    """Return the uint8 RGB square ``image`` as another camera might have taken it (same size)."""
    size = image.shape[0]
    r = ranges
    # geometry: zoom, shift and rotate the field of view; black where nothing was photographed
    zoom = rng.uniform(*r.zoom)
    centre = (size - 1) / 2.0
    dx, dy = rng.uniform(-r.shift, r.shift, 2) * size
    m = cv2.getRotationMatrix2D((centre, centre), rng.uniform(-r.rotate_deg, r.rotate_deg), zoom)
    m[:, 2] += (dx, dy)
    img = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    inside = cv2.warpAffine(grid(size).fov_u8, m, (size, size), flags=cv2.INTER_NEAREST) > 0
    radius = FIELD_FRAC * size * zoom
    rho = _field(size, centre + dx, centre + dy, radius)
    # optics: soft lenses and low-resolution sensors, then defocus
    lo, hi, p = r.soft
    if rng.random() < p:
        small = max(16, int(size * rng.uniform(lo, hi)))
        img = cv2.resize(cv2.resize(img, (small, small), interpolation=cv2.INTER_AREA), (size, size),
                         interpolation=cv2.INTER_CUBIC)
    x = img.astype(np.float32) * (1.0 / 255.0)
    sigma = rng.uniform(*r.blur_sigma)
    if sigma >= 0.3:
        x = cv2.GaussianBlur(x, (0, 0), sigma)
    # light: uneven illumination, vignetting, haze; exposure and the sensor's colour response
    low = cv2.resize(rng.standard_normal((4, 4)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    light = np.exp(r.illumination * rng.uniform(0.0, 1.0) * low)
    light *= 1.0 - rng.uniform(*r.vignetting) * np.clip(rho, 0.0, 1.0) ** 2
    x *= light[..., None]
    hmin, hmax, hp = r.haze
    if rng.random() < hp:
        hx, hy = rng.uniform(-0.4, 0.4, 2)
        hz = rng.uniform(hmin, hmax) * np.exp(-((_field(size, centre + hx * radius, centre + hy * radius, radius)) ** 2))
        x += hz[..., None] * (np.array([0.9, 0.8, 0.65], np.float32) - x)
    gains = np.exp(rng.uniform(*np.log(r.exposure))) * np.array([rng.uniform(*g) for g in r.channel_gain],
                                                                  np.float32)
    x *= gains.astype(np.float32)
    np.clip(x, 0.0, 1.0, out=x)
    cv2.pow(x, rng.uniform(*r.gamma), dst=x)
    x += noise_crop(size, rng) * np.float32(rng.uniform(*r.noise_sigma))
    out = cv2.convertScaleAbs(np.clip(x, 0.0, 1.0), alpha=255.0)
    out[~inside] = 0
    qlo, qhi, qp = r.jpeg
    if rng.random() < qp:
        _, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(qlo, qhi + 1))])
        out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        out[~inside] = np.minimum(out[~inside], 3)   # JPEG ringing stays near black outside the field
    return out


def photograph_batch(images: np.ndarray, rng: np.random.Generator, ranges: CameraRanges = DEFAULT_RANGES) -> np.ndarray:
    """:func:`photograph` for every image of an N x S x S x 3 uint8 batch."""
    return np.stack([photograph(img, rng, ranges) for img in images])
