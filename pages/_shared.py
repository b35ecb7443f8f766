"""Resources loaded once per server process and shared by every page and session, plus the role checks.

Heavy imports (torch, the model) happen inside :func:`classifier` only, so reader and investigator
pages never load the model. The model is the bundled demo by default; ``REVISION_APP_MODEL`` (an
open_clip architecture) with ``REVISION_APP_CHECKPOINT`` selects another (the tests use a tiny one).
"""
import re
from pathlib import Path

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from pages._uploads import PLAYGROUND_LONGEST, DecodeBudget, decode_budget, decode_estimate, playground_upload_mb
from study.domain import study_mode
from study.services import signin
from revision_core.imageio import load_image_reduced
from study.storage import db, settings

# A ``pages/`` folder next to app.py makes Streamlit treat every file in it as a page (the old
# multipage mode) until app.py's st.navigation runs; if a server's very first request named a page
# URL, app.py would never run and the role-based navigation would be bypassed for the whole process.
# This module is imported by every page, so the first such run switches that mode off for good (each
# page also checks the role itself, so even that first run shows nothing it should not).
PagesManager.uses_pages_directory = False

ROLE = "role"  # session_state key: None (visitor), "reader" or "investigator"


def real_samples_folder():
    """The configured folder of real photographs for the gallery (``study.storage.settings``), or None."""
    return settings.real_samples_folder()


def model_spec() -> tuple[str, str | None]:
    return settings.app_model()


@st.cache_resource(show_spinner="Loading the model ...")
def _classifier(spec: str, checkpoint: str | None):
    from revision_core.model import load_model
    from revision_core.zeroshot import ZeroShotClassifier

    return ZeroShotClassifier(load_model(spec, checkpoint))


def classifier(spec: str | None = None):
    """The model and its label-set prompt embeddings, computed once per process."""
    default_spec, checkpoint = model_spec()
    return _classifier(spec or default_spec, checkpoint if spec is None else None)


@st.cache_resource(show_spinner=False)
def _database(url: str):
    return db.shared_factory(url)  # the same engine as server.py's routes


def database():
    """The session factory for the configured database (env, secrets.toml, else embedded SQLite), migrated once."""

    return _database(db.resolve_url(None))


def role() -> str | None:
    return st.session_state.get(ROLE)


def require_role(wanted: str) -> None:
    """Stop the page unless this browser session is signed in as ``wanted`` (defence in depth: the
    navigation already hides other roles' pages)."""
    if role() != wanted:
        if wanted == "reader" and role() is None and st.session_state.get(LANDING) == "reader_signin":
            st.switch_page("pages/reader_signin.py")  # signed out meanwhile: the sign-in page says why
        st.error(f"This page is for signed-in {wanted}s only.")
        st.stop()


def sign_out() -> None:
    """Sign this browser out; a reader's sign-out ends every session of theirs (every tab, every server) and
    the next run removes the session cookie."""
    session_id = st.session_state.get(READER_SESSION)
    if session_id is not None:
        signin.sign_out_reader(database(), session_id)
    _clear()
    if session_id is not None:
        st.session_state[CLEAR_COOKIE] = True


def _clear() -> None:
    for key in list(st.session_state.keys()):
        if key not in ("signin_throttle", "investigator_throttle"):  # the throttle survives a sign-out
            del st.session_state[key]


# --- the reader's session: kept across reloads, servers and dropped connections (issue 20) ----------------

READER_SESSION = "reader_session_id"  # session_state: the reader's session row (study.domain.reader_sessions)
TICKET = "reader_session_ticket"  # its one-time ticket, until the browser has exchanged it for the cookie
NOTICE = "signed_out_notice"  # why a reader was signed out, for the reader sign-in page
CLEAR_COOKIE = "clear_session_cookie"
RESUMED = "reader_resumed"  # this browser session took over a reader's session (a reload, another server)
_COOKIE_CHECKED = "session_cookie_checked"


