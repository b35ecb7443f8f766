"""Study configuration: read a TOML file, validate every field, and resolve it into plain dataclasses.

Why resolve at load time: the questions' options come from the label set file; the study stores the
resolved form (``StudyConfig.to_dict``) in the database, so a later edit of the label set cannot
change what a running study asks. Validation collects every problem and reports them together, each
naming the table and key, so an investigator fixes the file in one pass.

Two protocols: the legacy ``[questions]`` table (primary diagnosis from the label set, optional
findings, 0-100 confidence, referral; primary = ``primary_diagnosis`` with truth = the manifest's
``label``), or the study's own ``[[question]]`` tables (see :data:`KINDS`), of which exactly one is
the primary question the accuracy, GLMM and MRMC analyses score (``study.domain.scoring``). With
``[study] allow_ungradable = true`` a reader may answer ``{"ungradable": true}``: every required
question is then skipped (non-required ones may still be answered), and the reading is scored as
its own category, never as right or wrong.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from revision_core.saliency_methods import METHODS
from study.storage import text as stored_text
from study.storage.models import Reader, Study

DESIGNS = ("sequential", "crossover", "multi_arm")
KINDS = ("single_choice", "multi_choice", "ordinal", "number", "text", "boolean")
LEGACY_KINDS = ("integer",)  # the legacy 0-100 confidence question (stored study configs use it)
PRIMARY_KINDS = ("single_choice", "ordinal", "boolean", "multi_choice")
UNGRADABLE = "ungradable"  # the answer key of "Image ungradable"
LABEL_SET_OPTIONS = "label_set"
BUILTIN_TRUTH = ("label", "findings")  # manifest columns the case importer always reads
DEFAULT_TEXT_LENGTH = 2000
DEFAULT_FAST_READ_SECONDS = 3.0  # [monitor] fast_read_seconds: a read faster than this is flagged (study.domain.flags)
DEFAULT_STALLED_DAYS = 7.0  # [monitor] stalled_days: a reader with readings left, idle this long, is flagged
SALIENCY_METHODS = METHODS  # revision_core.saliency_methods: the methods revision_core.saliency implements
DEFAULT_SALIENCY = "integrated_gradients"
LEGACY_SALIENCY = "gradcam"  # what precompute used before [ai] saliency existed (stored configs without it)
DEFAULT_SALIENCY_STEPS = 32
DEFAULT_SALIENCY_FINDINGS = 3  # [ai] saliency_findings: maps for the case's most probable findings, at most 3
MAX_SALIENCY_FINDINGS = 3
_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Bounds on the texts of a study's TOML, each checked like every stored text (study.storage.text: length,
# control and bidirectional characters), so SQLite and PostgreSQL accept the same files and a name cannot
# reorder what a reader sees. Names stored in columns take the column's length.
MAX_TOML_BYTES = 1_000_000
MAX_QUESTIONS = 100
MAX_OPTIONS = 500  # per question (checked, with their duplicates, in one pass)
TEXT_LIMITS = {"name": Study.__table__.c.name.type.length, "level": Reader.__table__.c.level.type.length,
               "question": 1000, "option_key": 100, "option_label": 300, "unit": 50, "truth": 100, "path": 1000}
ARMS = ("unaided", "ai", "ai_saliency")
NORMAL = "normal"
DEFAULT_WASHOUT_DAYS = 28


class StudyConfigError(ValueError):
    """The study configuration is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[str], source: str = "study configuration"):
        self.problems = problems
        super().__init__(f"{source} has {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))


class AnswerInvalid(ValueError):
    """An answer does not fit the study's questions; ``problems`` lists every problem, ``missing`` the ids of
    the required questions left unanswered (so a form can mark them)."""

    def __init__(self, problems: list[str], missing: tuple[str, ...] = ()):
        self.problems = problems
        self.missing = tuple(missing)
        super().__init__("invalid answer: " + "; ".join(problems))


@dataclass(frozen=True)
class Question:
    id: str
    kind: str  # one of KINDS, or the legacy "integer"
    text: str
    options: tuple[tuple[str, str], ...] = ()  # (key, label); ordinal: lowest grade first
    minimum: float | None = None
    maximum: float | None = None
    required: bool = True
    step: float | None = None  # number only
    unit: str | None = None  # number only
    max_length: int | None = None  # text only
    truth: str | None = None  # manifest column (case.reference_labels key) with the reference answer
    primary: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["options"] = [list(o) for o in self.options]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Question:
        """Also reads configs stored before the new fields existed (they take their defaults)."""
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{**{k: v for k, v in d.items() if k in known},
                      "options": tuple(tuple(o) for o in d.get("options", ()))})

    @property
    def keys(self) -> list[str]:
        return [k for k, _ in self.options]


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
    # [study] unaided_corrections_after_ai: may an unaided answer still be corrected once the reader has been
    # shown the session's first AI-assisted reading? No by default (the AI could change the unaided answer)
    unaided_corrections_after_ai: bool = False
    checkpoint: str | None = None
    seed: int | None = None
    findings: tuple[str, ...] = field(default=())
    allow_ungradable: bool = False
    saliency: str = DEFAULT_SALIENCY
    saliency_steps: int = DEFAULT_SALIENCY_STEPS
    saliency_findings: int = DEFAULT_SALIENCY_FINDINGS
    custom_questions: bool = False  # True: the study's own [[question]] tables
    fast_read_seconds: float = DEFAULT_FAST_READ_SECONDS  # [monitor]: reads faster than this are flagged
    stalled_days: float = DEFAULT_STALLED_DAYS  # [monitor]: a started reader idle this long is flagged

    @property
    def primary_question(self) -> Question:
        """The question the analyses score: the one marked primary, else (stored legacy configs)
        ``primary_diagnosis``, else the first choice/ordinal/boolean question."""
        for q in self.questions:
            if q.primary:
                return q
        for q in self.questions:
            if q.id == "primary_diagnosis":
                return replace(q, primary=True, truth=q.truth or "label")
        return next(q for q in self.questions if q.kind in PRIMARY_KINDS)

    @property
    def truth_columns(self) -> tuple[str, ...]:
        """Manifest columns the questions take their reference answers from, beyond ``label``/``findings``."""
        out: list[str] = []
        for q in self.questions:
            if q.truth and q.truth not in BUILTIN_TRUTH and q.truth not in out:
                out.append(q.truth)
        return tuple(out)

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
            "unaided_corrections_after_ai": self.unaided_corrections_after_ai,
            "design": {"type": self.design.type, "washout_days": self.design.washout_days,
                       "arms": list(self.design.arms)},
            "questions": [q.to_dict() for q in self.questions],
            "levels": [asdict(lv) for lv in self.levels],
            "allow_ungradable": self.allow_ungradable, "saliency": self.saliency,
            "saliency_steps": self.saliency_steps, "saliency_findings": self.saliency_findings,
            "custom_questions": self.custom_questions,
            "fast_read_seconds": self.fast_read_seconds, "stalled_days": self.stalled_days,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudyConfig:
        """Rebuild from :meth:`to_dict` output (the resolved form stored in the database)."""
        design = d["design"]
        return cls(name=d["name"], label_set=d["label_set"], model=d["model"], checkpoint=d.get("checkpoint"),
                   seed=d.get("seed"), corrections_allowed=bool(d["corrections_allowed"]),
                   unaided_corrections_after_ai=bool(d.get("unaided_corrections_after_ai", False)),
                   findings=tuple(d.get("findings", ())),
                   design=DesignConfig(design["type"], int(design["washout_days"]), tuple(design["arms"])),
                   questions=tuple(Question.from_dict(q) for q in d["questions"]),
                   levels=tuple(ExperienceLevel(**lv) for lv in d["levels"]),
                   allow_ungradable=bool(d.get("allow_ungradable", False)),
                   saliency=d.get("saliency", LEGACY_SALIENCY),
                   saliency_steps=int(d.get("saliency_steps", DEFAULT_SALIENCY_STEPS)),
                   saliency_findings=int(d.get("saliency_findings", DEFAULT_SALIENCY_FINDINGS)),
                   custom_questions=bool(d.get("custom_questions", False)),
                   fast_read_seconds=float(d.get("fast_read_seconds", DEFAULT_FAST_READ_SECONDS)),
                   stalled_days=float(d.get("stalled_days", DEFAULT_STALLED_DAYS)))


