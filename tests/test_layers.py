"""The layering the design promises: pages -> services (one per page) -> study -> revision_core, never the
other way round."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package, forbidden", [
    ("revision_core", {"streamlit", "study", "sqlalchemy"}),
    ("study", {"streamlit"}),
])
def test_lower_layers_do_not_import_upper_layers(package, forbidden):
    offenders = {str(p.relative_to(REPO)): sorted(_imported_modules(p) & forbidden)
                 for p in (REPO / package).rglob("*.py") if _imported_modules(p) & forbidden}
    assert not offenders, f"layering broken: {offenders}"


@pytest.mark.parametrize("folder, forbidden", [
    ("pages", {"sqlalchemy", "torch"}),
    ("components", {"sqlalchemy", "torch", "study"}),  # a component draws; the page gives it its data
])
def test_pages_hold_no_sql_or_torch(folder, forbidden):
    offenders = {str(p.relative_to(REPO)): sorted(_imported_modules(p) & forbidden)
                 for p in (REPO / folder).rglob("*.py") if _imported_modules(p) & forbidden}
    assert not offenders, f"pages must call study/revision_core instead: {offenders}"


def _imported_names(path: Path) -> set[str]:
    """Full dotted names a file imports, with ``from X import y`` as both ``X`` and ``X.y``."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


SERVICES = {p.stem for p in (REPO / "study" / "services").glob("*.py") if not p.stem.startswith("_")}


def _services(path: Path) -> set[str]:
    return {name.split(".")[2] for name in _imported_names(path)
            if name.startswith("study.services.") and name.split(".")[2] in SERVICES}


def test_each_page_calls_one_service():
    offenders = {str(p.relative_to(REPO)): sorted(_services(p)) for p in (REPO / "pages").glob("*.py")
                 if len(_services(p)) > 1}
    assert not offenders, f"a page talks to one service (reader, investigator, sign-in, analysis): {offenders}"


PAGE_FORBIDDEN = ("study.storage.db", "study.domain.reader_operations", "study.domain.own_answers", "study.domain.monitoring", "study.domain.workflow", "study.domain.studies", "study.domain.config", "study.storage.models",
                  "sqlalchemy")


def test_pages_hold_no_transaction_and_no_library_call():
    """A page calls its one service, which owns the transaction (``study.services``): no page imports the
    storage (``study.storage.db``, ``study.storage.models``, ``sqlalchemy``) or the domain library under the services
    (``study.domain.reader_operations``, ``study.domain.workflow``, ``study.domain.studies``, ``study.domain.config``), not even for an exception
    type or a constant: the service re-exports what its pages catch or show (``DesignLocked``,
    ``AnswerInvalid``, ``WorkflowError``, ``MAX_REASON``, ``AuditFilter``, ...).

    What pages still import beside their service: ``streamlit``, ``pandas``, the ``pages._*`` helpers, and
    the formatting of ``study.domain.timefmt`` and ``study.outputs.report``, which take plain values (the demo pages use the
    model-side ``study.visitor.ministudy``; none of them opens a transaction). The ``pages._*``
    helpers are checked for transactions only: ``pages/_shared.py`` builds the session factory from
    ``study.storage.db`` that a page hands to its service; no helper opens a transaction (``db.reading``)."""
    def forbidden(name: str) -> bool:
        return any(name == f or name.startswith(f + ".") for f in PAGE_FORBIDDEN)

    offenders = {str(p.relative_to(REPO)): sorted(n for n in _imported_names(p) if forbidden(n))
                 for p in (REPO / "pages").glob("*.py") if not p.stem.startswith("_")}
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"a page calls its service, never the library or the database: {offenders}"
    helpers_reading = [p.name for p in (REPO / "pages").glob("_*.py") if "reading(" in p.read_text()]
    assert not helpers_reading, f"a page helper opens a transaction; its service should: {helpers_reading}"


def test_pages_import_only_the_shared_page_helpers():
    """A page may use ``pages._shared``-style helpers, never another page's module."""
    offenders = {str(p.relative_to(REPO)): sorted(n for n in _imported_names(p) if n.startswith("pages.")
                                                  and n.count(".") == 1 and not n.split(".")[1].startswith("_"))
                 for p in (REPO / "pages").glob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}


def test_services_sit_above_the_library():
    """Only the commands call a service; the library below does not."""
    below = [p for p in (REPO / "study").rglob("*.py")
             if p.relative_to(REPO).parts[1] not in ("services", "commands")]
    offenders = sorted(str(p.relative_to(REPO)) for p in below
                       if any(n == "study.services" or n.startswith("study.services.") for n in _imported_names(p)))
    assert not offenders, f"library modules must not import a service: {offenders}"


def test_the_old_web_module_stays_gone():
    """``study/web.py`` mixed three audiences; its code now lives in ``study/services``."""
    files = [*REPO.glob("*.py"),
             *(p for folder in ("pages", "study", "tests", "bench") for p in (REPO / folder).rglob("*.py"))]
    assert not (REPO / "study" / "web.py").exists()
    users = {str(p.relative_to(REPO)) for p in files if "study.web" in _imported_names(p)}
    assert not users, f"import study.services.* (study.web is gone): {users}"
