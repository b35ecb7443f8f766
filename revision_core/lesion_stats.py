"""What retinal lesions look like, measured the same way on real and on synthetic photographs.

Why one module for both: the synthetic renderer's lesion model is fitted to expert-marked real lesions
(IDRiD's lesion-segmentation set, Porwal et al., Data 2018, 3(3):25, CC BY 4.0), and the fit is only
checked if the rendered lesions are measured by exactly the same code. Per lesion (a connected
component of a mask) it measures:

* colour contrast against the local background, per channel, as a log ratio (what a camera gain cannot
  change): ``core`` = the median over the stronger half of the lesion's pixels, ``mean`` = over all of them;
* size (equivalent diameter), elongation (ratio of the principal axes) and solidity (area / convex hull);
* the edge profile: green contrast, normalised by the core, against the signed distance from the mask edge;
* position relative to the fovea and the disc, in disc diameters (DD), in a right-eye orientation
  (nasal = +x, inferior = +y), and the distance to the nearest lesion of the same kind (clustering).

Lengths are in units of the set's median disc diameter: pixels are converted through each photograph's
field-of-view radius and the set's median ratio of field radius to disc diameter, so that a large disc
does not make its lesions look small.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

KINDS = ("ma", "haem", "exudate", "cws")
IDRID_SUFFIX = {"ma": "MA", "haem": "HE", "exudate": "EX", "cws": "SE"}
DARK = {"ma", "haem"}                      # lesions darker than the retina; the others are brighter
EDGE_BINS = np.arange(-4, 9)               # signed distance from the mask edge, px (negative = inside)
EPS = 2.0 / 255.0


@dataclass
class Photo:
    """One photograph with its lesion masks, the disc and the fovea (pixel coordinates)."""

    name: str
    image: np.ndarray                      # H x W x 3 uint8 RGB
    masks: dict[str, np.ndarray]           # kind -> bool H x W (absent kinds may be missing)
    disc_mask: np.ndarray | None           # bool H x W, or None when the disc is given as (centre, diameter)
    disc: tuple[float, float] = (0.0, 0.0)
    disc_diameter: float = 0.0             # px
    fovea: tuple[float, float] = (0.0, 0.0)
    fov: tuple[float, float, float] = (0.0, 0.0, 0.0)   # centre x, centre y, radius (px)
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# geometry of a photograph
# --------------------------------------------------------------------------------------------
def field_of_view(image: np.ndarray, threshold: int = 18) -> tuple[float, float, float, np.ndarray]:
    """(cx, cy, radius, mask) of the circular field, fitted to its boundary away from the frame edges
    (IDRiD's field is a circle clipped at the top and bottom of the frame)."""
    mask = (image.max(axis=2) > threshold).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask)
    if n < 2:
        raise ValueError("no field of view found (the image is black)")
    mask = lab == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    pts = max(contours, key=len)[:, 0, :].astype(np.float64)
    h, w = mask.shape
    keep = (pts[:, 1] > 2) & (pts[:, 1] < h - 3) & (pts[:, 0] > 2) & (pts[:, 0] < w - 3)
    pts = pts[keep] if keep.sum() > 20 else pts
    # algebraic circle fit: x^2 + y^2 + D x + E y + F = 0
    a = np.c_[pts[:, 0], pts[:, 1], np.ones(len(pts))]
    b = -(pts[:, 0] ** 2 + pts[:, 1] ** 2)
    d, e, f = np.linalg.lstsq(a, b, rcond=None)[0]
    cx, cy = -d / 2, -e / 2
    return float(cx), float(cy), float(np.sqrt(max(cx ** 2 + cy ** 2 - f, 1.0))), mask


def disc_geometry(disc_mask: np.ndarray) -> tuple[tuple[float, float], float]:
    """Centre and equivalent diameter (px) of the optic disc's mask."""
    ys, xs = np.nonzero(disc_mask)
    return (float(xs.mean()), float(ys.mean())), float(2 * np.sqrt(len(xs) / np.pi))


