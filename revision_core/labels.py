"""Label sets: the findings a study asks about and the report-style prompts for each, read from TOML.

A new label set (for example the style of the ReVision paper's benchmarks) is a new TOML file, no code.
"""
from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path

LABELS_DIR = Path(__file__).resolve().parent / "labels"
DEFAULT_LABEL_SET = "revision_findings"


class LabelSetError(ValueError):
    """A label-set file is missing or malformed; the message says which field and how to fix it."""


@dataclass(frozen=True)
class Finding:
    key: str
    name: str
    positive: tuple[str, ...]
    negative: tuple[str, ...]


@dataclass(frozen=True)
class LabelSet:
    name: str
    version: str
    findings: tuple[Finding, ...]
    digest: str  # hash of the file's content: caches of prompt embeddings are keyed on it

    @property
    def keys(self) -> list[str]:
        return [f.key for f in self.findings]

    def finding(self, key: str) -> Finding:
        for f in self.findings:
            if f.key == key:
                return f
        raise LabelSetError(f"Unknown finding {key!r}; this label set has: {', '.join(self.keys)}.")


def available_label_sets() -> list[str]:
    return sorted(p.stem for p in LABELS_DIR.glob("*.toml"))


def load_label_set(name_or_path: str | Path = DEFAULT_LABEL_SET) -> LabelSet:
    """Load a built-in label set by name, or any TOML file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = LABELS_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise LabelSetError(f"Label set {str(name_or_path)!r} not found (looked for {path}). Built-in label sets: "
                            f"{', '.join(available_label_sets())}; or pass the path of a TOML file.")
    raw = path.read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise LabelSetError(f"{path} is not valid UTF-8 TOML: {exc}") from None
    entries = data.get("finding")
    if not isinstance(entries, list) or not entries:
        raise LabelSetError(f"{path} has no [[finding]] tables; each needs key, name, positive and negative.")
    findings, seen = [], set()
    for i, entry in enumerate(entries, start=1):
        for field in ("key", "positive", "negative"):
            if not entry.get(field):
                raise LabelSetError(f"{path}: finding #{i} lacks {field!r} (each finding needs key, name, "
                                    "a list of positive prompts and a list of negative prompts).")
        if entry["key"] in seen:
            raise LabelSetError(f"{path}: finding key {entry['key']!r} appears twice; keys must be unique.")
        seen.add(entry["key"])
        for field in ("positive", "negative"):
            if not isinstance(entry[field], list) or not all(isinstance(p, str) and p.strip() for p in entry[field]):
                raise LabelSetError(f"{path}: finding {entry['key']!r}: {field!r} must be a list of non-empty strings.")
        findings.append(Finding(key=entry["key"], name=entry.get("name", entry["key"]),
                                positive=tuple(entry["positive"]), negative=tuple(entry["negative"])))
    return LabelSet(name=data.get("name", path.stem), version=str(data.get("version", "1")),
                    findings=tuple(findings), digest=hashlib.sha256(raw).hexdigest()[:16])
