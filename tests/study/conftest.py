"""Database fixtures: every db test runs on SQLite and on a real, throwaway PostgreSQL 15.

The PostgreSQL server (``testsupport.postgres``) is started once per test session, so once per xdist worker,
with initdb + pg_ctl in a temporary folder (in /dev/shm where it has room) on a free port. PostgreSQL refuses
to run as root, so when the tests run as root the folder is given to the ``postgres`` user and the commands
run through ``runuser -u postgres --``. Binaries are found via ``$REVISION_PG_BIN`` (if set, only there), else
``/usr/lib/postgresql/15/bin`` (Debian/Ubuntu), then any other ``/usr/lib/postgresql/N/bin`` (newest first),
then ``pg_ctl`` on PATH; where none exist the PostgreSQL-parametrised tests skip and say so. Each test gets
its own fresh database, dropped after it. Tests on PostgreSQL are marked ``postgresql`` (tests/conftest.py).
"""

from __future__ import annotations

import subprocess

import pytest
from argon2 import PasswordHasher

from study.storage import db
from study.domain import readers
from testsupport.postgres import PG_CANDIDATES, PostgresServer, find_pg_bin
from testsupport.studies import CARD, LABELS, SALIENCY, study_toml, committed


@pytest.fixture(scope="session")
def pg_server():
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL tests skipped: no PostgreSQL binaries (initdb, pg_ctl) found in $REVISION_PG_BIN, "
                    f"{', '.join(PG_CANDIDATES)}, /usr/lib/postgresql/*/bin or on PATH; install postgresql-15 "
                    "(or set REVISION_PG_BIN) to run them")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("PostgreSQL tests skipped: the psycopg driver is not installed (pip install 'psycopg[binary]')")
    server = PostgresServer(bin_dir, in_memory=True)
    try:
        server.start()
    except subprocess.CalledProcessError as exc:
        server.cleanup()
        pytest.skip(f"PostgreSQL tests skipped: could not start PostgreSQL from {bin_dir}: "
                    f"{exc.stderr.decode(errors='replace')[-500:]}")
    yield server
    server.cleanup()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A migrated, empty database URL on each back end (a PostgreSQL database is dropped after its test)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'study.sqlite'}"
        db.upgrade(url)
        yield url
        return
    server = request.getfixturevalue("pg_server")
    url = server.new_database()
    db.upgrade(url)
    yield url
    server.drop_database(url)


@pytest.fixture
def engine(db_url):
    eng = db.make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def Session(engine):
    return db.session_factory(engine)


@pytest.fixture(autouse=True, scope="session")
def _cheap_argon2():
    """Fast argon2 parameters for tests (the hashing scheme is the same; production keeps the defaults)."""
    original = readers.HASHER
    readers.HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    readers.HASHER = original


@pytest.fixture
def make_study(Session):
    """Create a study with cases, readers (codes returned), AI outputs and a built design."""
    from study.domain import cases, design as design_mod, studies
    from study.jobs import precompute
    from study.domain.config import parse_text

    def _make(design: str = "crossover", *, n_cases: int = 8, n_readers: int = 4, with_ai: bool = True,
              build: bool = True, years=(2, 7, 15, 3), **toml_kw):
        text = study_toml(design, **toml_kw)
        with Session() as s:
            st = committed(studies.create_study, s, parse_text(text), text)
            case_ids = []
            for i in range(n_cases):
                c = committed(cases.add_case, s, st.id, f"case{i:03d}", f"sha-{i:03d}",
                                   {"primary": LABELS[i % len(LABELS)], "SECRET_TRUTH_MARKER": True})
                case_ids.append(c.id)
                if with_ai:
                    committed(precompute.store_ai_output, s, c.id, model_card=CARD, label_set="revision_findings",
                                               probabilities={k: 0.1 * (j + 1) for j, k in enumerate(LABELS[:-1])},
                                               saliency_png=SALIENCY)
            reader_codes = {}
            for r in range(n_readers):
                reader, code = committed(readers.add_reader, s, st.id, display_name=f"Dr {r}",
                                                  years_experience=years[r % len(years)], specialty="ophthalmology",
                                                  site="site A")
                reader_codes[reader.id] = code
            if build:
                committed(design_mod.build_design, s, st.id)
            s.commit()
            return st.id, case_ids, reader_codes

    return _make

