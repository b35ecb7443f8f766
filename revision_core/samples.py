"""The public demo's sample gallery and settings: a synthetic photograph of each finding and, where a folder
of real photographs is configured, those too; plus the playground's saliency settings.

Why here: the settings live in data (``demo_settings.toml``) and the pages only draw what these loaders
return; the pages cache the loaded samples once per server process. Real photographs are read for display
and evaluation only (never for training, never copied into the repository).
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
SETTINGS = Path(__file__).with_name("demo_settings.toml")
SETTINGS_ENV = "REVISION_DEMO_SETTINGS"
REAL_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")

# what the demo model does with a real photograph, shown beside every real sample
REAL_NOTE = ("The demo model was trained only on synthetic pictures. It has never seen a real photograph, and "
             "on real ones its suggestions are unreliable, often wrong, for other findings too: read them as a "
             "demonstration of the machinery, not as a diagnosis.")


@dataclass(frozen=True)
class Sample:
    """One gallery photograph: ``findings`` is its reference (``()`` = normal, ``None`` = not labelled)."""

    key: str
    title: str
    kind: str                        # "synthetic" or "real"
    image: Image.Image = field(repr=False)
    sha256: str
    findings: tuple[str, ...] | None
    report: str = ""
    credit: str = ""
    short: str = ""                  # a thumbnail's caption

    @property
    def caption(self) -> str:
        return self.short or self.title


def demo_settings(path: str | Path | None = None) -> dict:
    """The demo settings: ``path``, else ``$REVISION_DEMO_SETTINGS``, else the bundled file."""
    path = Path(path or os.environ.get(SETTINGS_ENV) or SETTINGS)
    return tomllib.loads(path.read_text("utf-8"))


def saliency_settings(method: str, settings: dict | None = None) -> dict:
    """The playground's keyword arguments for ``saliency.explain`` with ``method`` (empty: its defaults)."""
    settings = demo_settings() if settings is None else settings
    saliency = settings.get("saliency", {})
    kwargs = dict(saliency.get(method, {}))
    if "threads" in saliency:
        kwargs["threads"] = int(saliency["threads"])
    return kwargs


def synthetic_samples(settings: dict | None = None) -> list[Sample]:
    """One synthetic photograph per configured entry (a finding forced at a grade, or normal)."""
    from .imageio import image_sha256
    from .synthetic import generate_case

    settings = demo_settings() if settings is None else settings
    gallery = settings.get("gallery", {})
    out = []
    for entry in gallery.get("synthetic", []):
        case = generate_case(int(entry["seed"]), size=int(gallery.get("size", 512)),
                             findings=dict(entry.get("findings", {})))
        image = Image.fromarray(case.image)
        present = tuple(f for f, v in case.labels.items() if v)
        out.append(Sample(f"synthetic:{entry['seed']}", entry["title"], "synthetic", image, image_sha256(image),
                          present, case.report, short=entry.get("short", "")))
    return out


def _load_reduced(path: Path, longest: int) -> Image.Image:
    """A real photograph decoded at reduced size (JPEG draft decoding), RGB, EXIF orientation applied."""
    from PIL import ImageOps

    with Image.open(path) as im:
        if im.format == "JPEG":
            im.draft("RGB", (longest, longest))
        im = ImageOps.exif_transpose(im).convert("RGB")
    if max(im.size) > longest:
        im.thumbnail((longest, longest), Image.Resampling.LANCZOS)
    return im


def real_samples(folder: Path | None, settings: dict | None = None) -> list[Sample]:
    """The photographs in ``folder`` (sorted, at most ``[gallery.real] max_files``), each with its reference
    findings and credit where a ``[[gallery.real_source]]`` covers it."""
    from .imageio import image_sha256

    if folder is None:
        return []
    settings = demo_settings() if settings is None else settings
    gallery = settings.get("gallery", {})
    real = gallery.get("real", {})
    sources = gallery.get("real_source", [])
    excluded = real.get("exclude", [])
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in REAL_SUFFIXES and p.is_file()
                   and not any(p.relative_to(folder).match(glob) for glob in excluded))
    out = []
    for path in files[:int(real.get("max_files", 24))]:
        rel = path.relative_to(folder)
        source = next((s for s in sources if rel.match(s["glob"])), None)
        try:
            image = _load_reduced(path, int(real.get("longest", 1024)))
        except (OSError, ValueError):
            continue  # an unreadable file is left out of the gallery
        findings = tuple(source["findings"]) if source else None
        out.append(Sample(f"real:{rel.as_posix()}", path.stem, "real", image, image_sha256(image), findings,
                          credit=source.get("credit", "") if source else ""))
    return out


def real_summary(samples: list[Sample], probabilities: np.ndarray, findings: list[str], names: dict) -> list[str]:
    """Measured lines on the real samples: per labelled finding, the model's probability over the real
    photographs that show it (range and median) and how many it calls (probability >= 0.5)."""
    lines = []
    real = [i for i, s in enumerate(samples) if s.kind == "real"]
    for f in findings:
        idx = [i for i in real if samples[i].findings and f in samples[i].findings]
        if not idx:
            continue
        p = np.asarray(probabilities)[idx, findings.index(f)]
        called = int((p >= 0.5).sum())
        lines.append(f"On these {len(idx)} real photographs, all showing {names.get(f, f).lower()}, the demo "
                     f"model's probability of it is {p.min():.2f}-{p.max():.2f} (median {np.median(p):.2f}); "
                     f"it calls {called if called else 'none'} of them {names.get(f, f).lower()}.")
    return lines


@dataclass(frozen=True)
class LabelledPhoto:
    """A real photograph the evaluation page scores: the findings it shows (its source's), the rest not labelled."""

    path: Path
    findings: tuple[str, ...]  # () = a normal photograph (all findings absent)
    credit: str = ""


def labelled_real_photos(folder: Path | None, settings: dict | None = None) -> list[LabelledPhoto]:
    """Every photograph in ``folder`` that an ``[[evaluation.real_source]]`` covers (sorted, at most
    ``[evaluation.real] max_files``): the evaluation page's real labelled set. Files no source covers are not
    labelled and left out; nothing is decoded here."""
    if folder is None:
        return []
    settings = demo_settings() if settings is None else settings
    evaluation = settings.get("evaluation", {})
    sources = evaluation.get("real_source", [])
    limit = int(evaluation.get("real", {}).get("max_files", 400))
    out = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in REAL_SUFFIXES and p.is_file()):
        source = next((s for s in sources if path.relative_to(folder).match(s["glob"])), None)
        if source is not None:
            out.append(LabelledPhoto(path, tuple(source.get("findings", ())), source.get("credit", "")))
        if len(out) >= limit:
            break
    return out


def load_labelled(photos: list[LabelledPhoto], settings: dict | None = None) -> list[Image.Image]:
    """The photographs decoded at reduced size (``[evaluation.real] longest``; the model reads far less);
    an unreadable file raises (the set is the configured one: nothing is silently dropped)."""
    settings = demo_settings() if settings is None else settings
    longest = int(settings.get("evaluation", {}).get("real", {}).get("longest", 512))
    return [_load_reduced(p.path, longest) for p in photos]