def check_server_settings() -> None:
    """Raise ValueError for an invalid sign-in, session or upload setting (app.py shows it and stops)."""
    signin.check_settings()
    decode_budget()
    playground_upload_mb()


def client_address() -> str:
    """This browser's address for the sign-in throttle: the connection's, or behind a trusted proxy the one
    it forwarded (``[server] trusted_proxies``)."""
    return signin.client_address_of(st.context.ip_address, st.context.headers.get("X-Forwarded-For"))


def signed_in_reader(reader_id: int, session_id: int, ticket: str | None) -> None:
    """After a successful sign-in: this browser is the reader's, and its next run hands over the cookie."""
    st.session_state[ROLE] = "reader"
    st.session_state["reader_id"] = reader_id
    st.session_state[READER_SESSION] = session_id
    if ticket:
        st.session_state[TICKET] = ticket


def end_reader_browser_session(notice: str | None) -> None:
    """The reader's session has ended elsewhere (sign-out in another tab, a withdrawn code, expiry): this
    browser goes back to the reader sign-in page, which says why."""
    _clear()
    st.session_state[LANDING] = "reader_signin"
    st.session_state[CLEAR_COOKIE] = True
    if notice:
        st.session_state[NOTICE] = notice


def check_reader_session() -> None:
    """Every run (app.py): a signed-in reader's session must still be live in the database, else this browser
    is signed out with the reason; a visitor whose cookie names a live session is the reader again (a reload,
    a dropped connection, another server behind the proxy)."""
    factory = database()
    if role() == "reader":
        session_id = st.session_state.get(READER_SESSION)
        checked = signin.check_reader_session(factory, session_id) if session_id is not None else None
        if checked is None or not checked.ok:
            end_reader_browser_session(checked.message if checked else None)
        elif checked.claimed:
            st.session_state.pop(TICKET, None)
        return
    token = st.context.cookies.get(signin.COOKIE)
    if role() is not None or not token or st.session_state.get(_COOKIE_CHECKED) == token[:16]:
        return
    st.session_state[_COOKIE_CHECKED] = token[:16]  # one look per cookie and browser session
    checked = signin.resume_reader_session(factory, token)
    if checked is not None and checked.ok:
        signed_in_reader(checked.reader_id, checked.session_id, None)
        st.session_state[RESUMED] = True
    elif checked is not None and checked.ended not in (None, "signed_out"):
        st.session_state[NOTICE] = checked.message
        st.session_state[LANDING] = "reader_signin"
        st.session_state[CLEAR_COOKIE] = True


COOKIE_CSS = "<style>.st-key-session_cookie { display: none; }</style>"


def session_cookie_scripts() -> None:
    """Hand the session cookie over (post the one-time ticket to ``/session/claim``) or remove it
    (``/session/end``): the server sets it HttpOnly, so no script of the page can read it."""
    ticket = st.session_state.get(TICKET)
    clear = st.session_state.pop(CLEAR_COOKIE, False)
    if not ticket and not clear:
        return
    if ticket:  # a URL-safe random text made by the server: nothing a user typed
        script = (f"fetch({signin.CLAIM_ROUTE!r}, {{method: 'POST', body: {ticket!r}, credentials: 'same-origin',"
                  " cache: 'no-store'}).catch(() => {});")
    else:
        script = (f"fetch({signin.END_ROUTE!r}, {{method: 'POST', credentials: 'same-origin', cache: 'no-store'}})"
                  ".catch(() => {});")
    with st.container(key="session_cookie"):
        st.html(COOKIE_CSS + f"<script>{script}</script>", unsafe_allow_javascript=True)


def classifier_or_stop():
    """The classifier, or a clear error and a stopped page when the model cannot be loaded."""
    from revision_core.model import ModelLoadError

    try:
        return classifier()
    except ModelLoadError as exc:
        st.error(f"The model is not available: {exc}")
        st.stop()


