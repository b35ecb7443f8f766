"""Cases of a study: add one, or import a manifest CSV all-or-nothing into the study's image store.

Why all-or-nothing: a half-imported case set silently changes the study. :func:`import_manifest`
first checks every row (ids, labels, every image decoded once, several at a time) and, if anything is
wrong, raises :class:`ManifestError` listing every problem as row/column/reason with nothing written to
the database or the store. The check pass already writes each image's stored file and display derivatives
into ``<store>/.staging-<random>/``; they are moved into the store just before the cases commit, and
removed on any failure, so an import leaves either everything or nothing.

The store is content-addressed: a file is named by the sha256 of its bytes (``Case.image_sha256``).
A JPEG keeps its own compressed data without metadata (``revision_core.imageio.strip_jpeg_metadata``:
same pixels, about the source's size) and, since the EXIF is gone, its orientation goes into the name:
``<sha>.jpg`` (upright) or ``<sha>.o6.jpg`` (EXIF orientation 6). Other formats become a metadata-free
PNG of the upright pixels, ``<sha>.png`` (as stores made before this scheme hold for every image).
Display derivatives beside it: ``<stem>.screen.jpg`` (longest side 2048) and, unless the stored file is
an upright JPEG a browser can show as is, ``<stem>.full.jpg`` (see :func:`display_files`).
Reference labels are stored on the case for analysis only; the reader workflow never reads them.

:func:`import_folder` imports a folder laid out by label instead of a manifest (see its docstring for the
convention); it builds the same in-memory manifest rows, so the checks and the storage are the same code.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from study import audit
from study.config import NORMAL
from study.db import REPO_ROOT
from study.models import Case
from study.studies import get_study, study_config

REQUIRED_COLUMNS = ("case_id", "image_path", "label")
OPTIONAL_COLUMNS = ("findings", "eye", "patient_pseudonym", "split")
EYES = {"left": "left", "right": "right", "os": "left", "od": "right", "l": "left", "r": "right"}
STORE_ROOT = REPO_ROOT / "data" / "store"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".dcm")
STORED_REF = re.compile(r"^(?P<sha>[0-9a-f]{64})(?:\.o(?P<orientation>[2-8]))?\.(?:jpg|png)$")
WORKERS = min(4, os.cpu_count() or 1)  # images staged at once: PIL decodes and encodes without the GIL


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
    """The manifest (or folder) was rejected whole; ``problems`` lists every problem found
    (:class:`Problem` row/column/reason for a manifest, :class:`FolderProblem` path/reason for a folder)."""

    def __init__(self, source: str, problems: list[Problem] | list[FolderProblem]):
        self.problems = problems
        super().__init__(f"{source}: rejected, nothing imported; {len(problems)} problem(s):\n"
                         + "\n".join(f"  - {p}" for p in problems))


def add_case(session: Session, study_id: int, case_key: str, image_ref: str, reference_labels: dict, *,
             image_sha256: str | None = None, eye: str | None = None, patient_pseudonym: str | None = None,
             split: str | None = None, actor: str = "investigator", commit: bool = True) -> Case:
    """Add one case (audited); ``commit=False`` lets an importer add many in one transaction."""
    study = get_study(session, study_id)
    if not isinstance(case_key, str) or not case_key.strip():
        raise ValueError("case_key must be a non-empty string")
    case = Case(study_id=study.id, case_key=case_key.strip(), image_ref=image_ref, image_sha256=image_sha256,
                reference_labels=dict(reference_labels), eye=eye, patient_pseudonym=patient_pseudonym, split=split)
    session.add(case)
    session.flush()
    audit.record(session, actor=actor, action="case.added", entity="case", entity_id=case.id, study_id=study.id,
                 after={"case_key": case.case_key, "image_ref": image_ref, "image_sha256": image_sha256,
                        "reference_labels": case.reference_labels, "eye": eye,
                        "patient_pseudonym": patient_pseudonym, "split": split})
    if commit:
        session.commit()
    return case


def study_store(study_id: int, root: str | Path | None = None) -> Path:
    """The folder holding a study's images (``<root>/study-<id>/<sha256>.jpg``, ``.png``, derivatives)."""
    return Path(root or STORE_ROOT) / f"study-{study_id}"


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


def load_case_image(study_id: int, image_ref: str, store_root: str | Path | None = None):
    """The case photograph, upright, exactly as ``load_image`` returned it from the source at import."""
    from revision_core.imageio import load_image

    return load_image(case_source(study_store(study_id, store_root), image_ref))


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

    def __init__(self, store: Path):
        self.store = store
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

        enc = encode_for_store(path)
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


def _row_path(row: dict, base: Path) -> tuple[Path | None, str | None]:
    """The row's image file, or the reason there is none."""
    image = (row.get("image_path") or "").strip()
    if not image:
        return None, "empty"
    path = Path(image) if Path(image).is_absolute() else base / image
    return (path, None) if path.is_file() else (None, f"file not found: {path}")


