"""Demo seeding: creates a filled study once, prints three working codes, never stores them in clear."""

from __future__ import annotations

import pytest
from sqlalchemy import func, inspect, select, text

from study.storage import db
from study.domain import readers
from study.jobs.demo_study import ensure_demo_study
from study.storage.models import AIOutput, Answer, Case, Reader


@pytest.fixture(scope="module")
def tiny_model(tiny_cnn_checkpoint):
    from revision_core.model import load_model

    return load_model("revision-tiny-cnn", tiny_cnn_checkpoint, device="cpu")


def _all_text(engine) -> str:
    """Every value of every table, as text: where a plain code would show up if stored."""
    parts = []
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                parts.extend(str(v) for v in row)
    return "\n".join(parts)


@pytest.mark.heavy
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_demo_seeding_is_idempotent_and_codes_work(db_url, tmp_path, tiny_model):
    lines = []
    info = ensure_demo_study(db_url, n_cases=12, n_sim_readers=4, seed=1, log=lines.append, loaded=tiny_model,
                             data_dir=tmp_path)
    assert info.created and len(info.codes) == 3
    printed = [ln for ln in lines if ln.startswith("Reader access codes for the demo study")]
    assert len(printed) == 1 and all(code in printed[0] for code in info.codes.values())
    engine = db.make_engine(db_url)
    factory = db.session_factory(engine)
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 12
        assert s.scalar(select(func.count()).select_from(AIOutput)) == 12
        assert s.scalar(select(func.count()).select_from(Reader)) == 7
        # the 4 simulated readers answered everything (12 cases x 2 conditions), the 3 real ones nothing yet
        assert s.scalar(select(func.count()).select_from(Answer)) == info.answers == 4 * 12 * 2
        for pseudonym, code in info.codes.items():
            reader = readers.authenticate(s, code, study_id=info.study_id)
            assert reader is not None and reader.pseudonym == pseudonym
            assert reader.display_name.startswith("Demo reader")
        labels = [c.reference_labels for c in s.scalars(select(Case))]
        assert all(lab["label"] == (lab["findings"][0] if lab["findings"] else "normal") for lab in labels)
    dump = _all_text(engine)
    for code in info.codes.values():
        assert code not in dump and code.replace("-", "") not in dump
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("study.sqlite*"))  # the file and its WAL
    assert raw and not any(code.encode() in raw or code.replace("-", "").encode() in raw
                           for code in info.codes.values())

    again: list[str] = []
    second = ensure_demo_study(db_url, n_cases=12, n_sim_readers=4, seed=1, log=again.append, loaded=tiny_model,
                               data_dir=tmp_path)
    assert not second.created and second.codes == {} and second.study_id == info.study_id
    assert "already exists" in again[0] and "add-readers" in again[0]
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Answer)) == 4 * 12 * 2
        assert s.scalar(select(func.count()).select_from(Reader)) == 7
    engine.dispose()
