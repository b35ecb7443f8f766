"""The --model/--checkpoint/--device/--labels options shared by every command that loads a model."""
from __future__ import annotations


def add_model_arguments(p) -> None:
    p.add_argument("--model", default="demo",
                   help="'demo' (bundled demo model), 'local-dir:FOLDER', or an open_clip architecture name "
                        "used with --checkpoint")
    p.add_argument("--checkpoint", help="local weights file (.pt/.bin/.safetensors) for --model ARCHITECTURE")
    p.add_argument("--device", help="cpu, cuda or mps (default: CUDA if present, else MPS, else CPU)")
    p.add_argument("--labels", default="revision_findings", help="label set name or TOML file")


def check_model_arguments(model: str | None, checkpoint: str | None) -> None:
    """Refuse a --checkpoint that would be ignored: only an open_clip ARCHITECTURE takes one.

    The demo model and a ``local-dir:`` folder carry their own weights; silently ignoring a checkpoint
    would report predictions of a model other than the one the user asked for.
    """
    from ..cli import UsageError

    if checkpoint is None:
        return
    if (model or "demo") == "demo":
        raise UsageError("--checkpoint is for an open_clip architecture; the demo model has its own weights "
                         "(drop --checkpoint, or pass --model ARCHITECTURE --checkpoint FILE)")
    if model.startswith("local-dir:"):
        raise UsageError("--checkpoint is for an open_clip architecture; a local-dir: model has its own weights "
                         "(open_clip_model.safetensors in the folder): drop --checkpoint")


def load_classifier(args):
    check_model_arguments(args.model, args.checkpoint)
    from ..model import load_model
    from ..zeroshot import ZeroShotClassifier

    return ZeroShotClassifier(load_model(args.model, args.checkpoint, device=args.device), args.labels)
