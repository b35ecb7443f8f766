"""Study mode: whether the public demo pages (the pages that run a model for visitors: model playground,
model evaluation, try the study) are offered on this server.

Why: the demo pages run the study's model on any uploaded photograph. While a study has a reader with
unaided readings left, that reader could pause, land on the playground, upload an unaided case's
photograph and get the AI's probabilities: the AI would reach an unaided reader through the front door.

The setting ``[app] public_demo`` is ``"auto"`` (default), ``"on"`` or ``"off"``, read from the
environment (``REVISION_PUBLIC_DEMO``) first, then ``.streamlit/secrets.toml``:

- ``"auto"``: the demo pages are off while any study in the database has a non-revoked reader with an
  unaided reading not yet answered (:func:`study_is_live`), on otherwise;
- ``"on"``: always offered (``make run``: the demo study and its demo readers, on a developer's machine);
- ``"off"``: never.

No Streamlit here: ``pages/_shared.public_demo_enabled`` and ``app.py`` use these functions.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Callable

from sqlalchemy import exists, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from study.storage import db, settings
from study.storage.models import AIDED_CONDITIONS, Answer, Assignment, Reader

ENV_VAR = settings.PUBLIC_DEMO_ENV
SETTING = "[app] public_demo"
VALUES = ("auto", "on", "off")
DEFAULT = "auto"
CACHE_SECONDS = 3.0  # how long one answer of study_is_live is reused (every page run asks)


class PublicDemoSettingError(ValueError):
    """``[app] public_demo`` / ``REVISION_PUBLIC_DEMO`` has a value other than auto, on or off."""


def _invalid(value, where: str) -> PublicDemoSettingError:
    return PublicDemoSettingError(
        f"{SETTING} (environment variable {ENV_VAR}) must be one of "
        f"{', '.join(repr(v) for v in VALUES)}; {where} gives {value!r}.")


def public_demo_setting(environ: dict[str, str] | None = None, secrets_path: Path | None = None) -> str:
    """``"auto"``, ``"on"`` or ``"off"``: ``REVISION_PUBLIC_DEMO`` when set (and not empty), else
    ``[app] public_demo`` in ``.streamlit/secrets.toml``, else ``"auto"``. Case and surrounding spaces
    are ignored; any other value raises :class:`PublicDemoSettingError` naming the setting and the
    allowed values."""
    try:
        app = settings.secrets_table("app", secrets_path)
        if app is not None and not isinstance(app, dict):
            raise _invalid(app, "[app] in .streamlit/secrets.toml (a table is expected)")
        found = settings.public_demo(environ, secrets_path)
    except settings.SecretsUnreadable as exc:
        raise PublicDemoSettingError(f"cannot read {SETTING} from .streamlit/secrets.toml: {exc.reason}") from None
    if found is None:
        return DEFAULT
    value = found.value
    if not isinstance(value, str) or value.strip().lower() not in VALUES:
        raise _invalid(value, found.where)
    return value.strip().lower()


def has_unaided_readings_left(session: Session) -> bool:
    """True when any study has a reader, not revoked, with an assignment in an unaided condition that has
    no answer yet, or a reader holding a code who has no assignments yet (the design is not built: their
    unaided readings are still to come). Read-only queries (indexed EXISTS, LIMIT 1)."""
    answered = exists().where(Answer.assignment_id == Assignment.id)
    stmt = (select(Assignment.id)
            .join(Reader, Reader.id == Assignment.reader_id)
            .where(Reader.revoked_at.is_(None), Assignment.condition.not_in(AIDED_CONDITIONS), ~answered)
            .limit(1))
    if session.scalar(stmt) is not None:
        return True
    waiting = (select(Reader.id).where(Reader.revoked_at.is_(None), Reader.code_hash.is_not(None),
                                       ~exists().where(Assignment.reader_id == Reader.id)).limit(1))
    return session.scalar(waiting) is not None


def _missing_sqlite_file(url: str) -> bool:
    """True for a SQLite URL whose file does not exist (no study at all; not created by asking)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return False
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return False
    return not Path(database).is_file()


_cache: dict[str, tuple[float, bool]] = {}
_lock = threading.Lock()


def clear_cache() -> None:
    """Forget cached answers of :func:`study_is_live` (tests; after a change that must show at once)."""
    with _lock:
        _cache.clear()


def study_is_live(url: str, factory: Callable[[], sessionmaker[Session]], *,
                  max_age: float = CACHE_SECONDS) -> bool:
    """Whether the database at ``url`` holds a study with unaided readings left
    (:func:`has_unaided_readings_left`), cached per URL for ``max_age`` seconds.

    ``factory`` is called only when the database exists (a missing SQLite file means no study, and is
    not created). A database that cannot be read counts as live (the demo pages stay off: fail closed),
    and the reason goes to the server log."""
    now = time.monotonic()
    with _lock:
        hit = _cache.get(url)
        if hit is not None and now - hit[0] < max_age:
            return hit[1]
    if _missing_sqlite_file(url):
        live = False
    else:
        try:
            with db.reading(factory()) as session:
                live = has_unaided_readings_left(session)
        except Exception as exc:  # noqa: BLE001 - fail closed, keep the detail in the log
            print(f"[revision] study mode: cannot tell whether a study is running ({type(exc).__name__}: "
                  f"{exc}); the public demo pages stay off", file=sys.stderr, flush=True)
            live = True
    with _lock:
        _cache[url] = (time.monotonic(), live)
    return live


def public_demo_enabled(url: str, factory: Callable[[], sessionmaker[Session]], *,
                        setting: str | None = None) -> bool:
    """Whether the demo pages are offered: ``on`` yes, ``off`` no, ``auto`` while no study is live.
    Raises :class:`PublicDemoSettingError` for an invalid setting."""
    setting = public_demo_setting() if setting is None else setting
    if setting == "on":
        return True
    if setting == "off":
        return False
    return not study_is_live(url, factory)
