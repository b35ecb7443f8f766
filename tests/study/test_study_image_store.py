"""The study's image store: each image decoded once at import, kept as its own JPEG data without metadata
(orientation in the name), display derivatives made once, and nothing left behind by a failed import."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from revision_core.imageio import load_image, strip_to_png_bytes
from study.domain import cases, image_links
from tests.study.helpers import load_case_image
from testsupport.studies import committed
from study.domain.reader_screen import case_display
from study.services.reader import link_key
from study.jobs import precompute
from study.storage import settings
from study.storage.models import Case
from tests.study.test_study_cases import _study
from tests.test_imageio import _assert_no_metadata, _metadata_jpeg

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "real" / "idrid"


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _manifest(tmp_path: Path, images: dict[str, Path]) -> Path:
    m = tmp_path / "m.csv"
    m.write_text("case_id,image_path,label\n" + "".join(f"{k},{p},diabetic_retinopathy\n" for k, p in images.items()))
    return m


def _px(img) -> np.ndarray:
    return np.asarray(img)


@pytest.mark.skipif(not REAL.is_dir(), reason=f"real photographs absent ({REAL}); they live beside the project")
def test_real_photographs_kept_small_metadata_free_and_pixel_identical(tmp_path):
    from study.storage import db

    url = f"sqlite:///{tmp_path / 'study.sqlite'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    sources = sorted(REAL.glob("*.jpg"))[:3]
    store_root = tmp_path / "store"
    with db.session_factory(engine)() as s:
        st = _study(s)
        added = committed(cases.import_manifest, s, st.id, _manifest(tmp_path, {p.stem: p for p in sources}),
                                      store_root=store_root, paths_outside=True)  # trusted local photographs
        store = cases.study_store(st.id, store_root)
        for case, src in zip(added, sources):
            stored = store / case.image_ref
            data = stored.read_bytes()
            assert case.image_ref == f"{case.image_sha256}.jpg"
            assert len(data) <= 1.5 * src.stat().st_size
            _assert_no_metadata(data)
            original = load_image(src)
            assert np.array_equal(_px(load_case_image(st.id, case.image_ref, store_root)), _px(original))
            shown = cases.display_files(st.id, case.image_ref, store_root)
            assert shown.full == stored and (shown.width, shown.height) == original.size
            screen = Image.open(shown.screen)
            assert max(screen.size) == 2048 and screen.size[0] > screen.size[1]
    engine.dispose()


def test_orientation_6_jpeg_round_trip_and_upright_derivatives(Session, tmp_path, monkeypatch):
    src = _metadata_jpeg(tmp_path / "o6.jpg", 6)
    upright = load_image(src)
    assert upright.size == (32, 48)  # stored 48 x 32, shown turned
    store_root = tmp_path / "store"
    with Session() as s:
        st = _study(s)
        (case,) = committed(cases.import_manifest, s, st.id, _manifest(tmp_path, {"A": src}), store_root=store_root)
        assert case.image_ref == f"{case.image_sha256}.o6.jpg"
        store = cases.study_store(st.id, store_root)
        _assert_no_metadata((store / case.image_ref).read_bytes())
        assert Image.open(store / case.image_ref).size == (48, 32)
        assert np.array_equal(_px(load_case_image(st.id, case.image_ref, store_root)), _px(upright))
        monkeypatch.setenv(settings.STORE_ENV, str(store_root))
        assert np.array_equal(_px(load_image(precompute._image_path(case, store))), _px(upright))
        shown = cases.display_files(st.id, case.image_ref, store_root)
        assert shown.full.name == f"{case.image_sha256}.o6.full.jpg" and (shown.width, shown.height) == (32, 48)
        key = link_key(Session)
        page = case_display(key, st.id, case.image_ref, reader_id=7, code_version=1)  # in the configured store
        assert (page.width, page.height) == (32, 48)
        link = image_links.verify(key, page.full_url.rsplit("/", 1)[1])
        assert (link.reader_id, link.code_version) == (7, 1)
        assert cases.study_store(link.study_id, store_root) / link.file_name == shown.full
        for f in (shown.screen, shown.full):
            im = Image.open(f)
            assert im.size == (32, 48) and not im.getexif() and "icc_profile" not in im.info
            assert np.abs(_px(im.convert("RGB")).astype(int) - _px(upright)).mean() < 12
        assert set(_files(store)) == {case.image_ref, shown.screen.name, shown.full.name}


def test_broken_jpeg_is_a_row_problem_and_leaves_nothing(Session, tmp_path):
    good = _metadata_jpeg(tmp_path / "good.jpg")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(good.read_bytes()[:-200])
    store_root = tmp_path / "store"
    with Session() as s:
        st = _study(s)
        with pytest.raises(cases.ManifestError) as err:
            committed(cases.import_manifest, s, st.id, _manifest(tmp_path, {"A": good, "B": broken}), store_root=store_root)
        assert [(p.row, p.column) for p in err.value.problems] == [(3, "image_path")]
        assert "broken.jpg" in err.value.problems[0].reason
        assert not store_root.exists()
        assert s.scalar(select(func.count()).select_from(Case)) == 0


@pytest.mark.parametrize("fail_at", ["add_case", "commit"])
def test_db_failure_in_store_pass_leaves_no_orphan_files(Session, tmp_path, monkeypatch, fail_at):
    first = _metadata_jpeg(tmp_path / "first.jpg")
    store_root = tmp_path / "store"
    with Session() as s:
        st = _study(s)
        (kept,) = committed(cases.import_manifest, s, st.id, _manifest(tmp_path, {"K": first}), store_root=store_root)
        before = _files(store_root)
        Image.new("RGB", (20, 10), (1, 2, 3)).save(tmp_path / "new.png")
        Image.new("RGB", (20, 10), (4, 5, 6)).save(tmp_path / "new2.png")
        m = tmp_path / "m2.csv"  # (K's photograph again would be refused as a duplicate before any write)
        m.write_text(f"case_id,image_path,label\nA,{tmp_path / 'new.png'},normal\nB,new2.png,normal\n")
        if fail_at == "add_case":
            real, calls = cases.add_case, []

            def failing(*a, **kw):
                calls.append(1)
                if len(calls) == 2:
                    raise RuntimeError("database went away")
                return real(*a, **kw)
            monkeypatch.setattr(cases, "add_case", failing)
        else:
            def failing_commit():
                raise RuntimeError("database went away")
            monkeypatch.setattr(s, "commit", failing_commit)
        with pytest.raises(RuntimeError, match="went away"):
            committed(cases.import_manifest, s, st.id, m, store_root=store_root)
        monkeypatch.undo()
        assert _files(store_root) == before  # K's files are still there, nothing new
        assert [c.case_key for c in s.scalars(select(Case))] == ["K"]
        assert np.array_equal(_px(load_case_image(st.id, kept.image_ref, store_root)), _px(load_image(first)))


def test_same_photograph_again_refused_naming_the_case_store_untouched(Session, tmp_path):
    src = _metadata_jpeg(tmp_path / "a.jpg")
    store_root = tmp_path / "store"
    with Session() as s:
        st = _study(s)
        (a,) = committed(cases.import_manifest, s, st.id, _manifest(tmp_path, {"A": src}), store_root=store_root)
        stored = cases.study_store(st.id, store_root) / a.image_ref
        mtime, before = stored.stat().st_mtime_ns, _files(store_root)
        with pytest.raises(cases.ManifestError, match="same photograph as existing case 'A'"):
            committed(cases.import_manifest, s, st.id, _manifest(tmp_path, {"B": src}), store_root=store_root)
        assert stored.stat().st_mtime_ns == mtime and _files(store_root) == before
        assert not [p for p in stored.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_screen_derivative_longest_side_2048_upright(Session, tmp_path):
    arr = np.zeros((2300, 2600, 3), np.uint8)
    arr[:, :1300] = (250, 0, 0)  # left half red
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 CCW to display: the red half goes to the bottom
    Image.fromarray(arr).save(tmp_path / "big.jpg", quality=90, exif=exif)
    Image.fromarray(arr[:100, :150]).save(tmp_path / "small.png")
    store_root = tmp_path / "store"
    with Session() as s:
        st = _study(s)
        big, small = committed(cases.import_manifest, s, st.id, _manifest(tmp_path, {"B": tmp_path / "big.jpg",
                                                                             "S": tmp_path / "small.png"}),
                                           store_root=store_root)
        shown = cases.display_files(st.id, big.image_ref, store_root)
        screen = Image.open(shown.screen).convert("RGB")
        assert screen.size == (1812, 2048) and (shown.width, shown.height) == (2300, 2600)
        assert _px(screen)[2000, 900][0] > 200 and _px(screen)[50, 900][0] < 50  # red at the bottom
        little = cases.display_files(st.id, small.image_ref, store_root)
        assert Image.open(little.screen).size == (150, 100) and little.full.name.endswith(".full.jpg")


def test_old_png_refs_still_load_and_get_derivatives_lazily(Session, tmp_path):
    import hashlib

    src = tmp_path / "old.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (30, 50, 3), dtype=np.uint8)).save(src)
    data = strip_to_png_bytes(load_image(src))  # what the store held before
    sha = hashlib.sha256(data).hexdigest()
    store_root = tmp_path / "store"
    with Session() as s:
        st = _study(s)
        store = cases.study_store(st.id, store_root)
        store.mkdir(parents=True)
        (store / f"{sha}.png").write_bytes(data)
        case = committed(cases.add_case, s, st.id, "OLD", f"{sha}.png", {"label": "normal"}, image_sha256=sha)
        assert np.array_equal(_px(load_case_image(st.id, case.image_ref, store_root)), _px(load_image(src)))
        assert np.array_equal(_px(load_image(precompute._image_path(case, store))), _px(load_image(src)))
        first = cases.display_files(st.id, case.image_ref, store_root)
        assert (first.screen.name, first.full.name) == (f"{sha}.screen.jpg", f"{sha}.full.jpg")
        assert (first.width, first.height) == (50, 30)
        stamp = first.full.stat().st_mtime_ns
        again = cases.display_files(st.id, case.image_ref, store_root)
        assert again == first and first.full.stat().st_mtime_ns == stamp  # made once
        path_ref = cases.display_files(st.id, str(src), store_root)  # a case that references a path
        assert Image.open(path_ref.full).size == (50, 30) and path_ref.full.parent == store
        (store / "legacy name.png").write_bytes(src.read_bytes())  # in the store under another name
        legacy = cases.display_files(st.id, "legacy name.png", store_root)
        assert legacy.full == path_ref.full and legacy.screen == path_ref.screen  # keyed by the same bytes


def test_truth_columns_go_to_reference_labels(Session, tmp_path, monkeypatch):
    Image.new("RGB", (8, 8), (5, 5, 5)).save(tmp_path / "a.png")
    Image.new("RGB", (8, 8), (9, 9, 9)).save(tmp_path / "b.png")
    m = tmp_path / "m.csv"
    m.write_text("case_id,image_path,label,severity,laterality_ok,colour\n"
                 "A,a.png,normal, 3 ,yes,\nB,b.png,amd,,,red\n")
    real = cases.study_config

    class WithTruth:
        def __init__(self, config):
            self.config = config
            self.truth_columns = ("severity", "laterality_ok")

        def __getattr__(self, name):
            return getattr(self.config, name)

    with Session() as s:
        st = _study(s)
        with pytest.raises(cases.ManifestError) as err:
            committed(cases.import_manifest, s, st.id, m, store_root=tmp_path / "store")
        assert {p.column for p in err.value.problems} == {"severity", "laterality_ok", "colour"}
        monkeypatch.setattr(cases, "study_config", lambda study: WithTruth(real(study)))
        with pytest.raises(cases.ManifestError) as err:
            committed(cases.import_manifest, s, st.id, m, store_root=tmp_path / "store")
        assert [(p.row, p.column) for p in err.value.problems] == [(1, "colour")]
        m.write_text("case_id,image_path,label,severity,laterality_ok\nA,a.png,normal, 3 ,yes\nB,b.png,amd,,\n")
        a, b = committed(cases.import_manifest, s, st.id, m, store_root=tmp_path / "store")
        assert a.reference_labels == {"label": "normal", "findings": [], "severity": "3", "laterality_ok": "yes"}
        assert b.reference_labels == {"label": "amd", "findings": []}
    assert os.path.isdir(tmp_path / "store")
