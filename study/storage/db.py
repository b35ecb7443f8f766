"""Engine, sessions, migrations and retries for the study database.

SQLite is the zero-setup default (a WAL file under ``data/``); PostgreSQL is used when a URL is given
(``--db``, env ``REVISION_DB_URL`` or ``[database] url`` in ``.streamlit/secrets.toml``, read here with
tomllib so that ``study`` never imports Streamlit). The same code runs on both.

Why ``BEGIN IMMEDIATE`` on SQLite: a deferred transaction that reads and then writes can fail with
"database is locked" without waiting when another writer got there first; taking the write lock at
BEGIN makes concurrent submits queue on ``busy_timeout`` instead.

Why also an in-process write lock on SQLite: SQLite's busy handler makes a waiting writer sleep in
growing steps (up to 100 ms) and lets newcomers overtake it, so under 33 concurrent readers a few
submits waited seconds. Threads of one process (the web server) now queue on a Python lock before
``BEGIN IMMEDIATE``; other processes still queue on ``busy_timeout``.

Why read-only transactions (:func:`begin_read`, :func:`reading`): a transaction that only reads needs
no SQLite write lock. WAL gives it a consistent snapshot while writers commit, so the investigator's
monitor, analysis and exports (:func:`reading`) neither queue behind nor hold up anybody's submit, and
other processes can write while a reader's next case is being read. It is enforced, not trusted: SQLite
runs it with ``PRAGMA query_only`` and PostgreSQL as ``READ ONLY``, so a stray write fails loudly.

The reader's own short reads (:func:`begin_read`, e.g. ``workflow.next_item``) still queue on the
in-process lock: Python runs one thread at a time anyway, and measured with 33 reader threads, letting
those reads run beside a submit that holds the write lock made the submit wait for the interpreter
between its statements, and its p99 latency worse rather than better.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from study.storage import settings

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SQLITE = REPO_ROOT / "data" / "study.sqlite"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
ENV_VAR = "REVISION_DB_URL"
BUSY_TIMEOUT_MS = 30_000
READ_ONLY = "revision_read_only"  # execution option marking a transaction that only reads
QUEUE = "revision_queue"  # ... and that still queues on the in-process lock (short request-path reads)

T = TypeVar("T")


def default_url() -> str:
    """The database URL from the environment, then Streamlit secrets, then the embedded SQLite file."""
    return settings.database_url() or f"sqlite:///{DEFAULT_SQLITE}"


def resolve_url(url: str | None = None) -> str:
    """Normalise a URL: default when None, and the psycopg 3 driver for plain ``postgresql://``."""
    url = url or default_url()
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" hook emit BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")  # an acknowledged commit survives a crash
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    lock = _WRITE_LOCKS.setdefault(engine.url.database or ":memory:", threading.Lock())

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        options = conn.get_execution_options()
        if options.get(READ_ONLY):
            if options.get(QUEUE):
                conn.info["holds_write_lock"] = lock.acquire(timeout=BUSY_TIMEOUT_MS / 1000)
            conn.exec_driver_sql("BEGIN")  # deferred: a snapshot, no SQLite lock
            conn.info["query_only"] = True
            conn.exec_driver_sql("PRAGMA query_only = 1")
            return
        conn.info["holds_write_lock"] = lock.acquire(timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            _release(conn)
            raise

    def _release(conn, *_):
        if conn.info.pop("query_only", False):
            conn.exec_driver_sql("PRAGMA query_only = 0")
        if conn.info.pop("holds_write_lock", False):
            lock.release()

    event.listen(engine, "commit", _release)
    event.listen(engine, "rollback", _release)

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_conn, record):  # a connection closed mid-transaction must not keep the lock
        if record.info.pop("query_only", False):
            dbapi_conn.execute("PRAGMA query_only = 0")
        if record.info.pop("holds_write_lock", False):
            lock.release()


def _postgresql_read_only(engine: Engine) -> None:
    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")


_WRITE_LOCKS: dict[str, threading.Lock] = {}


POOL = {"pool_size": 10, "max_overflow": 40, "pool_timeout": 60}  # one web process serves dozens of readers


def make_engine(url: str | None = None, **kwargs) -> Engine:
    """An engine for ``url`` (default: :func:`default_url`), configured for safe concurrent use."""
    url = resolve_url(url)
    parsed = make_url(url)
    kwargs.setdefault("hide_parameters", True)  # an error names its statement, never its values (code hashes)
    if parsed.database not in (None, "", ":memory:"):
        for key, value in POOL.items():
            kwargs.setdefault(key, value)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000})
        engine = create_engine(url, pool_pre_ping=True, **kwargs)
        _sqlite_pragmas(engine)
        return engine
    engine = create_engine(url, pool_pre_ping=True, **kwargs)
    _postgresql_read_only(engine)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values after commit (results outlive the transaction)."""
    return sessionmaker(engine, expire_on_commit=False)


def begin_read(session: Session) -> None:
    """Start ``session``'s next transaction as a short read (no SQLite write lock; writes in it fail).

    A no-op when a transaction is already open: it then goes on as it began.
    """
    if not session.in_transaction():
        session.connection(execution_options={READ_ONLY: True, QUEUE: True})


@contextmanager
def reading(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for pages and reports that only read: every transaction in it is read-only."""
    with factory(execution_options={READ_ONLY: True}) as session:
        yield session


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", resolve_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` with the Alembic migrations."""
    from alembic import command

    command.upgrade(alembic_config(resolve_url(url)), revision)


def downgrade(url: str | None, revision: str) -> None:
    """Take the database at ``url`` back to ``revision`` ("base": no study tables); for migration tests."""
    from alembic import command

    command.downgrade(alembic_config(resolve_url(url)), revision)


def open_database(url: str | None = None, *, migrate: bool = True) -> tuple[Engine, sessionmaker[Session]]:
    """Migrate (by default) and return an engine plus its session factory."""
    url = resolve_url(url)
    if migrate:
        upgrade(url)
    engine = make_engine(url)
    return engine, session_factory(engine)


_shared: dict[str, sessionmaker[Session]] = {}
_shared_lock = threading.Lock()


def shared_factory(url: str | None = None) -> sessionmaker[Session]:
    """One migrated session factory per database for the whole server process: the pages and the plain HTTP
    routes beside them (``server.py``) share its engine and pool."""
    url = resolve_url(url)
    with _shared_lock:
        if url not in _shared:
            _shared[url] = open_database(url)[1]
        return _shared[url]


def is_disconnect(exc: BaseException) -> bool:
    """True for errors meaning the connection dropped (server restart, network), not bad data."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        text = str(exc).lower()
        return any(s in text for s in ("terminat", "connection", "server closed", "shutdown",
                                       "could not connect", "the database system is"))
    return False


def run_with_retry(factory: sessionmaker[Session], fn: Callable[[Session], T], *, attempts: int = 5,
                   delay: float = 0.5) -> T:
    """Run ``fn(session)`` in a fresh session, retrying on a dropped connection.

    Only for idempotent operations (``workflow.submit`` with its idempotency key, reads): a retry after
    a commit whose acknowledgement was lost must not write twice.
    """
    for attempt in range(1, attempts + 1):
        try:
            with factory() as session:
                return fn(session)
        except (OperationalError, DBAPIError) as exc:
            if attempt == attempts or not is_disconnect(exc):
                raise
            time.sleep(delay * attempt)
    raise AssertionError("unreachable")
