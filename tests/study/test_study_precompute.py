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
from study.storage.models import AIOutput, AIOverlay, AuditEvent
from testsupport.studies import committed, study_toml


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


def test_precompute_maps_the_top_findings_for_a_saliency_arm(tmp_path, tiny_model):
    """An ai_saliency arm gets a display-ready map for each of the case's three most probable findings (rank 1
    the most probable), stored as ai_overlay rows and written to the study store under their SHA-256."""
    import hashlib

    _engine, Session = db.open_database(f"sqlite:///{tmp_path / 's.sqlite'}")
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "m.csv").write_text("case_id,image_path,label\nA,a.png,amd\n")
    store = tmp_path / "store"
    with Session() as s:
        t = study_toml("multi_arm")
        st = committed(studies.create_study, s, parse_text(t), t)
        committed(cases.import_manifest, s, st.id, tmp_path / "m.csv", store_root=store)
        report = precompute.precompute(s, st.id, loaded=tiny_model, store_root=store, workers=1)
        assert report.stored == 1 and report.failed == {} and report.saliency_failed == {}
        row = s.scalar(select(AIOutput))
        assert row.saliency_png is None  # the picture of older studies: maps replace it
        assert row.model_card["saliency"] == {"method": "integrated_gradients", "steps": 32, "findings": 3}
        ranked = sorted(row.probabilities, key=lambda f: (-row.probabilities[f], f))
        assert [(o.rank, o.finding) for o in row.overlays] == list(enumerate(ranked[:3], start=1))
        for o in row.overlays:
            assert o.method == "integrated_gradients" and o.params["steps"] == 32
            assert (o.width, o.height) == (96, 64)  # smaller than 512: never enlarged
            assert o.sha256 == hashlib.sha256(o.png).hexdigest()
            assert (cases.study_store(st.id, store) / f"{o.sha256}.map.png").read_bytes() == o.png
            # grey bands, and an alpha channel: the model's centre crop of this 96 x 64 photograph leaves its sides out
            stored = Image.open(__import__("io").BytesIO(o.png))
            assert stored.mode == "LA" and not np.asarray(stored)[:, :8, 1].any()


def test_precompute_without_a_saliency_arm_makes_no_map(tmp_path, tiny_model):
    _engine, Session = db.open_database(f"sqlite:///{tmp_path / 's.sqlite'}")
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "m.csv").write_text("case_id,image_path,label\nA,a.png,amd\n")
    with Session() as s:
        t = study_toml("crossover")
        st = studies.create_study(s, parse_text(t), t)
        cases.import_manifest(s, st.id, tmp_path / "m.csv", store_root=tmp_path / "store")
        precompute.precompute(s, st.id, loaded=tiny_model, store_root=tmp_path / "store")
        assert s.scalar(select(func.count()).select_from(AIOverlay)) == 0
        assert "saliency" not in s.scalar(select(AIOutput)).model_card


def test_saliency_failure_reported_not_fatal(tmp_path, tiny_model, monkeypatch):
    _engine, Session = db.open_database(f"sqlite:///{tmp_path / 's.sqlite'}")
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "m.csv").write_text("case_id,image_path,label\nA,a.png,amd\n")

    def boom(*a, **k):
        raise RuntimeError("no layer")

    monkeypatch.setattr("revision_core.saliency.explain_findings", boom)  # what each photograph's worker calls
    with Session() as s:
        t = study_toml("multi_arm")
        st = committed(studies.create_study, s, parse_text(t), t)
        committed(cases.import_manifest, s, st.id, tmp_path / "m.csv", store_root=tmp_path / "store")
        report = precompute.precompute(s, st.id, loaded=tiny_model, store_root=tmp_path / "store", workers=1)
        assert report.stored == 1 and report.saliency_failed == {"A": "RuntimeError: no layer"}
        row = s.scalar(select(AIOutput))
        assert row.overlays == [] and "saliency" not in row.model_card


def test_study_chooses_the_saliency_method_and_how_many_findings(tmp_path, tiny_model, monkeypatch):
    from revision_core import saliency

    _engine, Session = db.open_database(f"sqlite:///{tmp_path / 's.sqlite'}")
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "m.csv").write_text("case_id,image_path,label\nA,a.png,amd\n")
    seen = []
    real_explain = saliency.explain_findings

    def spy(loaded, classifier, image, findings, method, **kw):
        seen.extend((f, method, kw.get("steps")) for f in findings)
        return real_explain(loaded, classifier, image, findings, method, **kw)

    monkeypatch.setattr(saliency, "explain_findings", spy)
    with Session() as s:
        t = study_toml("multi_arm") + '[ai]\nsaliency = "occlusion"\nsaliency_steps = 4\nsaliency_findings = 2\n'
        st = committed(studies.create_study, s, parse_text(t), t)
        committed(cases.import_manifest, s, st.id, tmp_path / "m.csv", store_root=tmp_path / "store")
        precompute.precompute(s, st.id, loaded=tiny_model, store_root=tmp_path / "store", workers=1)
        row = s.scalar(select(AIOutput))
        assert [(m, k) for _f, m, k in seen] == [("occlusion", 4)] * 2
        assert [f for f, _m, _k in seen] == [o.finding for o in row.overlays]
        assert row.model_card["saliency"] == {"method": "occlusion", "steps": 4, "findings": 2}


def test_saliency_findings_setting_is_checked():
    from study.domain.config import StudyConfigError

    with pytest.raises(StudyConfigError, match=r"\[ai\] saliency_findings: must be a whole number in \[1, 3\]"):
        parse_text(study_toml("multi_arm") + "[ai]\nsaliency_findings = 5\n")


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