def model_banner(clf, detail: str = "") -> None:
    """The demo disclaimer (for the demo model) and a one-line model card, shown with every suggestion."""
    card = clf.loaded.card
    if card.is_demo:
        st.warning(f"**Demo model.** {card.disclaimer}", icon=":material/warning:")
    st.caption(f"Model: {card.name} · version {card.version}{detail}")


def suggestion_bars(names: dict, probabilities: dict, top: int = 5) -> None:
    """The AI panel's bars: one labelled bar a finding, most probable first (readable at any column width,
    unlike a chart whose axis labels are cut on a narrow one). Finding names are shown as plain text."""
    for finding, p in sorted(probabilities.items(), key=lambda kv: kv[1], reverse=True)[:top]:
        st.progress(min(max(float(p), 0.0), 1.0), text=f"{plain(names.get(finding, finding))}: **{p:.0%}**")


@st.cache_data(show_spinner=False)
def _label_set_names(label_set: str) -> dict[str, str]:
    from revision_core.labels import load_label_set

    return {f.key: f.name for f in load_label_set(label_set).findings}


def finding_names(label_set: str | None, questions=()) -> dict[str, str]:
    """Finding key -> name as the AI panel shows it: the label set's names, else the questions' option labels."""
    names = {k: label for q in questions for k, label in (q.get("options") or ())}
    if label_set:
        try:
            names.update(_label_set_names(label_set))
        except Exception:  # a label set edited or removed since precompute: fall back to the option labels
            pass
    return names


STATION_CSS = """
/* a reading screen (the reader's, and the visitors' "Try the study"): the viewer's column stays in view while
   the page scrolls the questions (a sticky flex item must not be stretched to the row's height, or it has no
   room to stick) */
[data-testid="stColumn"]:has(.st-key-viewer_column) { position: sticky; top: 0.5rem; align-self: flex-start; }
/* Submit (and any error above it) stays at the bottom of the window while the form is on screen: the sticky box
   is the container's layout wrapper, whose parent (the form) gives it room */
[data-testid="stLayoutWrapper"]:has(> .st-key-submit_bar) { position: sticky; bottom: 0; z-index: 3; }
.st-key-submit_bar { background-color: rgb(255, 255, 255); padding: 0.5rem 0 0.6rem 0;
  box-shadow: 0 -8px 8px -8px rgba(0, 0, 0, 0.25); }
.st-key-submit_bar [data-testid="stAlert"] { max-height: 30vh; overflow-y: auto; }
/* while the next case is drawn, nothing of the previous one stays on screen: no old AI panel beside a new
   photograph, no old heading above it (the page reruns only on Submit and Pause) */
[data-testid="stElementContainer"][data-stale="true"] { visibility: hidden; }
/* ... except the answers and the Submit bar while only the answer column reruns (each change is kept as a draft):
   they must not blink */
.st-key-answer_form [data-testid="stElementContainer"][data-stale="true"],
.st-key-submit_bar [data-testid="stElementContainer"][data-stale="true"] { visibility: visible; }
"""

READING_ROOM_CSS = """
<style>
/* the reading page: the photograph gets the room. No header band (a reader has no sidebar), slim margins */
header[data-testid="stHeader"] { display: none; }
.stMainBlockContainer, [data-testid="stMainBlockContainer"] { padding: 0.75rem 1rem 1rem 1rem; max-width: none; }
.stMainBlockContainer h3 { padding: 0 0 0.1rem 0; }
""" + STATION_CSS + """
</style>
"""


def reading_room_style() -> None:
    st.html(READING_ROOM_CSS)


def station_style() -> None:
    """The reading screen's layout without the reader's page chrome (for the visitors' "Try the study")."""
    st.html("<style>" + STATION_CSS + "</style>")


FAVICON = Path(__file__).resolve().parents[1] / "assets" / "favicon.png"  # served by the app: no font CDN

