"""Cases of a study: add one, or import a manifest CSV all-or-nothing into the study's image store.

Why all-or-nothing: a half-imported case set silently changes the study. :func:`import_manifest`
first checks every row (ids, labels, every image decoded once, several at a time) and, if anything is
wrong, raises :class:`ManifestError` listing every problem as row/column/reason with nothing written to
the database or the store. The check pass already writes each image's stored file and display derivatives
into ``<store>/.staging-<random>/``; they are moved into the store just before the cases commit, and
removed on any failure, so an import leaves either everything or nothing. The checks run in a read-only
transaction (:func:`_begin_checks`): on SQLite a write transaction would hold up every reader's submit for
the whole import; only the final store takes the write lock.

The store is content-addressed: a file is named by the sha256 of its bytes (``Case.image_sha256``).
A JPEG keeps its own compressed data without metadata (``revision_core.imageio.strip_jpeg_metadata``:
same pixels, about the source's size) and, since the EXIF is gone, its orientation goes into the name:
``<sha>.jpg`` (upright) or ``<sha>.o6.jpg`` (EXIF orientation 6). Other formats become a metadata-free
PNG of the upright pixels, ``<sha>.png`` (as stores made before this scheme hold for every image).
Display derivatives beside it: ``<stem>.screen.jpg`` (longest side 2048) and, unless the stored file is
an upright JPEG a browser can show as is, ``<stem>.full.jpg`` (see :func:`display_files`).
Reference labels are stored on the case for analysis only; the reader workflow never reads them.

Hostile input (see :class:`ImportLimits`, the one place every bound lives): a manifest is read as a stream
within a size, row and column limit; at most ``max_problems`` problems are listed, with the count of the
rest; an image path must resolve inside the manifest's folder (absolute paths elsewhere, '..' and links
leading out all get the same message, which says nothing about whether the file exists); case ids are
printable, without control characters, at most 128 characters, and every other stored text has the length
of its database column, so SQLite and PostgreSQL accept exactly the same manifests; a photograph already
stored as a case of the study is refused, naming that case. :func:`import_zip` imports an uploaded ZIP
(one manifest.csv and its images), refusing from its headers alone, before extracting anything, what is
too big, too many, too compressed, duplicated or outside the ZIP.

:func:`import_folder` imports a folder laid out by label instead of a manifest (see its docstring for the
convention); it builds the same in-memory manifest rows, so the checks and the storage are the same code.

The lock: once the study's first answer exists its cases never change (every reader's assignments were
built from them; balanced blocks of new cases cannot be read by readers who have finished). Every importer
and :func:`add_case` refuse then with ``study.domain.design.StudyLocked``, before reading anything and again just
before the commit: import the cases into a new study, or before reading starts.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import posixpath
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from study.domain import audit
from study.domain.config import NORMAL
from study.domain.design import ensure_open
from study.domain.studies import get_study, study_config
from study.storage import db, settings
from study.storage.db import REPO_ROOT
from study.storage.models import Case, Study

REQUIRED_COLUMNS = ("case_id", "image_path", "label")
OPTIONAL_COLUMNS = ("findings", "eye", "patient_pseudonym", "split")
EYES = {"left": "left", "right": "right", "os": "left", "od": "right", "l": "left", "r": "right"}
STORE_ROOT = REPO_ROOT / "data" / "store"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".dcm")
STORED_REF = re.compile(r"^(?P<sha>[0-9a-f]{64})(?:\.o(?P<orientation>[2-8]))?\.(?:jpg|png)$")
WORKERS = min(4, os.cpu_count() or 1)  # images staged at once: PIL decodes and encodes without the GIL


@dataclass(frozen=True)
class ImportLimits:
    """Every bound on an import, in one place (pass ``limits=`` to the importers to change them; by default
    they use :func:`configured_limits`: these defaults, overridden from data).

    A ZIP is refused before anything is extracted when it would unpack to more than ``max_total_bytes``,
    holds more than ``max_members`` entries, or has a member over ``ratio_floor_bytes`` compressed more than
    ``max_ratio``:1 (a ZIP bomb: photographs are already compressed); members are then extracted one at a
    time, counting the bytes actually written. A folder (or a manifest's photographs) over ``max_members``
    entries or ``max_total_bytes`` is refused before any image is decoded. A manifest over
    ``max_manifest_bytes``, ``max_rows`` data rows or ``max_columns`` columns is refused before any row is
    checked; at most ``max_problems`` problems are listed, with the count of the rest; an image declaring
    more than ``max_pixels`` pixels is refused from its header, before it is decoded."""
    max_total_bytes: int = 4 * 1024 ** 3  # 4 GiB unpacked
    max_members: int = 20_000
    max_ratio: float = 100.0
    ratio_floor_bytes: int = 1024 ** 2  # members smaller than this unpack to too little to matter
    max_manifest_bytes: int = 10 * 1000 ** 2  # 10 MB
    max_rows: int = 100_000
    max_columns: int = 100
    max_problems: int = 100
    max_path_chars: int = 1024
    max_pixels: int = 50_000_000  # per image (a 60,000 x 60,000 PNG is refused from its header)
    chunk_bytes: int = 1024 ** 2  # extraction buffer


LIMITS = ImportLimits()  # the built-in defaults
ENV_PREFIX = settings.IMPORT_ENV_PREFIX
_UNITS = {"b": 1, "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3, "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3}


class ImportSettingError(ValueError):
    """An ``[import]`` setting or a ``REVISION_IMPORT_*`` variable that is not a valid limit."""


def _limit_value(field: str, raw, where: str):
    """``raw`` as the value of limit ``field``; ImportSettingError saying what is wrong and what to write."""
    kind = ImportLimits.__dataclass_fields__[field].type
    sized = field.endswith("_bytes")
    example = "10485760 or \"10 MiB\"" if sized else ("100" if kind == "float" else "20000")
    what = (f"{where}: {_show(raw)} is not a valid {field}: write a positive "
            f"{'number' if kind == 'float' else 'whole number'}{' of bytes (units B, KB, MB, GB, KiB, MiB, GiB)' if sized else ''}"
            f", e.g. {example}")
    if isinstance(raw, bool):
        raise ImportSettingError(what)
    value = raw
    if isinstance(raw, str):
        m = re.fullmatch(r"\s*([0-9][0-9_]*(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", raw)
        if m is None or (m[2] and (not sized or m[2].lower() not in _UNITS)):
            raise ImportSettingError(what)
        value = float(m[1].replace("_", "")) * _UNITS[m[2].lower() or "b"]
    if not isinstance(value, (int, float)) or value != value or value <= 0 or value == float("inf"):
        raise ImportSettingError(what)
    if kind == "float":
        if field == "max_ratio" and value < 1:
            raise ImportSettingError(what.replace("a positive number", "a number of at least 1"))
        return float(value)
    if float(value) != int(value):
        raise ImportSettingError(what)
    return int(value)


def configured_limits(environ: dict[str, str] | None = None, secrets_path: Path | None = None) -> ImportLimits:
    """The import limits in force: :data:`LIMITS`, overridden by the ``[import]`` table of
    ``.streamlit/secrets.toml``, then by ``REVISION_IMPORT_<FIELD>`` variables (``REVISION_IMPORT_MAX_ROWS``).

    Read at every import, so a changed setting needs no restart; a bad value or an unknown key raises
    :class:`ImportSettingError` (a ValueError: the CLI exits 2, the app lists it) naming where it is."""
    name = (secrets_path or settings.SECRETS_FILE).name
    known = list(ImportLimits.__dataclass_fields__)
    values: dict = {}
    try:
        table, variables = settings.import_settings(environ, secrets_path)
    except settings.SecretsUnreadable as exc:
        raise ImportSettingError(f"cannot read [import] from {exc.name}: {exc.reason}") from None
    if table is not None and not isinstance(table, dict):
        raise ImportSettingError(f"import in {name} must be a table ([import]) of limits: {', '.join(known)}")
    for key, raw in (table or {}).items():
        if key not in known:
            raise ImportSettingError(f"[import] {key} in {name} is not an import limit; the limits are "
                                     f"{', '.join(known)}")
        values[key] = _limit_value(key, raw, f"[import] {key} in {name}")
    for key, raw in variables.items():
        variable = ENV_PREFIX + key.upper()
        if key not in known:
            raise ImportSettingError(f"{variable} is not an import limit; the variables are "
                                     f"{', '.join(ENV_PREFIX + k.upper() for k in known)}")
        values[key] = _limit_value(key, raw, variable)
    return replace(LIMITS, **values)

# Text stored from a manifest: the same checks on SQLite (which stores any length) and PostgreSQL (which
# refuses more than the column length, and NUL characters), so both accept exactly the same manifests.
CASE_ID_MAX_CHARS = 128
TEXT_MAX_CHARS = {"eye": Case.__table__.c.eye.type.length,
                  "patient_pseudonym": Case.__table__.c.patient_pseudonym.type.length,
                  "split": Case.__table__.c.split.type.length}
TRUTH_MAX_CHARS = 200  # a truth column's value (stored in the reference_labels JSON)
OUTSIDE = "image_path must be a path inside the manifest's folder (relative, without '..', not a link leading out)"


@dataclass(frozen=True)
class Problem:
    row: int  # 1 = header line, 2 = first data row (as a spreadsheet numbers them)
    column: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column}: {self.reason}"


@dataclass(frozen=True)
class FolderProblem:
    """A problem found by :func:`import_folder`: the path (relative to the imported folder) and why."""
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class ManifestError(ValueError):
    """The manifest, folder or ZIP was rejected whole; ``problems`` lists the problems found (at most
    ``ImportLimits.max_problems``: :class:`Problem` row/column/reason for a manifest, :class:`FolderProblem`
    path/reason for a folder or a ZIP), ``total`` counts them all (images are not checked while the other
    columns already have ``max_problems`` problems: ``images_checked`` is then False)."""

    def __init__(self, source: str, problems: list[Problem] | list[FolderProblem], total: int | None = None,
                 images_checked: bool = True):
        self.problems = list(problems)
        self.total = max(total if total is not None else 0, len(self.problems))
        self.images_checked = images_checked
        super().__init__(f"{source}: rejected, nothing imported; {self.total} problem(s):\n"
                         + "\n".join(f"  - {m}" for m in self.messages()))

    @property
    def more(self) -> int:
        """How many problems are counted but not listed."""
        return self.total - len(self.problems)

    def messages(self) -> list[str]:
        """One line per listed problem, then one saying how many more there are (if any)."""
        lines = [str(p) for p in self.problems]
        if self.more:
            lines.append(f"and {self.more} more problem(s) not listed: fix these and import again"
                         + ("" if self.images_checked else " (the images are checked once the other columns "
                                                           "are right)"))
        return lines


class _Problems:
    """Collects at most ``cap`` problems and counts the rest (a hostile manifest cannot build millions of
    messages)."""

    def __init__(self, cap: int):
        self.cap = cap
        self.items: list = []
        self.total = 0

    def add(self, problem) -> None:
        self.total += 1
        if len(self.items) < self.cap:
            self.items.append(problem)

    @property
    def full(self) -> bool:
        return self.total >= self.cap


def _show(value, limit: int = 60) -> str:
    """A value quoted for a message, shortened (a message never echoes a megabyte)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 5] + "...'"


