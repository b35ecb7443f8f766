"""Study configuration: read a TOML file, validate every field, and resolve it into plain dataclasses.

Why resolve at load time: the questions' options come from the label set file; the study stores the
resolved form (``StudyConfig.to_dict``) in the database, so a later edit of the label set cannot
change what a running study asks. Validation collects every problem and reports them together, each
naming the table and key, so an investigator fixes the file in one pass.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DESIGNS = ("sequential", "crossover", "multi_arm")
ARMS = ("unaided", "ai", "ai_saliency")
NORMAL = "normal"
DEFAULT_WASHOUT_DAYS = 28


class StudyConfigError(ValueError):
    """The study configuration is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[str], source: str = "study configuration"):
        self.problems = problems
        super().__init__(f"{source} has {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))


class AnswerInvalid(ValueError):
    """An answer does not fit the study's questions; ``problems`` lists every problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid answer: " + "; ".join(problems))


@dataclass(frozen=True)
class Question:
    id: str
    kind: str  # single_choice | multi_choice | integer | boolean
    text: str
    options: tuple[tuple[str, str], ...] = ()  # (key, label)
    minimum: int | None = None
    maximum: int | None = None
    required: bool = True

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["options"] = [list(o) for o in self.options]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Question:
        return cls(**{**d, "options": tuple(tuple(o) for o in d.get("options", ()))})


@dataclass(frozen=True)
class ExperienceLevel:
    name: str
    below: float | None = None  # years < below
    up_to: float | None = None  # years <= up_to; neither: the catch-all last level


@dataclass(frozen=True)
class DesignConfig:
    type: str
    washout_days: int = DEFAULT_WASHOUT_DAYS
    arms: tuple[str, ...] = ARMS

    @property
    def conditions(self) -> tuple[str, ...]:
        if self.type == "multi_arm":
            return self.arms
        return ("unaided", "ai")


@dataclass(frozen=True)
class StudyConfig:
    name: str
    label_set: str
    model: str
    design: DesignConfig
    questions: tuple[Question, ...]
    levels: tuple[ExperienceLevel, ...]
    corrections_allowed: bool = False
    checkpoint: str | None = None
    seed: int | None = None
    findings: tuple[str, ...] = field(default=())

    def level_for(self, years: float) -> str:
        """The experience level for ``years`` from the configured bins."""
        if not isinstance(years, (int, float)) or isinstance(years, bool) or not math.isfinite(years) or years < 0:
            raise ValueError(f"years of experience must be a number >= 0, got {years!r}")
        for level in self.levels:
            if level.below is not None and years < level.below:
                return level.name
            if level.up_to is not None and years <= level.up_to:
                return level.name
            if level.below is None and level.up_to is None:
                return level.name
        raise AssertionError("validated levels always end with a catch-all")

    def question(self, qid: str) -> Question:
        return next(q for q in self.questions if q.id == qid)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "label_set": self.label_set, "model": self.model, "checkpoint": self.checkpoint,
            "seed": self.seed, "corrections_allowed": self.corrections_allowed, "findings": list(self.findings),
            "design": {"type": self.design.type, "washout_days": self.design.washout_days,
                       "arms": list(self.design.arms)},
            "questions": [q.to_dict() for q in self.questions],
            "levels": [asdict(lv) for lv in self.levels],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudyConfig:
        """Rebuild from :meth:`to_dict` output (the resolved form stored in the database)."""
        design = d["design"]
        return cls(name=d["name"], label_set=d["label_set"], model=d["model"], checkpoint=d.get("checkpoint"),
                   seed=d.get("seed"), corrections_allowed=bool(d["corrections_allowed"]),
                   findings=tuple(d.get("findings", ())),
                   design=DesignConfig(design["type"], int(design["washout_days"]), tuple(design["arms"])),
                   questions=tuple(Question.from_dict(q) for q in d["questions"]),
                   levels=tuple(ExperienceLevel(**lv) for lv in d["levels"]))


DEFAULT_LEVELS = (ExperienceLevel("junior", below=5), ExperienceLevel("intermediate", up_to=10),
                  ExperienceLevel("senior"))

_ALLOWED = {
    "": {"study", "questions", "experience", "design"},
    "study": {"name", "label_set", "model", "checkpoint", "seed", "corrections_allowed"},
    "questions": {"findings", "confidence", "referral"},
    "experience": {"level"},
    "design": {"type", "washout_days", "arms"},
}


def _unknown(table: dict, where: str, problems: list[str]) -> None:
    for key in table:
        if key not in _ALLOWED[where]:
            label = f"[{where}]" if where else "top level"
            problems.append(f"{label}: unknown key {key!r} (allowed: {', '.join(sorted(_ALLOWED[where]))})")


def _table(data: dict, key: str, problems: list[str], required: bool = False) -> dict:
    value = data.get(key, {})
    if key not in data and required:
        problems.append(f"[{key}]: missing table")
    if not isinstance(value, dict):
        problems.append(f"[{key}]: must be a table, got {type(value).__name__}")
        return {}
    return value


def _bool(table: dict, where: str, key: str, default: bool, problems: list[str]) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        problems.append(f"[{where}] {key}: must be true or false, got {value!r}")
        return default
    return value


def _parse_levels(experience: dict, problems: list[str]) -> tuple[ExperienceLevel, ...]:
    raw = experience.get("level")
    if raw is None:
        return DEFAULT_LEVELS
    if not isinstance(raw, list) or not raw:
        problems.append("[[experience.level]]: must be a non-empty array of tables")
        return DEFAULT_LEVELS
    levels: list[ExperienceLevel] = []
    last = -math.inf
    for i, item in enumerate(raw, start=1):
        where = f"[[experience.level]] #{i}"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be a table")
            continue
        extra = set(item) - {"name", "below", "up_to"}
        if extra:
            problems.append(f"{where}: unknown key(s) {sorted(extra)} (allowed: name, below, up_to)")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{where} name: must be a non-empty string")
            name = f"level{i}"
        below, up_to = item.get("below"), item.get("up_to")
        if below is not None and up_to is not None:
            problems.append(f"{where} ({name}): give either 'below' (years < x) or 'up_to' (years <= x), not both")
        bound = below if below is not None else up_to
        is_last = i == len(raw)
        if bound is None and not is_last:
            problems.append(f"{where} ({name}): only the last level may omit 'below'/'up_to'")
        if bound is not None:
            if isinstance(bound, bool) or not isinstance(bound, (int, float)) or bound < 0:
                problems.append(f"{where} ({name}): bound must be a number of years >= 0, got {bound!r}")
            elif bound < last or (bound == last and below is not None):
                problems.append(f"{where} ({name}): bounds must increase from one level to the next")
            else:
                last = bound
        if is_last and bound is not None:
            problems.append(f"{where} ({name}): the last level must have no bound (it takes everyone above)")
        levels.append(ExperienceLevel(name, below=below, up_to=up_to))
    names = [lv.name for lv in levels]
    if len(set(names)) != len(names):
        problems.append(f"[[experience.level]]: level names must be unique, got {names}")
    return tuple(levels)


def _parse_design(design: dict, problems: list[str]) -> DesignConfig:
    kind = design.get("type")
    if kind not in DESIGNS:
        problems.append(f"[design] type: must be one of {', '.join(DESIGNS)} (got {kind!r})")
        kind = "sequential"
    washout = design.get("washout_days", DEFAULT_WASHOUT_DAYS)
    if isinstance(washout, bool) or not isinstance(washout, int) or washout < 0:
        problems.append(f"[design] washout_days: must be a whole number of days >= 0, got {washout!r}")
        washout = DEFAULT_WASHOUT_DAYS
    arms = design.get("arms", list(ARMS))
    if "arms" in design and kind != "multi_arm":
        problems.append(f"[design] arms: only used by design type 'multi_arm' (this study is {kind!r})")
    if "washout_days" in design and kind == "sequential":
        problems.append("[design] washout_days: a sequential design has a single session and no washout")
    if not isinstance(arms, list) or not all(isinstance(a, str) for a in arms):
        problems.append(f"[design] arms: must be a list of strings, got {arms!r}")
        arms = list(ARMS)
    bad = [a for a in arms if a not in ARMS]
    if bad:
        problems.append(f"[design] arms: unknown arm(s) {bad} (allowed: {', '.join(ARMS)})")
    if len(set(arms)) != len(arms):
        problems.append(f"[design] arms: arms must be distinct, got {arms}")
    if kind == "multi_arm" and len(arms) < 2:
        problems.append("[design] arms: a multi-arm study needs at least two arms")
    return DesignConfig(kind, washout, tuple(arms))


def _questions(findings: list[tuple[str, str]], with_findings: bool, confidence: bool,
               referral: bool) -> tuple[Question, ...]:
    qs = [Question("primary_diagnosis", "single_choice", "Primary diagnosis",
                   options=tuple(findings) + ((NORMAL, "Normal"),))]
    if with_findings:
        qs.append(Question("findings", "multi_choice", "All findings present", options=tuple(findings),
                           required=False))
    if confidence:
        qs.append(Question("confidence", "integer", "Confidence in the primary diagnosis (0-100)",
                           minimum=0, maximum=100))
    if referral:
        qs.append(Question("referral", "boolean", "Refer to an ophthalmologist?"))
    return tuple(qs)


def parse_config(data: dict[str, Any], source: str = "study configuration") -> StudyConfig:
    """Validate a parsed TOML mapping; raise :class:`StudyConfigError` listing every problem."""
    from revision_core.labels import LabelSetError, load_label_set

    problems: list[str] = []
    _unknown(data, "", problems)
    study = _table(data, "study", problems, required=True)
    questions = _table(data, "questions", problems)
    experience = _table(data, "experience", problems)
    design = _table(data, "design", problems, required=True)
    for where, table in (("study", study), ("questions", questions), ("experience", experience),
                         ("design", design)):
        _unknown(table, where, problems)

    name = study.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append("[study] name: must be a non-empty string")
        name = ""
    label_set_name = study.get("label_set", "revision_findings")
    findings: list[tuple[str, str]] = []
    if not isinstance(label_set_name, str):
        problems.append(f"[study] label_set: must be a label set name or path, got {label_set_name!r}")
    else:
        try:
            label_set = load_label_set(label_set_name)
            findings = [(f.key, f.name) for f in label_set.findings]
            if NORMAL in label_set.keys:
                problems.append(f"[study] label_set: finding key {NORMAL!r} is reserved for the 'normal' answer")
        except LabelSetError as exc:
            problems.append(f"[study] label_set: {exc}")
    model = study.get("model", "demo")
    if not isinstance(model, str) or not model:
        problems.append(f"[study] model: must be a model spec string such as 'demo', got {model!r}")
    checkpoint = study.get("checkpoint")
    if checkpoint is not None and not isinstance(checkpoint, str):
        problems.append(f"[study] checkpoint: must be a path string, got {checkpoint!r}")
    seed = study.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31):
        problems.append(f"[study] seed: must be a whole number in [0, 2^31), got {seed!r}")
    corrections = _bool(study, "study", "corrections_allowed", False, problems)
    with_findings = _bool(questions, "questions", "findings", False, problems)
    confidence = _bool(questions, "questions", "confidence", True, problems)
    referral = _bool(questions, "questions", "referral", True, problems)
    levels = _parse_levels(experience, problems)
    design_cfg = _parse_design(design, problems)
    if problems:
        raise StudyConfigError(problems, source)
    return StudyConfig(name=name.strip(), label_set=label_set_name, model=model, checkpoint=checkpoint,
                       seed=seed, corrections_allowed=corrections, design=design_cfg,
                       questions=_questions(findings, with_findings, confidence, referral), levels=levels,
                       findings=tuple(k for k, _ in findings))


def load_config(source: str | Path) -> tuple[StudyConfig, str]:
    """Read and validate a TOML file; returns the config and the file's text (stored verbatim)."""
    path = Path(source)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise StudyConfigError([f"cannot read the file: {exc.strerror or exc}"], str(path)) from exc
    return parse_text(text, str(path)), text


def parse_text(text: str, source: str = "study configuration") -> StudyConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyConfigError([f"not valid TOML: {exc}"], source) from exc
    return parse_config(data, source)


def validate_answer(questions: tuple[Question, ...] | list[Question], answer: Any) -> dict[str, Any]:
    """Check an answer against the questions; return it normalised, or raise :class:`AnswerInvalid`."""
    if not isinstance(answer, dict):
        raise AnswerInvalid([f"an answer must be a mapping of question id to value, got {type(answer).__name__}"])
    problems: list[str] = []
    known = {q.id for q in questions}
    for key in answer:
        if key not in known:
            problems.append(f"unknown question {key!r} (questions: {', '.join(sorted(known))})")
    out: dict[str, Any] = {}
    for q in questions:
        if q.id not in answer or answer[q.id] is None:
            if q.required:
                problems.append(f"{q.id}: an answer is required")
            elif q.kind == "multi_choice":
                out[q.id] = []
            continue
        value = answer[q.id]
        keys = [k for k, _ in q.options]
        if q.kind == "single_choice":
            if not isinstance(value, str) or value not in keys:
                problems.append(f"{q.id}: must be one of {', '.join(keys)}, got {value!r}")
            else:
                out[q.id] = value
        elif q.kind == "multi_choice":
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                problems.append(f"{q.id}: must be a list of option keys, got {value!r}")
            elif bad := [v for v in value if v not in keys]:
                problems.append(f"{q.id}: unknown option(s) {bad} (options: {', '.join(keys)})")
            elif len(set(value)) != len(value):
                problems.append(f"{q.id}: options must not repeat, got {list(value)}")
            else:
                out[q.id] = sorted(value, key=keys.index)
        elif q.kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append(f"{q.id}: must be a whole number, got {value!r}")
            elif not q.minimum <= value <= q.maximum:
                problems.append(f"{q.id}: must be between {q.minimum} and {q.maximum}, got {value}")
            else:
                out[q.id] = value
        elif q.kind == "boolean":
            if not isinstance(value, bool):
                problems.append(f"{q.id}: must be true or false (yes/no), got {value!r}")
            else:
                out[q.id] = value
    if problems:
        raise AnswerInvalid(problems)
    return out