DEFAULT_LEVELS = (ExperienceLevel("junior", below=5), ExperienceLevel("intermediate", up_to=10),
                  ExperienceLevel("senior"))

_ALLOWED = {
    "": {"study", "questions", "question", "experience", "design", "ai", "monitor"},
    "monitor": {"fast_read_seconds", "stalled_days"},
    "study": {"name", "label_set", "model", "checkpoint", "seed", "corrections_allowed", "allow_ungradable",
              "unaided_corrections_after_ai"},
    "ai": {"saliency", "saliency_steps", "saliency_findings"},
    "questions": {"findings", "confidence", "referral"},
    "experience": {"level"},
    "design": {"type", "washout_days", "arms"},
}


def _text_ok(value: str, where: str, kind: str, problems: list[str]) -> bool:
    """Whether a text of the study's TOML can be stored and shown (:data:`TEXT_LIMITS`); adds the problem, naming
    the table and key, when it cannot."""
    why = stored_text.problem(value, TEXT_LIMITS[kind])
    if why is not None:
        problems.append(f"{where}: {why}")
    return why is None


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
        elif not _text_ok(name.strip(), f"{where} name", "level", problems):
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
                   options=tuple(findings) + ((NORMAL, "Normal"),), truth="label", primary=True)]
    if with_findings:
        qs.append(Question("findings", "multi_choice", "All findings present", options=tuple(findings),
                           required=False, truth="findings"))
    if confidence:
        qs.append(Question("confidence", "integer", "Confidence in the primary diagnosis (0-100)",
                           minimum=0, maximum=100))
    if referral:
        qs.append(Question("referral", "boolean", "Refer to an ophthalmologist?"))
    return tuple(qs)