def _check_rows(rows: list[dict], base: Path, findings: tuple[str, ...], existing: set[str], staging: _Staging, *,
                truth_columns: tuple[str, ...] = (), name: Callable[[int], str] = lambda i: f"row {i}"
                ) -> tuple[list[Problem], list[dict]]:
    """Check every manifest row (numbered from 2) and stage its image; ``name(row)`` words a cross-reference
    to another row. ``truth_columns``' non-empty values join the row's reference labels (as strings)."""
    problems: list[Problem] = []
    parsed: list[dict] = []
    seen_ids: dict[str, int] = {}
    seen_images: dict[str, int] = {}
    labels = set(findings) | {NORMAL}
    located = [_row_path(row, base) for row in rows]
    staged = _stage_all([path for path, _ in located], staging)
    for i, (row, (path, missing), ref) in enumerate(zip(rows, located, staged), start=2):
        case_id = (row.get("case_id") or "").strip()
        if not case_id:
            problems.append(Problem(i, "case_id", "empty"))
        elif case_id in seen_ids:
            problems.append(Problem(i, "case_id", f"{case_id!r} repeats {name(seen_ids[case_id])}"))
        elif case_id in existing:
            problems.append(Problem(i, "case_id", f"{case_id!r} is already a case of this study"))
        seen_ids.setdefault(case_id, i)
        label = (row.get("label") or "").strip()
        if label not in labels:
            problems.append(Problem(i, "label", f"{label!r} is not one of {', '.join(sorted(labels))}"))
        raw_findings = [f.strip() for f in (row.get("findings") or "").split(";") if f.strip()]
        if bad := [f for f in raw_findings if f not in findings]:
            problems.append(Problem(i, "findings", f"unknown finding(s) {bad} (separate keys with ';')"))
        eye_raw = (row.get("eye") or "").strip().lower()
        if eye_raw and eye_raw not in EYES:
            problems.append(Problem(i, "eye", f"{row.get('eye')!r} is not left/right/OD/OS"))
        if missing is not None:
            problems.append(Problem(i, "image_path", missing))
        elif not isinstance(ref, str):
            problems.append(Problem(i, "image_path", str(ref)))
        elif ref in seen_images:
            problems.append(Problem(i, "image_path", f"same image as {name(seen_images[ref])}"))
        if isinstance(ref, str):
            seen_images.setdefault(ref, i)
        truth = {c: str(row[c]).strip() for c in truth_columns if str(row.get(c) or "").strip()}
        parsed.append({"case_id": case_id, "ref": ref, "labels": {"label": label, "findings": raw_findings, **truth},
                       "eye": EYES.get(eye_raw),
                       "patient_pseudonym": (row.get("patient_pseudonym") or "").strip() or None,
                       "split": (row.get("split") or "").strip() or None})
    return problems, parsed


