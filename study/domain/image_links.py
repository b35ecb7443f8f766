"""Signed links to case photographs, so the browser fetches (and caches) them over plain HTTP.

Why links and not bytes in the page: an 8-megapixel photograph is about 1 MB; sent inside every script
run it would cost a round trip per case and could not be cached or prefetched. A link names one display
file of a case photograph in the study's store (never an AI output: overlays travel only inside an aided
page, and the store holds photographs only), carries
an expiry and an HMAC-SHA256 signature with a per-process secret (``REVISION_IMAGE_SECRET`` pins it
across restarts), and is handed only to a signed-in reader for that reader's own cases. The expiry is
rounded to a whole day, so one photograph keeps one URL for a day and the browser's cache holds.
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
from pathlib import Path

from study.domain.cases import study_store
from study.storage import settings

SECRET_ENV = settings.IMAGE_SECRET_ENV
ROUTE = "/case-image"
DAY = 86_400
_NAME = re.compile(r"^[0-9a-f]{64}(\.[a-z0-9]{1,8}){1,3}$")  # a content-addressed store file name, nothing else
_SECRET = (settings.image_secret() or secrets.token_hex(32)).encode()


class LinkInvalid(ValueError):
    """A link that is forged, expired, malformed or names something that is not a stored photograph."""

@dataclass(frozen=True)
class ImageLink:
    study_id: int
    file_name: str  # a display file in the study's store, e.g. "<sha256>.screen.jpg"
    expires: int  # unix seconds


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(body: str) -> str:
    return _b64(hmac.new(_SECRET, body.encode(), hashlib.sha256).digest())


def image_url(study_id: int, file_name: str, *, now: float | None = None) -> str:
    """The URL of one display file in a study's store, valid until the end of tomorrow (UTC)."""
    if not _NAME.match(file_name or ""):
        raise ValueError(f"not a display file of the study store: {file_name!r}")
    expires = (int(now if now is not None else time.time()) // DAY + 2) * DAY
    body = _b64(json.dumps([int(study_id), file_name, expires], separators=(",", ":")).encode())
    return f"{ROUTE}/{body}.{_signature(body)}"


def verify(token: str, *, now: float | None = None) -> ImageLink:
    """The link a token names; :class:`LinkInvalid` unless it is well-formed, signed by us and current."""
    body, _, signature = (token or "").partition(".")
    if not body or not signature or len(token) > 1000:
        raise LinkInvalid("malformed image link")
    if not hmac.compare_digest(signature, _signature(body)):
        raise LinkInvalid("image link signature does not match")
    try:
        study_id, file_name, expires = json.loads(_unb64(body))
    except (ValueError, TypeError) as exc:
        raise LinkInvalid("malformed image link") from exc
    if not isinstance(file_name, str) or not _NAME.match(file_name):
        raise LinkInvalid("image link names no display file")
    if (now if now is not None else time.time()) > expires:
        raise LinkInvalid("image link has expired: reload the page")
    return ImageLink(int(study_id), file_name, int(expires))


def resolve(token: str, store_root: str | Path | None = None) -> Path:
    """The file a token names, inside the study's store (FileNotFoundError when it is not there)."""

    link = verify(token)
    path = study_store(link.study_id, store_root) / link.file_name
    if not path.is_file():
        raise FileNotFoundError(link.file_name)
    return path
