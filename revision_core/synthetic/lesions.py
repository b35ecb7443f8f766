"""Disease findings: sampled as small primitives in field units, rendered with a pixel mask each.

Why primitives: a lesion is an anti-aliased ellipse (or a few) with a colour model, so it is drawn
at the right physical scale at any image size (sizes are given in pixels of a 512 px image and
scaled), and the same pixels that change colour form the finding's mask for saliency checks.
Glaucoma (cup) and myopia (tessellation, peripapillary atrophy) live in ``anatomy``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .anatomy import FIELD_FRAC, REF_SIZE, SHIFT, Anatomy, Vessel, fixed, grid, lerp, multiply

PX = 1.0 / (FIELD_FRAC * REF_SIZE)     # one pixel of a 512 px image, in field units

# kind -> (colour model, colour/factor, blur sigma in 512-px pixels)
KINDS: dict[str, tuple[str, tuple[float, float, float], float]] = {
    "ma": ("mul", (0.42, 0.14, 0.18), 0.35),
    "haem": ("mul", (0.48, 0.17, 0.21), 0.6),
    "flame": ("mul", (0.52, 0.18, 0.2), 0.9),
    "exudate": ("lerp", (1.0, 0.93, 0.58), 0.35),
    "cws": ("lerp", (0.95, 0.92, 0.86), 2.6),
    "drusen": ("lerp", (0.99, 0.86, 0.47), 0.9),
    "hyperpig": ("mul", (0.32, 0.25, 0.24), 0.6),
    "hypopig": ("lerp", (0.96, 0.74, 0.52), 1.6),
    "ga": ("lerp", (0.97, 0.86, 0.70), 0.6),
}
ORDER = ("ga", "drusen", "hypopig", "hyperpig", "haem", "flame", "ma", "exudate", "cws")


@dataclass
class Lesions:
    """Primitives per (finding, kind): rows of (x, y, semi-axis a, semi-axis b, angle deg, alpha)."""

    prims: dict[tuple[str, str], list[tuple[float, float, float, float, float, float]]] = field(
        default_factory=dict)
    info: dict[str, dict] = field(default_factory=dict)   # facts the report can describe

    def add(self, finding, kind, x, y, a, b=None, angle=0.0, alpha=1.0):
        self.prims.setdefault((finding, kind), []).append(
            (float(x), float(y), float(a), float(a if b is None else b), float(angle), float(alpha)))

    def add_flame(self, rng, finding, x, y, a, b, angle, alpha):
        """Flame haemorrhage: a core streak plus thinner splinters fanning along the nerve fibres."""
        self.add(finding, "flame", x, y, a, b, angle, alpha)
        t = np.radians(angle)
        d = np.array([np.cos(t), np.sin(t)])
        n = np.array([-d[1], d[0]])
        for _ in range(int(rng.integers(1, 4))):
            off = d * rng.uniform(-0.4, 0.5) * a + n * rng.normal(0, 0.7) * b
            self.add(finding, "flame", x + off[0], y + off[1], a * rng.uniform(0.5, 0.9), b * rng.uniform(0.35, 0.6),
                     angle + rng.normal(0, 7), alpha * rng.uniform(0.7, 1.0))


# --------------------------------------------------------------------------------------------
# placement helpers (all in field units, canonical right-eye orientation)
# --------------------------------------------------------------------------------------------
def _ok(an: Anatomy, p: np.ndarray, rmax=0.9, disc_margin=1.25) -> np.ndarray:
    rel = (p - an.disc) / np.array([an.disc_rx, an.disc_ry])
    return (np.hypot(p[:, 0], p[:, 1]) < rmax) & (np.hypot(rel[:, 0], rel[:, 1]) > disc_margin)


def _points(rng, an: Anatomy, n: int, centre, sd, rmax=0.9, quadrant=None, centre_q=None):
    """n points ~ N(centre, sd) inside the field and off the disc (optionally in one quadrant)."""
    out = np.zeros((0, 2))
    for _ in range(40):
        if len(out) >= n:
            break
        p = np.asarray(centre) + rng.normal(0, sd, (4 * n + 8, 2))
        keep = _ok(an, p, rmax)
        if quadrant is not None:
            sy, sx = quadrant
            keep &= (np.sign(p[:, 1] - centre_q[1]) == sy) & (np.sign(p[:, 0] - centre_q[0]) == sx)
        out = np.vstack([out, p[keep]])
    return out[:n]


def where_words(an: Anatomy, p) -> str:
    """Anatomical location of a point relative to the fovea (canonical OD: temporal = left)."""
    d = np.asarray(p) - an.fovea
    dist = float(np.hypot(*d))
    if dist < 0.07:
        return "at the fovea"
    vert = "superior" if d[1] < 0 else "inferior"
    horiz = "temporal" if d[0] < 0 else "nasal"
    combo = ("supero" if d[1] < 0 else "infero") + horiz
    if dist < 0.3:
        if abs(d[1]) > 2 * abs(d[0]):
            return f"{vert} to the fovea"
        if abs(d[0]) > 2 * abs(d[1]):
            return f"{horiz} to the fovea"
        return f"{combo} to the fovea"
    return f"in the {combo} quadrant"


def _arcade_vein(an: Anatomy, role: str) -> Vessel:
    return next(v for v in an.vessels if v.kind == "vein" and v.role == role)


def _on_vessel(rng, v: Vessel, lo=0.1, hi=0.7):
    i = int(rng.uniform(lo, hi) * (len(v.pts) - 2)) + 1
    t = v.pts[min(i + 1, len(v.pts) - 1)] - v.pts[i - 1]
    return v.pts[i], float(np.degrees(np.arctan2(t[1], t[0])))


# --------------------------------------------------------------------------------------------
# findings
# --------------------------------------------------------------------------------------------
def _dr(rng, an: Anatomy, sev: str, L: Lesions):
    F = "diabetic_retinopathy"
    n_ma = {"mild": rng.integers(4, 10), "moderate": rng.integers(12, 26), "severe": rng.integers(20, 41)}[sev]
    for p in _points(rng, an, int(n_ma), an.fovea, 0.28, rmax=0.85):
        L.add(F, "ma", *p, rng.uniform(1.1, 2.0) * PX, alpha=rng.uniform(0.75, 1.0))
    info = {"n_ma": int(n_ma)}

    def blot(p, rmin, rmax):
        r = rng.uniform(rmin, rmax) * PX
        L.add(F, "haem", *p, r, r * rng.uniform(0.7, 1.0), rng.uniform(0, 180), rng.uniform(0.8, 1.0))
        for _ in range(rng.integers(0, 3)):
            q = p + rng.normal(0, 0.6 * r, 2)
            L.add(F, "haem", *q, r * rng.uniform(0.4, 0.8), alpha=rng.uniform(0.7, 1.0))

    if sev == "mild":
        n_h = int(rng.integers(0, 3))
        for p in _points(rng, an, n_h, an.fovea, 0.3, rmax=0.85):
            blot(p, 2.0, 3.5)
    elif sev == "moderate":
        n_h = int(rng.integers(5, 15))
        for p in _points(rng, an, n_h, an.fovea, 0.35, rmax=0.88):
            blot(p, 2.5, 6.0)
    else:
        centre_q = (an.fovea + an.disc) / 2
        n_h = 0
        for q in ((-1, -1), (-1, 1), (1, -1), (1, 1)):
            k = int(rng.integers(6, 13))
            n_h += k
            for p in _points(rng, an, k, centre_q, 0.4, rmax=0.9, quadrant=q, centre_q=centre_q):
                blot(p, 3.0, 8.0)
        for _ in range(rng.integers(2, 7)):       # a few flame haemorrhages along the arcades
            p, ang = _on_vessel(rng, _arcade_vein(an, rng.choice(["st", "it"])), 0.1, 0.6)
            p = p + rng.normal(0, 0.03, 2)
            L.add_flame(rng, F, *p, rng.uniform(5, 10) * PX, rng.uniform(1.3, 2.2) * PX,
                        ang + rng.normal(0, 12), rng.uniform(0.7, 1.0))
    info["n_haem"] = n_h

    clusters = []
    if sev != "mild":
        for _ in range(rng.integers(1, 4)):
            for _try in range(20):
                c = an.fovea + rng.normal(0, 0.2, 2)
                if _ok(an, c[None], 0.8, 1.6)[0] and np.hypot(*(c - an.fovea)) > 0.05:
                    break
            clusters.append(where_words(an, c))
            ring = rng.uniform(0.035, 0.09)
            a0, ext = rng.uniform(0, 2 * np.pi), rng.uniform(np.pi, 2 * np.pi)
            n = int(rng.integers(8, 26))
            th = a0 + ext * rng.random(n)
            pts = c + ring * np.stack([np.cos(th), np.sin(th)], 1) + rng.normal(0, 0.006, (n, 2))
            for p in pts:
                r = rng.uniform(0.9, 2.4) if rng.random() < 0.85 else rng.uniform(2.5, 4.0)
                L.add(F, "exudate", *p, r * PX, r * PX * rng.uniform(0.6, 1.0), rng.uniform(0, 180),
                      rng.uniform(0.8, 1.0))
    info["exudates"] = clusters
    info["circinate"] = bool(clusters) and rng.random() < 0.6

    n_cws = {"mild": 0, "moderate": int(rng.integers(0, 3)), "severe": int(rng.integers(2, 6))}[sev]
    for _ in range(n_cws):
        _cws(rng, an, F, L)
    info["n_cws"] = n_cws

    info["beading"] = False
    if sev == "severe" and rng.random() < 0.5:
        v = _arcade_vein(an, rng.choice(["st", "it"]))
        s = np.concatenate([[0], np.cumsum(np.hypot(*np.diff(v.pts, axis=0).T))])
        f = s / s[-1]
        lam = rng.uniform(0.03, 0.045)
        bead = np.clip(np.sin(2 * np.pi * s / lam), 0, None) * ((f > 0.25) & (f < 0.6))
        v.widths = v.widths * (1 + 0.5 * bead)
        info["beading"] = True
    L.info["diabetic_retinopathy"] = info


def _cws(rng, an, F, L, vessel=None):
    v = vessel if vessel is not None else _arcade_vein(an, rng.choice(["st", "it"]))
    p, ang = _on_vessel(rng, v, 0.08, 0.5)
    p = p + rng.normal(0, 0.035, 2)
    a = rng.uniform(6, 12) * PX
    for _ in range(rng.integers(2, 5)):
        q = p + rng.normal(0, 0.35 * a, 2)
        L.add(F, "cws", *q, a * rng.uniform(0.6, 1.0), a * rng.uniform(0.4, 0.7), ang + rng.normal(0, 20),
              rng.uniform(0.55, 0.85))


def _amd(rng, an: Anatomy, grade: str, L: Lesions):
    F = "amd"
    if grade == "early":
        n, rr, sd = int(rng.integers(10, 26)), (1.8, 3.5), 0.085
    else:
        n, rr, sd = int(rng.integers(25, 61)), (2.5, 8.0), 0.11
    for p in _points(rng, an, n, an.fovea, sd, rmax=0.8):
        r = rng.uniform(*rr) * (1.0 if rng.random() < 0.7 else 0.6)
        L.add(F, "drusen", *p, r * PX, r * PX * rng.uniform(0.8, 1.0), rng.uniform(0, 180),
              rng.uniform(0.55, 0.9))
    info = {"n_drusen": n, "large": grade != "early", "pigment": False, "ga": False}
    if grade in ("intermediate", "late"):
        for p in _points(rng, an, int(rng.integers(8, 26)), an.fovea, 0.07, rmax=0.8):
            L.add(F, "hyperpig", *p, rng.uniform(1.0, 3.0) * PX, alpha=rng.uniform(0.5, 0.9))
        for p in _points(rng, an, int(rng.integers(2, 7)), an.fovea, 0.06, rmax=0.8):
            L.add(F, "hypopig", *p, rng.uniform(4, 9) * PX, rng.uniform(3, 7) * PX, rng.uniform(0, 180),
                  rng.uniform(0.35, 0.6))
        info["pigment"] = True
    if grade == "late":
        c = an.fovea + rng.normal(0, 0.025, 2)
        for _ in range(rng.integers(1, 4)):
            q = c + rng.normal(0, 0.03, 2)
            L.add(F, "ga", *q, rng.uniform(0.04, 0.085), rng.uniform(0.035, 0.07), rng.uniform(0, 180),
                  rng.uniform(0.75, 0.9))
        info["ga"] = True
    L.info["amd"] = info


def _rvo(rng, an: Anatomy, L: Lesions):
    F = "rvo"
    sign = -1 if rng.random() < 0.65 else 1                 # superotemporal is the common branch
    role = "st" if sign < 0 else "it"
    v = _arcade_vein(an, role)
    i_occ = max(2, int(rng.uniform(0.1, 0.2) * len(v.pts)))
    occ = v.pts[i_occ].copy()

    def weight(p):   # territory: temporal to the occlusion point, on the occluded side of the fovea
        wx = np.clip((occ[0] - p[:, 0]) / 0.05 + 0.5, 0, 1)
        wy = np.clip((sign * (p[:, 1] - an.fovea[1])) / 0.06, 0, 1)
        return wx * wy

    amp, lam = rng.uniform(0.005, 0.009), rng.uniform(0.07, 0.1)
    ph = rng.uniform(0, 2 * np.pi, 2)
    # split the occluded vein at the crossing so only the distal part is dilated and masked
    new: list[Vessel] = []
    for ves in an.vessels:
        if ves is v:
            new.append(Vessel(v.pts[: i_occ + 1], v.widths[: i_occ + 1], "vein", role))
            new.append(Vessel(v.pts[i_occ:], v.widths[i_occ:], "vein", role + "_distal"))
        else:
            new.append(ves)
    an.vessels = new
    for ves in an.vessels:
        if ves.kind != "vein":
            continue
        w = weight(ves.pts)
        if not w.any():
            continue
        disp = amp * np.stack([np.sin(2 * np.pi * ves.pts[:, 1] / lam + ph[0]),
                               np.sin(2 * np.pi * ves.pts[:, 0] / lam + ph[1])], 1)
        ves.pts = ves.pts + disp * w[:, None]
        ves.widths = ves.widths * (1 + 0.55 * w)
        if w.mean() > 0.5:
            ves.finding = F
    terr = [ves for ves in an.vessels if ves.finding == F]
    n, placed = int(rng.integers(40, 81)), 0
    for _ in range(4 * n):                                  # dense flames along the occluded branch
        if placed >= n:
            break
        ves = terr[rng.integers(len(terr))] if terr else v
        p, ang = _on_vessel(rng, ves, 0.0, 0.9)
        p = p + rng.normal(0, 0.04, 2)
        if weight(p[None])[0] < 0.3 or not _ok(an, p[None], 0.92)[0]:
            continue
        L.add_flame(rng, F, *p, rng.uniform(6, 14) * PX, rng.uniform(1.5, 3.0) * PX,
                    ang + rng.normal(0, 15), rng.uniform(0.8, 1.0))
        placed += 1
    for _ in range(int(rng.integers(3, 11))):
        ves = terr[rng.integers(len(terr))] if terr else v
        p, _ = _on_vessel(rng, ves, 0.0, 0.9)
        p = p + rng.normal(0, 0.06, 2)
        if weight(p[None])[0] > 0.3 and _ok(an, p[None], 0.92)[0]:
            L.add(F, "haem", *p, rng.uniform(2, 5) * PX, alpha=rng.uniform(0.8, 1.0))
    n_cws = int(rng.integers(0, 3))
    for _ in range(n_cws):
        _cws(rng, an, F, L, vessel=terr[0] if terr else v)
    L.info["rvo"] = {"territory": "superotemporal" if sign < 0 else "inferotemporal", "n_cws": n_cws,
                     "macula": bool(rng.random() < 0.4)}


def _glaucoma(rng, an: Anatomy, L: Lesions):
    sides = ["inferior" if a > 0 else "superior" for a, _ in an.notches]
    disc_haem = bool(rng.random() < 0.2)
    if disc_haem:
        a0 = an.notches[0][0] + rng.normal(0, 0.2)
        p = an.disc + np.array([an.disc_rx * np.cos(a0), an.disc_ry * np.sin(a0)]) * 1.02
        L.add("glaucoma", "flame", *p, rng.uniform(4, 7) * PX, rng.uniform(1.0, 1.6) * PX, np.degrees(a0), 0.95)
    L.info["glaucoma"] = {"notch": sides, "disc_haem": disc_haem}


def sample_lesions(rng: np.random.Generator, an: Anatomy, findings: dict[str, str]) -> Lesions:
    """Sample every present finding's primitives; may modify ``an.vessels`` (RVO, venous beading)."""
    L = Lesions()
    if "diabetic_retinopathy" in findings:
        _dr(rng, an, findings["diabetic_retinopathy"], L)
    if "amd" in findings:
        _amd(rng, an, findings["amd"], L)
    if "rvo" in findings:
        _rvo(rng, an, L)
    if "glaucoma" in findings:
        _glaucoma(rng, an, L)
    if "pathologic_myopia" in findings:
        L.info["pathologic_myopia"] = {"ppa_width": an.ppa[0] if an.ppa else 0.0}
    return L


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------
def render_lesions(img: np.ndarray, illum: np.ndarray, L: Lesions, size: int,
                   masks: dict[str, np.ndarray]) -> None:
    """Composite all primitives into ``img`` (in place) and OR their footprints into ``masks``."""
    g = grid(size)
    k = size / REF_SIZE
    sh = float(1 << SHIFT)
    lum = np.clip(illum, 0.35, 1.0)
    keys = sorted(L.prims, key=lambda fk: ORDER.index(fk[1]))
    for finding, kind in keys:
        model, colour, sig = KINDS[kind]
        lay = np.zeros((size, size), np.uint8)
        for x, y, a, b, ang, alpha in L.prims[(finding, kind)]:
            c = fixed(g.to_px((x, y)))
            axes = (max(1, int(a * g.R * sh)), max(1, int(b * g.R * sh)))
            cv2.ellipse(lay, (int(c[0]), int(c[1])), axes, ang, 0, 360, int(255 * alpha), -1,
                        cv2.LINE_AA, SHIFT)
        sigma = sig * k
        box = _box(lay, int(3 * sigma) + 3)
        if box is None:
            continue
        y0, y1, x0, x1 = box
        sub = lay[y0:y1, x0:x1]
        if sigma >= 0.3:
            sub = cv2.GaussianBlur(sub, (0, 0), sigma)
        a = sub.astype(np.float32) * (1 / 255.0)
        view = img[y0:y1, x0:x1]
        if model == "mul":
            multiply(view, a, colour)
        else:
            lerp(view, a, colour, illum=lum[y0:y1, x0:x1])
        thr = sub > 50
        if not thr.any():
            thr = sub > 0
        m = masks.setdefault(finding, np.zeros((size, size), bool))
        m[y0:y1, x0:x1] |= thr


def _box(lay, pad):
    x, y, w, h = cv2.boundingRect(lay)
    if w == 0:
        return None
    H, W = lay.shape
    return max(0, y - pad), min(H, y + h + pad), max(0, x - pad), min(W, x + w + pad)
