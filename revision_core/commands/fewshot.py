"""``fewshot``: label-efficiency table, k-shot linear probes on frozen image embeddings vs zero-shot."""
from __future__ import annotations

import json

import numpy as np

from ._model_args import add_model_arguments, load_classifier


def configure(p) -> None:
    p.add_argument("--synthetic", type=int, metavar="N", required=True,
                   help="N fresh synthetic test cases; a disjoint pool of --pool cases supplies the k shots")
    p.add_argument("--pool", type=int, default=300, help="synthetic cases the few shots are drawn from")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ks", default="1,2,4,8,16", help="comma-separated shots per class")
    p.add_argument("--repeats", type=int, default=5)
    add_model_arguments(p)
    p.add_argument("--json", action="store_true")


def _embed(clf, images, batch=64) -> np.ndarray:
    import torch

    feats = [clf.encode(torch.stack([clf.loaded.preprocess(im) for im in images[i:i + batch]]))
             for i in range(0, len(images), batch)]
    return torch.cat(feats).cpu().numpy()


def run(args) -> int:
    from ..fewshot import label_efficiency
    from ..labelled_sets import synthetic_set

    clf = load_classifier(args)
    size = clf.loaded.card.input_size
    test = synthetic_set(args.synthetic, args.seed, size, clf.findings)
    pool = synthetic_set(args.pool, args.seed + args.synthetic, size, clf.findings)
    test_emb, pool_emb = _embed(clf, test.sources), _embed(clf, pool.sources)
    import torch

    zero_shot = clf.probabilities_from_features(torch.from_numpy(test_emb))
    table = label_efficiency(pool_emb, pool.labels, test_emb, test.labels,
                             zero_shot_scores={f: zero_shot[:, j] for j, f in enumerate(clf.findings)},
                             text_emb={f: clf.pos[j].cpu().numpy() - clf.neg[j].cpu().numpy()
                                       for j, f in enumerate(clf.findings)},
                             ks=[int(k) for k in args.ks.split(",")], repeats=args.repeats, seed=args.seed)
    if args.json:
        print(json.dumps({"model": clf.loaded.card.to_dict(), "test": test.description, "pool": pool.description,
                          "table": json.loads(table.to_json(orient="records"))}, indent=2))
    else:
        wide = table.pivot_table(index=["method", "k"], columns="finding", values="auc_mean")
        print(wide.round(3).to_string())
    return 0
