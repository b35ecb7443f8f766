"""Signed links to case photographs, so the browser fetches (and caches) them over plain HTTP.

Why links and not bytes in the page: an 8-megapixel photograph is about 1 MB; sent inside every script
run it would cost a round trip per case and could not be cached or prefetched. A link names one display
file of a case photograph in the study's store (never an AI output: overlays travel only inside an aided
page, and the store holds photographs only), the reader it was made for and the version of that reader's
access code (``study.domain.reader_sessions.code_version``); it carries an expiry and an HMAC-SHA256
signature. The route (``server.py``) serves it only while that reader still holds that code: revoking or
reissuing the code ends every link made for it, on every server. The expiry is rounded to a whole day, so
one photograph keeps one URL for a day and the browser's cache holds.

The key: ``[server] image_secret`` / ``REVISION_IMAGE_SECRET`` when set (at least :data:`MIN_SECRET_BYTES`
bytes; a shorter one is refused), else a random key kept in the database (``server_key``), made by whichever
server needs it first, so every server behind a proxy signs and checks with the same key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from study.storage import settings
from study.storage.models import ServerKey

SECRET_ENV = settings.IMAGE_SECRET_ENV
ROUTE = "/case-image"
DAY = 86_400
MIN_SECRET_BYTES = 32
KEY_NAME = "image_links"
_NAME = re.compile(r"^[0-9a-f]{64}(\.[a-z0-9]{1,8}){1,3}$")  # a content-addressed store file name, nothing else
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,900}\.[A-Za-z0-9_-]{43}$")


class LinkInvalid(ValueError):
    """A link that is forged, expired, malformed or names something that is not a stored photograph."""


class ImageSecretError(ValueError):
    """``[server] image_secret`` / ``REVISION_IMAGE_SECRET`` is set but too short to be a key."""


@dataclass(frozen=True)
class ImageLink:
    study_id: int
    file_name: str  # a display file in the study's store, e.g. "<sha256>.screen.jpg"
    expires: int  # unix seconds
    reader_id: int
    code_version: int


def configured_secret() -> bytes | None:
    """The key of the setting, when set; :class:`ImageSecretError` when it is shorter than 32 bytes."""
    found = settings.image_secret()
    if found is None:
        return None
    value = str(found.value).encode()
    if len(value) < MIN_SECRET_BYTES:
        raise ImageSecretError(f"{found.where} is {len(value)} bytes long; a key needs at least {MIN_SECRET_BYTES} "
                               "(make one with: python -c \"import secrets; print(secrets.token_hex(32))\"), or "
                               "leave it unset and the servers share a key kept in the database")
    return value


def stored_key(session: Session) -> bytes:
    """The key kept in the database for every server, added (flushed; the caller commits) when there is none
    yet. Two servers adding it at once: one insert fails on the unique name, and that caller reads again."""
    value = session.scalar(select(ServerKey.value).where(ServerKey.name == KEY_NAME))
    if value is None:
        value = secrets.token_hex(32)
        session.add(ServerKey(name=KEY_NAME, value=value))
        session.flush()
    return bytes.fromhex(value)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())


def image_url(key: bytes, study_id: int, file_name: str, *, reader_id: int, code_version: int,
              now: float | None = None) -> str:
    """The URL of one display file in a study's store for one reader holding one code, valid until the end of
    tomorrow (UTC)."""
    if not _NAME.match(file_name or ""):
        raise ValueError("not a display file of the study store")
    expires = (int(now if now is not None else time.time()) // DAY + 2) * DAY
    body = _b64(json.dumps([int(study_id), file_name, expires, int(reader_id), int(code_version)],
                           separators=(",", ":")).encode())
    return f"{ROUTE}/{body}.{_signature(key, body)}"


def verify(key: bytes, token: str, *, now: float | None = None) -> ImageLink:
    """The link a token names; :class:`LinkInvalid` unless it is well-formed, signed with ``key`` and current.
    (Whether its reader still holds its code is the caller's check: it needs the database.)"""
    if not isinstance(token, str) or not _TOKEN.match(token):
        raise LinkInvalid("malformed image link")
    body, _, signature = token.partition(".")
    if not hmac.compare_digest(signature.encode(), _signature(key, body).encode()):
        raise LinkInvalid("image link signature does not match")
    try:
        study_id, file_name, expires, reader_id, version = json.loads(_unb64(body))
        link = ImageLink(int(study_id), str(file_name), int(expires), int(reader_id), int(version))
    except (ValueError, TypeError) as exc:
        raise LinkInvalid("malformed image link") from exc
    if not _NAME.match(link.file_name):
        raise LinkInvalid("image link names no display file")
    if (now if now is not None else time.time()) > link.expires:
        raise LinkInvalid("image link has expired: reload the page")
    return link
