"""The layering the design promises: pages -> study -> revision_core, never the other way round."""
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
