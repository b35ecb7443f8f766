"""The case viewer as a Streamlit custom component (components v2): the JavaScript and CSS beside this
file are the whole viewer, served by the app itself (no CDN; it works offline).

Why client-side: zoom, pan, brightness, contrast, gamma, red-free and the overlay opacity change only
the browser's canvas, so no view change costs a server round trip. The photograph arrives by signed
URL (``study.domain.image_links``): cached by the browser, the next case prefetched, full resolution fetched
only when the zoom needs it. Saliency maps are given only for a saliency-arm item (by signed URL as well,
preloaded for the next saliency-arm item); an unaided item is drawn with no AI data at all.
"""
from __future__ import annotations

import base64
from pathlib import Path

import streamlit as st

from revision_core.saliency_render import palette

_HERE = Path(__file__).resolve().parent
_COMPONENT = st.components.v2.component(
    "revision_case_viewer",
    html="",
    css=(_HERE / "case_viewer.css").read_text("utf-8"),
    js=(_HERE / "case_viewer.js").read_text("utf-8"),
)


def image_data_url(image, quality: int = 92) -> str:
    """An in-memory photograph (PIL) as a JPEG data URL, for a viewer with no study store behind it (the
    visitors' pages; their photographs are small synthetic ones or reduced uploads)."""
    from revision_core.imageio import jpeg_bytes

    return "data:image/jpeg;base64," + base64.b64encode(jpeg_bytes(image, quality)).decode()


def png_data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def case_viewer(*, key: str, screen_url: str, full_url: str, width: int, height: int,
                prefetch: list[str] = (), maps: list[dict] = (), map_method: str | None = None,
                show_map: int | None = None, overlay_png: bytes | None = None,
                overlay_label: str | None = None) -> None:
    """Draw one case's photograph; a new ``key`` (one per case) starts a fresh view.

    ``maps`` (saliency arm only): the case's saliency maps, most probable finding first, each
    ``{"finding", "name", "probability", "url"}`` (``study.domain.reader_screen.MapLink`` plus the finding's
    name; the browser gets the probability as a whole percentage, as the AI panel shows it), drawn in the bands of ``revision_core.saliency_render``; ``map_method`` names the method in words;
    ``show_map``: the index of a map to show at once (the playground, right after it is computed).
    ``overlay_png``/``overlay_label``: a picture stored before maps had bands (older studies), drawn as it is.
    """
    data = {"id": key, "screen_url": screen_url, "full_url": full_url, "width": int(width), "height": int(height),
            "prefetch": list(prefetch)}
    if maps:
        data.update(maps=[{"finding": m["finding"], "name": m["name"], "percent": round(100 * m["probability"]),
                           "url": m["url"]} for m in maps],
                    method=map_method, palette=palette(), show_map=show_map)
    elif overlay_png is not None:
        data["overlay"] = png_data_url(overlay_png)
        data["overlay_label"] = overlay_label or "the top finding"
    _COMPONENT(key=key, data=data, width="stretch", height="content")
