"""The case viewer as a Streamlit custom component (components v2): the JavaScript and CSS beside this
file are the whole viewer, served by the app itself (no CDN; it works offline).

Why client-side: zoom, pan, brightness, contrast, gamma, red-free and the overlay opacity change only
the browser's canvas, so no view change costs a server round trip. The photograph arrives by signed
URL (``study.domain.image_links``): cached by the browser, the next case prefetched, full resolution fetched
only when the zoom needs it. The saliency overlay is given only for a saliency-arm item; an unaided
item is drawn with no AI data at all.
"""
from __future__ import annotations

import base64
from pathlib import Path

import streamlit as st

_HERE = Path(__file__).resolve().parent
_COMPONENT = st.components.v2.component(
    "revision_case_viewer",
    html="",
    css=(_HERE / "case_viewer.css").read_text("utf-8"),
    js=(_HERE / "case_viewer.js").read_text("utf-8"),
)


def case_viewer(*, key: str, screen_url: str, full_url: str, width: int, height: int,
                prefetch: list[str] = (), overlay_png: bytes | None = None, overlay_label: str | None = None) -> None:
    """Draw one case's photograph; a new ``key`` (one per case) starts a fresh view."""
    data = {"id": key, "screen_url": screen_url, "full_url": full_url, "width": int(width), "height": int(height),
            "prefetch": list(prefetch)}
    if overlay_png is not None:
        data["overlay"] = "data:image/png;base64," + base64.b64encode(overlay_png).decode()
        data["overlay_label"] = overlay_label or "AI overlay"
    _COMPONENT(key=key, data=data, width="stretch", height="content")
