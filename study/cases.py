"""Cases of a study: add one, or import a manifest CSV all-or-nothing into the study's image store.

Why all-or-nothing: a half-imported case set silently changes the study. :func:`import_manifest`
first checks every row (ids, labels, every image decoded with ``revision_core.imageio.load_image``)
and, if anything is wrong, raises :class:`ManifestError` listing every problem as row/column/reason
with nothing written to the database. Images are stored metadata-free (``strip_to_png_bytes``) under
the sha256 of those PNG bytes, so the store is content-addressed and each file can be re-verified.
Reference labels are stored on the case for analysis only; the reader workflow never reads them.

:func:`import_folder` imports a folder laid out by label instead of a manifest (see its docstring for the
convention); it builds the same in-memory manifest rows, so the checks and the storage are the same code.
"""

from __future__ import annotations

import csv
import hashlib
import os
import tempfile
from dataclasses import dataclass
from collections.abc import Callable
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
    """The folder holding a study's images (``<root>/study-<id>/<sha256>.png``)."""
    return Path(root or STORE_ROOT) / f"study-{study_id}"


def _png(path: Path) -> bytes:
    from revision_core.imageio import load_image, strip_to_png_bytes

    return strip_to_png_bytes(load_image(path))


def _write_atomic(folder: Path, name: str, data: bytes) -> None:
    target = folder / name
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == name.split(".")[0]:
        return
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)


def _check_rows(rows: list[dict], base: Path, findings: tuple[str, ...], existing: set[str], *,
                name: Callable[[int], str] = lambda i: f"row {i}") -> tuple[list[Problem], list[dict]]:
    """Check every manifest row (numbered from 2); ``name(row)`` words a cross-reference to another row."""
    from revision_core.imageio import ImageLoadError

    problems: list[Problem] = []
    parsed: list[dict] = []
    seen_ids: dict[str, int] = {}
    seen_images: dict[str, int] = {}
    labels = set(findings) | {NORMAL}
    for i, row in enumerate(rows, start=2):
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
        image = (row.get("image_path") or "").strip()
        sha = None
        if not image:
            problems.append(Problem(i, "image_path", "empty"))
        else:
            path = Path(image) if Path(image).is_absolute() else base / image
            if not path.is_file():
                problems.append(Problem(i, "image_path", f"file not found: {path}"))
            else:
                try:
                    sha = hashlib.sha256(_png(path)).hexdigest()
                except ImageLoadError as exc:
                    problems.append(Problem(i, "image_path", str(exc)))
                if sha is not None and sha in seen_images:
                    problems.append(Problem(i, "image_path", f"same image as {name(seen_images[sha])}"))
                if sha is not None:
                    seen_images.setdefault(sha, i)
        parsed.append({"case_id": case_id, "path": base / image if image else None, "sha": sha,
                       "labels": {"label": label, "findings": raw_findings}, "eye": EYES.get(eye_raw),
                       "patient_pseudonym": (row.get("patient_pseudonym") or "").strip() or None,
                       "split": (row.get("split") or "").strip() or None})
    return problems, parsed


def import_manifest(session: Session, study_id: int, manifest: str | Path, *, store_root: str | Path | None = None,
                    actor: str = "investigator") -> list[Case]:
    """Validate the whole manifest, then store every image and case in one transaction."""
    manifest = Path(manifest)
    study = get_study(session, study_id)
    config = study_config(study)
    try:
        with manifest.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(str(manifest), [Problem(1, "-", f"cannot read the manifest: {exc}")]) from exc
    problems = [Problem(1, c, "required column missing") for c in REQUIRED_COLUMNS if c not in columns]
    problems += [Problem(1, c, f"unknown column (allowed: {', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)})")
                 for c in columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if not rows:
        problems.append(Problem(2, "-", "the manifest has no cases"))
    if problems:
        raise ManifestError(str(manifest), problems)
    existing = set(session.scalars(select(Case.case_key).where(Case.study_id == study.id)))
    problems, parsed = _check_rows(rows, manifest.parent, config.findings, existing)
    if problems:
        raise ManifestError(str(manifest), problems)
    return _store_cases(session, study, parsed, store_root, actor, str(manifest), Problem,
                        {"manifest": str(manifest)})


def _store_cases(session: Session, study, parsed: list[dict], store_root: str | Path | None, actor: str,
                 source: str, problem: Callable[[int, str, str], Problem | FolderProblem], audit_after: dict
                 ) -> list[Case]:
    """Store the checked rows' images and cases in one transaction (rolled back on any failure)."""
    store = study_store(study.id, store_root)
    store.mkdir(parents=True, exist_ok=True)
    added = []
    try:
        for i, p in enumerate(parsed, start=2):
            data = _png(p["path"])
            sha = hashlib.sha256(data).hexdigest()
            if sha != p["sha"]:
                raise ManifestError(source, [problem(i, "image_path", "the file changed during the import")])
            _write_atomic(store, f"{sha}.png", data)
            added.append(add_case(session, study.id, p["case_id"], f"{sha}.png", p["labels"], image_sha256=sha,
                                  eye=p["eye"], patient_pseudonym=p["patient_pseudonym"], split=p["split"],
                                  actor=actor, commit=False))
        audit.record(session, actor=actor, action="cases.imported", entity="study", entity_id=study.id,
                     study_id=study.id, after={**audit_after, "cases": len(added)})
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
    row_problems, parsed = _check_rows(rows, folder, config.findings, existing, name=name)
    problems += [problem(p.row, p.column, p.reason) for p in row_problems]
    if problems:
        raise ManifestError(str(folder), problems)
    return _store_cases(session, study, parsed, store_root, actor, str(folder), problem, {"folder": str(folder)})
