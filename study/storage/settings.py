"""The server's settings, read in one place: each one from its environment variable, else its entry in
``.streamlit/secrets.toml`` (beside the repository), else its default.

Why one module: the server, the command line, the reading screen and the investigator's imports must agree on
the database, the photograph store, the time zone and the limits; when each read the file itself they
disagreed (one read it relative to the working directory). Only this module reads ``os.environ`` for a
``REVISION_*`` setting or opens ``secrets.toml``; the module that owns a setting checks its value and says what
to write when it is wrong (``study.domain.cases`` the import limits, ``study.domain.study_mode`` the public
demo, ``study.domain.timefmt`` the zone).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRETS_FILE = REPO_ROOT / ".streamlit" / "secrets.toml"
SECRETS_NAME = ".streamlit/secrets.toml"

DB_URL_ENV = "REVISION_DB_URL"
STORE_ENV = "REVISION_STORE_ROOT"
TIMEZONE_ENV = "REVISION_TIMEZONE"
PUBLIC_DEMO_ENV = "REVISION_PUBLIC_DEMO"
IMPORT_ENV_PREFIX = "REVISION_IMPORT_"
IMAGE_SECRET_ENV = "REVISION_IMAGE_SECRET"
REAL_SAMPLES_ENV = "REVISION_REAL_SAMPLES"
APP_MODEL_ENV = "REVISION_APP_MODEL"
APP_CHECKPOINT_ENV = "REVISION_APP_CHECKPOINT"
INVESTIGATOR_USER_ENV = "REVISION_INVESTIGATOR_USER"
INVESTIGATOR_HASH_ENV = "REVISION_INVESTIGATOR_PASSWORD_HASH"
INVESTIGATOR_PASSWORD_ENV = "REVISION_INVESTIGATOR_PASSWORD"
TRUSTED_PROXIES_ENV = "REVISION_TRUSTED_PROXIES"
SESSION_HOURS_ENV = "REVISION_SESSION_HOURS"
SESSION_IDLE_ENV = "REVISION_SESSION_IDLE_MINUTES"
DECODE_BUDGET_ENV = "REVISION_DECODE_BUDGET"
DECODE_CONCURRENCY_ENV = "REVISION_DECODE_CONCURRENCY"
PLAYGROUND_UPLOAD_ENV = "REVISION_PLAYGROUND_UPLOAD_MB"


class SecretsUnreadable(ValueError):
    """``.streamlit/secrets.toml`` exists but is not valid TOML (or not readable)."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"cannot read {name}: {reason}")
        self.name, self.reason = name, reason


@dataclass(frozen=True)
class Setting:
    """A raw value and where it came from, in words a message can quote ("the environment variable ...")."""
    value: object
    where: str


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def secrets_table(table: str, secrets_path: Path | None = None) -> object:
    """The ``[table]`` of secrets.toml as parsed (usually a dict; None when the file or the table is absent).
    Raises :class:`SecretsUnreadable` for a file that cannot be read as TOML."""
    path = SECRETS_FILE if secrets_path is None else secrets_path
    if not path.is_file():
        return None
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SecretsUnreadable(path.name, str(exc)) from None
    return data.get(table)


def lookup(env: str, table: str, key: str, *, environ: Mapping[str, str] | None = None,
           secrets_path: Path | None = None, empty_env_is_unset: bool = True) -> Setting | None:
    """The setting from ``env`` when set (an empty value counts as unset unless ``empty_env_is_unset`` is
    False), else ``[table] key`` of secrets.toml, else None."""
    raw = _environ(environ).get(env)
    if raw is not None and (raw.strip() or not empty_env_is_unset):
        return Setting(raw, f"the environment variable {env}")
    found = secrets_table(table, secrets_path)
    if isinstance(found, dict) and found.get(key) is not None:
        return Setting(found[key], f"[{table}] {key} in {SECRETS_NAME}")
    return None


def database_url() -> str | None:
    """``REVISION_DB_URL``, else ``[database] url``; None means the embedded SQLite file."""
    found = lookup(DB_URL_ENV, "database", "url")
    return str(found.value) if found and found.value else None


def store_root() -> Path | None:
    """``REVISION_STORE_ROOT``, else ``[server] store_root``: where every study's photographs are stored, for
    the servers and the command line alike (relative paths from the repository root; None: ``data/store``,
    ``study.domain.cases.STORE_ROOT``). A study records the root of its first import (``Study.store_root``)."""
    try:
        found = lookup(STORE_ENV, "server", "store_root")
    except SecretsUnreadable:
        found = None
    if found is None or not str(found.value).strip():
        return None
    folder = Path(str(found.value)).expanduser()
    return folder if folder.is_absolute() else REPO_ROOT / folder


def timezone_name() -> str | None:
    """``REVISION_TIMEZONE``, else ``[app] timezone`` (an IANA name); None: the server's zone. An unreadable
    secrets file counts as unset here: a time is still shown, in the server's zone."""
    try:
        found = lookup(TIMEZONE_ENV, "app", "timezone")
    except SecretsUnreadable:
        return None
    return str(found.value) if found and found.value else None