def _text_problem(value: str, limit: int) -> str | None:
    """Why a stored text value is refused (too long, or a control / invisible character), or None."""
    if len(value) > limit:
        return f"{len(value)} characters long, at most {limit} allowed: shorten it"
    if not value.isprintable():
        return f"{_show(value)} contains a control or invisible character (newline, tab, ...): remove it"
    return None


def case_key_problem(case_key) -> str | None:
    """Why ``case_key`` (already stripped) cannot be a case id, or None: case ids are printable text
    without control characters (no newline, no tab), 1 to 128 characters, on every database."""
    if not isinstance(case_key, str) or not case_key:
        return "empty"
    if len(case_key) > CASE_ID_MAX_CHARS:
        return f"{len(case_key)} characters long, at most {CASE_ID_MAX_CHARS} allowed: use a shorter id"
    if not case_key.isprintable():
        return (f"{_show(case_key)} contains a control or invisible character (newline, tab, ...): case ids "
                "must be printable text")
    return None


def ensure_cases_open(session: Session, study) -> None:
    """Refuse (``study.domain.design.StudyLocked``, a ValueError) to add cases to a study that has answers."""
    ensure_open(session, study, "Cases can no longer be added",
                "Import these cases into a new study (`python -m study init CONFIG.toml` with another name), "
                "or, for a study that has not started, import them before the first answer")


