"""``evaluate``: zero-shot AUROC per finding with DeLong 95% CIs on fresh synthetic or labelled images."""
from __future__ import annotations

import json

import numpy as np

from ._model_args import add_model_arguments, load_classifier


def configure(p) -> None:
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--synthetic", type=int, metavar="N", help="evaluate on N fresh synthetic cases")
    source.add_argument("--manifest", help="CSV of labelled images: 'path' + a 0/1 column for any of the findings "
                        "(empty = not labelled), or the study's manifest (case_id, image_path, label, findings)")
    p.add_argument("--seed", type=int, default=0, help="offset of the synthetic evaluation seeds")
    p.add_argument("--size", type=int, help="synthetic image size in px (default: the model's input size)")
    add_model_arguments(p)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def grade_breakdown(labels, scores, grades) -> dict:
    """AUROC of each grade's positives against all negatives (e.g. mild DR vs no DR)."""
    from ..evaluate import evaluate_scores

    out = {}
    for finding, grade in grades.items():
        neg = labels[finding] == 0
        for g in sorted(set(grade[labels[finding] == 1])):
            keep = neg | (grade == g)
            res = evaluate_scores({finding: labels[finding][keep]}, {finding: scores[finding][keep]})
            out.setdefault(finding, {})[g] = res["auroc"][finding]
    return out


def run(args) -> int:
    from ..evaluate import evaluate_scores
    from ..labelled_sets import manifest_set, synthetic_set

    clf = load_classifier(args)
    findings = clf.findings
    if args.synthetic is not None:
        data = synthetic_set(args.synthetic, args.seed, args.size or clf.loaded.card.input_size, findings)
        probs = clf.predict_images(data.sources, batch_size=args.batch_size)
        errors = {}
    else:
        data = manifest_set(args.manifest, findings)
        pred = clf.predict_files(data.sources, batch_size=args.batch_size)
        probs, errors = pred.probabilities, pred.errors
        if errors:
            keep = np.array([i not in errors for i in range(len(data.sources))])
            probs = probs[keep]
            data.labels = {k: v[keep] for k, v in data.labels.items()}
    data.labels = {f: y for f, y in data.labels.items() if (~np.isnan(np.asarray(y, dtype=float))).any()}
    scores = {f: probs[:, j] for j, f in enumerate(findings) if f in data.labels}
    labelled = {f: ~np.isnan(np.asarray(y, dtype=float)) for f, y in data.labels.items()}
    # each finding is scored on the images that label it: an unlabelled cell is never a negative
    result = evaluate_scores({f: np.asarray(y, dtype=float)[labelled[f]].astype(int) for f, y in data.labels.items()},
                             {f: s[labelled[f]] for f, s in scores.items()})
    result = {"model": clf.loaded.card.to_dict(), "label_set": clf.label_set.name, "data": data.description,
              "n": int(len(probs)), **result}
    not_labelled = [f for f in findings if f not in data.labels]
    if not_labelled:
        result["not_labelled"] = not_labelled
    if data.grades:
        result["by_grade"] = grade_breakdown(data.labels, scores, data.grades)
    if errors:
        result["skipped_images"] = {str(data.sources[i]): msg for i, msg in errors.items()}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['model']['name']} on {result['data']}")
        for f, r in result["auroc"].items():
            auc = "n/a" if r["auc"] is None else f"{r['auc']:.3f}"
            ci = "" if not r.get("ci") else f" (95% CI {r['ci'][0]:.3f}-{r['ci'][1]:.3f})"
            print(f"  {f:24s} AUROC {auc}{ci}")
        if not_labelled:
            print(f"  not labelled, so not scored: {', '.join(not_labelled)}")
        mean = "n/a" if result["mean_auroc"] is None else f"{result['mean_auroc']:.3f}"
        print(f"  mean AUROC {mean}")
    return 0