APP_CSS = """
<style>
/* every page, on a touch screen: each control at least 44 px high (WCAG 2.5.5 target size), so a finger hits
   the option it means; the reading station's viewer has the same rule in components/case_viewer.css */
@media (pointer: coarse) {
  button[data-testid^="stBaseButton"], [data-testid="stPageLink"] a, [data-testid="stSidebarNav"] a,
  [data-testid="stExpander"] summary { min-height: 44px; }
  [data-testid="stRadio"] [role="radiogroup"] label, [data-testid="stCheckbox"] label { min-height: 44px;
    align-items: center; }
  [data-testid="stNumberInput"] input, [data-testid="stTextInput"] input { min-height: 44px; }
  [data-testid="stNumberInput"] button { min-width: 44px; min-height: 44px; }
  [data-baseweb="select"] > div, [data-testid="stMultiSelect"] [role="group"] { min-height: 44px; }
  [data-testid="stTooltipIcon"] button { min-width: 44px; min-height: 44px; justify-content: center; }
  [data-testid="stSlider"] [role="slider"] { width: 28px; height: 28px; }
  [data-testid="stSlider"] [data-baseweb="slider"] { padding: 10px 0; }
}
/* a window up to a tablet's width: slimmer margins (the visitor's sidebar already takes 300 px), and headings in
   columns a size smaller so that a word ("Investigators") is never split over two lines */
@media (max-width: 1200px) {
  [data-testid="stMainBlockContainer"] { padding-left: 1.5rem; padding-right: 1.5rem; padding-top: 4.25rem; }
  [data-testid="stColumn"] h3 { font-size: 1.4rem; }
}
[data-testid="stColumn"] h3 { word-break: normal; overflow-wrap: normal; }
</style>
"""


def app_style() -> None:
    """The app-wide style (touch target sizes); app.py calls it on every run, before the page."""
    st.html(APP_CSS)


# --- plain text for user-supplied names (issue 11) ----------------------------------------------------

_MARKDOWN_INLINE = frozenset("\\`*_{}[]<>|~:$&@")   # escaped wherever they stand
_MARKDOWN_LINE_START = frozenset("-+#>=")             # escaped when they open the text (list, heading, quote)


def plain(text) -> str:
    """``text`` escaped so that Streamlit's Markdown shows it literally: no links, images, autolinks, HTML,
    emphasis, headings, lists, LaTeX, emoji codes or ``:color[...]`` directives.

    For every user-supplied string (study, finding, level, question and option names, reader pseudonyms,
    case keys, correction reasons, messages that quote them) that goes into a Markdown-rendering call:
    ``st.markdown``, ``st.caption``, ``st.title``/``header``/``subheader``, ``st.info``/``warning``/``error``/
    ``success``, ``st.progress`` text, and widget labels and ``st.radio`` options (Streamlit renders
    Markdown in those too, images included). Not needed where Streamlit shows plain text: ``st.dataframe``
    cells, ``st.selectbox`` options, ``st.text``, ``st.code``.

    How: a backslash before an ASCII punctuation character means "this character, literally" in
    CommonMark. Escaped everywhere: the characters that open inline constructs (``[ ] < > ` * _ ~ | { }``,
    ``\\``), ``:`` (``http://`` autolinks, ``:red[...]``, ``:material/...:``, emoji codes), ``$`` (LaTeX),
    ``&`` (entities) and ``@`` (e-mail autolinks); ``.`` after ``www`` (``www.`` autolinks). Escaped at the
    start only: ``- + # > =`` and the ``.``/``)`` of ``1.`` (lists, headings, quotes). Line breaks and other
    control characters become spaces, so a name cannot start a new block. So ``![x](http://host/t.png)``
    shows as typed and fetches nothing, while ordinary names (``Age-related macular degeneration (AMD)``)
    are unchanged. ``None`` becomes an empty string.
    """
    if text is None:
        return ""
    chars = [" " if (c < " " or c in "\x7f\x85\u2028\u2029") else c for c in str(text)]
    out = []
    lead = len(chars) - len("".join(chars).lstrip(" "))
    digits_end = lead
    while digits_end < len(chars) and chars[digits_end].isdigit():
        digits_end += 1
    for i, ch in enumerate(chars):
        escape = ch in _MARKDOWN_INLINE
        escape |= i == lead and ch in _MARKDOWN_LINE_START
        escape |= i == digits_end > lead and ch in ".)"
        escape |= ch == "." and "".join(chars[max(0, i - 3):i]).lower() == "www"
        out.append("\\" + ch if escape else ch)
    return _NO_AUTOLINK.sub("\\1" + WORD_JOINER, "".join(out))


