"""Seed the demo study: synthetic cases, stored AI suggestions, three real access codes, simulated answers.

Why a seeding function rather than a checked-in database: everything is rebuilt from seeds through
the same code paths a real study uses (manifest import, precompute, reader codes, the reader
workflow), so the demo exercises the real system and holds no secret. Idempotent: when the demo study
exists, nothing is written; its access codes are stored hashed and cannot be shown again, so the
report says how to get new ones.

Case seeds are ``EVAL_SEED_BASE + 5_000_000 + i`` (evaluation range: never used in training). A
synthetic case may have several findings; its reference primary diagnosis is the first present in the
label set's order (``normal`` when none), and all present findings are stored as reference findings.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from study.domain.cases import import_manifest
from study.domain.config import load_config
from study.domain.readers import add_reader
from study.domain.studies import create_study
from study.jobs.precompute import precompute
from study.jobs.simulate_readers import simulate
from study.storage import db, settings
from study.storage.models import Answer, Assignment, Case, Reader, Study

DEMO_CONFIG = db.REPO_ROOT / "studies" / "demo.toml"
CASE_SEED_OFFSET = 5_000_000
REAL_READERS = (("Demo reader 1", 2.0), ("Demo reader 2", 7.0), ("Demo reader 3", 15.0))  # one per level


@dataclass
class DemoInfo:
    study_id: int
    study_name: str
    created: bool
    codes: dict[str, str] = field(default_factory=dict)  # pseudonym -> plain code; only when created
    cases: int = 0
    readers: int = 0
    answers: int = 0
    message: str = ""


def _counts(session, study_id: int) -> tuple[int, int, int]:
    n_cases = session.scalar(select(func.count()).select_from(Case).where(Case.study_id == study_id)) or 0
    n_readers = session.scalar(select(func.count()).select_from(Reader).where(Reader.study_id == study_id)) or 0
    n_answers = session.scalar(select(func.count()).select_from(Answer).join(Assignment)
                               .where(Assignment.study_id == study_id)) or 0
    return n_cases, n_readers, n_answers


def render_cases(folder: Path, n_cases: int, findings: tuple[str, ...]) -> Path:
    """Render ``n_cases`` synthetic fundus photographs to PNG files plus a manifest CSV; returns the manifest."""
    from PIL import Image

    from revision_core.synthetic import EVAL_SEED_BASE, case_id, generate_case

    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case_id", "image_path", "label", "findings", "eye"])
        for i in range(n_cases):
            case = generate_case(EVAL_SEED_BASE + CASE_SEED_OFFSET + i, size=512)
            present = [f for f in findings if case.labels.get(f)]
            name = f"{case_id(case)}.png"
            path = folder / name
            if not path.is_file():
                Image.fromarray(case.image).save(path)
            writer.writerow([case_id(case), name, present[0] if present else "normal", ";".join(present), case.eye])
    return manifest


def ensure_demo_study(db_url: str | None = None, *, n_cases: int = 60, n_sim_readers: int = 33, seed: int = 0,
                      log: Callable[[str], None] = print, model: str | None = None,
                      checkpoint: str | Path | None = None, loaded=None, data_dir: str | Path | None = None,
                      config_path: str | Path = DEMO_CONFIG) -> DemoInfo:
    """Create and fill the demo study unless it exists (see the module docstring).

    ``model``/``checkpoint`` (or an already ``loaded`` model) override the demo config's model, e.g.
    for tests with a tiny model. ``data_dir`` (default ``data/``) holds the rendered cases and the
    image store.
    """

    config, text = load_config(config_path)
    data_dir = Path(data_dir) if data_dir is not None else db.REPO_ROOT / "data"
    store_root = settings.store_root() or data_dir / "store"  # where the app will look for the photographs
    _engine, factory = db.open_database(db_url)
    try:
        with factory() as s:
            existing = s.scalar(select(Study).where(Study.name == config.name))
            if existing is not None:
                n_c, n_r, n_a = _counts(s, existing.id)
                msg = (f"The demo study {config.name!r} already exists ({n_c} cases, {n_r} readers, {n_a} answers); "
                       "nothing changed. Its access codes are stored hashed and cannot be shown again: add readers "
                       "with `python -m study add-readers READERS.csv`, or issue a new code for an existing reader "
                       "(study.domain.readers.issue_code).")
                log(msg)
                return DemoInfo(existing.id, existing.name, False, cases=n_c, readers=n_r, answers=n_a, message=msg)
            log(f"Creating the demo study {config.name!r}: {n_cases} synthetic cases, "
                f"{n_sim_readers} simulated readers")
            study = create_study(s, config, text, actor="demo")
            study_id = study.id
            manifest = render_cases(data_dir / "demo_cases", n_cases, config.findings)
            import_manifest(s, study_id, manifest, store_root=store_root, actor="demo")
            if loaded is None:
                from revision_core.model import load_model

                loaded = load_model(model or config.model, checkpoint if model else config.checkpoint)
            report = precompute(s, study_id, loaded=loaded, store_root=store_root, actor="demo")
            if report.failed:
                raise RuntimeError(f"precompute failed for {len(report.failed)} demo case(s): {report.failed}")
            codes = {}
            for display_name, years in REAL_READERS:
                reader, code = add_reader(s, study_id, display_name=display_name, years_experience=years,
                                          specialty="demo", site="demo", actor="demo")
                codes[reader.pseudonym] = code
            s.commit()
        sim = simulate(factory, study_id, n_sim_readers, seed=seed, actor="demo")
        with factory() as s:
            n_c, n_r, n_a = _counts(s, study_id)
        log("Reader access codes for the demo study (shown once, stored hashed): "
            + ", ".join(f"{p} {c}" for p, c in codes.items()))
        msg = (f"Demo study {config.name!r} ready: {n_c} cases, {n_r} readers "
               f"({len(sim.readers)} simulated), {n_a} answers.")
        log(msg)
        return DemoInfo(study_id, config.name, True, codes=codes, cases=n_c, readers=n_r, answers=n_a, message=msg)
    finally:
        _engine.dispose()