def import_manifest(session: Session, study_id: int, manifest: str | Path, *, store_root: str | Path | None = None,
                    actor: str = "investigator", truth_columns: Iterable[str] | None = None) -> list[Case]:
    """Validate the whole manifest, then store every image and case in one transaction.

    ``truth_columns``: extra columns holding reference answers to study-defined questions (default: the
    study configuration's ``truth_columns``); a row's non-empty value goes to ``reference_labels[column]``.
    """
    manifest = Path(manifest)
    study = get_study(session, study_id)
    config = study_config(study)
    if truth_columns is None:
        truth_columns = getattr(config, "truth_columns", ()) or ()
    extra = tuple(c for c in truth_columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
    allowed = REQUIRED_COLUMNS + OPTIONAL_COLUMNS + extra
    try:
        with manifest.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(str(manifest), [Problem(1, "-", f"cannot read the manifest: {exc}")]) from exc
    problems = [Problem(1, c, "required column missing") for c in REQUIRED_COLUMNS if c not in columns]
    problems += [Problem(1, c, f"unknown column (allowed: {', '.join(allowed)})") for c in columns if c not in allowed]
    if not rows:
        problems.append(Problem(2, "-", "the manifest has no cases"))
    if problems:
        raise ManifestError(str(manifest), problems)
    existing = set(session.scalars(select(Case.case_key).where(Case.study_id == study.id)))
    with _Staging(study_store(study.id, store_root)) as staging:
        problems, parsed = _check_rows(rows, manifest.parent, config.findings, existing, staging,
                                       truth_columns=extra)
        if problems:
            raise ManifestError(str(manifest), problems)
        return _store_cases(session, study, parsed, staging, actor, {"manifest": str(manifest)})


def _store_cases(session: Session, study, parsed: list[dict], staging: _Staging, actor: str, audit_after: dict
                 ) -> list[Case]:
    """Add the checked cases, move their staged files into the store, commit: one transaction, and on any
    failure the rollback and the staging (the caller's ``with``) leave no row and no file behind."""
    added = []
    try:
        for p in parsed:
            added.append(add_case(session, study.id, p["case_id"], p["ref"], p["labels"],
                                  image_sha256=STORED_REF.match(p["ref"])["sha"], eye=p["eye"],
                                  patient_pseudonym=p["patient_pseudonym"], split=p["split"], actor=actor,
                                  commit=False))
        audit.record(session, actor=actor, action="cases.imported", entity="study", entity_id=study.id,
                     study_id=study.id, after={**audit_after, "cases": len(added)})
        session.flush()
        staging.place()  # files first: a crash before the commit leaves unused files, never missing ones
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return added


_FOLDER_COLUMN = {"case_id": "case id (the file's stem)", "label": "label sub-folder", "image_path": "image"}


def _folder_rows(folder: Path) -> tuple[list[FolderProblem], list[dict], list[str]]:
    """Scan ``folder`` into manifest rows (case_id = stem, image_path relative to folder, label =
    sub-folder name); returns (layout problems, rows, each row's path relative to the folder)."""
    problems: list[FolderProblem] = []
    rows: list[dict] = []
    paths: list[str] = []
    root = folder.resolve()

    def rel(p: Path) -> str:
        return p.relative_to(folder).as_posix()

    def outside(p: Path) -> bool:
        if not p.is_symlink():
            return False
        target = p.resolve()
        return target != root and root not in target.parents

    def entries(d: Path) -> list[Path]:
        return sorted((e for e in d.iterdir() if not e.name.startswith(".")), key=lambda e: e.name)

    for sub in entries(folder):
        if outside(sub):
            problems.append(FolderProblem(rel(sub), f"symbolic link to {sub.resolve()}, outside the folder"))
        elif not sub.is_dir():
            problems.append(FolderProblem(rel(sub), "file outside a label sub-folder (put each image in the "
                                                    "sub-folder named after its reference label)"))
        elif not (files := entries(sub)):
            problems.append(FolderProblem(rel(sub), "empty label sub-folder"))
        else:
            for f in files:
                if outside(f):
                    problems.append(FolderProblem(rel(f), f"symbolic link to {f.resolve()}, outside the folder"))
                elif f.is_dir():
                    problems.append(FolderProblem(rel(f), "nested folder (images go directly in the label "
                                                          "sub-folder)"))
                elif f.suffix.lower() not in IMAGE_SUFFIXES:
                    problems.append(FolderProblem(rel(f), f"not an image file type (allowed: "
                                                          f"{', '.join(IMAGE_SUFFIXES)})"))
                else:
                    rows.append({"case_id": f.stem, "image_path": rel(f), "label": sub.name})
                    paths.append(rel(f))
    return problems, rows, paths


def import_folder(session: Session, study_id: int, folder: str | Path, *, store_root: str | Path | None = None,
                  actor: str = "investigator") -> list[Case]:
    """Import a folder laid out by reference label, all or nothing, into the study's image store.

    Convention: ``folder`` holds one sub-folder per reference label, named after the case's reference
    primary diagnosis (one of the study label set's finding keys, or ``normal``); each image file in it
    is one case whose id is the file's stem (unique across the whole folder). Image files are .jpg,
    .jpeg, .png, .tif, .tiff or .dcm (any case); hidden files and folders (name starting with '.') are
    ignored. Each of these is a problem (path relative to the folder + reason): another file type, a
    file directly in ``folder``, a nested folder, an unknown sub-folder name, a duplicate case id (or one
    already in the study), an unreadable image, the same image twice, an empty label sub-folder, a folder
    with no images, a symbolic link that points outside the folder. If there is any, :class:`ManifestError`
    lists them all (as :class:`FolderProblem`) and nothing is written. Rows are built exactly like
    manifest rows (``case_id``, ``image_path``, ``label``; no findings, eye, pseudonym or split) and go
    through the manifest import's checks and storage.
    """
    folder = Path(folder)
    study = get_study(session, study_id)
    config = study_config(study)
    if not folder.is_dir():
        raise ManifestError(str(folder), [FolderProblem(".", "not a folder" if folder.exists() else "not found")])
    try:
        problems, rows, paths = _folder_rows(folder)
    except OSError as exc:
        raise ManifestError(str(folder), [FolderProblem(".", f"cannot read the folder: {exc}")]) from exc
    if not rows and not problems:
        problems.append(FolderProblem(".", "the folder has no images"))

    def name(row: int) -> str:
        return paths[row - 2]

    def problem(row: int, column: str, reason: str) -> FolderProblem:
        return FolderProblem(name(row), f"{_FOLDER_COLUMN.get(column, column)}: {reason}")

    existing = set(session.scalars(select(Case.case_key).where(Case.study_id == study.id)))
    with _Staging(study_store(study.id, store_root)) as staging:
        row_problems, parsed = _check_rows(rows, folder, config.findings, existing, staging, name=name)
        problems += [problem(p.row, p.column, p.reason) for p in row_problems]
        if problems:
            raise ManifestError(str(folder), problems)
        return _store_cases(session, study, parsed, staging, actor, {"folder": str(folder)})
