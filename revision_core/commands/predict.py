"""``predict IMAGE...``: zero-shot probabilities per finding for each image file."""
from __future__ import annotations

import json

from ._model_args import add_model_arguments, load_classifier


def configure(p) -> None:
    p.add_argument("images", nargs="+", help="image files (JPEG, PNG, TIFF, DICOM)")
    add_model_arguments(p)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args) -> int:
    clf = load_classifier(args)
    result = clf.predict_files(args.images, batch_size=args.batch_size)
    records = result.as_records(args.images)
    if args.json:
        print(json.dumps({"model": clf.loaded.card.to_dict(), "label_set": clf.label_set.name,
                          "predictions": records}, indent=2))
    else:
        print(f"model: {clf.loaded.card.name} (version {clf.loaded.card.version}, {clf.loaded.card.device})")
        print(clf.loaded.card.disclaimer)
        for rec in records:
            if "error" in rec:
                print(f"{rec['input']}: ERROR {rec['error']}")
            else:
                ranked = sorted(rec["probabilities"].items(), key=lambda kv: -kv[1])
                print(f"{rec['input']}: " + ", ".join(f"{k} {v:.2f}" for k, v in ranked))
    return 1 if result.errors else 0
