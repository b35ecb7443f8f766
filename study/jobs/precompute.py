"""AI suggestions per case, computed once and stored with the model version that produced them.

Why stored rather than computed live: every reader in an aided condition must see exactly the same
suggestion for a case, and the analysis must know which model version made it. :func:`precompute`
works in batches and commits each batch, skipping cases that already have an output for this model
version, so an interrupted run resumes where it stopped; an unreadable image is reported, not fatal.
torch and the model are imported only inside :func:`precompute`, so the workflow stays light.
Saliency overlays (for studies with an ``ai_saliency`` arm) explain the top finding of each case
with ``revision_core.saliency.explain`` using the study's ``[ai] saliency`` method (default integrated
gradients with ``[ai] saliency_steps``) and are rendered to PNG bytes; the stored model card then
carries ``saliency = {"method": ..., "steps": ...}`` so the export and the reader page know which
method made the overlay. A saliency failure is reported and the probabilities are still stored (the
case then shows no overlay).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from study.domain import audit
from study.domain.cases import case_source, store_root_of, study_store
from study.domain.rules import ranked_findings
from study.domain.studies import DesignLocked, get_study, study_config
from study.storage.models import AIOutput, Case


def store_ai_output(session: Session, case_id: int, *, model_card: dict, probabilities: dict[str, float],
                    label_set: str, saliency_png: bytes | None = None, saliency_path: str | None = None,
                    actor: str = "precompute") -> AIOutput:
    """Store one case's AI output for ``model_card['version']`` in the caller's transaction; a second store
    for the same pair raises."""
    version = model_card.get("version")
    if not version:
        raise ValueError("model_card must carry the model 'version' (hash of the weights)")
    case = session.get(Case, case_id)
    if case is None:
        raise ValueError(f"no case with id {case_id}")
    row = AIOutput(case_id=case.id, model_version=str(version), label_set=label_set, model_card=dict(model_card),
                   probabilities={k: float(v) for k, v in probabilities.items()}, saliency_png=saliency_png,
                   saliency_path=saliency_path)
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="ai_output.stored", entity="ai_output", entity_id=row.id,
                 study_id=case.study_id, after={"case_id": case.id, "model_version": row.model_version,
                                                "probabilities": row.probabilities, "saliency_png": saliency_png,
                                                "saliency_path": saliency_path})
    return row


@dataclass
class PrecomputeReport:
    model_version: str
    stored: int = 0
    already_done: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # case key -> reason
    saliency_failed: dict[str, str] = field(default_factory=dict)


def _image_path(case: Case, store: Path):
    """What load_image reads for the case: the stored file with its recorded orientation, or the path."""

    return case_source(store, case.image_ref)


def _overlay(loaded, classifier, path, probs: dict[str, float], method: str, steps: int = 32) -> bytes:
    from revision_core.imageio import load_image
    from revision_core.saliency import explain
    from revision_core.saliency_render import render_overlay

    image = load_image(path)
    top = ranked_findings(probs)[0]  # the finding the AI panel lists first
    return render_overlay(image, explain(loaded, classifier, image, top, method, steps=steps).map)


def precompute(session: Session, study_id: int, *, loaded=None, store_root: str | Path | None = None,
               batch_size: int = 16, actor: str = "precompute", device: str | None = None,
               saliency: bool | None = None, saliency_method: str | None = None, saliency_steps: int | None = None,
               on_progress=None) -> PrecomputeReport:
    """Zero-shot probabilities (and saliency overlays where the design shows them) for every case of the
    study that lacks them for this model version. ``saliency=None``: only if an arm is ``ai_saliency``;
    ``saliency_method``/``saliency_steps`` default to the study's ``[ai]`` settings."""
    from revision_core.zeroshot import ZeroShotClassifier


    study = get_study(session, study_id)
    config = study_config(study)
    if loaded is None:
        from revision_core.model import load_model

        loaded = load_model(config.model, config.checkpoint, device=device)
    card = loaded.card.to_dict()
    version = str(card["version"])
    if study.model_version not in (None, version) and study.design_locked_at is not None:
        raise DesignLocked(f"readers have already seen model {study.model_version}; "
                           f"switching to {version} would change the study")
    report = PrecomputeReport(version)
    done = set(session.scalars(select(AIOutput.case_id).join(Case, AIOutput.case_id == Case.id)
                               .where(Case.study_id == study.id, AIOutput.model_version == version)))
    cases = list(session.scalars(select(Case).where(Case.study_id == study.id).order_by(Case.id)))
    todo = [c for c in cases if c.id not in done]
    report.already_done = len(cases) - len(todo)
    classifier = ZeroShotClassifier(loaded, config.label_set)
    if saliency is None:
        saliency = "ai_saliency" in config.design.conditions
    method = saliency_method or config.saliency
    steps = saliency_steps or config.saliency_steps
    saliency_card = {**card, "saliency": {"method": method, "steps": steps}}
    store = study_store(study.id, store_root_of(study, store_root))  # where its import put the photographs
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        pred = classifier.predict_files([_image_path(c, store) for c in batch], batch_size=batch_size)
        for i, case in enumerate(batch):
            if i in pred.errors:
                report.failed[case.case_key] = pred.errors[i]
                continue
            probs = {k: float(p) for k, p in zip(pred.findings, pred.probabilities[i])}
            png = None
            if saliency:
                try:
                    png = _overlay(loaded, classifier, _image_path(case, store), probs, method, steps=steps)
                except Exception as exc:  # reported, never fatal: the probabilities are still stored
                    report.saliency_failed[case.case_key] = f"{type(exc).__name__}: {exc}"
            store_ai_output(session, case.id, model_card=saliency_card if png else card, probabilities=probs, label_set=config.label_set,
                            saliency_png=png, actor=actor)
            report.stored += 1
        session.commit()  # one batch at a time: an interrupted run keeps every finished batch
        if on_progress is not None:  # e.g. a web page's progress bar: (cases handled, cases to do)
            on_progress(min(start + batch_size, len(todo)), len(todo))
    if study.model_version != version:
        before = study.model_version
        study.model_version = version
        audit.record(session, actor=actor, action="study.model_version_set", entity="study", entity_id=study.id,
                     study_id=study.id, before={"model_version": before}, after={"model_version": version,
                                                                                 "model_card": card})
    audit.record(session, actor=actor, action="precompute.run", entity="study", entity_id=study.id,
                 study_id=study.id, after={"model_version": version, "stored": report.stored,
                                           "already_done": report.already_done, "failed": report.failed,
                                           "saliency_failed": report.saliency_failed})
    session.commit()
    return report
