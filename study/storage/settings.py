"""Where the study's image store lives: ``$REVISION_STORE_ROOT`` when set, else each caller's default.

Why its own module: the server, the reading screen, the demo builder and the investigator's imports all
read this one setting, and none of them should import a service (or each other) to get it.
"""

from __future__ import annotations

import os
from pathlib import Path

STORE_ENV = "REVISION_STORE_ROOT"


def store_root() -> Path | None:
    value = os.environ.get(STORE_ENV)
    return Path(value) if value else None