_QUESTION_KEYS = {"id", "text", "kind", "options", "minimum", "maximum", "step", "unit", "max_length", "truth",
                  "primary", "required"}
_KIND_KEYS = {"single_choice": {"options"}, "multi_choice": {"options"}, "ordinal": {"options"},
              "boolean": set(), "number": {"minimum", "maximum", "step", "unit"}, "text": {"max_length"}}


def _number(item: dict, key: str, where: str, problems: list[str]) -> float | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        problems.append(f"{where} {key}: must be a number, got {value!r}")
        return None
    return value


def _options(item: dict, where: str, findings: list[tuple[str, str]], problems: list[str]
             ) -> tuple[tuple[str, str], ...]:
    raw = item.get("options")
    if raw == LABEL_SET_OPTIONS:
        return tuple(findings) + ((NORMAL, "Normal"),)
    if raw is None:
        problems.append(f"{where} options: missing (a list of [key, label] pairs, or \"{LABEL_SET_OPTIONS}\")")
        return ()
    if isinstance(raw, list) and len(raw) > MAX_OPTIONS:
        problems.append(f"{where} options: {len(raw):,} options, at most {MAX_OPTIONS} allowed: a reader cannot choose "
                        "among more; group them, or use a text question")
        return ()
    ok = isinstance(raw, list) and raw and all(
        isinstance(o, list) and len(o) == 2 and all(isinstance(x, str) and x.strip() for x in o) for o in raw)
    if not ok:
        problems.append(f"{where} options: must be a non-empty list of [key, label] pairs of non-empty strings "
                        f"or \"{LABEL_SET_OPTIONS}\", got {stored_text.shown(raw)}")
        return ()
    seen: set[str] = set()
    dup: set[str] = set()
    for n, (key, label) in enumerate(raw, start=1):  # one pass: duplicates and texts (100,000 options once took 262 s)
        key = key.strip()
        (dup if key in seen else seen).add(key)
        if not _text_ok(key, f"{where} options #{n} key", "option_key", problems) or \
                not _text_ok(label.strip(), f"{where} options #{n} label", "option_label", problems):
            return ()
    if dup:
        problems.append(f"{where} options: duplicate option key(s) {sorted(dup)[:20]}")
    if len(raw) < 2:
        problems.append(f"{where} options: a choice needs at least two options")
    return tuple((o[0].strip(), o[1].strip()) for o in raw)


