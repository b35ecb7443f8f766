"""Saliency maps as a clinician can read them: bands of the retina's strongest attribution in colours no
fundus lesion has, plus the display-ready map the reading station draws, and the cache key.

Why bands and not a heat colour map: an inferno or jet map paints cream-yellow and red blobs that look like
exudates, drusen or haemorrhages. Here the map is cut at fixed quantiles of the attribution over the retina
(:data:`LEVELS`: the top 10%, 5% and 1% of its pixels) and each band is drawn in blue to cyan (:data:`BANDS`),
with a dark halo along each outline, so it reads on a bright disc and a dark periphery alike and never
as a lesion. The same bands are drawn two ways: filled (translucent, outlined) or outline only.

The display-ready map (:func:`display_map`, :func:`display_png`) is a small 8-bit grey PNG whose grey
values put the band edges at fixed levels (:data:`BAND_GREY`), so a browser can upsample it smoothly and
cut it at those values at any zoom (``components/case_viewer.js``); where the model did not see the whole
photograph (a centre crop leaves its sides out) the PNG has an alpha channel, 0 where the model saw nothing,
and the edge of what it saw is drawn dashed, so a band cut by that edge is not read as a finding's border.
:func:`render_overlay` draws the same bands into a photograph on the server (command line, case browser).
PNGs are written by OpenCV with fixed compression and no metadata chunks, so identical inputs give identical
bytes.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

LEVELS = (0.90, 0.95, 0.99)  # band edges: quantiles of the attribution over the retina (top 10%, 5%, 1%)
BAND_GREY = (64, 128, 192)  # where those edges lie in the display map's grey values
# weakest band first: (fill RGB, fill alpha, outline RGB); the halo is drawn outside every outline
BANDS = (((40, 90, 255), 0.30, (90, 130, 255)),
         ((0, 165, 255), 0.45, (40, 190, 255)),
         ((0, 245, 255), 0.60, (120, 255, 255)))
HALO = ((0, 12, 48), 0.85)
SEEN_EDGE = (235, 240, 255)  # the dashed edge of the part of the photograph the model saw
STYLES = ("filled", "outline")
DISPLAY_SIDE = 512  # longest side of the display map: the model reads 256 px, so 2x its detail
RETINA_MIN = 4  # a pixel with every channel at most this is the black surround, not retina (as saliency.explain)


def palette() -> dict:
    """The colours and levels as data, for the browser viewer (one definition for server and browser)."""
    return {"grey": list(BAND_GREY), "levels": list(LEVELS), "halo": {"rgb": list(HALO[0]), "alpha": HALO[1]},
            "seen_edge": list(SEEN_EDGE),
            "bands": [{"fill": list(f), "alpha": a, "line": list(line)} for f, a, line in BANDS]}


def cache_key(model_version: str, image_sha256: str, finding: str, method: str, params: dict | None = None) -> str:
    """A stable hex key; params are serialised with sorted keys so dict order does not matter.

    ``params`` should be the attribution parameters (``Saliency.params``, or ``saliency.method_params(...)``
    before computing) plus the rendering options when the key names a picture.
    """
    payload = json.dumps({"model": model_version, "image": image_sha256, "finding": finding, "method": method,
                          "params": params or {}}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def display_size(width: int, height: int, side: int = DISPLAY_SIDE) -> tuple[int, int]:
    """(w, h) of the display map of a ``width`` x ``height`` photograph: longest side ``side``, never larger."""
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def retina_mask(image, size: tuple[int, int] | None = None) -> np.ndarray:
    """True where the photograph shows retina (not the black surround), at ``size`` (w, h) if given."""
    import cv2

    rgb = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image, dtype=np.uint8)
    if size is not None and (rgb.shape[1], rgb.shape[0]) != tuple(size):
        rgb = cv2.resize(rgb, tuple(size), interpolation=cv2.INTER_AREA)
    return rgb.max(axis=2) > RETINA_MIN


def band_edges(saliency_map: np.ndarray, retina: np.ndarray | None = None) -> np.ndarray | None:
    """The attribution values at :data:`LEVELS` over the retina (increasing), or None when the map has no
    positive evidence there. An edge is never below 2% of the map's peak, so a map that is mostly zero does
    not paint zero-attribution retina: its bands are then smaller than their nominal share."""
    m = np.nan_to_num(np.asarray(saliency_map, dtype=np.float32))
    values = m[retina] if retina is not None and retina.any() else m.ravel()
    peak = float(values.max()) if values.size else 0.0
    if peak <= 0:
        return None
    edges = np.maximum(np.quantile(values, LEVELS), 0.02 * peak)
    for i in range(1, len(edges)):  # strictly increasing, and below the peak
        edges[i] = max(edges[i], edges[i - 1] + 1e-6 * peak)
    return np.minimum(edges, peak * (1 - 1e-6 * np.arange(len(edges), 0, -1)))


def display_map(saliency_map: np.ndarray, retina: np.ndarray | None = None) -> np.ndarray:
    """The map as 8-bit grey with the band edges at :data:`BAND_GREY` (piecewise linear, monotone), so that a
    smooth upsampling keeps the outlines where they were; 0 outside the retina and without evidence."""
    m = np.nan_to_num(np.asarray(saliency_map, dtype=np.float32))
    edges = band_edges(m, retina)
    if edges is None:
        return np.zeros(m.shape, np.uint8)
    xs = [0.0, *edges.tolist(), max(float(m.max()), float(edges[-1]) * (1 + 1e-6))]
    out = np.interp(m, xs, [0, *BAND_GREY, 255])
    if retina is not None:
        out[~retina] = 0
    return np.floor(out).astype(np.uint8)  # floor: a value below an edge never rounds up into its band


def _png(arr: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr), [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise ValueError("could not encode the map as PNG")
    return buf.tobytes()


def _png_grey_alpha(grey: np.ndarray, alpha: np.ndarray) -> bytes:
    """A grey + alpha PNG (OpenCV writes no two-channel PNG): PIL, fixed compression, no metadata chunks."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.dstack([grey, alpha]), mode="LA").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def display_png(image, saliency_map: np.ndarray, side: int = DISPLAY_SIDE,
                seen: np.ndarray | None = None) -> tuple[bytes, int, int]:
    """(PNG bytes, width, height) of the display-ready map of ``saliency_map`` (any size, [0, 1]) for
    ``image``: resized to the display size, cut at the quantiles of the retina the model saw
    (:func:`display_map`); ``seen`` (``Saliency.seen``, the map's size) adds the alpha channel of what the
    model saw when that is not the whole photograph."""
    import cv2

    rgb = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image, dtype=np.uint8)
    w, h = display_size(rgb.shape[1], rgb.shape[0], side)
    m = np.asarray(saliency_map, dtype=np.float32)
    if m.shape != (h, w):
        m = cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA if m.shape[1] > w else cv2.INTER_LINEAR)
    retina = retina_mask(rgb, (w, h))
    if seen is not None:
        seen = np.asarray(seen, dtype=np.uint8)
        seen = (cv2.resize(seen, (w, h), interpolation=cv2.INTER_NEAREST) if seen.shape != (h, w) else seen) > 0
    if seen is None or seen.all():
        return _png(display_map(m, retina)), w, h
    grey = display_map(m, retina & seen)
    return _png_grey_alpha(grey, np.where(seen, 255, 0).astype(np.uint8)), w, h