def add_case(session: Session, study_id: int, case_key: str, image_ref: str, reference_labels: dict, *,
             image_sha256: str | None = None, eye: str | None = None, patient_pseudonym: str | None = None,
             split: str | None = None, actor: str = "investigator", check_open: bool = True) -> Case:
    """Add one case (audited) in the caller's transaction; ``check_open=False``: the importer, adding many,
    has checked the lock once."""
    study = get_study(session, study_id)
    if check_open:
        ensure_cases_open(session, study)
    if not isinstance(case_key, str) or not case_key.strip():
        raise ValueError("case_key must be a non-empty string")
    if (why := case_key_problem(case_key.strip())) is not None:
        raise ValueError(f"case_key: {why}")
    case = Case(study_id=study.id, case_key=case_key.strip(), image_ref=image_ref, image_sha256=image_sha256,
                reference_labels=dict(reference_labels), eye=eye, patient_pseudonym=patient_pseudonym, split=split)
    session.add(case)
    session.flush()
    audit.record(session, actor=actor, action="case.added", entity="case", entity_id=case.id, study_id=study.id,
                 after={"case_key": case.case_key, "image_ref": image_ref, "image_sha256": image_sha256,
                        "reference_labels": case.reference_labels, "eye": eye,
                        "patient_pseudonym": patient_pseudonym, "split": split})
    return case


def study_store(study_id: int, root: str | Path | None = None) -> Path:
    """The folder holding a study's images (``<root>/study-<id>/<sha256>.jpg``, ``.png``, derivatives); ``root``
    defaults to the configured store root (``study.storage.settings.store_root``), else :data:`STORE_ROOT`, for
    the servers and the command line alike."""
    return Path(root or settings.store_root() or STORE_ROOT) / f"study-{study_id}"


def store_root_of(study: Study, root: str | Path | None = None) -> Path:
    """Where ``study``'s photographs are: the root its first import recorded (``Study.store_root``), else
    ``root``, else the configured default. A ``root`` other than the recorded one is refused (ValueError):
    one study's photographs live under one root, whichever server or command looks for them."""
    given = Path(root or settings.store_root() or STORE_ROOT).resolve()
    if study.store_root:
        recorded = Path(study.store_root)
        if root is not None and given != recorded:
            raise ValueError(f"study {study.name!r} keeps its photographs under {recorded}: give --store {recorded} "
                             "or leave --store out")
        return recorded
    return given


def stored_ref(sha: str, orientation: int, suffix: str) -> str:
    """The store name of an image: its sha256, the EXIF orientation still to apply (if any), its type."""
    return f"{sha}{f'.o{orientation}' if orientation != 1 else ''}{suffix}"


def ref_orientation(image_ref: str) -> int:
    """The EXIF orientation recorded in a store name (1 for ``<sha>.jpg``/``.png`` and for any path)."""
    m = STORED_REF.match(image_ref)
    return int(m["orientation"]) if m and m["orientation"] else 1


def case_source(store: Path, image_ref: str):
    """What ``load_image`` reads for a case: the stored file (with its recorded orientation), or
    ``image_ref`` as a path when it is not in the store."""
    from revision_core.imageio import OrientedFile

    stored = store / image_ref
    if not stored.is_file():
        return Path(image_ref)
    orientation = ref_orientation(image_ref)
    return OrientedFile(stored, orientation) if orientation != 1 else stored


@dataclass(frozen=True)
class DisplayFiles:
    """The files a browser shows for a case, both upright and metadata-free: ``screen`` (JPEG, longest
    side at most 2048) and ``full`` (native resolution); ``width`` x ``height`` is the upright full size."""
    screen: Path
    full: Path
    width: int
    height: int


def _derivative(stem: str, kind: str) -> str:
    return f"{stem}.{kind}.jpg"


def _stem(image_ref: str) -> str:
    return image_ref.rsplit(".", 1)[0]


def _full_is_stored(stored: Path, image_ref: str) -> bool:
    from revision_core.imageio import browser_ready

    return ref_orientation(image_ref) == 1 and image_ref.endswith(".jpg") and browser_ready(stored)


def display_files(study_id: int, image_ref: str, store_root: str | Path | None = None) -> DisplayFiles:
    """The case's display files; made now (atomically, once) for cases imported without them, so older
    studies and path references work too. Raises ImageLoadError if the image cannot be read."""
    from PIL import Image

    from revision_core.imageio import OrientedFile, jpeg_bytes, load_image, screen_jpeg

    store = study_store(study_id, store_root)
    source = case_source(store, image_ref)
    path = source.path if isinstance(source, OrientedFile) else source
    named = path == store / image_ref and STORED_REF.match(image_ref) is not None  # else keyed by its bytes
    stem = _stem(image_ref) if named else hashlib.sha256(_read(path)).hexdigest()
    screen = store / _derivative(stem, "screen")
    full = path if named and _full_is_stored(path, image_ref) else store / _derivative(stem, "full")
    if screen.is_file() and full.is_file():
        with Image.open(full) as im:
            return DisplayFiles(screen, full, *im.size)
    image = load_image(source)
    store.mkdir(parents=True, exist_ok=True)
    if not screen.is_file():
        _write_file(screen, screen_jpeg(image))
    if not full.is_file():
        _write_file(full, jpeg_bytes(image, 95))
    return DisplayFiles(screen, full, *image.size)


def _read(path: Path) -> bytes:
    from revision_core.imageio import ImageLoadError

    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageLoadError(f"{path}: could not be read ({exc.strerror or exc}).") from None


