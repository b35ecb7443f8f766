"""``train``: contrastive image-report training on synthetic data (reproduces the demo model)."""
from __future__ import annotations

from dataclasses import fields


def configure(p) -> None:
    from ..train import TrainConfig

    defaults = TrainConfig()
    p.add_argument("--out", required=True, help="output folder (open_clip local-dir layout)")
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        value = getattr(defaults, f.name)
        kind = {"lr": float, "weight_decay": float, "max_minutes": float, "stop_step": int}.get(f.name) or type(value)
        if kind is bool:
            kind = _yes_no
        p.add_argument(flag, type=kind, default=value, help=f"default {value}")


def _yes_no(text: str) -> bool:
    """``--camera no``: argparse's bool() would read any non-empty word as True."""
    words = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}
    if text.lower() not in words:
        raise ValueError(f"expected yes or no, got {text!r}")
    return words[text.lower()]


def run(args) -> int:
    from ..train import TrainConfig, train

    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    summary = train(config, out_dir=args.out)
    print(f"saved {args.out}: {summary['steps']} steps, loss {summary['first_loss']:.3f} -> "
          f"{summary['last_loss']:.3f}, {summary['train_minutes']} min")
    return 0
