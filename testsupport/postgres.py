"""A throwaway PostgreSQL server for the tests (tests/study/conftest.py's ``pg_server``) and the benchmarks
(bench/bench_submit.py): initdb + pg_ctl in a temporary folder on a free port, fsync off.

The tests keep its files in memory (/dev/shm, where it has room) and drop each test's database after the test.
PostgreSQL refuses to run as root, so when run as root the folder is given to the ``postgres`` user and
the commands run through ``runuser -u postgres --``. Binaries are found via ``$REVISION_PG_BIN`` (if set,
only there), else ``/usr/lib/postgresql/15/bin`` (Debian/Ubuntu), then any other
``/usr/lib/postgresql/N/bin`` (newest first), then ``pg_ctl`` on PATH.
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ram_folder(min_free: int = 2 * 2**30) -> str | None:
    """/dev/shm where it is a writable folder with ``min_free`` bytes free, else None (the system temporary folder)."""
    shm = Path("/dev/shm")
    try:
        if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free >= min_free:
            return str(shm)
    except OSError:
        pass
    return None


class PostgresServer:
    def __init__(self, bin_dir: Path, *, in_memory: bool = False):
        """``in_memory``: the server's files in /dev/shm where it has room (the tests: creating and dropping a
        database there takes a quarter of the time it takes on a busy disk); the benchmarks keep them on disk."""
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="revision-pg-", dir=ram_folder() if in_memory else None))
        self.data = self.root / "data"
        self.port = free_port()
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

    def drop_database(self, url: str) -> None:
        """Drop a database made by ``new_database`` (its connections closed): a test session makes hundreds, and
        deleting all of them at the end costs minutes of disk time on a busy machine."""
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def cleanup(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
