"""Manifest import: all or nothing with every problem listed; images stored stripped under their sha256."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from study.domain import cases, studies
from study.domain.config import parse_text
from study.storage.models import AuditEvent, Case
from testsupport.studies import study_toml, committed


def _image(path, seed, exif=False):
    arr = np.random.default_rng(seed).integers(0, 255, (32, 40, 3), dtype=np.uint8)
    im = Image.fromarray(arr)
    if exif:
        ex = Image.Exif()
        ex[0x010E] = "PATIENT NAME John Doe"  # ImageDescription
        im.save(path, exif=ex)
    else:
        im.save(path)
    return path


def _study(s):
    t = study_toml()
    return committed(studies.create_study, s, parse_text(t), t)


def test_import_good_manifest(Session, tmp_path):
    (tmp_path / "img").mkdir()
    _image(tmp_path / "img" / "a.jpg", 1, exif=True)
    _image(tmp_path / "img" / "b.png", 2)
    (tmp_path / "m.csv").write_text("case_id,image_path,label,findings,eye,patient_pseudonym,split\n"
                                    "A,img/a.jpg,amd,amd;glaucoma,OD,P1,test\nB,img/b.png,normal,,left,,\n")
    store = tmp_path / "store"
    with Session() as s:
        st = _study(s)
        added = committed(cases.import_manifest, s, st.id, tmp_path / "m.csv", store_root=store)
        assert [c.case_key for c in added] == ["A", "B"]
        a = s.scalar(select(Case).where(Case.case_key == "A"))
        assert a.reference_labels == {"label": "amd", "findings": ["amd", "glaucoma"]}
        assert (a.eye, a.patient_pseudonym, a.split) == ("right", "P1", "test")
        stored = cases.study_store(st.id, store) / a.image_ref
        data = stored.read_bytes()
        assert a.image_ref == f"{a.image_sha256}.jpg" and hashlib.sha256(data).hexdigest() == a.image_sha256
        assert b"John Doe" not in data and b"Exif" not in data
        b = s.scalar(select(Case).where(Case.case_key == "B"))
        assert b.image_ref == f"{b.image_sha256}.png"
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "case.added")) == 2


def test_bad_manifest_rejected_whole_with_every_problem(Session, tmp_path):
    _image(tmp_path / "ok.png", 1)
    _image(tmp_path / "dup.png", 1)  # same pixels as ok.png
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    (tmp_path / "m.csv").write_text("case_id,image_path,label,findings,eye\n"
                                    "A,ok.png,amd,,\n"
                                    "A,missing.png,cancer,amd;warts,up\n"
                                    ",broken.png,normal,,\n"
                                    "D,dup.png,normal,,\n")
    with Session() as s:
        st = _study(s)
        with pytest.raises(cases.ManifestError) as err:
            committed(cases.import_manifest, s, st.id, tmp_path / "m.csv", store_root=tmp_path / "store")
        got = {(p.row, p.column) for p in err.value.problems}
        assert got == {(3, "case_id"), (3, "label"), (3, "findings"), (3, "eye"), (3, "image_path"),
                       (4, "case_id"), (4, "image_path"), (5, "image_path")}
        assert "row 3, column label" in str(err.value) and "nothing imported" in str(err.value)
        assert s.scalar(select(func.count()).select_from(Case)) == 0
        assert not (tmp_path / "store").exists()


def test_manifest_columns_checked_and_existing_ids_refused(Session, tmp_path):
    _image(tmp_path / "ok.png", 1)
    (tmp_path / "bad.csv").write_text("case,image_path,colour\nA,ok.png,red\n")
    (tmp_path / "m.csv").write_text("case_id,image_path,label\nA,ok.png,amd\n")
    with Session() as s:
        st = _study(s)
        with pytest.raises(cases.ManifestError) as err:
            committed(cases.import_manifest, s, st.id, tmp_path / "bad.csv", store_root=tmp_path / "store")
        assert {(p.row, p.column) for p in err.value.problems} == {(1, "case_id"), (1, "label"), (1, "case"),
                                                                  (1, "colour")}
        committed(cases.import_manifest, s, st.id, tmp_path / "m.csv", store_root=tmp_path / "store")
        with pytest.raises(cases.ManifestError, match="already a case"):
            committed(cases.import_manifest, s, st.id, tmp_path / "m.csv", store_root=tmp_path / "store")
        assert s.scalar(select(func.count()).select_from(Case)) == 1
