"""Bounded decoding of uploads (issue 20): one memory budget that every session of the server shares, the
playground's upload cap, and freeing an upload's bytes once it is decoded.

Why: anyone may upload to the public playground and the server is one process for everyone. A 7000 x 7000
16-bit PNG takes a few hundred MB while it decodes, and Streamlit keeps each upload's bytes until its visitor
leaves: 16 visitors at once once took the server from 1 GB to 6 GB. ``pages/_shared.load_upload_reduced``
reserves each decode's memory here first (``bench/bench_upload_burst.py`` measures a burst).
"""
import contextlib
import re
import threading

from study.storage import settings

PLAYGROUND_LONGEST = 1024  # kept side for the playground (a session keeps it): the model and its saliency read 256 px

# bytes a decoded pixel takes in PIL, by mode (8-bit colour images are kept as 4 bytes a pixel)
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2, "LA": 4, "PA": 4, "La": 4}
DEFAULT_DECODE_BUDGET = 500 * 1000 ** 2  # bytes every upload being decoded may take together
DEFAULT_DECODE_CONCURRENCY = 2
DECODE_WAIT_SECONDS = 120.0
_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3, "kib": 1024, "mib": 1024 ** 2,
          "gib": 1024 ** 3}


def decode_estimate(im, data_bytes: int, longest: int = PLAYGROUND_LONGEST) -> int:
    """The memory one decode takes at its peak (measured: a 7000 x 7000 16-bit PNG, 210 MB for RGB, 133 MB for
    grey): its pixels in their decoded mode plus a tenth, the reduced RGB result, the compressed bytes, and
    64 MB of slack; for a file PIL cannot size from its header (DICOM), eight times its bytes."""
    if im is None:
        return max(64 * 1000 ** 2, 8 * data_bytes)
    pixels = im.size[0] * im.size[1]
    return int(pixels * _MODE_BYTES.get(im.mode, 4) * 1.1) + longest * longest * 4 + data_bytes + 64 * 1000 ** 2


class DecodeBudget:
    """How much memory decoding uploads may take at once, and how many may decode at once, in this server
    process (every session shares it). A decode waits its turn (at most :data:`DECODE_WAIT_SECONDS`); one that
    alone needs more than the whole budget is refused with a message saying so."""

    def __init__(self, total_bytes: int = DEFAULT_DECODE_BUDGET, concurrency: int = DEFAULT_DECODE_CONCURRENCY,
                 wait_seconds: float = DECODE_WAIT_SECONDS):
        self.total, self.concurrency, self.wait_seconds = int(total_bytes), int(concurrency), wait_seconds
        self._cond = threading.Condition()
        self.in_use = self.active = self.peak_in_use = self.peak_active = 0

    @contextlib.contextmanager
    def reserve(self, nbytes: int, name: str | None = None):
        from revision_core.imageio import ImageLoadError

        what = name or "the photograph"
        if nbytes > self.total:
            raise ImageLoadError(f"{what}: decoding it would take about {nbytes / 1e6:,.0f} MB of memory, more than "
                                 f"this server allows for uploads ({self.total / 1e6:,.0f} MB): upload a smaller "
                                 "photograph, or a JPEG")
        with self._cond:
            fits = self._cond.wait_for(lambda: self.active < self.concurrency and self.in_use + nbytes <= self.total,
                                       timeout=self.wait_seconds)
            if not fits:
                raise ImageLoadError("The server is busy decoding other uploads: try again in a minute.")
            self.in_use += nbytes
            self.active += 1
            self.peak_in_use, self.peak_active = max(self.peak_in_use, self.in_use), max(self.peak_active, self.active)
        try:
            yield
        finally:
            with self._cond:
                self.in_use -= nbytes
                self.active -= 1
                self._cond.notify_all()


def _size(found, default: int) -> int:
    if found is None:
        return default
    m = re.fullmatch(r"\s*([0-9][0-9_]*(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(found.value))
    if isinstance(found.value, bool) or m is None or m[2].lower() not in _UNITS or float(m[1].replace("_", "")) <= 0:
        raise ValueError(f"{found.where} must be a size such as \"500 MB\" or 500000000 (bytes)")
    return int(float(m[1].replace("_", "")) * _UNITS[m[2].lower()])


def _count(found, default: int) -> int:
    if found is None:
        return default
    if isinstance(found.value, bool) or not str(found.value).strip().isdigit() or int(str(found.value)) < 1:
        raise ValueError(f"{found.where} must be a whole number, at least 1, e.g. {default}")
    return int(str(found.value))


def drop_upload(upload) -> None:
    """Free an upload's bytes now that it is decoded: Streamlit keeps every uploaded file in memory until its
    browser session ends (a burst of visitors would hold them all); the page replaces the uploader so the
    browser does not point at the dropped file."""
    from streamlit.runtime import get_instance
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    file_id = getattr(upload, "file_id", None)
    if ctx is not None and file_id:
        try:
            get_instance().uploaded_file_mgr.remove_file(session_id=ctx.session_id, file_id=file_id)
        except Exception:  # noqa: BLE001 - freeing is best effort (AppTest has no runtime): the session end frees it
            pass


DEFAULT_PLAYGROUND_UPLOAD_MB = 30


def playground_upload_mb() -> int:
    """The playground's upload cap in MB (``[server] playground_upload_mb``, default 30; the study's own uploads
    keep ``server.maxUploadSize``): each upload's bytes stay in the server's memory until its uploader is
    replaced, so a burst of visitors must not each bring hundreds of megabytes."""
    return _count(settings.playground_upload_mb(), DEFAULT_PLAYGROUND_UPLOAD_MB)


_budget: DecodeBudget | None = None
_budget_lock = threading.Lock()


def decode_budget() -> DecodeBudget:
    """This server process's decode budget, from ``[server] decode_budget`` / ``REVISION_DECODE_BUDGET``
    (default 500 MB) and ``decode_concurrency`` / ``REVISION_DECODE_CONCURRENCY`` (default 2)."""
    global _budget
    with _budget_lock:
        if _budget is None:
            size, count = settings.decode_limits()
            _budget = DecodeBudget(_size(size, DEFAULT_DECODE_BUDGET), _count(count, DEFAULT_DECODE_CONCURRENCY))
        return _budget