def _write_file(target: Path, data: bytes) -> None:
    """Write durably and atomically (a reader never sees half a file)."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def store_file(store: Path, name: str, data: bytes) -> Path:
    """``data`` as the file ``name`` of a study store, written durably and atomically unless it is there."""
    path = Path(store) / name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_file(path, data)
    return path


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Staging:
    """One import's files: written into ``<store>/.staging-<random>/`` while rows are checked, moved into
    the store just before the cases commit, and removed (with any folder the import created) on failure.

    Use as a context manager: leaving it with an exception discards everything this import put in place."""

    def __init__(self, store: Path, max_pixels: int = LIMITS.max_pixels):
        self.store = store
        self.max_pixels = max_pixels
        self.folder: Path | None = None
        self.created: list[Path] = []  # store folders this import made, innermost first
        self.placed: list[Path] = []  # files this import moved into the store

    def __enter__(self) -> "_Staging":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            for path in self.placed:
                path.unlink(missing_ok=True)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        if exc_type is not None:
            for folder in self.created:
                try:
                    folder.rmdir()  # only if empty: another import may be using it
                except OSError:
                    break

    def open(self) -> Path:
        """Create the staging folder (called once, before any worker starts)."""
        self.created = [p for p in (self.store, *self.store.parents) if not p.exists()]
        self.store.mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.store))
        return self.folder

    def stage(self, path: Path) -> str:
        """Decode ``path`` once; stage its stored file and display derivatives unless the store already has
        them (content-addressed); return its store name. Raises ImageLoadError for an unreadable image."""
        from revision_core.imageio import encode_for_store, jpeg_bytes, screen_jpeg

        enc = encode_for_store(path, max_pixels=self.max_pixels)
        sha = hashlib.sha256(enc.data).hexdigest()
        ref = stored_ref(sha, enc.orientation, enc.suffix)
        stored = self.store / ref
        if not (stored.is_file() and hashlib.sha256(stored.read_bytes()).hexdigest() == sha):
            _write_file(self.folder / ref, enc.data)
        made = {_derivative(_stem(ref), "screen"): lambda: screen_jpeg(enc.image)}
        if not enc.browser_ready:
            made[_derivative(_stem(ref), "full")] = lambda: jpeg_bytes(enc.image, 95)
        for name, make in made.items():
            if not (self.store / name).is_file():
                _write_file(self.folder / name, make())
        return ref

    def place(self) -> None:
        """Move every staged file into the store (replacing a damaged copy) and make the moves durable."""
        for f in sorted(self.folder.iterdir()):
            target = self.store / f.name
            existed = target.exists()
            os.replace(f, target)
            if not existed:
                self.placed.append(target)
        _fsync_dir(self.store)


def _remove_on_rollback(session: Session, placed: list[Path]) -> None:
    """The files an import moved into the store belong to the caller's transaction: when it rolls back (its
    commit failed, or it gave up) they are removed; once it commits they stay."""
    files = list(placed)
    if not files:
        return

    def forget(_session) -> None:  # the first end of the transaction decides; later ones find nothing
        files.clear()

    def remove(_session) -> None:
        for path in files:
            path.unlink(missing_ok=True)
        files.clear()

    event.listen(session, "after_commit", forget, once=True)
    event.listen(session, "after_rollback", remove, once=True)


def _stage_all(paths: list[Path | None], staging: _Staging) -> list:
    """Stage every image (WORKERS at a time; decoding dominates an import): per path its store name, the
    ImageLoadError that rejects it, or None where there is no file to read."""
    from revision_core.imageio import ImageLoadError

    def one(path: Path) -> str | ImageLoadError:
        try:
            return staging.stage(path)
        except ImageLoadError as exc:
            return exc

    if any(paths):
        staging.open()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = [pool.submit(one, p) if p is not None else None for p in paths]
        return [f.result() if f is not None else None for f in futures]


class _Base:
    """The folder a manifest's image paths must resolve inside: as written (for the lexical check, made
    before the file system is touched) and with every link resolved (for the check after resolving).
    Plain strings and a cache of resolved sub-folders: 100,000 rows are located in well under a second."""

    def __init__(self, folder: Path, confined: bool = True):
        self.folder = Path(folder)
        self.lexical = os.path.abspath(folder)
        self.real = os.path.realpath(folder)
        self.confined = confined
        self._dirs: dict[str, str] = {}

    @staticmethod
    def _within(path: str, folder: str) -> bool:
        return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)

    def locate(self, image: str) -> str | None:
        """The resolved file ``image`` names, or None where it leads outside the folder (lexically, or
        through a link). A path with '..' is judged as written: 'sub/../x' is 'x'."""
        lexical = os.path.normpath(os.path.join(self.lexical, image))
        if not self._within(lexical, self.lexical):
            return None
        head, name = os.path.split(lexical[len(self.lexical):].lstrip(os.sep))
        real_dir = self._dirs.get(head)
        if real_dir is None:
            real_dir = self._dirs[head] = os.path.realpath(os.path.join(self.real, head)) if head else self.real
        if not self._within(real_dir, self.real):
            return None
        path = os.path.join(real_dir, name) if name else real_dir
        if os.path.islink(path):
            path = os.path.realpath(path)
        return path if self._within(path, self.real) else None


def _row_path(row: dict, base: _Base, limits: ImportLimits) -> tuple[Path | None, str | None]:
    """The row's image file, or the reason there is none. Confined (the default), a path that is absolute
    outside the folder, climbs out with '..' or resolves (through a link) outside gets one message whether
    or not the file exists; 'file not found' is said only of paths inside the folder."""
    image = (row.get("image_path") or "").strip()
    if not image:
        return None, "empty"
    if len(image) > limits.max_path_chars:
        return None, f"{len(image)} characters long, at most {limits.max_path_chars} allowed"
    if not image.isprintable():
        return None, f"{_show(image)} contains a control or invisible character: remove it"
    if not base.confined:
        path = Path(image) if Path(image).is_absolute() else base.folder / image
        return (path, None) if path.is_file() else (None, f"file not found: {path}")
    try:
        located = base.locate(image)
    except (OSError, ValueError):
        located = None
    if located is None:
        return None, OUTSIDE
    if not os.path.isfile(located):
        return None, f"file not found: {_show(image)} (in the manifest's folder)"
    return Path(located), None


@dataclass(frozen=True)
class _Existing:
    """What the study already holds: case ids, and the case id of each stored photograph (by sha256)."""
    ids: set[str]
    images: dict[str, str]


def _existing(session: Session, study_id: int) -> _Existing:
    rows = session.execute(select(Case.case_key, Case.image_sha256).where(Case.study_id == study_id)).all()
    return _Existing({key for key, _ in rows}, {sha: key for key, sha in rows if sha})


def _file_size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0  # gone since it was located: staging says so


def _check_rows(rows: list[dict], base: Path | _Base, findings: tuple[str, ...], existing: _Existing,
                staging: _Staging, *, truth_columns: tuple[str, ...] = (),
                name: Callable[[int], str] = lambda i: f"row {i}", limits: ImportLimits = LIMITS
                ) -> tuple[_Problems, list[dict], bool]:
    """Check every manifest row (numbered from 2) and stage its image; ``name(row)`` words a cross-reference
    to another row. ``truth_columns``' non-empty values join the row's reference labels (as strings).

    Returns (problems, parsed rows, whether the images were checked): the cheap checks run on every row
    first; the images are decoded (each once) only while fewer than ``limits.max_problems`` problems are
    found, so a manifest of junk is refused without decoding anything."""
    if not isinstance(base, _Base):
        base = _Base(base)
    problems = _Problems(limits.max_problems)
    parsed: list[dict] = []
    seen_ids: dict[str, int] = {}
    labels = set(findings) | {NORMAL}
    located: list[Path | None] = []
    for i, row in enumerate(rows, start=2):
        case_id = (row.get("case_id") or "").strip()
        if (why := case_key_problem(case_id)) is not None:
            problems.add(Problem(i, "case_id", why))
        elif case_id in seen_ids:
            problems.add(Problem(i, "case_id", f"{case_id!r} repeats {name(seen_ids[case_id])}"))
        elif case_id in existing.ids:
            problems.add(Problem(i, "case_id", f"{case_id!r} is already a case of this study"))
        seen_ids.setdefault(case_id, i)
        label = (row.get("label") or "").strip()
        if label not in labels:
            problems.add(Problem(i, "label", f"{_show(label)} is not one of {', '.join(sorted(labels))}"))
        raw_findings = [f.strip() for f in (row.get("findings") or "").split(";") if f.strip()]
        if bad := [f for f in raw_findings if f not in findings]:
            problems.add(Problem(i, "findings", f"unknown finding(s) {_show(bad)} (separate keys with ';')"))
        eye_raw = (row.get("eye") or "").strip().lower()
        if eye_raw and eye_raw not in EYES:
            problems.add(Problem(i, "eye", f"{_show(row.get('eye'))} is not left/right/OD/OS"))
        texts = {}
        for column in ("patient_pseudonym", "split"):
            texts[column] = (row.get(column) or "").strip() or None
            if texts[column] and (why := _text_problem(texts[column], TEXT_MAX_CHARS[column])):
                problems.add(Problem(i, column, why))
        truth = {c: str(row[c]).strip() for c in truth_columns if str(row.get(c) or "").strip()}
        for column, value in truth.items():
            if why := _text_problem(value, TRUTH_MAX_CHARS):
                problems.add(Problem(i, column, why))
        path, missing = _row_path(row, base, limits)
        if missing is not None:
            problems.add(Problem(i, "image_path", missing))
        located.append(path)
        parsed.append({"case_id": case_id, "ref": None, "labels": {"label": label, "findings": raw_findings, **truth},
                       "eye": EYES.get(eye_raw), **texts})
    if problems.full:
        return problems, parsed, False
    size = sum(_file_size(p) for p in located if p is not None)
    if size > limits.max_total_bytes:  # before any image is decoded
        problems.add(Problem(1, "image_path", f"the photographs add up to {_size_text(size)}, over the "
                                              f"{_size_text(limits.max_total_bytes)} limit: split the cases and "
                                              "import them in several parts"))
        return problems, parsed, False
    staged = _stage_all(located, staging)
    seen_images: dict[str, int] = {}
    for i, (p, ref) in enumerate(zip(parsed, staged), start=2):
        if ref is None:
            continue
        if not isinstance(ref, str):
            problems.add(Problem(i, "image_path", str(ref)))
            continue
        p["ref"] = ref
        sha = STORED_REF.match(ref)["sha"]
        if sha in seen_images:
            problems.add(Problem(i, "image_path", f"same image as {name(seen_images[sha])}"))
        elif sha in existing.images:
            problems.add(Problem(i, "image_path", f"same photograph as existing case {existing.images[sha]!r} "
                                                  "of this study: remove the row or the existing case"))
        seen_images.setdefault(sha, i)
    problems.items.sort(key=lambda q: q.row)  # stable: each row's problems together, in column order
    return problems, parsed, True


def _read_manifest(manifest: Path, allowed: tuple[str, ...], limits: ImportLimits = LIMITS, source: str | None = None
                   ) -> list[dict]:
    """The manifest's rows (dicts by column), read as a stream within ``limits``; raises ManifestError for
    a manifest that is too big, unreadable, or has wrong columns or no rows."""
    source = source or str(manifest)

    def refuse(row: int, column: str, reason: str):
        return ManifestError(source, [Problem(row, column, reason)])

    try:
        size = manifest.stat().st_size
    except OSError as exc:
        raise refuse(1, "-", f"cannot read the manifest: {exc.strerror or exc}") from None
    if size > limits.max_manifest_bytes:
        raise refuse(1, "-", f"the manifest is {size / 1e6:.1f} MB, over the {limits.max_manifest_bytes / 1e6:g} MB "
                             "limit: split the cases into several manifests and import them one after another")
    rows: list[dict] = []
    try:
        with manifest.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            columns = next(reader, [])
            if len(columns) > limits.max_columns:
                raise refuse(1, "-", f"{len(columns)} columns, over the limit of {limits.max_columns}: keep the "
                                     f"columns {', '.join(allowed)}")
            for values in reader:
                if not values:
                    continue  # a blank line
                if len(rows) >= limits.max_rows:
                    raise refuse(len(rows) + 2, "-", f"more than {limits.max_rows} rows, over the limit: split the "
                                                     "cases into several manifests and import them one after another")
                rows.append(dict(zip(columns, values)))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise refuse(1, "-", f"cannot read the manifest: {_show(str(exc), 200)[1:-1]}") from None
    problems = [Problem(1, c, "required column missing") for c in REQUIRED_COLUMNS if c not in columns]
    problems += [Problem(1, _show(c)[1:-1], f"unknown column (allowed: {', '.join(allowed)})")
                 for c in dict.fromkeys(columns) if c not in allowed]
    problems += [Problem(1, c, "column appears more than once") for c in dict.fromkeys(columns)
                 if c in allowed and columns.count(c) > 1]
    if not rows:
        problems.append(Problem(2, "-", "the manifest has no cases"))
    if problems:
        raise ManifestError(source, problems)
    return rows


def _allowed_columns(truth_columns: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(every allowed column, the truth columns among them)."""
    extra = tuple(c for c in truth_columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
    return REQUIRED_COLUMNS + OPTIONAL_COLUMNS + extra, extra


def _truth_columns(study, truth_columns: Iterable[str] | None) -> Iterable[str]:
    if truth_columns is None:
        truth_columns = getattr(study_config(study), "truth_columns", ()) or ()
    return truth_columns


def _begin_checks(session: Session) -> bool:
    """Start the importer's reads as a read-only transaction, so that nothing is locked while the images are
    checked (on SQLite a write transaction would hold up every reader's submit for the whole import); the
    write transaction starts only when the checked cases are stored. A no-op (False) when the caller already
    has a transaction open or changes pending: it then goes on as it began."""
    if session.in_transaction() or session.new or session.dirty or session.deleted:
        return False
    session.connection(execution_options={db.READ_ONLY: True})
    return True


@dataclass
class _Checks:
    """What an importer's checks start from (see :func:`_import_checks`)."""
    session: Session
    study: Study
    limits: ImportLimits
    reads_only: bool

    def end(self) -> None:
        """End the read-only checks: what follows is written in a write transaction (or, when the caller had
        a transaction open, goes on in it)."""
        if self.reads_only:
            self.session.rollback()


@contextmanager
def _import_checks(session: Session, study_id: int, limits: ImportLimits | None):
    """Every importer's frame: read-only checks (:func:`_begin_checks`) of a study still open to cases, with
    the configured limits unless given; on any failure no read-only transaction is left behind."""
    reads_only = _begin_checks(session)
    try:
        study = get_study(session, study_id)
        ensure_cases_open(session, study)
        yield _Checks(session, study, limits or configured_limits(), reads_only)
    except BaseException:
        if reads_only:
            session.rollback()
        raise


def import_manifest(session: Session, study_id: int, manifest: str | Path, *, store_root: str | Path | None = None,
                    actor: str = "investigator", truth_columns: Iterable[str] | None = None,
                    limits: ImportLimits | None = None, paths_outside: bool = False, source: str | None = None
                    ) -> list[Case]:
    """Validate the whole manifest, then store every image and case in one transaction.

    ``truth_columns``: extra columns holding reference answers to study-defined questions (default: the
    study configuration's ``truth_columns``); a row's non-empty value goes to ``reference_labels[column]``.
    Image paths must resolve inside the manifest's folder (relative, no '..', no link leading out);
    ``paths_outside=True`` lets a trusted local caller use any path (never for uploads). ``source`` names
    the manifest in the error (default: its path).
    """
    manifest = Path(manifest)
    with _import_checks(session, study_id, limits) as checks:
        study, limits = checks.study, checks.limits
        config = study_config(study)
        allowed, extra = _allowed_columns(_truth_columns(study, truth_columns))
        source = source or str(manifest)
        rows = _read_manifest(manifest, allowed, limits, source)
        existing = _existing(session, study.id)
        with _Staging(study_store(study.id, store_root_of(study, store_root)), limits.max_pixels) as staging:
            problems, parsed, checked = _check_rows(rows, _Base(manifest.parent, not paths_outside), config.findings,
                                                    existing, staging, truth_columns=extra, limits=limits)
            if problems.total:
                raise ManifestError(source, problems.items, problems.total, checked)
            checks.end()
            return _store_cases(session, study, parsed, staging, actor, {"manifest": source})


def _size_text(n: int) -> str:
    for unit, size in (("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def _member_text(name: str) -> str:
    """A member name for a message: as is when short and printable, else quoted and shortened."""
    return name if len(name) <= 200 and name.isprintable() else _show(name, 200)


def _without_folder(exc: ManifestError, folder: Path, source: str) -> ManifestError:
    """``exc`` with the server's temporary folder taken out of every problem (a path in it becomes the
    member's path inside the ZIP): an uploader must never see where the server unpacks."""
    prefixes = sorted({str(folder) + os.sep, os.path.realpath(folder) + os.sep}, key=len, reverse=True)

    def clean(text: str) -> str:
        for prefix in prefixes:
            text = text.replace(prefix, "")
        return text

    problems = [replace(p, reason=clean(p.reason)) if isinstance(p, (Problem, FolderProblem)) else p
                for p in exc.problems]
    return ManifestError(source, problems, exc.total, exc.images_checked)


def _zip_refusal(source: str, where: str, reason: str) -> ManifestError:
    return ManifestError(source, [FolderProblem(where, reason)])


def _zip_member_name(name: str) -> str | None:
    """The member's normalised relative path, or None where it is not a safe path inside the ZIP."""
    if not name or "\x00" in name or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return None
    norm = posixpath.normpath(name)
    if norm in (".", "..") or norm.startswith("../") or ".." in norm.split("/"):
        return None
    return norm


def _check_zip(zf: zipfile.ZipFile, source: str, limits: ImportLimits) -> tuple[list, zipfile.ZipInfo]:
    """The ZIP's file members (name normalised) and its manifest member, from the headers alone; raises
    ManifestError for anything the limits or the layout refuse. Nothing is extracted here."""
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise _zip_refusal(source, ".", f"{len(infos)} entries, over the limit of {limits.max_members}: split the "
                                        "cases into several ZIPs, each with its own manifest.csv")
    problems = _Problems(limits.max_problems)
    seen: dict[str, int] = {}
    files: list[tuple[str, zipfile.ZipInfo]] = []
    total = 0
    for info in infos:
        norm = _zip_member_name(info.filename)
        if norm is None:
            problems.add(FolderProblem(_member_text(info.filename), "not a path inside the ZIP (absolute, or "
                                                                   "with '..'): zip the folder again from inside it"))
            continue
        seen[norm] = seen.get(norm, 0) + 1
        if seen[norm] == 2:
            problems.add(FolderProblem(_member_text(norm), "appears more than once in the ZIP: each file must appear once; "
                                             "zip the folder again"))
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            problems.add(FolderProblem(_member_text(norm), "encrypted: make the ZIP without a password"))
        total += info.file_size
        is_manifest = posixpath.basename(norm).lower() == "manifest.csv"  # text: bounded by its own size limit
        if (not is_manifest and info.file_size > limits.ratio_floor_bytes
                and info.file_size / max(info.compress_size, 1) > limits.max_ratio):
            problems.add(FolderProblem(_member_text(norm), f"compressed {info.file_size / max(info.compress_size, 1):,.0f}:1, over "
                                             f"the {limits.max_ratio:g}:1 limit (a ZIP bomb?): photographs are "
                                             "already compressed; zip the original image files"))
        files.append((norm, info))
    if total > limits.max_total_bytes:
        cap = _size_text(limits.max_total_bytes)
        problems.add(FolderProblem(".", f"unpacks to {_size_text(total)}, over the {cap} limit: split the cases "
                                        "into several ZIPs, each with its own manifest.csv"))
    manifests = [(norm, info) for norm, info in files if posixpath.basename(norm).lower() == "manifest.csv"]
    if len(manifests) > 1:
        problems.add(FolderProblem(".", f"{len(manifests)} manifest.csv files ({', '.join(_member_text(n) for n, _ in manifests[:5])}"
                                        f"{', ...' if len(manifests) > 5 else ''}): keep exactly one, with image "
                                        "paths relative to its folder"))
    elif not files and not problems.total:
        problems.add(FolderProblem(".", "the ZIP is empty: zip the folder that holds manifest.csv (columns case_id, "
                                        "image_path, label) and the images"))
    elif not manifests and not problems.total:
        problems.add(FolderProblem(".", "the ZIP has no manifest.csv: put manifest.csv (columns case_id, "
                                        "image_path, label) at the ZIP's root, beside the images"))
    elif manifests and manifests[0][1].file_size > limits.max_manifest_bytes:
        problems.add(FolderProblem(_member_text(manifests[0][0]), f"{manifests[0][1].file_size / 1e6:.1f} MB, over the "
                                                    f"{limits.max_manifest_bytes / 1e6:g} MB limit: split the "
                                                    "cases into several manifests and ZIPs"))
    if problems.total:
        raise ManifestError(source, problems.items, problems.total)
    return files, manifests[0][1]


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, source: str, limits: ImportLimits) -> int:
    """Write one member to ``target``, counting the bytes actually produced: never more than its header
    declares (the header is not trusted). Returns the bytes written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with zf.open(info) as src, open(target, "xb") as out:
        while chunk := src.read(limits.chunk_bytes):
            written += len(chunk)
            if written > info.file_size:
                raise _zip_refusal(source, _member_text(info.filename), "holds more data than its header declares (a damaged "
                                                          "or crafted ZIP): zip the folder again")
            out.write(chunk)
    return written


def _zip_directory_too_big(fp, limits: ImportLimits) -> str | None:
    """Checks the ZIP's end record (entries, central directory size) before ``zipfile`` reads the whole
    directory into memory: a reason to refuse, or None."""
    try:
        end = zipfile._EndRecData(fp)  # noqa: SLF001 (the stdlib's own end-record reader)
    except (AttributeError, OSError):
        return None
    if not end:
        return None
    entries, size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]
    if entries > limits.max_members:
        return (f"{entries} entries, over the limit of {limits.max_members}: split the cases into several ZIPs, "
                "each with its own manifest.csv")
    if size > limits.max_members * 1024:  # 1 KiB of directory per entry allowed: names cannot be that long
        return (f"a table of contents of {_size_text(size)}, over the {_size_text(limits.max_members * 1024)} "
                "limit (too many or too long names): zip the folder again, in several ZIPs if need be")
    return None


def import_zip(session: Session, study_id: int, data: bytes | str | Path, *, name: str = "upload.zip",
               store_root: str | Path | None = None, actor: str = "investigator",
               truth_columns: Iterable[str] | None = None, limits: ImportLimits | None = None) -> list[Case]:
    """Import a ZIP holding exactly one ``manifest.csv`` and its images (paths relative to the manifest's
    folder), all or nothing, within ``limits``.

    Refused from the headers alone, before anything is extracted: more than ``max_members`` entries, more
    than ``max_total_bytes`` unpacked, a member compressed over ``max_ratio``:1, a manifest over
    ``max_manifest_bytes``, a member path that is absolute or climbs out with '..', a name that appears
    twice, encrypted members, no or several manifest.csv. The manifest is extracted and read first (too
    many rows or wrong columns: refused before the images are extracted); then each member is extracted
    counting its bytes; then the manifest import runs on the extracted folder, confined to it. Every
    problem is a :class:`FolderProblem` (member path, reason) or a manifest :class:`Problem` in
    :class:`ManifestError`; ``name`` (the uploaded file's name) names the source, never a server path.
    """
    with _import_checks(session, study_id, limits) as checks:
        limits = checks.limits
        allowed, extra = _allowed_columns(_truth_columns(checks.study, truth_columns))
        sid = checks.study.id
        checks.end()  # nothing is locked while the ZIP is unpacked; import_manifest checks again
        fp = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else open(data, "rb")
        try:
            if (why := _zip_directory_too_big(fp, limits)) is not None:
                raise _zip_refusal(name, ".", why)
            try:
                zf = zipfile.ZipFile(fp)
            except (zipfile.BadZipFile, ValueError, EOFError) as exc:
                raise _zip_refusal(name, ".", f"not a valid ZIP file ({exc}): make it again with a ZIP tool") from None
            with zf, tempfile.TemporaryDirectory(prefix="revision-import-") as tmp:
                root = Path(tmp)
                files, manifest_info = _check_zip(zf, name, limits)
                manifest_name = posixpath.normpath(manifest_info.filename)
                try:
                    _extract(zf, manifest_info, root / manifest_name, name, limits)
                    manifest = root / manifest_name
                    _read_manifest(manifest, allowed, limits, f"{name}: {manifest_name}")  # refuse early: no image out
                    written = manifest.stat().st_size
                    for norm, info in files:
                        if info is manifest_info:
                            continue
                        written += _extract(zf, info, root / norm, name, limits)
                        if written > limits.max_total_bytes:
                            raise _zip_refusal(name, ".", "unpacks to more than its headers declare: zip the folder again")
                except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, RuntimeError) as exc:
                    raise _zip_refusal(name, ".", f"cannot be unpacked ({_show(str(exc), 120)[1:-1]}): make it again "
                                                  "with a ZIP tool (standard deflate compression)") from None
                except OSError as exc:
                    raise _zip_refusal(name, ".", f"cannot be unpacked ({exc.strerror or exc}): a file and a folder with "
                                                  "the same name, or the server is out of space") from None
                try:
                    return import_manifest(session, sid, manifest, store_root=store_root, actor=actor,
                                           truth_columns=truth_columns, limits=limits,
                                           source=f"{name}: {manifest_name}")
                except ManifestError as exc:  # say where in the ZIP, never where on the server
                    raise _without_folder(exc, root, f"{name}: {manifest_name}") from None
        finally:
            fp.close()


def _store_cases(session: Session, study, parsed: list[dict], staging: _Staging, actor: str, audit_after: dict
                 ) -> list[Case]:
    """Add the checked cases and move their staged files into the store, in the caller's transaction (the
    caller commits); on any failure the rollback and the staging (the caller's ``with``) leave no row and no
    file behind. Files are placed before the caller's commit: a crash between the two leaves unused files,
    never missing ones."""
    added = []
    try:
        session.execute(select(Study.id).where(Study.id == study.id).with_for_update(key_share=True))
        ensure_cases_open(session, study)  # again: the first answer may have come while the images were checked
        if not study.store_root:  # the study records where its photographs are, for every server and command
            study.store_root = str(staging.store.parent)  # (the audit trail, shown in the app, names no server path)
        for p in parsed:
            added.append(add_case(session, study.id, p["case_id"], p["ref"], p["labels"],
                                  image_sha256=STORED_REF.match(p["ref"])["sha"], eye=p["eye"],
                                  patient_pseudonym=p["patient_pseudonym"], split=p["split"], actor=actor,
                                  check_open=False))
        audit.record(session, actor=actor, action="cases.imported", entity="study", entity_id=study.id,
                     study_id=study.id, after={**audit_after, "cases": len(added)})
        session.flush()
        staging.place()  # files first: a crash before the commit leaves unused files, never missing ones
        _remove_on_rollback(session, staging.placed)
    except BaseException:
        session.rollback()
        raise
    return added


_FOLDER_COLUMN = {"case_id": "case id (the file's stem)", "label": "label sub-folder", "image_path": "image"}


class _TooMany(Exception):
    """The folder holds more entries than ``ImportLimits.max_members``: stop scanning."""


def _folder_rows(folder: Path, limits: ImportLimits) -> tuple[_Problems, list[dict], list[str]]:
    """Scan ``folder`` into manifest rows (case_id = stem, image_path relative to folder, label =
    sub-folder name) as a stream: at most ``limits.max_members`` entries are looked at (then
    :class:`_TooMany`), at most ``limits.max_problems`` problems kept (all counted). Returns (layout
    problems, rows, each row's path relative to the folder)."""
    problems = _Problems(limits.max_problems)
    rows: list[dict] = []
    paths: list[str] = []
    root = folder.resolve()
    seen = 0

    def rel(p: Path) -> str:
        return p.relative_to(folder).as_posix()

    def outside(p: Path) -> bool:
        if not p.is_symlink():
            return False
        target = p.resolve()
        return target != root and root not in target.parents

    def entries(d: Path) -> list[Path]:
        nonlocal seen
        out = []
        with os.scandir(d) as it:
            for e in it:
                seen += 1
                if seen > limits.max_members:
                    raise _TooMany
                if not e.name.startswith("."):
                    out.append(d / e.name)
        return sorted(out, key=lambda e: e.name)

    for sub in entries(folder):
        if outside(sub):
            problems.add(FolderProblem(rel(sub), "symbolic link leading outside the folder: copy the files in"))
        elif not sub.is_dir():
            problems.add(FolderProblem(rel(sub), "file outside a label sub-folder (put each image in the "
                                                 "sub-folder named after its reference label)"))
        elif not (files := entries(sub)):
            problems.add(FolderProblem(rel(sub), "empty label sub-folder"))
        else:
            for f in files:
                if outside(f):
                    problems.add(FolderProblem(rel(f), "symbolic link leading outside the folder: copy the file in"))
                elif f.is_dir():
                    problems.add(FolderProblem(rel(f), "nested folder (images go directly in the label sub-folder)"))
                elif f.suffix.lower() not in IMAGE_SUFFIXES:
                    problems.add(FolderProblem(rel(f), f"not an image file type (allowed: {', '.join(IMAGE_SUFFIXES)})"))
                else:
                    rows.append({"case_id": f.stem, "image_path": rel(f), "label": sub.name})
                    paths.append(rel(f))
    return problems, rows, paths


def import_folder(session: Session, study_id: int, folder: str | Path, *, store_root: str | Path | None = None,
                  actor: str = "investigator", limits: ImportLimits | None = None) -> list[Case]:
    """Import a folder laid out by reference label, all or nothing, into the study's image store.

    Convention: ``folder`` holds one sub-folder per reference label, named after the case's reference
    primary diagnosis (one of the study label set's finding keys, or ``normal``); each image file in it
    is one case whose id is the file's stem (unique across the whole folder). Image files are .jpg,
    .jpeg, .png, .tif, .tiff or .dcm (any case); hidden files and folders (name starting with '.') are
    ignored. Each of these is a problem (path relative to the folder + reason): another file type, a
    file directly in ``folder``, a nested folder, an unknown sub-folder name, a duplicate case id (or one
    already in the study), an unreadable image, the same image twice, an empty label sub-folder, a folder
    with no images, a symbolic link that points outside the folder. If there is any, :class:`ManifestError`
    lists them (at most ``limits.max_problems``, with the count of the rest; no image is decoded once
    there are that many) as :class:`FolderProblem`, and nothing is written. The folder is scanned as a
    stream and refused once it holds more than ``limits.max_members`` entries; photographs adding up to
    more than ``limits.max_total_bytes``, or one declaring more than ``limits.max_pixels``, are refused
    before decoding. Rows are built exactly like manifest rows (``case_id``, ``image_path``, ``label``;
    no findings, eye, pseudonym or split) and go through the manifest import's checks and storage.
    """
    folder = Path(folder)
    with _import_checks(session, study_id, limits) as checks:
        study, limits = checks.study, checks.limits
        config = study_config(study)
        if not folder.is_dir():
            raise ManifestError(str(folder), [FolderProblem(".", "not a folder" if folder.exists() else "not found")])
        try:
            problems, rows, paths = _folder_rows(folder, limits)
        except _TooMany:
            raise ManifestError(str(folder), [FolderProblem(".", f"more than {limits.max_members:,} entries, over the "
                                                                 "limit: split the cases into several folders and import "
                                                                 "them one after another")]) from None
        except OSError as exc:
            raise ManifestError(str(folder), [FolderProblem(".", f"cannot read the folder: {exc.strerror or exc}")]) from None
        if not rows and not problems.total:
            problems.add(FolderProblem(".", "the folder has no images"))

        def name(row: int) -> str:
            return paths[row - 2]

        def problem(row: int, column: str, reason: str) -> FolderProblem:
            if row < 2:  # about the whole folder (its total size)
                return FolderProblem(".", reason)
            return FolderProblem(name(row), f"{_FOLDER_COLUMN.get(column, column)}: {reason}")

        existing = _existing(session, study.id)
        with _Staging(study_store(study.id, store_root_of(study, store_root)), limits.max_pixels) as staging:
            # the rows share the problem budget with the layout: at max_problems no image is decoded
            row_limits = replace(limits, max_problems=max(0, limits.max_problems - problems.total))
            row_problems, parsed, checked = _check_rows(rows, folder, config.findings, existing, staging, name=name,
                                                        limits=row_limits)
            total = problems.total + row_problems.total
            listed = problems.items + [problem(p.row, p.column, p.reason) for p in row_problems.items]
            if total:
                raise ManifestError(str(folder), listed[:limits.max_problems], total, checked)
            checks.end()
            return _store_cases(session, study, parsed, staging, actor, {"folder": str(folder)})