def bands_of(grey: np.ndarray) -> np.ndarray:
    """Band index per pixel of a display map (0 = none, 1 = top 10%, 2 = top 5%, 3 = top 1%)."""
    return np.searchsorted(np.asarray(BAND_GREY), grey, side="right").astype(np.uint8)


def render_overlay(image, saliency_map: np.ndarray, *, style: str = "filled", opacity: float = 1.0,
                   line: int | None = None) -> bytes:
    """PNG bytes of ``image`` with the bands of ``saliency_map`` ([0, 1], any size; or a display map, uint8)
    drawn as the reading station draws them: ``filled`` (translucent bands, outlined) or ``outline``.
    ``opacity`` scales every colour's alpha; ``line`` is the outline width in pixels (default: 1 per 600 px)."""
    import cv2

    from .saliency import check_choice

    check_choice(style, STYLES, "style")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    rgb = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image, dtype=np.uint8)
    h, w = rgb.shape[:2]
    m = np.asarray(saliency_map)
    seen = None
    if m.dtype == np.uint8 and m.ndim == 3:  # a display map with the alpha of what the model saw
        m, seen = m[..., 0], m[..., 1]
    grey = m if m.dtype == np.uint8 else display_map(m.astype(np.float32),
                                                     retina_mask(rgb, (m.shape[1], m.shape[0])))
    if grey.shape != (h, w):
        grey = cv2.resize(grey, (w, h), interpolation=cv2.INTER_LINEAR)
    if seen is not None:
        seen = cv2.resize(seen, (w, h), interpolation=cv2.INTER_NEAREST) > 127
    band = bands_of(grey)
    out = rgb.astype(np.float32)
    width = line or max(1, round(max(h, w) / 600))
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    if style == "filled":
        for k, (fill, alpha, _line) in enumerate(BANDS, start=1):
            a = alpha * opacity
            sel = band == k
            out[sel] = out[sel] * (1 - a) + np.asarray(fill, np.float32) * a
    for k, (_fill, _alpha, colour) in enumerate(BANDS, start=1):
        inside = (band >= k).astype(np.uint8)
        edge_in = (inside > 0) & (cv2.erode(inside, kernel) == 0)
        edge_out = (inside == 0) & (cv2.dilate(inside, kernel) > 0)
        a = HALO[1] * opacity
        out[edge_out] = out[edge_out] * (1 - a) + np.asarray(HALO[0], np.float32) * a
        out[edge_in] = out[edge_in] * (1 - opacity) + np.asarray(colour, np.float32) * opacity
    if seen is not None and not seen.all():  # the edge of what the model saw, dashed
        edge = seen & (cv2.erode(seen.astype(np.uint8), kernel) == 0)
        yy, xx = np.nonzero(edge)
        dash = ((xx + yy) // (4 * width)) % 2 == 0
        out[yy[dash], xx[dash]] = SEEN_EDGE
    return _png(np.round(out).clip(0, 255).astype(np.uint8)[..., ::-1])