def _parse_question(item: Any, i: int, findings: list[tuple[str, str]], problems: list[str]) -> Question | None:
    where = f"[[question]] #{i}"
    if not isinstance(item, dict):
        problems.append(f"{where}: must be a table")
        return None
    qid = item.get("id")
    if not isinstance(qid, str) or not _ID.match(qid):
        problems.append(f"{where} id: must be a lower-case identifier (letters, digits, _; starting with a "
                        f"letter; at most 64), got {qid!r}")
        qid = f"question{i}"
    elif qid == UNGRADABLE:
        problems.append(f"{where} id: {UNGRADABLE!r} is reserved for the 'Image ungradable' answer")
    where = f"{where} ({qid})"
    if extra := sorted(set(item) - _QUESTION_KEYS):
        problems.append(f"{where}: unknown key(s) {extra} (allowed: {', '.join(sorted(_QUESTION_KEYS))})")
    kind = item.get("kind")
    if kind == "integer":  # the legacy kind: a whole number
        kind = "number"
        item = {"step": 1, **item}
    if kind not in KINDS:
        problems.append(f"{where} kind: must be one of {', '.join(KINDS)}, got {kind!r}")
        return None
    if misplaced := sorted((set(item) & set().union(*_KIND_KEYS.values())) - _KIND_KEYS[kind]):
        problems.append(f"{where}: key(s) {misplaced} do not apply to a {kind} question")
    text = item.get("text")
    if not isinstance(text, str) or not text.strip():
        problems.append(f"{where} text: must be a non-empty string (what the reader is asked)")
        text = qid
    elif not _text_ok(text.strip(), f"{where} text", "question", problems):
        text = qid
    required = item.get("required", kind != "text")
    if not isinstance(required, bool):
        problems.append(f"{where} required: must be true or false, got {required!r}")
        required = True
    primary = item.get("primary", False)
    if not isinstance(primary, bool):
        problems.append(f"{where} primary: must be true or false, got {primary!r}")
        primary = False
    truth = item.get("truth")
    if truth is not None and (not isinstance(truth, str) or not truth.strip()):
        problems.append(f"{where} truth: must be the name of a manifest column, got {stored_text.shown(truth)}")
        truth = None
    elif truth is not None and not _text_ok(truth.strip(), f"{where} truth", "truth", problems):
        truth = None
    if truth is not None and kind in ("text", "number"):
        problems.append(f"{where} truth: a {kind} question has no reference answer to score against")
    options: tuple[tuple[str, str], ...] = ()
    minimum = maximum = step = None
    unit = max_length = None
    if kind in ("single_choice", "multi_choice", "ordinal"):
        if kind == "ordinal" and item.get("options") == LABEL_SET_OPTIONS:
            problems.append(f"{where} options: an ordinal question needs its grades in order, not the label set")
        options = _options(item, where, findings, problems)
    elif kind == "number":
        minimum, maximum = _number(item, "minimum", where, problems), _number(item, "maximum", where, problems)
        step = _number(item, "step", where, problems)
        if minimum is not None and maximum is not None and minimum > maximum:
            problems.append(f"{where} minimum/maximum: minimum {minimum} is greater than maximum {maximum}")
        if step is not None and step <= 0:
            problems.append(f"{where} step: must be > 0, got {step}")
            step = None
        unit = item.get("unit")
        if unit is not None and not isinstance(unit, str):
            problems.append(f"{where} unit: must be a string, got {stored_text.shown(unit)}")
            unit = None
        elif unit is not None and not _text_ok(unit.strip(), f"{where} unit", "unit", problems):
            unit = None
    elif kind == "text":
        max_length = item.get("max_length", DEFAULT_TEXT_LENGTH)
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            problems.append(f"{where} max_length: must be a whole number >= 1, got {max_length!r}")
            max_length = DEFAULT_TEXT_LENGTH
    return Question(qid, kind, text.strip(), options=options, minimum=minimum, maximum=maximum, required=required,
                    step=step, unit=unit, max_length=max_length, truth=truth.strip() if truth else None,
                    primary=primary)


