"""Serve the app: ``python scripts/serve_app.py [streamlit options]`` = ``streamlit run server.py`` in-process.

server.py is app.py plus the route that serves case photographs to the reading page's viewer.

Why not plain ``streamlit run``: a folder named ``pages/`` next to app.py makes Streamlit start in its
old file-based multipage mode, so if a fresh server's very first request names a page URL, that page
runs without app.py's role-based navigation and the sidebar lists every file in ``pages/``. Turning
that mode off before the server starts means app.py always decides which pages a role may see.
"""
import ctypes
import sys
from pathlib import Path

from streamlit.runtime.pages_manager import PagesManager
from streamlit.web import cli

APP = Path(__file__).resolve().parents[1] / "server.py"
M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # glibc mallopt parameters


def return_big_buffers_to_the_system() -> None:
    """glibc keeps freed memory in per-thread arenas and raises its mmap threshold after each big free, so the
    buffers of a burst of uploads (tens of MB each, decoded in many threads) stayed in the server's RSS for good
    (measured: 8 uploads left +900 MB). Buffers over 1 MB now come from mmap and go back when freed, from at
    most two arenas (bench/bench_upload_burst.py). Elsewhere than glibc this does nothing."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 20)
        libc.mallopt(M_ARENA_MAX, 2)
    except (OSError, AttributeError):
        pass

if __name__ == "__main__":
    PagesManager.uses_pages_directory = False
    return_big_buffers_to_the_system()
    sys.argv = ["streamlit", "run", str(APP), *sys.argv[1:]]
    sys.exit(cli.main())
