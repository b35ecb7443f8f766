"""Saliency overlays as PNG bytes that are identical for identical inputs, plus their cache key.

The study precomputes overlays and serves them from a cache, so the same (model version, image,
finding, method, parameters) must give the same bytes: the PNG is written by OpenCV with fixed
compression and no metadata chunks (no timestamps, no software tag), and the key hashes exactly the
inputs that change the picture.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

COLORMAPS = ("inferno", "jet", "viridis", "magma", "turbo", "hot")


def cache_key(model_version: str, image_sha256: str, finding: str, method: str, params: dict | None = None) -> str:
    """A stable hex key; params are serialised with sorted keys so dict order does not matter.

    ``params`` should be the attribution parameters (``Saliency.params``, or ``saliency.method_params(...)``
    before computing) plus the rendering options (colormap, opacity, contour) when the key names a PNG.
    """
    payload = json.dumps({"model": model_version, "image": image_sha256, "finding": finding, "method": method,
                          "params": params or {}}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def render_overlay(image, saliency_map: np.ndarray, *, colormap: str = "inferno", opacity: float = 0.45,
                   contour: bool = False, contour_level: float = 0.5) -> bytes:
    """PNG bytes of the image with the colour-mapped map blended in where it is salient.

    The colour's weight is ``opacity * map``, so regions without evidence keep the original pixels; with
    ``contour`` a white line marks map == ``contour_level`` (readable on any colour map).
    """
    import cv2

    from .saliency import check_choice

    check_choice(colormap, COLORMAPS, "colormap")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    rgb = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image, dtype=np.uint8)
    h, w = rgb.shape[:2]
    m = np.asarray(saliency_map, dtype=np.float32)
    if m.shape != (h, w):
        m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
    m = np.clip(np.nan_to_num(m), 0, 1)
    cmap = getattr(cv2, f"COLORMAP_{colormap.upper()}")
    colour = cv2.applyColorMap(np.round(m * 255).astype(np.uint8), cmap)[..., ::-1].astype(np.float32)
    alpha = (opacity * m)[..., None]
    out = np.round(rgb.astype(np.float32) * (1 - alpha) + colour * alpha).clip(0, 255).astype(np.uint8)
    if contour:
        mask = (m >= contour_level).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        out = np.ascontiguousarray(out)
        cv2.drawContours(out, contours, -1, (255, 255, 255), max(1, round(min(h, w) / 256)))
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(out[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise ValueError("could not encode the overlay as PNG")
    return buf.tobytes()