def _parse_questions(raw: Any, findings: list[tuple[str, str]], problems: list[str]) -> tuple[Question, ...]:
    """The study's own ``[[question]]`` tables; exactly one ends up primary (see module docstring)."""
    if not isinstance(raw, list) or not raw:
        problems.append("[[question]]: must be a non-empty array of tables")
        return ()
    if len(raw) > MAX_QUESTIONS:
        problems.append(f"[[question]]: {len(raw)} questions, at most {MAX_QUESTIONS} allowed: split the study")
        return ()
    parsed = [(i, _parse_question(item, i, findings, problems)) for i, item in enumerate(raw, start=1)]
    number = {q.id: i for i, q in parsed if q is not None}
    qs = [q for _, q in parsed if q is not None]
    ids = [q.id for q in qs]
    if dup := sorted({x for x in ids if ids.count(x) > 1}):
        problems.append(f"[[question]] id: duplicate question id(s) {dup}")
    marked = [q for q in qs if q.primary]
    if len(marked) > 1:
        problems.append(f"[[question]] primary: only one question may be primary, got {[q.id for q in marked]}")
    if not marked:
        first = next((q for q in qs if q.kind in ("single_choice", "ordinal", "boolean")), None)
        if first is None and qs:
            problems.append("[[question]] primary: no question can be primary (mark a single_choice, ordinal, "
                            "boolean or multi_choice question with primary = true)")
        elif first is not None:
            qs[qs.index(first)] = replace(first, primary=True)
    for q in qs:
        if not q.primary:
            continue
        where = f"[[question]] #{number[q.id]} ({q.id})"
        if q.kind not in PRIMARY_KINDS:
            problems.append(f"{where} primary: the primary question must be one of {', '.join(PRIMARY_KINDS)}, "
                            f"got {q.kind}")
        if not q.truth:
            problems.append(f"{where} truth: the primary question needs 'truth' (the manifest column with the "
                            "reference answer)")
        if not q.required:
            problems.append(f"{where} required: the primary question must be required")
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
    ai_table = _table(data, "ai", problems)
    monitor = _table(data, "monitor", problems)
    for where, table in (("study", study), ("questions", questions), ("experience", experience),
                         ("design", design), ("ai", ai_table), ("monitor", monitor)):
        _unknown(table, where, problems)

    name = study.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append("[study] name: must be a non-empty string")
        name = ""
    elif not _text_ok(name.strip(), "[study] name", "name", problems):
        name = ""
    for key in ("label_set", "model", "checkpoint"):
        if isinstance(study.get(key), str):
            _text_ok(study[key], f"[study] {key}", "path", problems)
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
    after_ai = _bool(study, "study", "unaided_corrections_after_ai", False, problems)
    if after_ai and not corrections:
        problems.append("[study] unaided_corrections_after_ai: only applies where corrections_allowed = true")
    allow_ungradable = _bool(study, "study", "allow_ungradable", False, problems)
    saliency = ai_table.get("saliency", DEFAULT_SALIENCY)
    if saliency not in SALIENCY_METHODS:
        problems.append(f"[ai] saliency: must be one of {', '.join(SALIENCY_METHODS)}, got {saliency!r}")
        saliency = DEFAULT_SALIENCY
    steps = ai_table.get("saliency_steps", DEFAULT_SALIENCY_STEPS)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 1024:
        problems.append(f"[ai] saliency_steps: must be a whole number in [1, 1024], got {steps!r}")
        steps = DEFAULT_SALIENCY_STEPS
    top = ai_table.get("saliency_findings", DEFAULT_SALIENCY_FINDINGS)
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= MAX_SALIENCY_FINDINGS:
        problems.append(f"[ai] saliency_findings: must be a whole number in [1, {MAX_SALIENCY_FINDINGS}] (maps for "
                        f"the case's most probable findings), got {top!r}")
        top = DEFAULT_SALIENCY_FINDINGS
    fast_read = _number(monitor, "fast_read_seconds", "[monitor]", problems)
    if fast_read is not None and not 0 <= fast_read <= 3600:
        problems.append(f"[monitor] fast_read_seconds: must be in [0, 3600] seconds (0 turns the flag off), "
                        f"got {fast_read!r}")
    stalled = _number(monitor, "stalled_days", "[monitor]", problems)
    if stalled is not None and not 0 < stalled <= 365:
        problems.append(f"[monitor] stalled_days: must be in (0, 365] days, got {stalled!r}")
    custom = "question" in data
    if custom and "questions" in data:
        problems.append("[questions] and [[question]]: use either the legacy [questions] table or your own "
                        "[[question]] tables, not both")
    with_findings = _bool(questions, "questions", "findings", False, problems)
    confidence = _bool(questions, "questions", "confidence", True, problems)
    referral = _bool(questions, "questions", "referral", True, problems)
    levels = _parse_levels(experience, problems)
    design_cfg = _parse_design(design, problems)
    qs = (_parse_questions(data["question"], findings, problems) if custom
          else _questions(findings, with_findings, confidence, referral))
    if problems:
        raise StudyConfigError(problems, source)
    return StudyConfig(name=name.strip(), label_set=label_set_name, model=model, checkpoint=checkpoint,
                       seed=seed, corrections_allowed=corrections, design=design_cfg, questions=qs, levels=levels,
                       unaided_corrections_after_ai=after_ai,
                       findings=tuple(k for k, _ in findings), allow_ungradable=allow_ungradable,
                       saliency=saliency, saliency_steps=steps, saliency_findings=top, custom_questions=custom,
                       fast_read_seconds=DEFAULT_FAST_READ_SECONDS if fast_read is None else float(fast_read),
                       stalled_days=DEFAULT_STALLED_DAYS if stalled is None else float(stalled))


