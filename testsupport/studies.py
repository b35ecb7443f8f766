"""Study data for the tests and benchmarks: a study TOML builder, label keys, a model card, a fake saliency PNG,
a valid answer; and ``committed``, a domain write as its caller makes it (the domain never commits)."""

from __future__ import annotations


def study_toml(design: str = "crossover", *, name: str = "Test study", corrections: bool = True, seed: int = 1234,
               washout: int | None = None, arms: list[str] | None = None, findings: bool = True,
               unaided_corrections_after_ai: bool | None = None) -> str:
    lines = ["[study]", f'name = "{name}"', 'label_set = "revision_findings"', 'model = "demo"', f"seed = {seed}",
             f"corrections_allowed = {str(corrections).lower()}"]
    if unaided_corrections_after_ai is not None:
        lines.append(f"unaided_corrections_after_ai = {str(unaided_corrections_after_ai).lower()}")
    lines += ["", "[questions]",
             f"findings = {str(findings).lower()}", "", "[design]", f'type = "{design}"']
    if washout is not None:
        lines.append(f"washout_days = {washout}")
    if arms is not None:
        lines.append("arms = [" + ", ".join(f'"{a}"' for a in arms) + "]")
    return "\n".join(lines) + "\n"


LABELS = ["diabetic_retinopathy", "amd", "glaucoma", "rvo", "pathologic_myopia", "normal"]
CARD = {"name": "demo", "architecture": "ViT-Test", "version": "abc123def4567890", "input_size": 224,
        "device": "cpu", "precision": "fp32", "source": "test", "is_demo": True}
SALIENCY = b"\x89PNG\r\n\x1a\nfake-saliency"


VALID_ANSWER = {"primary_diagnosis": "amd", "findings": ["amd"], "confidence": 70, "referral": True}


def committed(fn, session, *args, **kwargs):
    """``fn(session, ...)`` as a service or job calls it: the domain never commits, the caller commits the
    transaction once the call has returned (an exception leaves it uncommitted)."""
    result = fn(session, *args, **kwargs)
    try:
        session.commit()
    except BaseException:
        session.rollback()  # as the service's ``with`` block does when its commit fails
        raise
    return result
