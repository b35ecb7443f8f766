"""The ASGI entry point: the Streamlit app (app.py) plus one plain HTTP route for case photographs.

Why a route beside Streamlit: the reading page's viewer fetches photographs by signed link
(``study.domain.image_links``), so the browser caches them, prefetches the next case and loads full
resolution only when the reader zooms in, without a script run. Served by ``scripts/serve_app.py``.
"""
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, PlainTextResponse
from starlette.routing import Route
from streamlit.starlette import App

from study.domain import image_links
from study.storage import settings

APP_SCRIPT = Path(__file__).resolve().parent / "app.py"
MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


async def case_image(request):
    try:
        path = await run_in_threadpool(image_links.resolve, request.path_params["token"], settings.store_root())
    except image_links.LinkInvalid as exc:
        return PlainTextResponse(f"{exc}", status_code=403)
    except FileNotFoundError:
        return PlainTextResponse("photograph not found in the study store", status_code=404)
    return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream"),
                        headers={"Cache-Control": f"private, max-age={2 * image_links.DAY}, immutable",
                                 "X-Content-Type-Options": "nosniff"})


app = App(str(APP_SCRIPT), routes=[Route(image_links.ROUTE + "/{token}", case_image)])