def estimate_fovea(image: np.ndarray, disc: tuple[float, float], dd: float, fov_mask: np.ndarray,
                   lesions: np.ndarray, fov_centre: tuple[float, float]) -> tuple[float, float]:
    """The locally darkest place (smoothed green over its wider surround, lesions and vessels left out) near
    where the fovea lies: about 2.5 disc diameters temporal to the disc, a little below its centre."""
    green = np.log(image[..., 1].astype(np.float32) + 4.0)
    inner = cv2.erode(fov_mask.astype(np.uint8), np.ones((int(dd) | 1, int(dd) | 1), np.uint8)).astype(bool)
    valid = (inner & ~cv2.dilate(lesions.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)).astype(np.float32)

    def smooth(sigma):
        num = cv2.GaussianBlur(green * valid, (0, 0), sigma)
        return num / np.maximum(cv2.GaussianBlur(valid, (0, 0), sigma), 1e-3)

    local = smooth(0.3 * dd) - smooth(1.5 * dd)
    side = -1.0 if disc[0] > fov_centre[0] else 1.0         # temporal = towards the field centre
    h, w = green.shape
    yy, xx = np.mgrid[:h, :w]
    dx, dy = (xx - disc[0]) * side / dd, (yy - disc[1]) / dd
    prior = 0.05 * ((dx - 2.5) ** 2 + (dy - 0.2) ** 2)
    region = (dx > 1.9) & (dx < 3.1) & (np.abs(dy - 0.2) < 0.8) & inner
    if not region.any():
        return (disc[0] + side * 2.5 * dd, disc[1] + 0.2 * dd)
    score = np.where(region, local + prior, np.inf)
    y, x = np.unravel_index(int(np.argmin(score)), score.shape)
    return float(x), float(y)


def load_idrid_lesion_set(folder: str | Path) -> list[Photo]:
    """The photographs of an IDRiD lesion-segmentation folder (``NAME.jpg`` + ``NAME_{MA,HE,EX,SE,OD}.png``)."""
    folder = Path(folder)
    photos = []
    for path in sorted(folder.glob("*.jpg")):
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        masks = {}
        for kind, suffix in IDRID_SUFFIX.items():
            mask_path = folder / f"{path.stem}_{suffix}.png"
            if mask_path.is_file():
                masks[kind] = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) > 0
        od_path = folder / f"{path.stem}_OD.png"
        od = cv2.imread(str(od_path), cv2.IMREAD_GRAYSCALE) if od_path.is_file() else None
        if od is None or not (od > 0).any():
            continue
        cx, cy, r, fov_mask = field_of_view(image)
        disc, dd = disc_geometry(od > 0)
        union = np.zeros(image.shape[:2], bool)
        for m in masks.values():
            union |= m
        fovea = estimate_fovea(image, disc, dd, fov_mask, union, (cx, cy))
        photos.append(Photo(path.stem, image, masks, od > 0, disc, dd, fovea, (cx, cy, r),
                            {"fov_mask": fov_mask}))
    return photos


# --------------------------------------------------------------------------------------------
# per-lesion measurements
# --------------------------------------------------------------------------------------------
def _log_image(image: np.ndarray) -> np.ndarray:
    return np.log(image.astype(np.float32) / 255.0 + EPS)