# Streamlit's Markdown turns URLs and e-mail addresses into links *after* parsing (GFM autolink literals on
# the text), so escaping their characters is not enough: a zero-width word joiner after "http:", "https:",
# "www" and before "@" breaks the patterns it looks for, and shows nothing.
WORD_JOINER = "\u2060"
_NO_AUTOLINK = re.compile(r"((?:https?|ftp|mailto)\\:|www(?=\\\.)|(?=\\@))", re.IGNORECASE)  # on plain()'s escapes


PLAYGROUND_MAX_PIXELS = 50_000_000  # header check before decoding (as an import): refused above this


def load_upload_reduced(data: bytes, name: str | None = None, *, longest: int = PLAYGROUND_LONGEST,
                        max_pixels: int = PLAYGROUND_MAX_PIXELS, budget: DecodeBudget | None = None):
    """An uploaded photograph as 8-bit RGB with its longest side at most ``longest``, decoded within a pixel
    budget (:func:`revision_core.imageio.load_image_reduced`: the public playground, where anyone can upload
    and the server is one process for everyone). Raises ``ImageLoadError`` with a user-facing message.

    Every decode first reserves its estimated memory from the server's :class:`DecodeBudget` (``budget``,
    default :func:`decode_budget`): at most so many bytes and so many decodes at once across every session,
    so a burst of uploads waits its turn instead of taking gigabytes; one that alone needs more is refused.
    """
    budget = decode_budget() if budget is None else budget
    return load_image_reduced(data, longest=longest, max_pixels=max_pixels, name=name,
                              reserve=lambda header: budget.reserve(decode_estimate(header, len(data), longest),
                                                                    name))


# --- study mode (issue 11): the public demo pages only while no study has unaided readings left -------

LANDING = "landing"  # session_state key: "reader_signin" after a reader's sign-out (study mode)
PUBLIC_DEMO_HIDDEN = "This page is not available on this server."


def public_demo_enabled() -> bool:
    """Whether this server offers the pages that run a model for visitors (``study.domain.study_mode``: the
    ``[app] public_demo`` setting; in "auto", off while any study has unaided readings left). Raises
    ``study.domain.study_mode.PublicDemoSettingError`` for an invalid setting."""

    return study_mode.public_demo_enabled(db.resolve_url(None), database)


def require_public_demo() -> None:
    """Stop a demo page, with one short line, unless the public demo is on for this visitor (defence in
    depth: app.py's navigation already leaves the demo pages out when they are off). Nothing of the
    model is loaded or shown before this check; a signed-in reader never gets a demo page."""
    try:
        allowed = role() != "reader" and public_demo_enabled()
    except ValueError:  # an invalid setting: app.py shows the error; the demo stays off
        allowed = False
    if not allowed:
        st.info(PUBLIC_DEMO_HIDDEN)
        st.stop()


def sign_out_to_reader_signin() -> None:
    """A reader's sign-out (pause): the session is cleared as by :func:`sign_out` (every session of the reader
    ends), and this browser session's default page becomes the reader sign-in page (app.py)."""
    sign_out()
    st.session_state[LANDING] = "reader_signin"
    st.session_state[NOTICE] = "You signed out; your answers are saved. Sign in with the same code to go on."
