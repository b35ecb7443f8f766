"""Server memory for a case upload at the size cap: importing a ZIP of real-size photographs close to
``server.maxUploadSize`` (200 MB) the way the set-up page does
(``study.services.investigator.import_cases_upload``: the upload's bytes in memory, checked from the ZIP
headers, extracted member by member, each photograph decoded once), and a 2 MB ZIP bomb (2 GiB of zeros)
that must be refused before extraction.

Each case runs in a fresh Python process that first imports the app's modules and opens the database;
its peak resident memory (VmHWM of its own address space; ru_maxrss would carry over this script's own
peak through fork and exec) is compared with a baseline process that does the same and then
only holds the upload's bytes, so the figure is what the import itself adds. Target: at most 500 MB.

    nice -n 10 .venv/bin/python bench/bench_import_memory.py [--mb 190]

Photographs: the 12 real IDRiD photographs in ../shared/real/idrid where present, each re-encoded with a
distinct 32-pixel mark so that no two are the same photograph (the import refuses duplicates); else
synthetic 3000 x 2500 JPEGs. Nothing is written inside the repository.
"""
from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGET_MB = 500.0

CHILD = r"""
import json, sys, time
sys.path.insert(0, {repo!r})
from study.storage import db
from study.domain.config import parse_text
from study.services import investigator
from study.domain.studies import create_study
from testsupport.studies import study_toml, committed
url = "sqlite:///" + {tmp!r} + "/study.sqlite"
db.upgrade(url)
factory = db.session_factory(db.make_engine(url))
with factory() as s:
    study = committed(create_study, s, parse_text(study_toml("crossover")), study_toml("crossover"))
    sid = study.id
data = open({zip_path!r}, "rb").read()
t0 = time.perf_counter()
n, problems = (0, []) if {baseline!r} else investigator.import_cases_upload(factory, sid, "cases.zip", data, "bench")
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({{"rss_mb": hwm / 1024, "cases": n,
                  "problems": problems[:2], "seconds": time.perf_counter() - t0}}))
"""


def _photos(tmp: Path, target_bytes: int) -> list[bytes]:
    """Distinct JPEGs adding up to about ``target_bytes``."""
    import numpy as np
    from PIL import Image

    from testsupport.app import real_photos

    sources = real_photos()
    out: list[bytes] = []
    i = 0
    rng = np.random.default_rng(0)
    while sum(map(len, out)) < target_bytes:
        if sources:
            im = Image.open(sources[i % len(sources)]).convert("RGB")
            mark = Image.new("RGB", (32, 32), ((37 * i) % 256, (91 * i) % 256, 255))
            im.paste(mark, (400 + 32 * (i % 40), 400 + 32 * (i // 40)))  # a distinct photograph each time
        else:
            arr = rng.integers(0, 255, (2500, 3000, 3), dtype=np.uint8)
            im = Image.fromarray(arr)
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=92)
        out.append(buf.getvalue())
        i += 1
    return out


def _zip_of_photos(path: Path, photos: list[bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        rows = ["case_id,image_path,label"] + [f"C{i:04d},img/{i:04d}.jpg,normal" for i in range(len(photos))]
        zf.writestr("manifest.csv", "\n".join(rows) + "\n")
        for i, data in enumerate(photos):
            zf.writestr(f"img/{i:04d}.jpg", data)


def _zip_bomb(path: Path) -> None:
    """A ZIP of about 2 MB whose image member unpacks to 2 GiB of zeros (deflated ~1000:1)."""
    chunk = b"\0" * (1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.csv", "case_id,image_path,label\nB0001,img/zero.jpg,normal\n")
        with zf.open("img/zero.jpg", "w", force_zip64=True) as fh:
            for _ in range(2048):
                fh.write(chunk)


def _run(tmp: Path, zip_path: Path, baseline: bool) -> dict:
    work = Path(tempfile.mkdtemp(dir=tmp))
    code = CHILD.format(repo=str(REPO), tmp=str(work), zip_path=str(zip_path), baseline=baseline)
    env = {"REVISION_STORE_ROOT": str(work / "store"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=int, default=190, help="size of the photograph upload in MB (cap: 200)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-import-memory-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        photos = _photos(tmp, args.mb << 20)
        good = tmp / "photos.zip"
        _zip_of_photos(good, photos)
        bomb = tmp / "bomb.zip"
        _zip_bomb(bomb)
        print(f"bench_import_memory: made the uploads in {time.perf_counter() - t0:.0f} s: "
              f"{good.stat().st_size / 2**20:.0f} MB of {len(photos)} photographs; "
              f"a {bomb.stat().st_size / 2**20:.0f} MB ZIP bomb")
        base = _run(tmp, good, baseline=True)
        real = _run(tmp, good, baseline=False)
        bomb_base = _run(tmp, bomb, baseline=True)
        bomb_run = _run(tmp, bomb, baseline=False)
    added = real["rss_mb"] - base["rss_mb"]
    print(f"  baseline (modules, database, the upload's bytes held): peak {base['rss_mb']:7.1f} MB")
    print(f"  import of {real['cases']} photographs ({real['seconds']:.1f} s):  peak {real['rss_mb']:7.1f} MB   "
          f"added {added:+.1f} MB = {real['rss_mb'] / base['rss_mb']:.2f}x the baseline "
          f"(target: added <= {TARGET_MB:.0f} MB: {'MET' if added <= TARGET_MB else 'NOT MET'})"
          + (f"; problems: {real['problems']}" if real["problems"] else ""))
    print(f"  ZIP bomb ({bomb_run['seconds']:.2f} s): peak {bomb_run['rss_mb']:7.1f} MB, "
          f"added {bomb_run['rss_mb'] - bomb_base['rss_mb']:+.1f} MB vs its own baseline; "
          f"imported {bomb_run['cases']}; refusal: {bomb_run['problems'][:1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
