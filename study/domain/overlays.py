"""The saliency maps of a case's AI output as the reading station uses them: which ones a reading shows, in
which order, and their files in the study store.

Why files: a map is AI output, so it travels only to a saliency-arm reading, but it should load like the
photograph (cached by the browser, preloaded for the next saliency reading), not as bytes inside the page.
So each map (``ai_overlay.png``, the source of truth) is also written to the study store under the SHA-256
of its bytes (``<sha256>.map.png``) and fetched by a signed link (``study.domain.image_links``) that only a
saliency-arm reading is ever given (``study.domain.workflow``: an unaided ``Item`` has no AI field at all).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from study.domain.cases import store_file
from study.storage.models import AIOutput, AIOverlay

SUFFIX = ".map.png"


@dataclass(frozen=True)
class OverlayMap:
    """One map a saliency-arm reading can show: where the model looked for ``finding``."""

    finding: str
    probability: float  # the finding's probability in the same AI output (what the AI panel shows)
    sha256: str
    width: int
    height: int
    method: str
    png: bytes = field(repr=False)

    @property
    def file_name(self) -> str:
        return self.sha256 + SUFFIX


def sha256(png: bytes) -> str:
    return hashlib.sha256(png).hexdigest()


def maps_of(output: AIOutput) -> tuple[OverlayMap, ...]:
    """The output's maps, most probable finding first."""
    probs = output.probabilities or {}
    rows: list[AIOverlay] = sorted(output.overlays, key=lambda o: o.rank)
    return tuple(OverlayMap(o.finding, float(probs.get(o.finding, float("nan"))), o.sha256, o.width, o.height,
                            o.method, o.png) for o in rows)


def ensure_file(store: Path, overlay: OverlayMap) -> Path:
    """The map's file in the study store, written (atomically, once) when it is not there yet."""
    return store_file(store, overlay.file_name, overlay.png)


def pictures(output: AIOutput, photo: Path | None, side: int = 512) -> list[tuple[str, float, bytes]]:
    """(finding, probability, PNG) of each map drawn over the photograph as a reader sees it (the bands, filled),
    at ``side`` pixels: for the investigator's case browser. No photograph, no pictures."""
    from PIL import Image

    from revision_core.saliency_render import render_overlay

    maps = maps_of(output)
    if photo is None or not maps:
        return []
    with Image.open(photo) as im:
        im.draft("RGB", (side, side))
        small = im.convert("RGB")
    small.thumbnail((side, side))
    return [(m.finding, m.probability,
             render_overlay(small, _decoded(m.png))) for m in maps]


def _decoded(png: bytes):
    """A display map as an array: grey, or grey + the alpha of what the model saw."""
    import cv2
    import numpy as np

    arr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    return arr if arr.ndim == 2 else arr[..., [0, -1]]
