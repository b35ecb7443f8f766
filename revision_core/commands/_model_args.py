"""The --model/--checkpoint/--device/--labels options shared by every command that loads a model."""
from __future__ import annotations


def add_model_arguments(p) -> None:
    p.add_argument("--model", default="demo",
                   help="'demo' (bundled demo model), 'local-dir:FOLDER', or an open_clip architecture name "
                        "used with --checkpoint")
    p.add_argument("--checkpoint", help="local weights file (.pt/.bin/.safetensors) for --model ARCHITECTURE")
    p.add_argument("--device", help="cpu, cuda or mps (default: CUDA if present, else MPS, else CPU)")
    p.add_argument("--labels", default="revision_findings", help="label set name or TOML file")


def load_classifier(args):
    from ..model import load_model
    from ..zeroshot import ZeroShotClassifier

    return ZeroShotClassifier(load_model(args.model, args.checkpoint, device=args.device), args.labels)