def public_demo(environ: Mapping[str, str] | None = None, secrets_path: Path | None = None) -> Setting | None:
    """The raw ``REVISION_PUBLIC_DEMO`` / ``[app] public_demo`` (checked by ``study.domain.study_mode``)."""
    return lookup(PUBLIC_DEMO_ENV, "app", "public_demo", environ=environ, secrets_path=secrets_path)


def import_settings(environ: Mapping[str, str] | None = None,
                    secrets_path: Path | None = None) -> tuple[object, dict[str, str]]:
    """(the ``[import]`` table of secrets.toml as parsed, {limit name: value} of the ``REVISION_IMPORT_*``
    variables): checked by ``study.domain.cases.configured_limits``."""
    variables = {name[len(IMPORT_ENV_PREFIX):].lower(): value for name, value in _environ(environ).items()
                 if name.startswith(IMPORT_ENV_PREFIX)}
    return secrets_table("import", secrets_path), variables


@dataclass(frozen=True)
class InvestigatorSetting:
    user: str | None
    password_hash: str | None
    source: str  # "environment" or "secrets.toml"
    demo_password: str | None  # $REVISION_INVESTIGATOR_PASSWORD, for the demo default only


def investigator() -> InvestigatorSetting:
    """The investigator's user and argon2 hash: both from the environment, else both from ``[investigator]``;
    otherwise the demo default (``study.services.signin``) with ``$REVISION_INVESTIGATOR_PASSWORD``."""
    env = os.environ
    if env.get(INVESTIGATOR_USER_ENV) and env.get(INVESTIGATOR_HASH_ENV):
        return InvestigatorSetting(env[INVESTIGATOR_USER_ENV], env[INVESTIGATOR_HASH_ENV], "environment", None)
    table = secrets_table("investigator") or {}
    if isinstance(table, dict) and table.get("user") and table.get("password_hash"):
        return InvestigatorSetting(str(table["user"]), str(table["password_hash"]), "secrets.toml", None)
    return InvestigatorSetting(env.get(INVESTIGATOR_USER_ENV) or None, None, "demo default",
                               env.get(INVESTIGATOR_PASSWORD_ENV) or None)


def image_secret() -> Setting | None:
    """``REVISION_IMAGE_SECRET``, else ``[server] image_secret``: the key that signs photograph links (None: the
    key kept in the database, which every server shares; ``study.domain.image_links`` checks its length)."""
    return lookup(IMAGE_SECRET_ENV, "server", "image_secret")


def trusted_proxies() -> Setting | None:
    """``REVISION_TRUSTED_PROXIES`` (addresses or networks, comma-separated), else ``[server] trusted_proxies``
    (a list): the reverse proxies whose ``X-Forwarded-For`` names the client (checked by
    ``study.domain.client_address``; None: no proxy is trusted, the connection's address is the client)."""
    return lookup(TRUSTED_PROXIES_ENV, "server", "trusted_proxies")


def session_lifetime() -> tuple[Setting | None, Setting | None]:
    """(``REVISION_SESSION_HOURS`` / ``[session] hours``, ``REVISION_SESSION_IDLE_MINUTES`` /
    ``[session] idle_minutes``): how long a reader's sign-in lasts, and without any action (checked by
    ``study.domain.reader_sessions``)."""
    return (lookup(SESSION_HOURS_ENV, "session", "hours"), lookup(SESSION_IDLE_ENV, "session", "idle_minutes"))


def decode_limits() -> tuple[Setting | None, Setting | None]:
    """(``REVISION_DECODE_BUDGET`` / ``[server] decode_budget``, ``REVISION_DECODE_CONCURRENCY`` /
    ``[server] decode_concurrency``): the memory all uploads being decoded at once may take, and how many
    (checked by ``pages/_uploads``)."""
    return (lookup(DECODE_BUDGET_ENV, "server", "decode_budget"),
            lookup(DECODE_CONCURRENCY_ENV, "server", "decode_concurrency"))


def playground_upload_mb() -> Setting | None:
    """``REVISION_PLAYGROUND_UPLOAD_MB`` / ``[server] playground_upload_mb``: the largest photograph a visitor
    may upload to the public playground, in MB (checked by ``pages/_uploads``; default 30)."""
    return lookup(PLAYGROUND_UPLOAD_ENV, "server", "playground_upload_mb")


def real_samples_folder(environ: Mapping[str, str] | None = None, secrets_path: Path | None = None) -> Path | None:
    """The folder of real photographs for the public demo (``REVISION_REAL_SAMPLES``, else ``[demo]
    real_samples``; relative paths from the repository root), or None when unset, empty or absent."""
    try:
        found = lookup(REAL_SAMPLES_ENV, "demo", "real_samples", environ=environ, secrets_path=secrets_path,
                       empty_env_is_unset=False)
    except SecretsUnreadable:
        return None
    if found is None or not str(found.value).strip():
        return None
    folder = Path(str(found.value)).expanduser()
    folder = folder if folder.is_absolute() else REPO_ROOT / folder
    return folder if folder.is_dir() else None


def app_model() -> tuple[str, str | None]:
    """(model spec, checkpoint) the app's demo pages load: ``REVISION_APP_MODEL`` (default ``demo``) and
    ``REVISION_APP_CHECKPOINT``."""
    return os.environ.get(APP_MODEL_ENV, "demo"), os.environ.get(APP_CHECKPOINT_ENV) or None
