"""Precompute with a real (tiny) model: stored with its version, resumable, a bad image reported not fatal."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from study.domain import cases, studies
from study.storage import db
from study.jobs import precompute
from study.domain.config import parse_text
from study.storage.models import AIOutput, AuditEvent
from tests.study.helpers import study_toml, committed


@pytest.fixture(scope="module")
def tiny_model(tiny_cnn_checkpoint):
    from revision_core.model import load_model

    return load_model("revision-tiny-cnn", tiny_cnn_checkpoint, device="cpu")


def test_precompute_stores_versioned_resumable_and_reports_failures(tmp_path, tiny_model):
    _engine, Session = db.open_database(f"sqlite:///{tmp_path / 's.sqlite'}")
    rng = np.random.default_rng(0)
    lines = ["case_id,image_path,label"]
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        lines.append(f"c{i},{i}.png,normal")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    store = tmp_path / "store"
    with Session() as s:
        t = study_toml()
        st = committed(studies.create_study, s, parse_text(t), t)
        imported = committed(cases.import_manifest, s, st.id, tmp_path / "m.csv", store_root=store)
        # corrupt one stored image after import: precompute must report it and go on
        (cases.study_store(st.id, store) / imported[3].image_ref).write_bytes(b"garbage")
        first = precompute.precompute(s, st.id, loaded=tiny_model, store_root=store, batch_size=2)
        assert first.stored == 4 and list(first.failed) == ["c3"] and first.already_done == 0
        assert first.model_version == tiny_model.card.version
        rows = list(s.scalars(select(AIOutput)))
        assert len(rows) == 4
        for row in rows:
            assert row.model_version == tiny_model.card.version and row.model_card["version"] == row.model_version
            assert set(row.probabilities) == {"diabetic_retinopathy", "amd", "glaucoma", "rvo", "pathologic_myopia"}
            assert all(0.0 <= p <= 1.0 for p in row.probabilities.values())
        assert studies.get_study(s, st.id).model_version == tiny_model.card.version
        again = precompute.precompute(s, st.id, loaded=tiny_model, store_root=store)
        assert (again.stored, again.already_done, list(again.failed)) == (0, 4, ["c3"])
        assert s.scalar(select(func.count()).select_from(AIOutput)) == 4
        assert s.scalar(select(func.count()).select_from(AuditEvent)
                        .where(AuditEvent.action == "ai_output.stored")) == 4


def test_precompute_saliency_for_a_saliency_arm(tmp_path, tiny_model):
    _engine, Session = db.open_database(f"sqlite:///{tmp_path / 's.sqlite'}")
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "m.csv").write_text("case_id,image_path,label\nA,a.png,amd\n")
    with Session() as s:
        t = study_toml("multi_arm")
        st = committed(studies.create_study, s, parse_text(t), t)
        committed(cases.import_manifest, s, st.id, tmp_path / "m.csv", store_root=tmp_path / "store")
        report = precompute.precompute(s, st.id, loaded=tiny_model, store_root=tmp_path / "store")
        assert report.stored == 1 and report.failed == {} and report.saliency_failed == {}
        row = s.scalar(select(AIOutput))
        assert row.saliency_png.startswith(b"\x89PNG")
        assert row.model_card["saliency"] == {"method": "integrated_gradients", "steps": 32}  # the default
        assert row.model_card["version"] == tiny_model.card.version
        overlay = Image.open(__import__("io").BytesIO(row.saliency_png))
        assert overlay.size == (64, 64)


def test_saliency_failure_reported_not_fatal(tmp_path, tiny_model, monkeypatch):
    _engine, Session = db.open_database(f"sqlite:///{tmp_path / 's.sqlite'}")
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "m.csv").write_text("case_id,image_path,label\nA,a.png,amd\n")

    def boom(*a, **k):
        raise RuntimeError("no layer")

    monkeypatch.setattr(precompute, "_overlay", boom)
    with Session() as s:
        t = study_toml("multi_arm")
        st = committed(studies.create_study, s, parse_text(t), t)
        committed(cases.import_manifest, s, st.id, tmp_path / "m.csv", store_root=tmp_path / "store")
        report = precompute.precompute(s, st.id, loaded=tiny_model, store_root=tmp_path / "store")
        assert report.stored == 1 and report.saliency_failed == {"A": "RuntimeError: no layer"}
        assert s.scalar(select(AIOutput)).saliency_png is None


def test_study_chooses_the_saliency_method(tmp_path, tiny_model, monkeypatch):
    _engine, Session = db.open_database(f"sqlite:///{tmp_path / 's.sqlite'}")
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "m.csv").write_text("case_id,image_path,label\nA,a.png,amd\n")
    seen = []

    def fake(loaded, classifier, path, probs, method, steps=32):
        seen.append((method, steps))
        return b"\x89PNG fake"

    monkeypatch.setattr(precompute, "_overlay", fake)
    with Session() as s:
        t = study_toml("multi_arm") + '[ai]\nsaliency = "occlusion"\nsaliency_steps = 4\n'
        st = committed(studies.create_study, s, parse_text(t), t)
        committed(cases.import_manifest, s, st.id, tmp_path / "m.csv", store_root=tmp_path / "store")
        precompute.precompute(s, st.id, loaded=tiny_model, store_root=tmp_path / "store")
        row = s.scalar(select(AIOutput))
        assert seen == [("occlusion", 4)]
        assert row.model_card["saliency"] == {"method": "occlusion", "steps": 4}


def test_one_store_root_for_the_command_line_and_the_servers(tmp_path, tiny_model, monkeypatch, capsys):
    """Issue 20: the CLI wrote to data/store whatever REVISION_STORE_ROOT said, and precompute could not find
    photographs imported with --store. Now the CLI reads the same setting as the servers, and each study records
    where its photographs are."""
    from study.cli import main

    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    _engine, Session = db.open_database(url)
    rng = np.random.default_rng(1)
    (tmp_path / "m.csv").write_text("case_id,image_path,label\nc0,0.png,normal\nc1,1.png,amd\n")
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    with Session() as s:
        for name in ("Configured", "Elsewhere"):
            t = study_toml(name=name)
            studies.create_study(s, parse_text(t), t)
        s.commit()
    configured, elsewhere = tmp_path / "configured-store", tmp_path / "elsewhere"
    monkeypatch.setenv("REVISION_STORE_ROOT", str(configured))
    assert main(["import-cases", str(tmp_path / "m.csv"), "--db", url, "--study", "Configured"]) == 0
    assert len(list((configured / "study-1").glob("*.png"))) == 2  # the setting, not data/store
    assert main(["import-cases", str(tmp_path / "m.csv"), "--db", url, "--study", "Elsewhere",
                 "--store", str(elsewhere)]) == 0
    with Session() as s:
        study = studies.get_study(s, "Elsewhere")
        assert study.store_root == str(elsewhere.resolve())
        report = precompute.precompute(s, study.id, loaded=tiny_model)  # no --store: the study knows its root
        s.commit()
        assert report.stored == 2 and not report.failed
        with pytest.raises(ValueError, match="keeps its photographs under .*: give --store"):
            precompute.precompute(s, study.id, loaded=tiny_model, store_root=configured)
    capsys.readouterr()
    assert main(["import-cases", str(tmp_path / "m.csv"), "--db", url, "--study", "Elsewhere",
                 "--store", str(configured)]) == 2  # one study, one root: refused before any image is read
    assert "keeps its photographs under" in capsys.readouterr().err
