"""AI suggestions per case, computed once and stored with the model version that produced them.

Why stored rather than computed live: every reader in an aided condition must see exactly the same
suggestion for a case, and the analysis must know which model version made it. :func:`precompute`
works in batches and commits each batch, skipping cases that already have an output for this model
version, so an interrupted run resumes where it stopped; an unreadable image is reported, not fatal.
torch and the model are imported only inside :func:`precompute`, so the workflow stays light.

Saliency maps (for studies with an ``ai_saliency`` arm) explain each case's most probable findings
(``[ai] saliency_findings``, at most three) with the study's ``[ai] saliency`` method (default integrated
gradients with ``[ai] saliency_steps``), in the display-ready form the reading station draws
(``revision_core.saliency_batch``: one small grey PNG per finding, the retina's attribution bands), on
every CPU core; each is stored as an ``ai_overlay`` row and written to the study store
(``study.domain.overlays``). The stored model card then carries ``saliency = {"method": ..., "steps": ...,
"findings": n}``. A saliency failure is reported and the probabilities are still stored (the case then
shows no map).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from study.domain import audit, overlays
from study.domain.cases import case_source, store_root_of, study_store
from study.domain.rules import ranked_findings
from study.domain.studies import DesignLocked, get_study, study_config
from study.storage.models import AIOutput, AIOverlay, Case


def store_ai_output(session: Session, case_id: int, *, model_card: dict, probabilities: dict[str, float],
                    label_set: str, saliency_png: bytes | None = None, saliency_path: str | None = None,
                    maps=(), actor: str = "precompute") -> AIOutput:
    """Store one case's AI output for ``model_card['version']`` in the caller's transaction; a second store
    for the same pair raises. ``maps``: its saliency maps (``revision_core.saliency_batch.Map``), most probable
    finding first."""
    version = model_card.get("version")
    if not version:
        raise ValueError("model_card must carry the model 'version' (hash of the weights)")
    case = session.get(Case, case_id)
    if case is None:
        raise ValueError(f"no case with id {case_id}")
    row = AIOutput(case_id=case.id, model_version=str(version), label_set=label_set, model_card=dict(model_card),
                   probabilities={k: float(v) for k, v in probabilities.items()}, saliency_png=saliency_png,
                   saliency_path=saliency_path)
    method = (model_card.get("saliency") or {}).get("method", "")
    row.overlays = [AIOverlay(finding=m.finding, rank=rank, method=method, params=dict(m.params), png=m.png,
                              sha256=overlays.sha256(m.png), width=m.width, height=m.height)
                    for rank, m in enumerate(maps, start=1)]
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="ai_output.stored", entity="ai_output", entity_id=row.id,
                 study_id=case.study_id, after={"case_id": case.id, "model_version": row.model_version,
                                                "probabilities": row.probabilities, "saliency_png": saliency_png,
                                                "saliency_path": saliency_path,
                                                "maps": {o.finding: o.sha256 for o in row.overlays}})
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


def top_findings(probs: dict[str, float], n: int) -> tuple[str, ...]:
    """The ``n`` findings a case's maps explain: the first ``n`` of the AI panel's order (``rules.ranked_findings``)."""
    return tuple(ranked_findings(probs)[:n])


def precompute(session: Session, study_id: int, *, loaded=None, store_root: str | Path | None = None,
               batch_size: int = 16, actor: str = "precompute", device: str | None = None,
               saliency: bool | None = None, saliency_method: str | None = None, saliency_steps: int | None = None,
               workers: int | None = None, on_progress=None) -> PrecomputeReport:
    """Zero-shot probabilities (and saliency maps where the design shows them) for every case of the
    study that lacks them for this model version. ``saliency=None``: only if an arm is ``ai_saliency``;
    ``saliency_method``/``saliency_steps`` default to the study's ``[ai]`` settings; ``workers``: processes
    for the maps (default: every CPU core; one on a GPU)."""
    from revision_core.saliency_batch import MapJob, MapPool
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
    saliency_card = {**card, "saliency": {"method": method, "steps": steps, "findings": config.saliency_findings}}
    store = study_store(study.id, store_root_of(study, store_root))  # where its import put the photographs
    with MapPool(loaded, classifier, method=method, workers=workers, steps=steps) as pool:
        if saliency and len(todo) > 1:
            pool.start()  # the workers start while the first batch's probabilities are computed
        for start in range(0, len(todo), batch_size):
            batch = {c.id: c for c in todo[start:start + batch_size]}
            chunk = list(batch.values())
            pred = classifier.predict_files([_image_path(c, store) for c in chunk], batch_size=batch_size)
            probs = {}
            for i, case in enumerate(chunk):
                if i in pred.errors:
                    report.failed[case.case_key] = pred.errors[i]
                else:
                    probs[case.id] = {k: float(p) for k, p in zip(pred.findings, pred.probabilities[i])}
            jobs = [MapJob(cid, _image_path(batch[cid], store), top_findings(p, config.saliency_findings))
                    for cid, p in probs.items()] if saliency else []
            maps = {cid: () for cid in probs}
            for result in pool.run(jobs):
                if result.error:  # reported, never fatal: the probabilities are still stored
                    report.saliency_failed[batch[result.key].case_key] = result.error
                maps[result.key] = result.maps
            for cid, p in probs.items():
                row = store_ai_output(session, cid, model_card=saliency_card if maps[cid] else card, probabilities=p,
                                      label_set=config.label_set, maps=maps[cid], actor=actor)
                for shown in overlays.maps_of(row):
                    overlays.ensure_file(store, shown)
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
