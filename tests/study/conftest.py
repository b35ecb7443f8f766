"""Database fixtures: every db test runs on SQLite and on a real, throwaway PostgreSQL 15.

The PostgreSQL server is started once per test session with initdb + pg_ctl in a temporary folder on a
free port. PostgreSQL refuses to run as root, so when the tests run as root the folder is given to the
``postgres`` user and the commands run through ``runuser -u postgres --``. Binaries are found via
``$REVISION_PG_BIN`` (if set, only there), else ``/usr/lib/postgresql/15/bin`` (Debian/Ubuntu), then any
other ``/usr/lib/postgresql/N/bin`` (newest first), then ``pg_ctl`` on PATH; where none exist the PostgreSQL-parametrised tests skip and say so. Each test gets its own fresh database.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from study.storage import db
from study.domain import readers
from tests.study.helpers import CARD, LABELS, SALIENCY, study_toml, committed

PG_CANDIDATES = ("/usr/lib/postgresql/15/bin",)


def find_pg_bin() -> Path | None:
    """$REVISION_PG_BIN if set (and then only it); else PostgreSQL 15's Debian path, any other
    /usr/lib/postgresql/N/bin (newest first), then pg_ctl on PATH."""
    env = os.environ.get("REVISION_PG_BIN")
    if env:
        candidates = [env]
    else:
        others = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                        if Path(p).parent.name.isdigit() else 0, reverse=True)
        candidates = list(PG_CANDIDATES) + others
        on_path = shutil.which("pg_ctl")
        if on_path:
            candidates.append(str(Path(on_path).parent))
    for c in candidates:
        if (Path(c) / "initdb").is_file() and (Path(c) / "pg_ctl").is_file():
            return Path(c)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, bin_dir: Path):
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="revision-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        self._dbs = itertools.count(1)

    def _cmd(self, *args: str) -> list[str]:
        return (["runuser", "-u", "postgres", "--"] if self.as_root else []) + list(args)

    def _run(self, *args: str) -> None:
        subprocess.run(self._cmd(*args), check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        os.chmod(self.root, 0o755)
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync")
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c full_page_writes=off -c max_connections=200")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-o", opts,
                  "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(self._cmd(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"),
                       capture_output=True, timeout=120)

    def restart(self) -> None:
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c full_page_writes=off -c max_connections=200")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-o", opts,
                  "-m", "fast", "-w", "-t", "60", "restart")

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def new_database(self) -> str:
        import psycopg

        name = f"study_test_{next(self._dbs)}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def cleanup(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


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
    server = PostgresServer(bin_dir)
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
    """A migrated, empty database URL on each back end."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'study.sqlite'}"
    else:
        url = request.getfixturevalue("pg_server").new_database()
    db.upgrade(url)
    return url


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

