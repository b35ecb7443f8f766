"""The ASGI entry point: the Streamlit app (app.py) plus plain HTTP routes beside it: case photographs, and the
reader's session cookie.

Why a route for photographs: the reading page's viewer fetches them by signed link (``study.domain.image_links``),
so the browser caches them, prefetches the next case and loads full resolution only when the reader zooms in,
without a script run. A link works only while its reader holds the access code it was made for.

Why routes for the session: a page cannot set an HttpOnly cookie. After a reader signs in, the page posts a
one-time ticket to ``/session/claim``, which answers with the session cookie (HttpOnly, SameSite=Strict, Secure
over HTTPS); a reload or another server then finds the session by it (``study.domain.reader_sessions``).
``/session/end`` signs the cookie's reader out and removes the cookie.

Every answer here is a short text: no traceback, server path or exception detail (they go to the server log).
Served by ``scripts/serve_app.py``.
"""
import sys
import traceback
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route
from streamlit.starlette import App

from study.domain import image_links
from study.services import reader, signin
from study.storage import db

APP_SCRIPT = Path(__file__).resolve().parent / "app.py"
MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
MAX_TICKET_BODY = 512


def _factory():
    return db.shared_factory()


def _failed(where: str) -> PlainTextResponse:
    """A short answer for an unexpected error; the traceback goes to the server log only."""
    print(f"[revision] {where} failed:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
    return PlainTextResponse("the server could not answer this request; the study team can find why in the "
                             "server log", status_code=500)


async def case_image(request):
    try:
        path = await run_in_threadpool(reader.photograph, _factory(), request.path_params["token"])
    except reader.LinkInvalid as exc:
        return PlainTextResponse(f"{exc}", status_code=403)
    except FileNotFoundError:
        return PlainTextResponse("photograph not found in the study store", status_code=404)
    except Exception:  # noqa: BLE001 - never a traceback in an HTTP answer
        return _failed("a photograph link")
    return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream"),
                        headers={"Cache-Control": f"private, max-age={2 * image_links.DAY}, immutable",
                                 "X-Content-Type-Options": "nosniff"})


def _https(request) -> bool:
    """Whether the browser reached us over HTTPS (directly, or through a trusted proxy that says so)."""
    return request.url.scheme == "https" or signin.forwarded_https(
        request.client.host if request.client else None, request.headers.get("x-forwarded-proto"))


def _session_cookie(response: Response, request, token: str | None) -> None:
    if token is None:
        response.delete_cookie(signin.COOKIE, path="/", secure=_https(request), httponly=True, samesite="strict")
        return
    hours = signin.session_hours()
    response.set_cookie(signin.COOKIE, token, max_age=int(hours * 3600), path="/", secure=_https(request),
                        httponly=True, samesite="strict")


async def session_claim(request):
    """Exchange the one-time ticket the sign-in page posted for the session cookie."""
    try:
        body = (await request.body())[:MAX_TICKET_BODY + 1]
        if len(body) > MAX_TICKET_BODY:
            return PlainTextResponse("request too large", status_code=413)
        token = await run_in_threadpool(signin.claim_session, _factory(), body.decode("ascii", "replace").strip())
    except Exception:  # noqa: BLE001
        return _failed("a session claim")
    if token is None:
        return PlainTextResponse("this sign-in ticket is unknown, used or expired: sign in again", status_code=403)
    response = Response(status_code=204, headers={"Cache-Control": "no-store"})
    _session_cookie(response, request, token)
    return response


async def session_end(request):
    """Sign out the cookie's reader (every session of theirs) and remove the cookie."""
    try:
        await run_in_threadpool(signin.sign_out_token, _factory(), request.cookies.get(signin.COOKIE))
    except Exception:  # noqa: BLE001
        return _failed("a sign-out")
    response = Response(status_code=204, headers={"Cache-Control": "no-store"})
    _session_cookie(response, request, None)
    return response


app = App(str(APP_SCRIPT), routes=[
    Route(image_links.ROUTE + "/{token}", case_image),
    Route(signin.CLAIM_ROUTE, session_claim, methods=["POST"]),
    Route(signin.END_ROUTE, session_end, methods=["POST"]),
])
