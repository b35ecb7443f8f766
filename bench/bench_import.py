"""Importing real-size photographs: time against decoding alone, and store size against the sources.

Imports the 12 IDRiD photographs in ``../shared/real/idrid`` (3410 x 2848 JPEG, about 1 MB each; IDRiD,
Porwal et al. 2018, CC BY 4.0) into a fresh SQLite study through ``study.domain.cases.import_manifest`` and
measures, in the same run and interleaved: the import (median of ``--repeats`` fresh imports), decoding
the same files with PIL alone (``Image.open(p).convert("RGB")``, one after another, median of repeats),
the ratio import/decode (target <= 2), and the store size, stored originals and with display derivatives,
against the sources (target <= 1.5 for the originals). The import stages several images at once
(``study.domain.cases.WORKERS``, or ``--workers``); a decode on as many threads is printed too, so the ratio can
be read both ways. Plain script: ``python bench/bench_import.py [--repeats 3] [--workers N]``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from PIL import Image  # noqa: E402
from testsupport.studies import committed

REAL = REPO.parent / "shared" / "real" / "idrid"


def decode_all(paths: list[Path], workers: int = 1) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda p: Image.open(p).convert("RGB"), paths))
    return time.perf_counter() - start


def import_once(paths: list[Path], tmp: Path) -> tuple[float, int, int]:
    """(seconds, bytes of stored originals, bytes of the whole store) for one fresh import."""
    from study.domain import cases, studies
    from study.storage import db
    from study.domain.config import parse_text
    from testsupport.studies import study_toml

    url = f"sqlite:///{tmp / 'study.sqlite'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    manifest = tmp / "manifest.csv"
    manifest.write_text("case_id,image_path,label\n" + "".join(f"{p.stem},{p},diabetic_retinopathy\n" for p in paths))
    with db.session_factory(engine)() as s:
        text = study_toml(name="bench import")
        study = committed(studies.create_study, s, parse_text(text), text)
        start = time.perf_counter()
        added = committed(cases.import_manifest, s, study.id, manifest, store_root=tmp / "store", paths_outside=True)
        seconds = time.perf_counter() - start
        store = cases.study_store(study.id, tmp / "store")
        originals = sum((store / c.image_ref).stat().st_size for c in added)
        everything = sum(f.stat().st_size for f in store.iterdir() if f.is_file())
    engine.dispose()
    return seconds, originals, everything


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None, help="images staged at once (default: study.domain.cases')")
    args = ap.parse_args()
    paths = sorted(REAL.glob("*.jpg"))
    if not paths:
        print(f"bench_import: skipped, no real photographs in {REAL} (they are shared test material beside the "
              f"project, not part of it)")
        return
    from study.domain import cases

    if args.workers:
        cases.WORKERS = args.workers
    WORKERS = cases.WORKERS

    source = sum(p.stat().st_size for p in paths)
    for p in paths:
        p.read_bytes()  # page cache warm for both sides
    decodes, decodes_par, runs = [], [], []
    for _ in range(args.repeats):  # interleaved, so a busy machine slows both sides alike
        decodes.append(decode_all(paths))
        decodes_par.append(decode_all(paths, WORKERS))
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(import_once(paths, Path(tmp)))
    decode, decode_par = statistics.median(decodes), statistics.median(decodes_par)
    seconds = statistics.median(r[0] for r in runs)
    _, originals, everything = runs[0]
    print(f"{len(paths)} photographs, {source / 1e6:.1f} MB of JPEG; import stages {WORKERS} image(s) at once")
    print(f"decode alone (PIL, one at a time):  {decode:.2f} s   ({decode / len(paths) * 1000:.0f} ms per image)")
    print(f"decode alone (PIL, {WORKERS} threads):        {decode_par:.2f} s")
    print(f"import_manifest:                    {seconds:.2f} s   ({seconds / len(paths) * 1000:.0f} ms per image)")
    print(f"ratio import / decode:              {seconds / decode:.2f}x  (target <= 2x; "
          f"{seconds / decode_par:.2f}x against the threaded decode)")
    print(f"stored originals / sources:         {originals / source:.3f}x  (target <= 1.5x)")
    print(f"store with derivatives / sources:   {everything / source:.3f}x  ({everything / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
