"""AI precompute of real photographs: seconds per photograph with saliency overlays, against the same
run's precompute of the probabilities alone (the baseline).

A multi-arm study (unaided / AI / AI + saliency) of real photographs imported as an investigator imports
them: the 12 IDRiD photographs in ../shared/real/idrid (3410 x 2848) by default, ``--lesions N`` the first
N of ../shared/real/idrid-lesions (1024 x 680) as well; with ``--synthetic`` or where ../shared is absent,
synthetic 3000 x 2500 JPEGs. The bundled demo model, on this machine's CPU (CUDA where present).

1. ``precompute(saliency=False)``: zero-shot probabilities only (the baseline).
2. ``precompute(saliency=True)`` on a second, identical study: probabilities plus the overlays the
   saliency arm shows, as the study's ``[ai]`` settings ask for them.

    nice -n 10 .venv/bin/python bench/bench_precompute.py [--n 12] [--lesions 0] [--synthetic]
"""
from __future__ import annotations

import argparse
import inspect
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _app_server import load_note  # noqa: E402

from tests.app_helpers import REPO_ROOT, study_photos  # noqa: E402

LESIONS = REPO_ROOT.parent / "shared" / "real" / "idrid-lesions"


def _study(tmp: Path, name: str, photos: list[Path]):
    """A migrated SQLite study of ``photos`` with an ai_saliency arm; returns (session factory, study id, store)."""
    import csv

    from study.domain.cases import import_manifest
    from study.domain.config import parse_text
    from study.domain.studies import create_study
    from study.storage import db
    from tests.study.helpers import study_toml

    folder = tmp / name
    folder.mkdir()
    url = f"sqlite:///{folder / 'study.sqlite'}"
    db.upgrade(url)
    factory = db.session_factory(db.make_engine(url))
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case_id", "image_path", "label"])
        for i, photo in enumerate(photos):
            w.writerow([f"P{i:03d}", str(photo), "diabetic_retinopathy"])
    text = study_toml("multi_arm", name=name, arms=["unaided", "ai", "ai_saliency"])
    with factory() as s:
        study = create_study(s, parse_text(text), text)
        import_manifest(s, study.id, manifest, store_root=folder / "store", paths_outside=True)
        return factory, study.id, folder / "store"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=12, help="IDRiD photographs (3410 x 2848), cycled past 12")
    ap.add_argument("--lesions", type=int, default=0, help="plus this many 1024 x 680 IDRiD lesion-set photographs")
    ap.add_argument("--synthetic", action="store_true", help="synthetic photographs even where real ones exist")
    args = ap.parse_args()
    from revision_core.model import load_model
    from study.jobs.precompute import precompute

    print(f"bench_precompute: {load_note()} (at start)")
    with tempfile.TemporaryDirectory(prefix="bench-precompute-") as tmp:
        tmp = Path(tmp)
        photos, what = study_photos(tmp, args.n, synthetic=args.synthetic)
        photos = list(dict.fromkeys(photos))  # the import refuses a photograph twice
        if args.lesions and LESIONS.is_dir() and not args.synthetic:
            extra = sorted(LESIONS.glob("IDRiD_*.jpg"))[:args.lesions]
            photos += extra
            what += f" + {len(extra)} IDRiD lesion-set photographs (1024 x 680)"
        loaded = load_model("demo")
        print(f"  {len(photos)} photographs: {what}; model {loaded.card.name} on {loaded.card.device}")
        timings = {}
        for label, saliency in (("probabilities only", False), ("with saliency overlays", True)):
            factory, study_id, store = _study(tmp, label.replace(" ", "_"), photos)
            with factory() as s:
                t0 = time.perf_counter()
                report = precompute(s, study_id, loaded=loaded, store_root=store.parent / "store", saliency=saliency)
                seconds = time.perf_counter() - t0
            timings[label] = seconds
            extra = f", {len(report.saliency_failed)} overlay failures" if report.saliency_failed else ""
            print(f"  {label:24s}: {seconds:7.1f} s for {report.stored} photographs = "
                  f"{seconds / max(1, report.stored):6.2f} s per photograph{extra}")
        base, full = timings["probabilities only"], timings["with saliency overlays"]
        workers = "workers" in inspect.signature(precompute).parameters
        print(f"  overlays cost {(full - base) / len(photos):.2f} s per photograph on top of the probabilities "
              f"({full / max(base, 1e-9):.1f}x the baseline){'' if workers else '; one process'}")
    print(f"bench_precompute: {load_note()} (at end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
