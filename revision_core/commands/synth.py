"""``synth``: render N synthetic cases (seeds S..S+N-1) with images, masks and a manifest.csv."""
from __future__ import annotations


def configure(p) -> None:
    p.add_argument("--n", type=int, required=True, help="number of cases")
    p.add_argument("--seed", type=int, required=True, help="first seed (case i uses seed + i)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--size", type=int, default=512, help="image side in px, 224..1024 (default 512)")


def run(args) -> int:
    from ..synthetic import write_dataset

    path = write_dataset(args.n, args.seed, args.out, size=args.size)
    print(f"wrote {args.n} cases to {path.parent} (manifest: {path})")
    return 0
