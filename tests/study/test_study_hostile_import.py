"""Hostile and careless imports (issue 11, items 1, 2, 3 ids, 8): a corpus generated here, no binary files.

ZIP bombs, oversized or junk manifests, paths leading out of the upload, two manifests, duplicate member
names, over-long or multi-line ids and duplicate photographs across imports are each refused with one clear
message, quickly, with nothing extracted where the headers already tell, and no file left behind."""

from __future__ import annotations

import io
import struct
import tempfile
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from study.domain import cases, studies
from study.domain.config import parse_text
from study.services import investigator
from study.storage import db, settings
from study.storage.models import Case
from testsupport.studies import study_toml
from testsupport.studies import committed

# --- the corpus ------------------------------------------------------------------------------------------

def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _raw_zip(members: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A ZIP written byte by byte: (name, data as stored, crc32, declared uncompressed size, method), so the
    headers can say what an attacker wants (repeated names, '..', sizes that lie)."""
    out, central = io.BytesIO(), []
    for name, data, crc, size, method in members:
        offset, raw = out.tell(), name.encode()
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc, len(data), size, len(raw), 0))
        out.write(raw + data)
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, crc, len(data), size,
                                   len(raw), 0, 0, 0, 0, 0, offset) + raw)
    start, directory = out.tell(), b"".join(central)
    out.write(directory)
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(directory), start, 0))
    return out.getvalue()


def _stored(name: str, data: bytes) -> tuple[str, bytes, int, int, int]:
    return name, data, zlib.crc32(data), len(data), 0


def _zeros_member(name: str, mib: int) -> tuple[str, bytes, int, int, int]:
    """``mib`` MiB of zeros, deflated to about 1 KB per MiB without ever holding them (a ZIP bomb)."""
    zeros = bytes(1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)  # every later MiB compresses to the same bytes
    stream = first + block * (mib - 1) + c.flush()
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    return name, stream, crc, mib << 20, 8


MANIFEST = b"case_id,image_path,label\nP001,a.png,normal\n"


# --- fixtures --------------------------------------------------------------------------------------------

@pytest.fixture
def factory(tmp_path):
    """SQLite only: the ZIP checks do not depend on the database (the id tests run on both, via Session)."""
    url = f"sqlite:///{tmp_path / 'study.sqlite'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    yield db.session_factory(engine)
    engine.dispose()


@pytest.fixture
def places(tmp_path, monkeypatch):
    """(store root, scratch folder for the import's temporary files): both must stay empty after a refusal."""
    store, scratch = tmp_path / "store", tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv(settings.STORE_ENV, str(store))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return store, scratch


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def _study(factory) -> int:
    text = study_toml()
    with factory() as s:
        return committed(studies.create_study, s, parse_text(text), text).id


def _upload(factory, study_id, data: bytes, name: str = "cases.zip") -> tuple[int, list[str]]:
    return investigator.import_cases_upload(factory, study_id, name, data, "tester")


def _assert_nothing_left(factory, places):
    store, scratch = places
    assert _files(store) == [] and _files(scratch) == []
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 0


@pytest.fixture
def no_extraction(monkeypatch):
    """Fails the test if any member is extracted."""
    def refuse(*a, **kw):
        raise AssertionError("a member was extracted")
    monkeypatch.setattr(cases, "_extract", refuse)


# --- item 1: bounded imports -----------------------------------------------------------------------------

def test_good_zip_with_nested_manifest_imports(factory, places):
    sid = _study(factory)
    data = _zip({"study/manifest.csv": b"case_id,image_path,label\nP001,img/a.png,normal\nP002,img/b.png,amd\n",
                 "study/img/a.png": _png(1), "study/img/b.png": _png(2)})
    assert _upload(factory, sid, data) == (2, [])
    assert _files(places[1]) == []  # the extracted upload is gone


def test_zip_bomb_refused_from_the_headers_quickly_in_little_memory(factory, places, no_extraction):
    sid = _study(factory)
    data = _raw_zip([_stored("manifest.csv", MANIFEST), _zeros_member("a.png", 1024)])  # 1 GiB declared
    assert len(data) < 2 << 20
    tracemalloc.start()
    start = time.perf_counter()
    n, problems = _upload(factory, sid, data)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n == 0 and len(problems) == 1
    assert problems[0].startswith("a.png: compressed") and "100:1 limit (a ZIP bomb?)" in problems[0]
    assert seconds < 3 and peak < 50 << 20
    _assert_nothing_left(factory, places)


def test_total_size_and_member_count_limits(factory, places):
    sid = _study(factory)
    with factory() as s:
        small = cases.ImportLimits(max_total_bytes=1 << 20)
        data = _zip({"manifest.csv": MANIFEST, "a.png": np.random.default_rng(0).bytes(2 << 20)})
        with pytest.raises(cases.ManifestError) as err:
            committed(cases.import_zip, s, sid, data, limits=small)
        assert err.value.messages() == [".: unpacks to 2 MiB, over the 1 MiB limit: split the cases into several "
                                        "ZIPs, each with its own manifest.csv"]
    assert cases.LIMITS.max_total_bytes == 4 * 1024 ** 3 and cases.LIMITS.max_members == 20_000
    many = _raw_zip([_stored("manifest.csv", MANIFEST)] + [_stored(f"f{i}.png", b"") for i in range(20_001)])
    start = time.perf_counter()
    assert _upload(factory, sid, many) == (0, [".: 20002 entries, over the limit of 20000: split the cases into "
                                               "several ZIPs, each with its own manifest.csv"])
    assert time.perf_counter() - start < 3
    _assert_nothing_left(factory, places)


def test_oversized_manifest_refused_before_extracting(factory, places, no_extraction):
    sid = _study(factory)
    data = _zip({"manifest.csv": b"case_id,image_path,label\n" + b"P,a.png,normal\n" * 1_500_000})  # 22.5 MB
    start = time.perf_counter()
    n, problems = _upload(factory, sid, data)
    assert time.perf_counter() - start < 3
    assert (n, problems) == (0, ["manifest.csv: 22.5 MB, over the 10 MB limit: split the cases into several "
                                 "manifests and ZIPs"])
    _assert_nothing_left(factory, places)


def test_million_row_manifest_refused_before_the_images_are_extracted(factory, places, monkeypatch):
    sid = _study(factory)
    extracted = []
    real = cases._extract
    monkeypatch.setattr(cases, "_extract", lambda zf, info, *a: extracted.append(info.filename) or real(zf, info, *a))
    data = _zip({"manifest.csv": b"case_id,image_path,label\n" + b",x,y\n" * 1_000_000, "a.png": _png(1)})
    start = time.perf_counter()
    n, problems = _upload(factory, sid, data)
    assert time.perf_counter() - start < 5
    assert (n, problems) == (0, ["row 100002, column -: more than 100000 rows, over the limit: split the cases "
                                 "into several manifests and import them one after another"])
    assert extracted == ["manifest.csv"]
    _assert_nothing_left(factory, places)


def test_junk_rows_give_a_capped_list_and_the_count_without_decoding(factory, tmp_path, monkeypatch):
    sid = _study(factory)
    (tmp_path / "m.csv").write_text("case_id,image_path,label\n" + ",x.png,cancer\n" * 100_000)
    monkeypatch.setattr(cases, "_stage_all", lambda *a: pytest.fail("images decoded for a junk manifest"))
    start = time.perf_counter()
    with factory() as s, pytest.raises(cases.ManifestError) as err:
        committed(cases.import_manifest, s, sid, tmp_path / "m.csv", store_root=tmp_path / "store")
    assert time.perf_counter() - start < 30  # ~4 s on an idle 2-core machine; before the cap: 129 s, 8 GB
    e = err.value
    assert len(e.problems) == 100 and e.total == 300_000 and not e.images_checked
    lines = e.messages()
    assert len(lines) == 101 and lines[0] == "row 2, column case_id: empty"
    assert lines[-1].startswith("and 299900 more problem(s) not listed")
    assert len(str(e)) < 40_000
    assert not (tmp_path / "store").exists()


def test_csv_alone_upload_refused(factory, places):
    sid = _study(factory)
    assert _upload(factory, sid, MANIFEST, "m.csv") == (0, [investigator.CSV_ALONE])


def test_header_lying_about_the_size_refused(factory, places):
    sid = _study(factory)
    big = np.random.default_rng(1).bytes(2 << 20)
    name, data, crc, _, method = _stored("a.png", big)
    lying = _raw_zip([_stored("manifest.csv", MANIFEST), (name, data, crc, 1 << 20, method)])  # says 1 MiB
    n, problems = _upload(factory, sid, lying)
    assert n == 0 and len(problems) == 1 and problems[0].startswith(".: cannot be unpacked")
    _assert_nothing_left(factory, places)


# --- item 2: paths ---------------------------------------------------------------------------------------

def test_paths_must_stay_inside_the_manifest_folder_and_say_nothing_about_outside(factory, tmp_path):
    sid = _study(factory)
    folder = tmp_path / "upload"
    (folder / "sub").mkdir(parents=True)
    (folder / "ok.png").write_bytes(_png(1))
    (folder / "sub" / "in.png").write_bytes(_png(2))
    (tmp_path / "outside.png").write_bytes(_png(3))
    (folder / "link.png").symlink_to(tmp_path / "outside.png")
    (folder / "dead.png").symlink_to(tmp_path / "nowhere.png")
    (folder / "inlink.png").symlink_to(folder / "sub" / "in.png")
    (folder / "out").symlink_to(tmp_path, target_is_directory=True)
    rows = {"A": tmp_path / "outside.png", "B": tmp_path / "nowhere.png", "C": "../outside.png",
            "D": "../nowhere.png", "E": "link.png", "F": "dead.png", "G": "out/outside.png",
            "H": "sub/../../outside.png", "I": "missing.png", "J": "ok.png", "K": folder / "sub" / "in.png",
            "L": "sub/../inlink.png"}
    (folder / "manifest.csv").write_text("case_id,image_path,label\n"
                                         + "".join(f"{k},{v},normal\n" for k, v in rows.items()))
    with factory() as s, pytest.raises(cases.ManifestError) as err:
        committed(cases.import_manifest, s, sid, folder / "manifest.csv", store_root=tmp_path / "store")
    got = {p.row - 2: p.reason for p in err.value.problems}
    outside = "image_path must be a path inside the manifest's folder (relative, without '..', not a link leading out)"
    assert got == {**{i: outside for i in range(8)}, 8: "file not found: 'missing.png' (in the manifest's folder)",
                   11: "same image as row 12"}  # L is K through a link inside the folder: allowed, and the same
    assert str(tmp_path) not in str(err.value.messages())
    assert not (tmp_path / "store").exists()


def test_zip_member_paths_and_manifest_paths_confined(factory, places):
    sid = _study(factory)
    for bad in ("../evil.png", "/etc/evil.png", "a/../../evil.png"):
        n, problems = _upload(factory, sid, _raw_zip([_stored("manifest.csv", MANIFEST), _stored(bad, _png(1))]))
        assert n == 0 and problems == [f"{bad}: not a path inside the ZIP (absolute, or with '..'): zip the folder "
                                       "again from inside it"]
    out = _zip({"manifest.csv": b"case_id,image_path,label\nP001,../a.png,normal\nP002,/etc/hostname,normal\n",
                "a.png": _png(1)})
    n, problems = _upload(factory, sid, out)
    assert n == 0 and [p.split(": ", 1)[1] for p in problems] == [
        "image_path must be a path inside the manifest's folder (relative, without '..', not a link leading out)"] * 2
    _assert_nothing_left(factory, places)


def test_two_manifests_or_duplicate_names_refused(factory, places):
    sid = _study(factory)
    two = _zip({"manifest.csv": MANIFEST, "a/manifest.csv": MANIFEST, "a.png": _png(1)})
    assert _upload(factory, sid, two) == (0, [".: 2 manifest.csv files (manifest.csv, a/manifest.csv): keep exactly "
                                              "one, with image paths relative to its folder"])
    dup = _raw_zip([_stored("manifest.csv", MANIFEST), _stored("a.png", _png(1)), _stored("a.png", _png(2))])
    assert _upload(factory, sid, dup) == (0, ["a.png: appears more than once in the ZIP: each file must appear "
                                              "once; zip the folder again"])
    _assert_nothing_left(factory, places)


# --- item 3: ids and lengths, the same on SQLite and PostgreSQL ------------------------------------------

def test_ids_and_text_lengths_checked_the_same_on_every_database(Session, tmp_path):
    for i in range(4):
        (tmp_path / f"{i}.png").write_bytes(_png(10 + i))
    long_id, ok_id = "X" * 250, "Y" * 128
    (tmp_path / "bad.csv").write_text(
        "case_id,image_path,label,patient_pseudonym,split,severity\n"
        f"{long_id},0.png,normal,,,\n"
        '"A\nB",1.png,normal,,,\n'
        "C\tD,2.png,normal,P\x00,,\n"
        f"E,3.png,normal,{'p' * 101},{'s' * 51},{'v' * 201}\n", newline="")
    text = study_toml()
    with Session() as s:
        sid = committed(studies.create_study, s, parse_text(text), text).id
        with pytest.raises(cases.ManifestError) as err:
            committed(cases.import_manifest, s, sid, tmp_path / "bad.csv", store_root=tmp_path / "store",
                                  truth_columns=("severity",))
        got = [(p.row, p.column, p.reason) for p in err.value.problems]
        assert got == [
            (2, "case_id", "250 characters long, at most 128 allowed: use a shorter id"),
            (3, "case_id", "'A\\nB' contains a control or invisible character (newline, tab, ...): case ids must be "
                           "printable text"),
            (4, "case_id", "'C\\tD' contains a control or invisible character (newline, tab, ...): case ids must be "
                           "printable text"),
            (4, "patient_pseudonym", "'P\\x00' contains a control or invisible character (newline, tab, ...): "
                                     "remove it"),
            (5, "patient_pseudonym", "101 characters long, at most 100 allowed: shorten it"),
            (5, "split", "51 characters long, at most 50 allowed: shorten it"),
            (5, "severity", "201 characters long, at most 200 allowed: shorten it")]
        assert not (tmp_path / "store").exists()
        with pytest.raises(ValueError, match="at most 128"):
            committed(cases.add_case, s, sid, long_id, "ref", {"label": "normal"})
        s.rollback()
        (tmp_path / "good.csv").write_text("case_id,image_path,label,patient_pseudonym,split\n"
                                           f" {ok_id} ,0.png,normal,{'p' * 100},{'s' * 50}\n")
        (case,) = committed(cases.import_manifest, s, sid, tmp_path / "good.csv", store_root=tmp_path / "store")
        assert case.case_key == ok_id
    with Session() as s:
        assert s.scalars(select(Case.case_key)).all() == [ok_id]


# --- item 8: the same photograph across imports ----------------------------------------------------------

def test_same_photograph_in_a_later_upload_refused_naming_the_case(factory, places):
    sid = _study(factory)
    photo = _png(7)
    assert _upload(factory, sid, _zip({"manifest.csv": b"case_id,image_path,label\nP007,a.png,normal\n",
                                       "a.png": photo})) == (1, [])
    before = _files(places[0])
    again = _zip({"manifest.csv": b"case_id,image_path,label\nQ001,b.png,normal\nQ002,same.png,glaucoma\n",
                  "b.png": _png(8), "same.png": photo})
    assert _upload(factory, sid, again) == (0, ["row 3, column image_path: same photograph as existing case 'P007' "
                                                "of this study: remove the row or the existing case"])
    assert _files(places[0]) == before and _files(places[1]) == []
    with factory() as s:
        assert s.scalars(select(Case.case_key)).all() == ["P007"]


@pytest.mark.parametrize("model", [None, "demo", "local-dir:/nowhere"])
def test_demo_command_refuses_a_checkpoint_it_would_ignore(tmp_path, capsys, model):
    """Issue 11, item 11 for ``python -m study demo``: a checkpoint with the demo (or a local-dir:) model is an
    error (exit 2), before any database is created or any case rendered."""
    from study.cli import main

    target = tmp_path / "demo.sqlite"
    argv = ["demo", "--db", f"sqlite:///{target}", "--checkpoint", str(tmp_path / "garbage.safetensors")]
    assert main(argv + (["--model", model] if model else [])) == 2
    err = capsys.readouterr().err
    assert "--checkpoint is for an open_clip architecture" in err and "drop --checkpoint" in err
    assert not target.exists()


def test_an_import_being_checked_holds_up_no_reader(Session, make_study, tmp_path, monkeypatch):
    """While a large import's images are being checked (held here at the decoding step), a reader of another
    study on the same server submits at once: the importer's checks run in a read-only transaction and the
    write lock is taken only to store the checked cases (before: every submit waited for the whole import,
    up to the 30 s busy timeout and then failed)."""
    import threading

    from study.domain import workflow
    from testsupport.studies import VALID_ANSWER

    _live, _cases, codes = make_study("crossover", n_cases=4, n_readers=2)
    reader_id = next(iter(codes))
    with Session() as s:
        text = study_toml("crossover", name="Second study")
        other = committed(studies.create_study, s, parse_text(text), text).id
    (tmp_path / "photos" / "amd").mkdir(parents=True)
    for i in range(2):
        (tmp_path / "photos" / "amd" / f"a{i}.png").write_bytes(_png(i))
    entered, release, result = threading.Event(), threading.Event(), {}
    real = cases._stage_all

    def held(paths, staging):
        entered.set()
        release.wait(60)
        return real(paths, staging)

    monkeypatch.setattr(cases, "_stage_all", held)

    def run():
        with Session() as s:
            result["added"] = len(committed(cases.import_folder, s, other, tmp_path / "photos", store_root=tmp_path / "st"))

    worker = threading.Thread(target=run)
    worker.start()
    try:
        assert entered.wait(60)
        start = time.perf_counter()
        with Session() as s:
            item = committed(workflow.next_item, s, reader_id)
            committed(workflow.submit, s, reader_id, item.assignment_id, VALID_ANSWER, "while-importing")
        took = time.perf_counter() - start
    finally:
        release.set()
        worker.join(60)
    assert took < 5 and result == {"added": 2}


def test_zip_problems_name_members_never_the_servers_folder(factory, places):
    """Issue 20: a link or a file that is not an image used to be reported with the server's temporary path."""
    sid = _study(factory)
    data = _zip({"manifest.csv": b"case_id,image_path,label\nP001,link.png,normal\nP002,img/b.png,amd\n",
                 "link.png": b"../../etc/passwd", "img/b.png": b"not a png at all"})
    added, problems = _upload(factory, sid, data)
    assert added == 0 and len(problems) == 2
    assert problems[0].startswith("row 2, column image_path: ") and "link.png" in problems[0]
    assert problems[1].startswith("row 3, column image_path: ") and "img/b.png" in problems[1]
    text = "\n".join(problems)
    assert "revision-import-" not in text and str(places[1]) not in text and "/tmp" not in text
    _assert_nothing_left(factory, places)


def test_an_empty_zip_says_it_is_empty(factory, places):
    sid = _study(factory)
    assert _upload(factory, sid, _zip({})) == (0, [
        ".: the ZIP is empty: zip the folder that holds manifest.csv (columns case_id, image_path, label) and the "
        "images"])
    _assert_nothing_left(factory, places)
