"""Server-side image adjustments (brightness, contrast, red-free, zoom/pan) for the demo's "Try the
study" page. The reading page uses the client-side viewer (components/case_viewer.js), whose
brightness and contrast follow :func:`adjust`'s formula, so both show the same transform.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class ViewSettings:
    brightness: float = 1.0  # multiplier, 1 = unchanged
    contrast: float = 1.0    # multiplier around mid-grey, 1 = unchanged
    red_free: bool = False   # green channel shown as grey (the classic red-free fundus view)
    zoom: float = 1.0        # 1 = whole image; 4 = a quarter of the width and height
    centre_x: float = 0.5    # crop centre, fraction of the width
    centre_y: float = 0.5    # crop centre, fraction of the height


def adjust(image: Image.Image, brightness: float = 1.0, contrast: float = 1.0, red_free: bool = False) -> Image.Image:
    """Brightness and contrast (``out = (in - 128) * contrast + 128`` then ``* brightness``), optional red-free."""
    if brightness <= 0 or contrast <= 0:
        raise ValueError(f"brightness and contrast must be > 0, got {brightness}, {contrast}")
    arr = np.asarray(image.convert("RGB"), dtype=np.float32)
    if red_free:
        arr = np.repeat(arr[..., 1:2], 3, axis=2)
    if contrast != 1.0:
        arr = (arr - 128.0) * contrast + 128.0
    if brightness != 1.0:
        arr = arr * brightness
    return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8))


def crop_box(size: tuple[int, int], zoom: float, centre_x: float, centre_y: float) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box of a ``zoom``x view centred as near (cx, cy) as the edges allow."""
    if zoom < 1:
        raise ValueError(f"zoom must be >= 1, got {zoom}")
    w, h = size
    cw, ch = max(1, round(w / zoom)), max(1, round(h / zoom))
    cx = min(max(float(centre_x), 0.0), 1.0) * w
    cy = min(max(float(centre_y), 0.0), 1.0) * h
    left = int(round(min(max(cx - cw / 2, 0), w - cw)))
    top = int(round(min(max(cy - ch / 2, 0), h - ch)))
    return left, top, left + cw, top + ch


def render_view(image: Image.Image, settings: ViewSettings = ViewSettings()) -> Image.Image:
    """The adjusted crop at full resolution (no resampling: the crop keeps the original pixels)."""
    box = crop_box(image.size, settings.zoom, settings.centre_x, settings.centre_y)
    return adjust(image.crop(box), settings.brightness, settings.contrast, settings.red_free)


def blend(base: Image.Image, overlay: Image.Image, opacity: float) -> Image.Image:
    """``overlay`` (e.g. a stored saliency overlay PNG) over ``base`` at ``opacity`` in [0, 1]."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    base = base.convert("RGB")
    overlay = overlay.convert("RGB")
    if overlay.size != base.size:
        overlay = overlay.resize(base.size, Image.BILINEAR)
    return Image.blend(base, overlay, opacity)
