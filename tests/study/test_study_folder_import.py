"""Folder import: one sub-folder per reference label, case id = file stem; all or nothing, every problem listed."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import func, select

from study.domain import cases
from study.cli import main
from study.storage.models import AuditEvent, Case, Study
from tests.study.test_study_cases import _image, _study
from testsupport.studies import committed


def _good_folder(root):
    for sub in ("amd", "glaucoma", "normal"):
        (root / sub).mkdir(parents=True)
    _image(root / "amd" / "A1.jpg", 1, exif=True)
    _image(root / "amd" / "A2.PNG", 2)
    _image(root / "glaucoma" / "G1.tif", 3)
    _image(root / "normal" / "N1.png", 4)
    (root / "normal" / ".DS_Store").write_bytes(b"junk")  # hidden: ignored
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.txt").write_text("ignored")
    return root


def test_import_good_folder(Session, tmp_path):
    folder = _good_folder(tmp_path / "cases")
    store = tmp_path / "store"
    with Session() as s:
        st = _study(s)
        added = committed(cases.import_folder, s, st.id, folder, store_root=store)
        assert [c.case_key for c in added] == ["A1", "A2", "G1", "N1"]
        got = {c.case_key: c.reference_labels for c in s.scalars(select(Case))}
        assert got == {"A1": {"label": "amd", "findings": []}, "A2": {"label": "amd", "findings": []},
                       "G1": {"label": "glaucoma", "findings": []}, "N1": {"label": "normal", "findings": []}}
        a1 = s.scalar(select(Case).where(Case.case_key == "A1"))
        data = (cases.study_store(st.id, store) / a1.image_ref).read_bytes()
        assert a1.image_ref == f"{a1.image_sha256}.jpg" and hashlib.sha256(data).hexdigest() == a1.image_sha256
        assert b"John Doe" not in data and b"Exif" not in data
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "case.added")) == 4
        ev = s.scalar(select(AuditEvent).where(AuditEvent.action == "cases.imported"))
        assert ev.after == {"folder": str(folder), "cases": 4}
        with pytest.raises(cases.ManifestError, match="already a case"):  # re-import refused whole
            committed(cases.import_folder, s, st.id, folder, store_root=store)
        assert s.scalar(select(func.count()).select_from(Case)) == 4


def test_bad_folder_rejected_whole_with_every_problem(Session, tmp_path):
    folder = _good_folder(tmp_path / "cases")
    (folder / "amd" / "broken.png").write_bytes(b"not an image at all")
    (folder / "cancer").mkdir()
    _image(folder / "cancer" / "C1.png", 5)
    _image(folder / "normal" / "A1.png", 6)  # stem A1 is already amd/A1.jpg
    with Session() as s:
        st = _study(s)
        with pytest.raises(cases.ManifestError) as err:
            committed(cases.import_folder, s, st.id, folder, store_root=tmp_path / "store")
        problems = err.value.problems
        assert all(isinstance(p, cases.FolderProblem) for p in problems)
        assert sorted(p.path for p in problems) == ["amd/broken.png", "cancer/C1.png", "normal/A1.png"]
        by_path = {p.path: p.reason for p in problems}
        assert "label sub-folder: 'cancer' is not one of" in by_path["cancer/C1.png"]
        assert "'A1' repeats amd/A1.jpg" in by_path["normal/A1.png"]
        assert by_path["amd/broken.png"].startswith("image: ")
        msg = str(err.value)
        assert "nothing imported" in msg and "3 problem(s)" in msg and "normal/A1.png: case id" in msg
        assert s.scalar(select(func.count()).select_from(Case)) == 0
        assert not (tmp_path / "store").exists()


def test_folder_layout_problems(Session, tmp_path):
    outside = _image(tmp_path / "outside.png", 7)
    folder = _good_folder(tmp_path / "cases")
    (folder / "amd" / "notes.txt").write_text("x")
    (folder / "loose.png").write_bytes(outside.read_bytes())
    (folder / "rvo").mkdir()
    (folder / "glaucoma" / "link.png").symlink_to(outside)
    (folder / "normal" / "inside.png").symlink_to(folder / "glaucoma" / "G1.tif")  # inside: allowed (dup image)
    empty = tmp_path / "empty"
    empty.mkdir()
    with Session() as s:
        st = _study(s)
        with pytest.raises(cases.ManifestError) as err:
            committed(cases.import_folder, s, st.id, folder, store_root=tmp_path / "store")
        by_path = {p.path: p.reason for p in err.value.problems}
        assert set(by_path) == {"amd/notes.txt", "loose.png", "rvo", "glaucoma/link.png", "normal/inside.png"}
        assert "not an image file type" in by_path["amd/notes.txt"]
        assert "outside a label sub-folder" in by_path["loose.png"]
        assert "empty" in by_path["rvo"]
        assert "outside the folder" in by_path["glaucoma/link.png"]
        assert "same image as glaucoma/G1.tif" in by_path["normal/inside.png"]
        with pytest.raises(cases.ManifestError, match="the folder has no images"):
            committed(cases.import_folder, s, st.id, empty, store_root=tmp_path / "store")
        assert s.scalar(select(func.count()).select_from(Case)) == 0


def test_cli_folder_import(Session, db_url, tmp_path, capsys):
    folder = _good_folder(tmp_path / "cases")
    with Session() as s:
        name = _study(s).name
    store = str(tmp_path / "store")
    assert main(["import-cases", "--study", name, "--folder", str(folder), "--db", db_url, "--store", store]) == 0
    assert "imported 4 case(s)" in capsys.readouterr().out
    bad = tmp_path / "bad"
    (bad / "cancer").mkdir(parents=True)
    _image(bad / "cancer" / "x.png", 9)
    assert main(["import-cases", "--study", name, "--folder", str(bad), "--db", db_url, "--store", store]) == 2
    assert "cancer/x.png: label sub-folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the manifest and --folder are mutually exclusive
        main(["import-cases", "m.csv", "--folder", str(folder), "--db", db_url])
    with Session() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 4
        assert s.scalar(select(func.count()).select_from(Study)) == 1
