"""The test support package and the reference data: product code never imports test code, the benchmarks take
their helpers from ``testsupport`` (never from ``tests``), and the reference data are the published files."""
from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

import pytest

from tests.conftest import REFERENCE, REFERENCE_FILES

REPO = Path(__file__).resolve().parents[1]
PRODUCT = ["study", "revision_core", "pages", "components", "scripts", "app.py", "server.py"]


def _top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _python_files(*names: str) -> list[Path]:
    files = []
    for name in names:
        path = REPO / name
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return files


def test_product_code_never_imports_test_code():
    imports = {str(p.relative_to(REPO)): _top_level_imports(p) & {"tests", "testsupport"}
               for p in _python_files(*PRODUCT)}
    offenders = {path: sorted(names) for path, names in imports.items() if names}
    assert not offenders, f"product code imports test code: {offenders}"


def test_benchmarks_and_testsupport_never_import_the_tests():
    """What a benchmark shares with the tests lives in testsupport/; a benchmark never imports tests/ (nor does
    testsupport), not even in a child process's source."""
    offenders = [str(p.relative_to(REPO)) for p in _python_files("bench", "testsupport")
                 if "tests" in _top_level_imports(p) or re.search(r"^\s*(from|import) tests\b", p.read_text(), re.M)]
    assert not offenders, f"import testsupport instead of tests: {offenders}"


@pytest.mark.parametrize("name", REFERENCE_FILES)
def test_reference_data_are_the_files_the_readme_names(name):
    readme = (REFERENCE / "README.md").read_text(encoding="utf-8")
    recorded = re.search(rf"`{re.escape(name)}` \| [\d,]+ \| `([0-9a-f]{{64}})`", readme)
    assert recorded, f"tests/data/README.md lists no sha256 for {name}"
    assert hashlib.sha256((REFERENCE / name).read_bytes()).hexdigest() == recorded.group(1)
