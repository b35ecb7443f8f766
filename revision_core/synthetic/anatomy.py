"""Normal fundus anatomy: sampled in normalised coordinates, then rendered at any pixel size.

Why two steps: every random choice is made once in "field units" (field of view radius = 1,
origin at the field centre, x to the right, y down, canonical right-eye orientation with the disc on
the right), so the same seed gives the same eye at 224 px and at 1024 px. Rendering only converts
units to pixels and draws with OpenCV (anti-aliased), which keeps generation fast on one core.
Left eyes (OS) are produced by mirroring the finished image (see ``generator``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

FIELD_FRAC = 0.46          # field-of-view radius as a fraction of the image side
REF_SIZE = 512             # lesion / vessel sizes are specified for a 512 px image


# --------------------------------------------------------------------------------------------
# geometry containers
# --------------------------------------------------------------------------------------------
@dataclass
class Vessel:
    """One vessel polyline in field units; ``finding`` marks vessels that belong to a lesion mask."""

    pts: np.ndarray          # (N, 2) float64, field units
    widths: np.ndarray       # (N,) float64, field units
    kind: str                # "artery" | "vein"
    role: str                # "st", "it", "sn", "in", "branch", ...
    finding: str | None = None


@dataclass
class Anatomy:
    """All size-independent parameters of one normal-looking eye."""

    fovea: np.ndarray
    disc: np.ndarray
    disc_rx: float
    disc_ry: float
    cdr: float
    notches: list[tuple[float, float]]          # (angle rad, depth) of focal rim thinning
    pigment: float                              # 0 = blond/orange, 1 = dark brown-red
    base_rgb: np.ndarray
    illum_centre: np.ndarray
    illum_k: float
    edge_dark: float
    tex_lo: np.ndarray                          # coarse blotchy pigmentation, fixed resolution
    tex_hi: np.ndarray                          # choroidal mottling, fixed resolution
    tex_amp: tuple[float, float, float]
    macula_sigma: float
    macula_depth: float
    ring_reflex: bool
    vessels: list[Vessel]
    tessellation: float = 0.0                   # strength of visible choroidal vessels
    choroid: list[tuple[np.ndarray, float]] = field(default_factory=list)
    ppa: tuple[float, float] | None = None      # (width as fraction of disc radius, extent angle)
    disc_pallor: float = 0.0
    masked: set[str] = field(default_factory=set)   # anatomy-borne findings to emit masks for


# --------------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------------
def _walk(rng, start, heading, width, length, step=0.012, curv_sd=0.10, taper=0.55,
          fovea=None, stop_fovea=0.07):
    """Random-walk vessel: vectorised heading noise, truncated at the field edge / near the fovea.

    Complex arithmetic keeps the number of numpy calls (the cost at small sizes) low.
    """
    n = max(2, int(length / step))
    noise = rng.normal(0.0, curv_sd, n + 1)
    h = heading + np.cumsum(noise[1:] + noise[0] * (0.02 / curv_sd))
    z = np.empty(n + 1, np.complex128)
    z[0] = complex(start[0], start[1])
    np.cumsum(step * np.exp(1j * h), out=z[1:])
    z[1:] += z[0]
    keep = np.abs(z) < 1.02
    if fovea is not None:
        keep &= np.abs(z - complex(fovea[0], fovea[1])) > stop_fovea
    if not keep.all():
        z = z[: max(2, int(np.argmin(keep)) + 1)]
    m = len(z)
    widths = width * (1.0 - (1.0 - taper) / (m - 1) * np.arange(m))
    return z.view(np.float64).reshape(m, 2), widths


def _branches(rng, parent: Vessel, out: list, fovea, depth: int, gap=(0.10, 0.22),
              start_frac=0.12):
    """Spawn side branches along ``parent`` (outward ones recurse), thinning the parent after each."""
    pts, w = parent.pts, parent.widths
    if len(pts) < 6 or depth > 2:
        return
    seg = np.hypot(*np.diff(pts, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    total = s[-1]
    pos = total * start_frac + rng.uniform(*gap)
    while pos < total - 0.05:
        i = int(np.searchsorted(s, pos))
        i = min(max(i, 1), len(pts) - 2)
        tangent = pts[i + 1] - pts[i - 1]
        th = np.arctan2(tangent[1], tangent[0])
        away = pts[i] - fovea
        outward = rng.random() < (0.6 if depth == 0 else 0.5)
        ang = rng.uniform(0.6, 1.15)
        for sign in (1, -1):
            d = np.array([np.cos(th + sign * ang), np.sin(th + sign * ang)])
            if (np.dot(d, away) > 0) == outward:
                break
        if outward:
            cw = w[i] * rng.uniform(0.55, 0.78)
            length = rng.uniform(0.2, 0.55) / (1 + depth * 0.4)
        else:
            cw = w[i] * rng.uniform(0.35, 0.55)
            length = rng.uniform(0.08, 0.28)
        cpts, cwid = _walk(rng, pts[i], th + sign * ang, cw, length, curv_sd=0.09,
                           fovea=fovea, stop_fovea=0.06 + 0.03 * rng.random())
        child = Vessel(cpts, cwid, parent.kind, "branch")
        out.append(child)
        w[i:] *= 0.9  # parent thins distal to a branch point
        if outward and depth < 2 and cw > 0.006:
            _branches(rng, child, out, fovea, depth + 1, gap=(0.12, 0.3), start_frac=0.2)
        pos += rng.uniform(*gap)


def _arcade(rng, disc, fovea, sign: int, kind: str) -> Vessel:
    """Temporal arcade: leaves the disc vertically, then curves around the macula (polar path)."""
    rel = disc - fovea
    r_d = float(np.hypot(*rel))
    phi0 = float(np.arctan2(rel[1], rel[0]))
    r_min = rng.uniform(0.40, 0.52) + (0.025 if kind == "artery" else 0.0) * rng.choice([-1, 1])
    grow = rng.uniform(0.36, 0.5)
    t = np.arange(0.0, rng.uniform(2.7, 3.2), 0.022)
    r = np.where(t <= np.pi / 2, r_d - (r_d - r_min) * np.sin(np.minimum(t, np.pi / 2)),
                 r_min + grow * np.maximum(t - np.pi / 2, 0) ** 1.1)
    ph = rng.uniform(0, 2 * np.pi, 3)
    wig = (0.014 * np.sin(4.7 * t + ph[0]) + 0.007 * np.sin(10.3 * t + ph[1])
           + 0.004 * np.sin(19.0 * t + ph[2]))
    r = r + wig * np.minimum(t * 4, 1)
    phi = phi0 + sign * t
    pts = fovea + np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1)
    pts[0] = disc + rng.normal(0, 0.008, 2)
    inside = np.hypot(pts[:, 0], pts[:, 1]) < 1.02
    bad = np.flatnonzero(~inside)
    if bad.size:
        pts = pts[: bad[0] + 1]
    w0 = (0.026 if kind == "vein" else 0.019) * rng.uniform(0.9, 1.1)
    widths = w0 * np.linspace(1.0, 0.55, len(pts))
    return Vessel(pts, widths, kind, "st" if sign < 0 else "it")


def _choroid(rng, fovea, n=70):
    """Choroidal vessel ribbons (visible only when the fundus is tessellated)."""
    out = []
    for _ in range(n):
        ang = rng.uniform(0, 2 * np.pi)
        start = fovea + rng.uniform(0.05, 0.55) * np.array([np.cos(ang), np.sin(ang)])
        start = rng.uniform(-0.9, 0.9, 2) if rng.random() < 0.5 else start
        pts, _ = _walk(rng, start, ang + rng.normal(0, 0.6), 0.0, rng.uniform(0.4, 1.0),
                       step=0.02, curv_sd=0.11)
        out.append((pts, rng.uniform(0.014, 0.032)))
    return out


def sample_anatomy(rng: np.random.Generator, findings: dict[str, str]) -> Anatomy:
    """Sample a normal eye; glaucoma / myopia change the disc and choroid (they are anatomy-borne)."""
    fovea = np.array([rng.normal(0.0, 0.03), rng.normal(0.03, 0.03)])
    disc = fovea + np.array([rng.uniform(0.56, 0.64), rng.normal(-0.04, 0.025)])
    scale = rng.uniform(0.9, 1.1)
    disc_rx, disc_ry = 0.125 * scale, 0.14 * scale * rng.uniform(0.97, 1.08)

    notches: list[tuple[float, float]] = []
    if "glaucoma" in findings:
        grade = findings["glaucoma"]
        cdr = rng.uniform(0.8, 0.9) if grade == "advanced" else rng.uniform(0.7, 0.79)
        where = rng.random()
        if where < 0.55:
            notches.append((np.pi / 2, rng.uniform(0.12, 0.22)))            # inferior (y down)
        elif where < 0.85:
            notches.append((-np.pi / 2, rng.uniform(0.12, 0.22)))           # superior
        else:
            notches += [(np.pi / 2, rng.uniform(0.1, 0.18)), (-np.pi / 2, rng.uniform(0.1, 0.18))]
    else:
        cdr = 0.1 + 0.45 * rng.beta(2.2, 2.0)
    cdr = float(round(cdr, 3))

    pigment = float(rng.beta(2.0, 2.0))
    light = np.array([0.88, 0.47, 0.20])
    dark = np.array([0.66, 0.25, 0.11])
    base = light * (1 - pigment) + dark * pigment
    base = base * (1 + rng.normal(0, 0.03, 3))

    vessels: list[Vessel] = []
    for sign in (-1, 1):
        for kind in ("vein", "artery"):
            v = _arcade(rng, disc, fovea, sign, kind)
            vessels.append(v)
            _branches(rng, v, vessels, fovea, 0, gap=(0.11, 0.24))
    for sign, role in ((-1, "sn"), (1, "in")):
        for kind in ("vein", "artery"):
            head = sign * rng.uniform(0.5, 1.2)
            w = (0.018 if kind == "vein" else 0.013) * rng.uniform(0.85, 1.1)
            pts, wid = _walk(rng, disc + rng.normal(0, 0.01, 2), head, w, 0.6, curv_sd=0.07)
            v = Vessel(pts, wid, kind, role)
            vessels.append(v)
            _branches(rng, v, vessels, fovea, 1, gap=(0.1, 0.2), start_frac=0.25)
    for _ in range(rng.integers(1, 4)):           # small papillomacular / nasal twigs
        kind = "artery" if rng.random() < 0.5 else "vein"
        head = np.pi + rng.normal(0, 0.35) if rng.random() < 0.6 else rng.normal(0, 0.4)
        pts, wid = _walk(rng, disc + rng.normal(0, 0.02, 2), head, rng.uniform(0.004, 0.007),
                         rng.uniform(0.15, 0.35), curv_sd=0.08, fovea=fovea)
        vessels.append(Vessel(pts, wid, kind, "twig"))

    myopia = "pathologic_myopia" in findings
    tess = rng.uniform(0.45, 0.7) if myopia else (rng.uniform(0.08, 0.2) if rng.random() < 0.15 else 0.0)
    choroid = _choroid(rng, fovea) if tess > 0 else []
    ppa = None
    if myopia:
        ppa = (rng.uniform(0.35, 0.8), rng.uniform(0.9, 1.6))
        disc_rx *= rng.uniform(0.75, 0.88)        # tilted, oval myopic disc
    masked = {f for f in ("glaucoma", "pathologic_myopia") if f in findings}

    return Anatomy(
        fovea=fovea, disc=disc, disc_rx=disc_rx, disc_ry=disc_ry, cdr=cdr, notches=notches,
        pigment=pigment, base_rgb=base,
        illum_centre=fovea * 0.5 + rng.normal(0, 0.12, 2), illum_k=rng.uniform(0.3, 0.55),
        edge_dark=rng.uniform(0.25, 0.5),
        tex_lo=rng.standard_normal((12, 12)).astype(np.float32),
        tex_hi=rng.standard_normal((48, 48)).astype(np.float32),
        tex_amp=(rng.uniform(0.04, 0.09), rng.uniform(0.03, 0.07), rng.uniform(0.01, 0.025)),
        macula_sigma=rng.uniform(0.10, 0.15), macula_depth=rng.uniform(0.2, 0.35),
        ring_reflex=bool(rng.random() < 0.35), vessels=vessels, tessellation=float(tess),
        choroid=choroid, ppa=ppa, disc_pallor=float(rng.uniform(0.0, 0.15)), masked=masked,
    )


# --------------------------------------------------------------------------------------------
# rendering helpers
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grid:
    """Per-size constants, cached: pixel <-> field-unit conversion and the field-of-view mask."""

    size: int
    R: float
    c: float
    xs: np.ndarray      # (S,) field units of pixel columns
    r: np.ndarray       # (S, S) radius in field units
    fov: np.ndarray     # (S, S) bool, strictly inside the field
    fov_alpha: np.ndarray  # (S, S) float32, anti-aliased edge
    edge: np.ndarray       # (S, S) float32, smoothstep(0.7, 1, r): rim darkening profile
    fov_u8: np.ndarray     # (S, S) uint8, 255 inside the field

    def to_px(self, p) -> np.ndarray:
        return np.asarray(p, dtype=np.float64) * self.R + self.c

    def px(self, units: float) -> float:
        return units * self.R


@lru_cache(maxsize=4)
def noise_bank(size: int) -> np.ndarray:
    """Fixed standard-normal field (S+64)^2 x 3; images take random offset crops (cheap grain)."""
    a = np.random.default_rng(12345 + size).standard_normal((size + 64, size + 64, 3), dtype=np.float32)
    a.setflags(write=False)
    return a


def noise_crop(size: int, rng: np.random.Generator, channels: int = 3) -> np.ndarray:
    bank = noise_bank(size)
    oy, ox = rng.integers(0, 65, 2)
    flip = rng.integers(0, 4)
    crop = bank[oy : oy + size, ox : ox + size, :channels]
    if flip & 1:
        crop = crop[::-1]
    if flip & 2:
        crop = crop[:, ::-1]
    return crop


@lru_cache(maxsize=8)
def grid(size: int) -> Grid:
    R = FIELD_FRAC * size
    c = (size - 1) / 2.0
    xs = ((np.arange(size) - c) / R).astype(np.float32)
    r = np.sqrt(xs[None, :] ** 2 + xs[:, None] ** 2)
    fov_alpha = np.clip((1.0 - r) * R + 0.5, 0.0, 1.0).astype(np.float32)
    fov = fov_alpha > 0
    g = Grid(size, R, c, xs, r, fov, fov_alpha, _smoothstep(0.7, 1.0, r).astype(np.float32),
             fov.astype(np.uint8) * 255)
    for a in (g.xs, g.r, g.fov, g.fov_alpha, g.edge, g.fov_u8):
        a.setflags(write=False)
    return g


SHIFT = 4
_SH = float(1 << SHIFT)


def fixed(pts_px: np.ndarray) -> np.ndarray:
    """Sub-pixel coordinates for OpenCV drawing with ``shift=SHIFT``."""
    return np.round(np.asarray(pts_px) * _SH).astype(np.int32)


def draw_polylines(layer: np.ndarray, g: Grid, items) -> None:
    """Draw (pts_units, widths_units) polylines, batching runs of equal integer thickness.

    Sub-pixel widths are drawn 1 px thick at reduced intensity so thin vessels fade, not vanish.
    Vectorised over all vessels at once: per-vessel numpy overhead dominated at small sizes.
    """
    items = [(p, w) for p, w in items if len(p) >= 2]
    if not items:
        return
    lens = np.array([len(p) for p, _ in items])
    P = fixed(g.to_px(np.concatenate([p for p, _ in items])))
    wp = np.concatenate([w for _, w in items]) * g.R
    th = np.maximum(1, np.rint(wp)).astype(np.int32)
    val = np.maximum(np.where(wp >= 1.0, 255, np.clip(wp, 0.25, 1.0) * 255).astype(np.int32) // 32 * 32, 64)
    key = th * 1000 + val
    ends_v = np.cumsum(lens)                      # exclusive end of each vessel
    starts_v = ends_v - lens
    brk = np.zeros(len(P), bool)
    brk[1:] = key[1:] != key[:-1]
    brk[starts_v] = True
    run_starts = np.flatnonzero(brk)
    vid = np.searchsorted(ends_v, run_starts, side="right")
    nxt = np.append(run_starts[1:], len(P))
    run_ends = np.minimum(nxt, ends_v[vid] - 1)  # include the first point of the next run
    batches: dict[int, list[np.ndarray]] = {}
    for s0, e0 in zip(run_starts.tolist(), run_ends.tolist()):
        if e0 > s0:
            batches.setdefault(int(key[s0]), []).append(P[s0 : e0 + 1])
    for kv in sorted(batches):
        t, v = divmod(kv, 1000)
        cv2.polylines(layer, batches[kv], False, int(min(v, 255)), int(t), cv2.LINE_AA, SHIFT)


def blur(layer: np.ndarray, sigma_px: float) -> np.ndarray:
    if sigma_px < 0.3:
        return layer
    return cv2.GaussianBlur(layer, (0, 0), sigma_px)


def _sparse(img, a, box):
    if box is not None:
        y0, y1, x0, x1 = box
        img, a = img[y0:y1, x0:x1], a[y0:y1, x0:x1]
    idx = np.flatnonzero(a > 0.004)
    return img, idx, a.reshape(-1)[idx][:, None]


def multiply(img, a, factor, box=None):
    """img *= 1 - a * (1 - factor): darkening towards ``factor`` times the local colour.

    Only pixels with a > 0 are touched (vessels and lesions cover a small part of the image).
    """
    sub, idx, av = _sparse(img, a, box)
    f = 1.0 - np.asarray(factor, np.float32)
    if sub.flags.c_contiguous:
        flat = sub.reshape(-1, 3)
        flat[idx] *= 1.0 - av * f
    else:
        ys, xs = np.divmod(idx, sub.shape[1])
        sub[ys, xs] *= 1.0 - av * f


def lerp(img, a, colour, box=None, illum=None):
    """img += a * (colour - img): paint a colour (optionally scaled by the local illumination)."""
    sub, idx, av = _sparse(img, a, box)
    col = np.asarray(colour, np.float32)
    ys, xs = np.divmod(idx, sub.shape[1])
    if illum is not None:
        il = illum if box is None else illum[box[0]:box[1], box[2]:box[3]]
        col = col * il[ys, xs][:, None]
    cur = sub[ys, xs]
    sub[ys, xs] = cur + av * (col - cur)


def _smoothstep(e0, e1, x):
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------
def render_anatomy(an: Anatomy, size: int, rng: np.random.Generator):
    """Render background, choroid, macula, disc and vessels.

    Returns (float32 RGB image in [0, 1], illumination map, {finding: bool mask}).
    ``rng`` only drives pixel-level grain, the one thing allowed to differ between sizes.
    """
    g = grid(size)
    S = size
    k = S / REF_SIZE
    xs = g.xs
    # radial illumination fall-off around a slightly off-centre point + dark rim
    dx = (xs - an.illum_centre[0]) ** 2
    dy = (xs - an.illum_centre[1]) ** 2
    illum = 1.0 - an.illum_k * (dy[:, None] + dx[None, :])
    illum *= 1.0 - an.edge_dark * g.edge
    np.clip(illum, 0.15, 1.2, out=illum)
    # pigmentation blotches + choroidal mottling + fine grain
    a_lo, a_hi, a_fine = an.tex_amp
    tex = cv2.resize(an.tex_lo, (S, S), interpolation=cv2.INTER_CUBIC) * a_lo
    tex += cv2.resize(an.tex_hi, (S, S), interpolation=cv2.INTER_CUBIC) * a_hi
    fine = noise_crop(S // 2 + 1, rng, 1)[..., 0]
    tex += cv2.resize(fine, (S, S), interpolation=cv2.INTER_LINEAR) * a_fine
    lum = illum * (1.0 + tex)
    br, bg_, bb = (float(v) for v in an.base_rgb)
    img = cv2.merge([lum * (br * (1.0 - 0.4 * tex)), lum * bg_, lum * (bb * (1.0 + 0.1 * tex))])
    masks: dict[str, np.ndarray] = {}

    # tessellation: dark intervascular spaces between orange choroidal ribbons
    if an.tessellation > 0 and an.choroid:
        lay = np.zeros((S, S), np.uint8)
        for pts, wu in an.choroid:
            cv2.polylines(lay, [fixed(g.to_px(pts))], False, 255, max(1, int(round(wu * g.R))),
                          cv2.LINE_AA, SHIFT)
        lay = blur(lay, 1.8 * k).astype(np.float32) * (1 / 255.0)
        fx = (xs - an.fovea[0]) ** 2
        fy = (xs - an.fovea[1]) ** 2
        dist = np.sqrt(fy[:, None] + fx[None, :])
        s_map = an.tessellation * (0.45 + 0.55 * _smoothstep(0.08, 0.5, dist))
        multiply(img, s_map * (1.0 - lay), (0.55, 0.45, 0.55))

    # macula: darker, with a foveal reflex (and sometimes a macular ring reflex)
    fpx = g.to_px(an.fovea)
    rad = int(3.2 * an.macula_sigma * g.R) + 2
    y0, y1 = max(0, int(fpx[1]) - rad), min(S, int(fpx[1]) + rad)
    x0, x1 = max(0, int(fpx[0]) - rad), min(S, int(fpx[0]) + rad)
    d2 = ((xs[y0:y1, None] - an.fovea[1]) ** 2 + (xs[None, x0:x1] - an.fovea[0]) ** 2)
    mac = an.macula_depth * np.exp(-d2 / (2 * an.macula_sigma ** 2))
    img[y0:y1, x0:x1] *= 1.0 - mac[..., None] * np.array([0.8, 1.0, 0.9], np.float32)
    refl = np.zeros((S, S), np.uint8)
    cv2.circle(refl, tuple(fixed(fpx)), int(max(1.0, 0.009 * g.R) * _SH), 200, -1, cv2.LINE_AA, SHIFT)
    if an.ring_reflex:
        cv2.ellipse(refl, tuple(fixed(fpx)), (int(0.12 * g.R * _SH), int(0.1 * g.R * _SH)), 0, 0, 360,
                    22, max(1, int(0.008 * g.R)), cv2.LINE_AA, SHIFT)
    refl = blur(refl, 1.4 * k).astype(np.float32) * (0.6 / 255.0)
    box = (y0, y1, x0, x1)
    lerp(img, refl, (1.0, 0.95, 0.85), box)

    img = _render_disc(an, img, g, k, masks)
    _render_vessels(an, img, g, k, masks)
    return img, illum, masks


def _render_disc(an: Anatomy, img, g: Grid, k: float, masks):
    S = g.size
    dpx = g.to_px(an.disc)
    ext = 1.0 + (an.ppa[0] + 0.1 if an.ppa else 0.15)
    rad = int(max(an.disc_rx, an.disc_ry) * ext * g.R) + 4
    y0, y1 = max(0, int(dpx[1]) - rad), min(S, int(dpx[1]) + rad)
    x0, x1 = max(0, int(dpx[0]) - rad), min(S, int(dpx[0]) + rad)
    X = (g.xs[None, x0:x1] - an.disc[0])
    Y = (g.xs[y0:y1, None] - an.disc[1])
    ang = np.arctan2(Y, X)
    rho = np.sqrt((X / an.disc_rx) ** 2 + (Y / an.disc_ry) ** 2)
    soft = (1.0 + 1.5 * k) / (an.disc_ry * g.R)  # ~2.5 px edge at 512
    sub = img[y0:y1, x0:x1]

    if an.ppa is not None:                         # pale crescent on the temporal side (x < disc)
        width, extent = an.ppa
        dang = np.angle(np.exp(1j * (ang - np.pi)))
        reach = 1.0 + width * np.clip(np.cos(dang / extent * (np.pi / 2)), 0, 1) ** 0.7
        reach = np.where(np.abs(dang) < extent, reach, 1.0)
        a_ppa = _smoothstep(reach + soft * 2, reach - soft * 2, rho) * (rho > 0.9)
        a_ppa = a_ppa.astype(np.float32)
        mott = cv2.resize(an.tex_hi, (x1 - x0, y1 - y0), interpolation=cv2.INTER_CUBIC)
        col = np.array([0.96, 0.86, 0.70], np.float32) * (1 + 0.06 * mott[..., None])
        sub += (a_ppa * 0.85)[..., None] * (col - sub)
        rim_pig = (_smoothstep(reach - 2.5 * soft, reach, rho) * _smoothstep(reach + 2.5 * soft, reach, rho)
                   * (rho > 1.05))
        sub *= 1.0 - (0.3 * rim_pig)[..., None].astype(np.float32)
        if "pathologic_myopia" in an.masked:
            m = np.zeros((S, S), bool)
            m[y0:y1, x0:x1] = a_ppa > 0.5
            masks["pathologic_myopia"] = m

    # disc: pink-orange rim, paler cup (vertical cup radius = cdr), notches thin the rim locally
    a_disc = _smoothstep(1.0 + soft, 1.0 - soft, rho).astype(np.float32)
    rim_col = np.array([0.93, 0.56, 0.36], np.float32) * (1 + an.disc_pallor * np.array([0, 0.25, 0.4]))
    glow = (0.95 + 0.1 * np.clip(1.0 - rho, 0, 1)).astype(np.float32)[..., None]   # brighter centre
    sub += (a_disc * 0.85)[..., None] * (np.clip(rim_col, 0, 1) * glow - sub)
    cup_r = an.cdr * np.ones_like(ang)
    for a0, depth in an.notches:
        dd = np.angle(np.exp(1j * (ang - a0)))
        cup_r = cup_r + depth * np.exp(-(dd ** 2) / (2 * 0.35 ** 2))
    cup_r = np.minimum(cup_r, 0.96)
    rho_c = np.sqrt((X / (an.disc_rx * 0.92)) ** 2 + (Y / an.disc_ry) ** 2)
    cup_soft = 0.06 + 0.04 * (1 - an.cdr)
    a_cup = _smoothstep(cup_r + cup_soft * 0.3, cup_r - cup_soft, rho_c).astype(np.float32)
    sub += (a_cup * 0.9)[..., None] * (np.array([0.99, 0.89, 0.68], np.float32) - sub)
    if "glaucoma" in an.masked:
        m = np.zeros((S, S), bool)
        m[y0:y1, x0:x1] = a_cup > 0.5
        masks["glaucoma"] = m
    return img


def _render_vessels(an: Anatomy, img, g: Grid, k: float, masks):
    S = g.size
    for kind, factor in (("vein", (0.60, 0.30, 0.45)), ("artery", (0.92, 0.58, 0.72))):
        lay = np.zeros((S, S), np.uint8)
        draw_polylines(lay, g, [(v.pts, v.widths) for v in an.vessels if v.kind == kind])
        a = blur(lay, 0.6 * k).astype(np.float32) * (0.92 / 255.0)
        multiply(img, a, factor)
        if kind == "artery":                     # central light reflex on larger arteries
            ref = np.zeros((S, S), np.uint8)
            items = [(v.pts, np.where(v.widths * g.R >= 3.0, 0.35 * v.widths, 0.0))
                     for v in an.vessels if v.kind == "artery" and v.widths[0] * g.R >= 3.0]
            items = [(p, w) for p, w in items if w.max() > 0]
            draw_polylines(ref, g, [(p[w > 0], w[w > 0]) for p, w in items])
            lerp(img, blur(ref, 0.5 * k).astype(np.float32) * (0.25 / 255.0), (1.0, 0.8, 0.7))
    for f in {v.finding for v in an.vessels if v.finding}:
        lay = np.zeros((S, S), np.uint8)
        draw_polylines(lay, g, [(v.pts, v.widths) for v in an.vessels if v.finding == f])
        masks[f] = masks.get(f, np.zeros((S, S), bool)) | (lay > 127)