def measure_photo(photo: Photo, dd_unit_px: float) -> list[dict]:
    """One row per lesion (connected component) of every kind in ``photo``.

    ``dd_unit_px``: pixels of this photograph per unit length (the set's median disc diameter).
    """
    img = photo.image
    h, w = img.shape[:2]
    logi = _log_image(img)
    fov_mask = photo.extra.get("fov_mask")
    if fov_mask is None:
        cx, cy, r = photo.fov
        yy, xx = np.mgrid[:h, :w]
        fov_mask = np.hypot(xx - cx, yy - cy) < r - 1
    fov_inner = cv2.erode(fov_mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    union = np.zeros((h, w), bool)
    for m in photo.masks.values():
        union |= m
    if photo.disc_mask is not None:
        union |= photo.disc_mask
    else:
        yy, xx = np.mgrid[:h, :w]
        union |= np.hypot(xx - photo.disc[0], yy - photo.disc[1]) < 0.6 * photo.disc_diameter
    excluded = cv2.dilate(union.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) | ~fov_inner
    # right-eye orientation: the disc lies nasal (+x) of the fovea
    flip = -1.0 if photo.disc[0] < photo.fovea[0] else 1.0
    rows = []
    for kind in KINDS:
        m = photo.masks.get(kind)
        if m is None or not m.any():
            continue
        n, lab, stats, cents = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
        centres = cents[1:]
        for i in range(1, n):
            x0, y0, bw, bh, area = stats[i]
            eq = 2 * np.sqrt(area / np.pi)
            pad = int(max(6, eq)) + 10
            ya, yb, xa, xb = max(0, y0 - pad), min(h, y0 + bh + pad), max(0, x0 - pad), min(w, x0 + bw + pad)
            comp = lab[ya:yb, xa:xb] == i
            outside = cv2.distanceTransform((~comp).astype(np.uint8), cv2.DIST_L2, 3)
            inside = cv2.distanceTransform(comp.astype(np.uint8), cv2.DIST_L2, 3)
            ring = (outside > 2) & (outside <= 2 + max(4.0, eq)) & ~excluded[ya:yb, xa:xb]
            if ring.sum() < 8:
                continue
            sub = logi[ya:yb, xa:xb]
            bg = np.median(sub[ring], axis=0)
            con = sub[comp] - bg                            # per-pixel log contrast, N x 3
            g = con[:, 1]
            strong = g <= np.median(g) if kind in DARK else g >= np.median(g)
            core = np.median(con[strong], axis=0)
            # edge profile of the green contrast, normalised by the core
            signed = np.where(comp, -inside + 0.5, outside - 0.5)
            gmap = (sub[..., 1] - bg[1]) / (core[1] if abs(core[1]) > 1e-3 else np.nan)
            prof = []
            valid_prof = ~excluded[ya:yb, xa:xb] | comp
            for d in EDGE_BINS:
                sel = (np.round(signed) == d) & valid_prof
                prof.append(float(np.median(gmap[sel])) if sel.sum() >= 3 else np.nan)
            ys, xs = np.nonzero(comp)
            if len(xs) >= 3:
                cov = np.cov(np.c_[xs, ys].T)
                ev = np.sort(np.linalg.eigvalsh(cov))
                elong = float(np.sqrt(max(ev[1], 1e-6) / max(ev[0], 1e-6))) if ev[0] > 1e-9 else float(max(bw, bh))
                hull = cv2.convexHull(np.c_[xs, ys].astype(np.int32))
                solidity = float(min(1.0, area / max(cv2.contourArea(hull) + 0.5 * cv2.arcLength(hull, True) + 1, 1)))
            else:
                elong, solidity = float(max(bw, bh) / max(1, min(bw, bh))), 1.0
            c = centres[i - 1]
            fx, fy = (c[0] - photo.fovea[0]) * flip, c[1] - photo.fovea[1]
            others = np.delete(centres, i - 1, axis=0)
            nn = float(np.min(np.hypot(*(others - c).T))) / dd_unit_px if len(others) else np.nan
            rows.append({
                "photo": photo.name, "kind": kind, "area_px": int(area), "diameter": eq / dd_unit_px,
                "elongation": elong, "solidity": solidity,
                "core": core.tolist(), "mean": np.mean(con, axis=0).tolist(), "background": bg.tolist(), "edge": prof,
                "fovea_dist": float(np.hypot(fx, fy)) / dd_unit_px, "fovea_angle": float(np.degrees(np.arctan2(fy, fx))),
                "disc_dist": float(np.hypot(c[0] - photo.disc[0], c[1] - photo.disc[1])) / dd_unit_px,
                "nearest": nn,
            })
    return rows


def measure_set(photos: list[Photo]) -> tuple[list[dict], dict]:
    """Rows of every lesion in ``photos`` plus the set's geometry (median field radius / disc diameter)."""
    ratios = [p.fov[2] / p.disc_diameter for p in photos]
    ratio = float(np.median(ratios))
    rows = []
    for p in photos:
        rows += measure_photo(p, p.fov[2] / ratio)
    counts = {k: [sum(1 for r in rows if r["photo"] == p.name and r["kind"] == k) for p in photos] for k in KINDS}
    fovea_disc = [float(np.hypot(p.fovea[0] - p.disc[0], p.fovea[1] - p.disc[1]) / (p.fov[2] / ratio)) for p in photos]
    return rows, {"n_photos": len(photos), "fov_radius_dd": ratio, "counts": counts,
                  "fovea_disc_dd": float(np.median(fovea_disc))}


# --------------------------------------------------------------------------------------------
# summaries and fits
# --------------------------------------------------------------------------------------------
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def edge_fit(profile: np.ndarray) -> tuple[float, float]:
    """(offset, sigma) in px of 0.5 * erfc((d - offset) / (sqrt(2) sigma)) fitted to a normalised profile."""
    from scipy.optimize import curve_fit
    from scipy.special import erfc

    d = EDGE_BINS.astype(float)
    ok = np.isfinite(profile)
    if ok.sum() < 4:
        return float("nan"), float("nan")
    model = lambda x, off, s: 0.5 * erfc((x - off) / (np.sqrt(2) * np.abs(s) + 1e-6))
    try:
        (off, s), _ = curve_fit(model, d[ok], np.clip(profile[ok], -0.5, 1.5), p0=(0.0, 1.0), maxfev=4000)
    except RuntimeError:
        return float("nan"), float("nan")
    return float(off), float(abs(s))


def _contrast_fit(rs: list[dict], min_blue: float = 0.12) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the core log contrast. Blue from lesions whose background has some blue:
    a fundus camera's blue channel is often a few grey levels, where a log ratio is mostly noise."""
    core = np.array([r["core"] for r in rs])
    lit = np.array([r["background"][2] for r in rs]) > np.log(min_blue)
    mean = core.mean(axis=0)
    if lit.sum() >= 20:
        mean[2] = core[lit, 2].mean()
        cov = np.cov(core[lit].T)
    else:
        cov = np.cov(core.T)
    return mean, cov


def summarise(rows: list[dict], geometry: dict, px_per_dd: float, mask_dilation_px: float = 0.0) -> dict:
    """The fitted lesion model: per kind, distributions of contrast, size, shape, edge, count and position.

    ``px_per_dd``: pixels per disc diameter at which the set was measured (edge widths are converted to DD).
    ``mask_dilation_px``: how much wider than the lesion its mask is (IDRiD's masks were downscaled with
    "any pixel set", which widens a lesion by about 1 - 1/4.19 px); subtracted from each diameter.
    """
    out: dict = {}
    for kind in KINDS:
        rs = [r for r in rows if r["kind"] == kind]
        if len(rs) < 3:
            continue
        mean, cov = _contrast_fit(rs)
        core = np.array([r["core"] for r in rs])
        diam = np.maximum(np.array([r["diameter"] for r in rs]) - mask_dilation_px / px_per_dd, 0.5 / px_per_dd)
        elong = np.array([r["elongation"] for r in rs])
        with warnings.catch_warnings():              # a distance bin no lesion reaches is NaN, as it should be
            warnings.simplefilter("ignore", RuntimeWarning)
            prof = np.nanmedian(np.array([r["edge"] for r in rs], dtype=float), axis=0)
        off, sig = edge_fit(prof)
        counts = np.array(geometry["counts"][kind])
        have = counts[counts > 0]
        dist = np.array([r["fovea_dist"] for r in rs])
        ang = np.array([r["fovea_angle"] for r in rs])
        sector = ((ang + 22.5) % 360 // 45).astype(int)    # 0 nasal (towards the disc), 2 inferior, 4 temporal
        nearest = np.array([r["nearest"] for r in rs])
        nearest = nearest[np.isfinite(nearest)]
        out[kind] = {
            "n_lesions": len(rs),
            "photos_with": int((counts > 0).sum()),
            "contrast_mean": mean.round(4).tolist(),
            "contrast_cov": cov.round(5).tolist(),
            "contrast_quantiles": {c: np.quantile(core[:, j], QUANTILES).round(4).tolist() for j, c in enumerate("rgb")},
            "diameter_log_mean": round(float(np.mean(np.log(diam))), 4),
            "diameter_log_sd": round(float(np.std(np.log(diam))), 4),
            "diameter_quantiles": np.quantile(diam, QUANTILES).round(4).tolist(),
            "elongation_quantiles": np.quantile(elong, QUANTILES).round(3).tolist(),
            "solidity_median": round(float(np.median([r["solidity"] for r in rs])), 3),
            "edge_profile": [None if not np.isfinite(v) else round(float(v), 3) for v in prof],
            "edge_sigma_px": round(sig, 3), "edge_offset_px": round(off, 3),
            "edge_sigma_dd": round(sig / px_per_dd, 5),
            "count_quantiles": np.quantile(have, QUANTILES).round(1).tolist() if len(have) else [0] * 5,
            "fovea_dist_quantiles": np.quantile(dist, QUANTILES).round(3).tolist(),
            "sector_fractions": (np.bincount(sector, minlength=8) / len(sector)).round(4).tolist(),
            "within_1dd_of_fovea": round(float(np.mean(dist < 1.0)), 4),
            "nearest_quantiles": np.quantile(nearest, QUANTILES).round(4).tolist() if len(nearest) else [],
        }
    out["geometry"] = {"n_photos": geometry["n_photos"], "fov_radius_dd": round(geometry["fov_radius_dd"], 4),
                       "fovea_disc_dd": round(geometry["fovea_disc_dd"], 4), "px_per_dd": round(px_per_dd, 3)}
    return out


def fit_idrid(folder: str | Path) -> dict:
    """Measure an IDRiD lesion folder and return the fitted lesion model (see ``summarise``)."""
    photos = load_idrid_lesion_set(folder)
    if not photos:
        raise ValueError(f"no IDRiD photographs with an optic-disc mask in {folder}")
    rows, geometry = measure_set(photos)
    px_per_dd = float(np.median([p.fov[2] for p in photos])) / geometry["fov_radius_dd"]
    return summarise(rows, geometry, px_per_dd, mask_dilation_px=1.0 - 1.0 / 4.1875)