def load_config(source: str | Path) -> tuple[StudyConfig, str]:
    """Read and validate a TOML file; returns the config and the file's text (stored verbatim)."""
    path = Path(source)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise StudyConfigError([f"cannot read the file: {exc.strerror or exc}"], str(path)) from exc
    return parse_text(text, str(path)), text


def parse_text(text: str, source: str = "study configuration") -> StudyConfig:
    if not isinstance(text, str):
        raise StudyConfigError(["the file is not text"], source)
    if len(text.encode("utf-8", "replace")) > MAX_TOML_BYTES:
        raise StudyConfigError([f"the file is {len(text.encode('utf-8', 'replace')):,} bytes, at most "
                                f"{MAX_TOML_BYTES:,} allowed: a study's TOML is a few kilobytes"], source)
    if (why := stored_text.char_problem(text, multiline=True)) is not None:
        raise StudyConfigError([f"the file {why}"], source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyConfigError([f"not valid TOML: {exc}"], source) from exc
    except RecursionError:
        raise StudyConfigError(["not valid TOML for a study: arrays or tables nested too deeply (a study's TOML "
                                "nests two or three levels)"], source) from None
    return parse_config(data, source)


def _label(q: Question) -> str:
    return q.text or q.id


def _on_step(value: float, q: Question) -> bool:
    if not q.step:
        return True
    k = (value - (q.minimum if q.minimum is not None else 0)) / q.step
    return abs(k - round(k)) <= 1e-6 * max(1.0, abs(k))


def _check(q: Question, value: Any, problems: list[str]) -> Any:
    """The normalised value of one answered question, or None after adding a problem."""
    name, keys = _label(q), q.keys
    if q.kind in ("single_choice", "ordinal"):
        if not isinstance(value, str) or value not in keys:
            problems.append(f"{name}: must be one of {', '.join(keys)}, got {value!r}")
            return None
        return value
    if q.kind == "multi_choice":
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            problems.append(f"{name}: must be a list of option keys, got {value!r}")
        elif bad := [v for v in value if v not in keys]:
            problems.append(f"{name}: unknown option(s) {bad} (options: {', '.join(keys)})")
        elif len(set(value)) != len(value):
            problems.append(f"{name}: options must not repeat, got {list(value)}")
        else:
            return sorted(value, key=keys.index)
        return None
    if q.kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{name}: must be a whole number, got {value!r}")
        elif not q.minimum <= value <= q.maximum:
            problems.append(f"{name}: must be between {q.minimum:g} and {q.maximum:g}, got {value}")
        else:
            return value
        return None
    if q.kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            problems.append(f"{name}: must be a number, got {value!r}")
        elif q.minimum is not None and value < q.minimum or q.maximum is not None and value > q.maximum:
            low = "-inf" if q.minimum is None else f"{q.minimum:g}"
            high = "inf" if q.maximum is None else f"{q.maximum:g}"
            problems.append(f"{name}: must be between {low} and {high}, got {value:g}")
        elif not _on_step(value, q):
            problems.append(f"{name}: must be a multiple of {q.step:g}"
                            + (f" from {q.minimum:g}" if q.minimum is not None else "") + f", got {value:g}")
        else:
            whole = q.step is not None and float(q.step).is_integer() and (q.minimum is None or float(q.minimum).is_integer())
            return int(round(value)) if whole else float(value)
        return None
    if q.kind == "text":
        if not isinstance(value, str):
            problems.append(f"{name}: must be text, got {value!r}")
            return None
        value = value.strip()
        if (why := stored_text.char_problem(value, multiline=True)) is not None:
            problems.append(f"{name}: {why} (new lines and tabs are fine)")
        elif q.max_length is not None and len(value) > q.max_length:
            problems.append(f"{name}: at most {q.max_length} characters, got {len(value)}")
        else:
            return value
        return None
    if q.kind == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{name}: must be true or false (yes/no), got {value!r}")
            return None
        return value
    problems.append(f"{name}: unknown question kind {q.kind!r}")
    return None


def validate_answer(questions: tuple[Question, ...] | list[Question], answer: Any, *,
                    allow_ungradable: bool = False) -> dict[str, Any]:
    """Check an answer against the questions; return it normalised, or raise :class:`AnswerInvalid`.

    Problems name the question's text (what the reader saw). ``{"ungradable": true}`` (only where
    ``allow_ungradable``) replaces every required answer; ``"ungradable": false`` is dropped, so a
    gradable answer is stored exactly as in a study without the option. An empty text answer is
    stored as absent.
    """
    if not isinstance(answer, dict):
        raise AnswerInvalid([f"an answer must be a mapping of question id to value, got {type(answer).__name__}"])
    problems: list[str] = []
    known = {q.id for q in questions}
    ungradable = False
    for key in answer:
        if key == UNGRADABLE:
            value = answer[key]
            if not allow_ungradable:
                problems.append("this study does not offer 'Image ungradable'")
            elif not isinstance(value, bool):
                problems.append(f"Image ungradable: must be true or false, got {value!r}")
            else:
                ungradable = value
        elif key not in known:
            problems.append(f"unknown question {key!r} (questions: {', '.join(sorted(known))})")
    out: dict[str, Any] = {UNGRADABLE: True} if ungradable else {}
    missing = []
    for q in questions:
        value = answer.get(q.id)
        if q.kind == "text" and isinstance(value, str) and not value.strip():
            value = None
        if q.kind == "multi_choice" and q.required and isinstance(value, (list, tuple)) and not value:
            value = None  # nothing ticked is no answer to a required question
        if value is None:
            if q.required and not ungradable:
                problems.append(f"{_label(q)}: an answer is required")
                missing.append(q.id)
            elif q.kind == "multi_choice" and not ungradable:
                out[q.id] = []
            continue
        if ungradable and q.required:
            problems.append(f"{_label(q)}: an image marked ungradable takes no answer to this question")
            continue
        checked = _check(q, value, problems)
        if checked is not None:
            out[q.id] = checked
    if problems:
        raise AnswerInvalid(problems, missing)
    return out
