"""AI precompute of real photographs: seconds per photograph with saliency overlays, against the same
run's precompute of the probabilities alone (the baseline).

A multi-arm study (unaided / AI / AI + saliency) of real photographs imported as an investigator imports
them: the 12 IDRiD photographs in ../shared/real/idrid (3410 x 2848) by default, ``--lesions N`` the first
N of ../shared/real/idrid-lesions (1024 x 680) as well; with ``--synthetic`` or where ../shared is absent,
synthetic 3000 x 2500 JPEGs. The bundled demo model, on this machine's CPU (CUDA where present).

1. ``precompute(saliency=False)``: zero-shot probabilities only (the baseline).
2. The overlay as precompute made it before display-ready maps (the previous code's work, replayed here): one
   integrated-gradients map of the top finding at the photograph's full size, blended into a full-size copy
   of it with a colour map and written as a PNG.
3. ``precompute(saliency=True, workers=1)`` on a fresh, identical study: the three maps of the top findings,
   display-ready, in this process.
4. The same with ``workers`` = every core (the default).

    nice -n 10 .venv/bin/python bench/bench_precompute.py [--n 12] [--lesions 0] [--synthetic]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _app_server import load_note  # noqa: E402

from testsupport.app import REPO_ROOT, study_photos  # noqa: E402

LESIONS = REPO_ROOT.parent / "shared" / "real" / "idrid-lesions"


def _study(tmp: Path, name: str, photos: list[Path]):
    """A migrated SQLite study of ``photos`` with an ai_saliency arm; returns (session factory, study id, store)."""
    import csv

    from study.domain.cases import import_manifest
    from study.domain.config import parse_text
    from study.domain.studies import create_study
    from study.storage import db
    from testsupport.studies import study_toml

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
        s.commit()
        return factory, study.id, folder / "store"


def _previous_overlay(loaded, photo) -> int:
    """The overlay precompute made before display-ready maps: IG of the top finding at full size, an inferno
    colour map blended into a full-size copy, a PNG of it (the previous ``saliency_render.render_overlay``)."""
    import cv2
    import numpy as np

    from revision_core.imageio import load_image
    from revision_core.saliency import explain
    from revision_core.zeroshot import ZeroShotClassifier

    classifier = ZeroShotClassifier(loaded)
    image = load_image(photo)
    probs = classifier.predict_images([image])[0]
    m = explain(loaded, classifier, image, classifier.findings[int(np.argmax(probs))], "integrated_gradients").map
    rgb = np.asarray(image, dtype=np.float32)
    colour = cv2.applyColorMap(np.round(m * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1]
    alpha = (0.45 * m)[..., None]
    out = np.round(rgb * (1 - alpha) + colour * alpha).clip(0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(out[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 6])
    return len(buf)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=12, help="IDRiD photographs (3410 x 2848), cycled past 12")
    ap.add_argument("--lesions", type=int, default=0, help="plus this many 1024 x 680 IDRiD lesion-set photographs")
    ap.add_argument("--synthetic", action="store_true", help="synthetic photographs even where real ones exist")
    args = ap.parse_args()
    from revision_core.model import load_model
    from revision_core.saliency_batch import default_workers
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
        cores = default_workers(loaded.device)
        print(f"  {len(photos)} photographs: {what}; model {loaded.card.name} on {loaded.card.device}, {cores} cores")
        timings = {}
        runs = [("probabilities only", False, 1), (f"3 maps, 1 process", True, 1),
                (f"3 maps, {cores} processes", True, cores)]
        for label, saliency, workers in runs:
            factory, study_id, store = _study(tmp, f"run{len(timings)}", photos)
            with factory() as s:
                t0 = time.perf_counter()
                report = precompute(s, study_id, loaded=loaded, store_root=store, saliency=saliency, workers=workers)
                seconds = time.perf_counter() - t0
            timings[label] = seconds
            extra = f", {len(report.saliency_failed)} map failures" if report.saliency_failed else ""
            print(f"  {label:28s}: {seconds:7.1f} s for {report.stored} photographs = "
                  f"{seconds / max(1, report.stored):6.2f} s per photograph{extra}")
            if not saliency:
                t0 = time.perf_counter()
                for photo in photos:
                    _previous_overlay(loaded, photo)
                seconds = time.perf_counter() - t0 + timings[label]
                timings["before"] = seconds
                print(f"  {'before: 1 full-size overlay':28s}: {seconds:7.1f} s for {len(photos)} photographs = "
                      f"{seconds / len(photos):6.2f} s per photograph (the probabilities above plus the overlays)")
        base = timings["probabilities only"]
        for label in ("before", runs[1][0], runs[2][0]):
            print(f"  {label}: {(timings[label] - base) / len(photos):.2f} s per photograph on top of the "
                  f"probabilities ({timings[label] / max(base, 1e-9):.1f}x the baseline)")
    print(f"bench_precompute: {load_note()} (at end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
