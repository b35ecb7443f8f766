"""The layering the design promises (README, "Layers"): pages -> services -> jobs/outputs -> analysis/domain ->
storage, with ``revision_core`` below all, never the other way round.

Every import is seen: ``import x``, ``from x import y``, relative imports (resolved to the module they name) and
``importlib.import_module`` / ``__import__`` with a literal name.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# a group of modules -> the other groups it may import (the standard library and third-party packages aside)
ALLOWED = {
    "study.storage": set(),
    "study.analysis.stats": {"revision_core"},  # DeLong's placement values (revision_core.evaluate)
    "study.domain": {"study.storage", "revision_core"},
    "study.analysis": {"study.analysis.stats", "study.domain", "study.storage", "revision_core"},
    "study.visitor": {"study.domain", "revision_core"},
    "study.jobs": {"study.domain", "study.storage", "revision_core"},
    "study.outputs": {"study.analysis", "study.analysis.stats", "study.domain", "study.storage", "revision_core"},
    "study.services": {"study.jobs", "study.outputs", "study.analysis", "study.analysis.stats", "study.domain",
                       "study.storage", "study.visitor", "revision_core"},
    "study.commands": {"study.cli", "study.services", "study.jobs", "study.outputs", "study.analysis",
                       "study.analysis.stats", "study.domain", "study.storage", "revision_core"},
    "study.cli": {"study.commands", "revision_core"},
    "revision_core": set(),
}
GROUPS = sorted(ALLOWED, key=len, reverse=True)  # the most specific group first ("study.analysis.stats")
UI = ("pages", "components", "app", "server", "scripts")  # the Streamlit side: nothing below may import it


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path, here: str | None = None) -> set[str]:
    """Full dotted names a file imports: ``from X import y`` as both ``X`` and ``X.y``; relative imports
    resolved (from ``here``, the file's module name); ``importlib.import_module("...")`` and ``__import__("...")``
    with a literal name."""
    here = here or module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) and \
                isinstance(node.args[0].value, str) and (
                getattr(node.func, "attr", None) == "import_module" or getattr(node.func, "id", None) in (
                "__import__", "import_module")):
            names.add(node.args[0].value)
    return names


def group_of(name: str) -> str | None:
    for group in GROUPS:
        if name == group or name.startswith(group + "."):
            return group
    if name in ("study", "study.__main__"):
        return "study.cli"
    return None


def _library_files():
    return [*(REPO / "study").rglob("*.py"), *(REPO / "revision_core").rglob("*.py")]


def test_every_library_module_belongs_to_a_layer():
    lost = [module_name(p) for p in _library_files() if group_of(module_name(p)) is None]
    assert not lost, f"modules outside every layer of the layering table: {lost}"


def test_imports_point_down_only():
    offenders = []
    for path in _library_files():
        mine = group_of(module_name(path))
        for name in imported_names(path):
            theirs = group_of(name)
            if theirs is not None and theirs != mine and theirs not in ALLOWED[mine]:
                offenders.append(f"{module_name(path)} ({mine}) imports {name} ({theirs})")
    assert not offenders, "layering broken:\n" + "\n".join(sorted(offenders))


def test_nothing_below_the_pages_imports_the_screen():
    offenders = {module_name(p): sorted(n for n in imported_names(p) if n.split(".")[0] in UI + ("streamlit",))
                 for p in _library_files()}
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"study/ and revision_core/ never import Streamlit or the pages: {offenders}"


def test_revision_core_knows_no_study_and_no_sql():
    offenders = {module_name(p): sorted(n for n in imported_names(p) if n.split(".")[0] in ("study", "sqlalchemy"))
                 for p in (REPO / "revision_core").rglob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}


@pytest.mark.parametrize("violation, group", [
    ("from ..domain import workflow\n", "study.analysis.stats"),  # relative, upward
    ("from study.domain import workflow\n", "study.analysis.stats"),
    ("import importlib\nimportlib.import_module('study.services.reader')\n", "study.domain"),
    ("from pages import _shared\n", "study.domain"),
    ("from study.outputs import report\n", "study.analysis"),
    ("from study.jobs import precompute\n", "study.domain"),
    ("from study import cli\n", "study.storage"),
])
def test_the_check_sees_each_kind_of_violation(tmp_path, violation, group):
    """Planted violations, read as a module of the group, are each caught."""
    planted = tmp_path / "planted.py"
    planted.write_text(violation)
    names = imported_names(planted, here=f"{group}.planted")
    mine = group_of(f"{group}.planted")
    bad = [n for n in names if (g := group_of(n)) is not None and g != mine and g not in ALLOWED[mine]]
    bad += [n for n in names if n.split(".")[0] in UI]
    assert bad, f"{violation!r} in {group} went unnoticed"


@pytest.mark.parametrize("folder, forbidden", [
    ("pages", {"sqlalchemy", "torch"}),
    ("components", {"sqlalchemy", "torch", "study"}),  # a component draws; the page gives it its data
])
def test_pages_hold_no_sql_or_torch(folder, forbidden):
    offenders = {str(p.relative_to(REPO)): sorted({n.split(".")[0] for n in imported_names(p)} & forbidden)
                 for p in (REPO / folder).rglob("*.py")}
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"pages must call study/revision_core instead: {offenders}"


SERVICES = {p.stem for p in (REPO / "study" / "services").glob("*.py") if not p.stem.startswith("_")}


def _services(path: Path) -> set[str]:
    return {name.split(".")[2] for name in imported_names(path)
            if name.startswith("study.services.") and name.split(".")[2] in SERVICES}


def test_each_page_calls_one_service():
    offenders = {str(p.relative_to(REPO)): sorted(_services(p)) for p in (REPO / "pages").glob("*.py")
                 if len(_services(p)) > 1}
    assert not offenders, f"a page talks to one service (reader, investigator, sign-in, analysis): {offenders}"


PAGE_ALLOWED = ("study.services", "study.domain.timefmt", "study.outputs.report", "study.visitor")


def test_pages_call_their_service_not_the_library():
    """A page calls its one service, which owns the transaction: no page imports the storage or the domain
    library under the services, not even for an exception type or a constant (the service re-exports what its
    pages catch or show). Besides its service a page may use the formatting of ``study.domain.timefmt`` and
    ``study.outputs.report`` (plain values in, text out) and the visitor's mini study (no database). The
    ``pages._*`` helpers are checked for transactions only: ``pages/_shared.py`` builds the session factory a
    page hands to its service, and no helper opens a transaction (``db.reading``)."""
    offenders = {}
    for p in (REPO / "pages").glob("*.py"):
        if p.stem.startswith("_"):
            continue
        bad = sorted(n for n in imported_names(p) if (n.startswith("study.") or n == "sqlalchemy")
                     and not any(n == a or n.startswith(a + ".") for a in PAGE_ALLOWED)
                     and n not in ("study.domain", "study.outputs"))
        if bad:
            offenders[str(p.relative_to(REPO))] = bad
    assert not offenders, f"a page calls its service, never the library or the database: {offenders}"
    helpers_reading = [p.name for p in (REPO / "pages").glob("_*.py") if "reading(" in p.read_text()]
    assert not helpers_reading, f"a page helper opens a transaction; its service should: {helpers_reading}"


def test_pages_import_only_the_shared_page_helpers():
    """A page may use ``pages._shared``-style helpers, never another page's module."""
    offenders = {str(p.relative_to(REPO)): sorted(n for n in imported_names(p) if n.startswith("pages.")
                                                  and n.count(".") == 1 and not n.split(".")[1].startswith("_"))
                 for p in (REPO / "pages").glob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}


def private_uses(path: Path) -> list[str]:
    """Private names (one leading underscore) of ``study`` or ``revision_core`` that ``path`` uses: imported
    with ``from x import _y``, or read as ``x._y`` on a module it imported."""
    tree = ast.parse(path.read_text())
    ours = ("study", "revision_core")
    modules, found = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ours:
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{node.module}.{alias.name}")
                modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in ours:
                    modules[alias.asname or alias.name.split(".")[0]] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append(f"{modules[node.value.id]}.{node.attr}")
    return found


def test_the_screen_uses_only_public_names_of_the_library(tmp_path):
    """Pages decode, score and store through public functions: a private helper of ``revision_core`` or
    ``study`` may change without notice (``pages/_shared.py`` once decoded uploads with four of imageio's)."""
    screen = [p for folder in ("pages", "components") for p in (REPO / folder).rglob("*.py")] + [REPO / "app.py"]
    offenders = {str(p.relative_to(REPO)): private_uses(p) for p in screen}
    assert not {k: v for k, v in offenders.items() if v}
    planted = tmp_path / "page.py"
    planted.write_text("from revision_core import imageio\nfrom study.rules import _x\nimageio._fresh(None)\n")
    assert sorted(private_uses(planted)) == ["revision_core.imageio._fresh", "study.rules._x"]
