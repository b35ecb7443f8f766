"""Each rule of the study lives in one module; this test fails when another module writes its own copy.

Why by pattern: a copy is rarely a call to the wrong function; it is the same few lines written again (a
``max(probs, key=...)``, an ``order_by(Answer.version.desc())``). Each pattern below is the recognisable core of
one rule, allowed only in that rule's home.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCES = [*(REPO / "study").rglob("*.py"), *(REPO / "pages").glob("*.py"), REPO / "app.py", REPO / "server.py"]

RULES = [
    # (what, pattern, the only modules that may contain it)
    ("the reference primary diagnosis (label, else primary, else normal)",
     r"""\.get\(["']label["']\)\s*or\s*\w*\.?get\(["']primary["']\)""", {"study/domain/scoring.py"}),
    ("the AI's top finding (most probable; ties by name)",
     r"(max|sorted)\([^)\n]*(prob|probs|probabilities)[^)\n]*key\s*=", {"study/domain/rules.py"}),
    ("a single call against a case's findings (normal when it has none)",
     r"==\s*NORMAL\s+if\s+not\s+\w+\s+else", {"study/domain/rules.py"}),
    ("the latest answer version",
     r"Answer\.version\.desc\(\)|func\.max\(Answer\.version\)|\[[\"']version[\"']\]\.transform\([\"']max",
     {"study/domain/rules.py", "study/domain/workflow.py"}),
    ("progress: assignments answered of those assigned",
     r"func\.count\(answered\.c\.assignment_id\)", {"study/domain/rules.py"}),
    ("the AI output readers are shown (newest of the study's model version)",
     r"AIOutput\.created_at\.desc\(\)", {"study/domain/rules.py", "study/domain/monitoring.py"}),
    ("the saliency methods",
     r"[\"']integrated_gradients[\"']\s*,\s*[\"']smoothgrad[\"']", set()),
    ("a readers CSV's years of experience",
     r"float\(\s*row\s*(\[|\.get\()\s*[\"']years_experience", {"study/domain/readers.py"}),
]


@pytest.mark.parametrize("what, pattern, homes", RULES, ids=[r[0] for r in RULES])
def test_no_module_rewrites_a_rule(what, pattern, homes):
    offenders = []
    for path in SOURCES:
        rel = path.relative_to(REPO).as_posix()
        if rel in homes:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if re.search(pattern, line):
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert not offenders, f"{what} has one home ({', '.join(sorted(homes)) or 'revision_core'}); copies: {offenders}"


@pytest.mark.parametrize("what, pattern, homes", RULES, ids=[r[0] for r in RULES])
def test_each_pattern_finds_the_rule_it_guards(what, pattern, homes):
    """A pattern that matches nothing guards nothing: each must match its home (or, for the saliency list,
    revision_core's one module)."""
    if what.startswith("a readers CSV"):  # the home parses the column once, by name
        pattern = r"def parse_readers_csv"
    places = homes or {"revision_core/saliency_methods.py"}
    assert any(re.search(pattern, (REPO / home).read_text(encoding="utf-8")) for home in places), what
