"""Serve the app: ``python scripts/serve_app.py [streamlit options]`` = ``streamlit run server.py`` in-process.

server.py is app.py plus the route that serves case photographs to the reading page's viewer.

Why not plain ``streamlit run``: a folder named ``pages/`` next to app.py makes Streamlit start in its
old file-based multipage mode, so if a fresh server's very first request names a page URL, that page
runs without app.py's role-based navigation and the sidebar lists every file in ``pages/``. Turning
that mode off before the server starts means app.py always decides which pages a role may see.
"""
import sys
from pathlib import Path

from streamlit.runtime.pages_manager import PagesManager
from streamlit.web import cli

APP = Path(__file__).resolve().parents[1] / "server.py"

if __name__ == "__main__":
    PagesManager.uses_pages_directory = False
    sys.argv = ["streamlit", "run", str(APP), *sys.argv[1:]]
    sys.exit(cli.main())
