"""Load CLIP-style models through open_clip, from local files only, and describe them with a model card.

Three sources: the bundled demo model (default), an open_clip ``local-dir:`` folder, or an open_clip
architecture name plus a checkpoint file (.pt/.pth/.bin/.safetensors; plain state_dict, a
``state_dict`` wrapper, or ``module.``-prefixed keys). Nothing is downloaded: a study must be able to
say exactly which weights produced each suggestion, so every prediction records the model card,
whose version is a hash of the weights themselves (the same weights give the same version whatever
the file format).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from . import towers  # noqa: F401  (registers the fundus towers with timm before open_clip builds them)

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub, even by accident

import open_clip  # noqa: E402
from open_clip.factory import convert_state_dict, resize_pos_embed  # noqa: E402
from open_clip.transform import PreprocessCfg, image_transform_v2  # noqa: E402  (not re-exported by open_clip 3.3)

PACKAGE_DIR = Path(__file__).resolve().parent
MODEL_CONFIG_DIR = PACKAGE_DIR / "model_configs"
DEMO_MODEL_DIR = PACKAGE_DIR / "weights" / "revision-demo"
DEMO_NAME = "demo"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")

open_clip.add_model_config(MODEL_CONFIG_DIR)
log = logging.getLogger(__name__)


class ModelLoadError(ValueError):
    """A model could not be loaded; the message names the file and says what was expected."""


@dataclass(frozen=True)
class ModelCard:
    """What every stored prediction records about the model that made it."""

    name: str
    architecture: str
    version: str  # sha256 of the weights (first 16 hex digits)
    input_size: int
    device: str
    precision: str
    source: str
    is_demo: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def disclaimer(self) -> str:
        if self.is_demo:
            return ("Demo model trained on synthetic images only: it shows how the system works and "
                    "is not for clinical use.")
        return "Research model: its suggestions support, and never replace, the reader's judgement."


@dataclass
class LoadedModel:
    """An open_clip model in eval mode with its preprocessing, tokenizer and card."""

    model: torch.nn.Module
    preprocess: Callable
    tokenizer: Callable
    card: ModelCard
    device: torch.device
    dtype: torch.dtype


def pick_device(requested: str | None = None) -> torch.device:
    """CUDA when present, else Apple MPS, else CPU; ``requested`` (e.g. "cpu") overrides."""
    if requested:
        dev = torch.device(requested)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError(f"Device {requested!r} was requested but no CUDA GPU is available; use 'cpu'.")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def weights_version(state_dict: dict[str, torch.Tensor]) -> str:
    """A hash of tensor names, shapes, dtypes and values; independent of the file format."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")  # reshape: 0-dim tensors (logit_scale) cannot be viewed as bytes
    return digest.hexdigest()[:16]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a plain state_dict, with clear errors for missing or corrupt files."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(
            f"Checkpoint file not found: {path}. Expected a local {', '.join(CHECKPOINT_SUFFIXES)} file "
            "with the model's weights.")
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise ModelLoadError(
            f"{path} has the suffix {path.suffix!r}; expected one of {', '.join(CHECKPOINT_SUFFIXES)} "
            "(a PyTorch or safetensors checkpoint).")
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file
            checkpoint = load_file(str(path), device="cpu")
        else:
            checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise many types for a damaged file
        raise ModelLoadError(
            f"Could not read {path}: it is not a valid {'safetensors' if path.suffix == '.safetensors' else 'PyTorch'} "
            f"checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else 'no detail'}). "
            "Expected a state_dict of tensors saved with torch.save or safetensors; re-export the weights.") from None
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not checkpoint or not all(
            isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ModelLoadError(
            f"{path} does not hold a state_dict of tensors (found {type(checkpoint).__name__}). Expected a plain "
            "state_dict, a {'state_dict': ...} wrapper, or a safetensors file.")
    if all(k.startswith("module.") for k in checkpoint):
        checkpoint = {k[len("module."):]: v for k, v in checkpoint.items()}
    return checkpoint


def _apply_state_dict(model: torch.nn.Module, state_dict: dict, path: Path, architecture: str) -> None:
    state_dict = convert_state_dict(model, dict(state_dict))
    resize_pos_embed(state_dict, model)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                  if k in state_dict and state_dict[k].shape != v.shape]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatches (e.g. {'; '.join(mismatched[:2])})")
        raise ModelLoadError(
            f"{path} is not a checkpoint for the open_clip architecture {architecture!r}: {', '.join(parts)}. "
            "Pass the architecture the weights were trained with (see `open_clip.list_models()`).")
    model.load_state_dict(state_dict, strict=True)


def _local_dir_config(folder: Path) -> tuple[dict, Path, str, str]:
    """(preprocess_cfg, weights path, name, architecture) of a checked open_clip local-dir folder."""
    config_path = folder / "open_clip_config.json"
    if not folder.is_dir():
        raise ModelLoadError(f"Model folder not found: {folder}. Expected an open_clip local-dir folder "
                             "holding open_clip_config.json and a weights file.")
    if not config_path.is_file():
        raise ModelLoadError(f"{folder} has no open_clip_config.json; expected open_clip's local-dir layout.")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        model_cfg = config["model_cfg"]
    except (ValueError, KeyError) as exc:
        raise ModelLoadError(f"{config_path} is not a valid open_clip config (needs a 'model_cfg' object): "
                             f"{exc}") from None
    weights = [folder / n for n in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin",
                                    "open_clip_pytorch_model.pth", "model.safetensors", "pytorch_model.bin")]
    weights = [w for w in weights if w.is_file()]
    if not weights:
        raise ModelLoadError(f"{folder} has a config but no weights file (open_clip_model.safetensors "
                             "or open_clip_pytorch_model.bin).")
    name = config.get("model_name") or folder.name
    architecture = config.get("architecture") or model_cfg.get("vision_cfg", {}).get("timm_model_name") or name
    return config.get("preprocess_cfg", {}), weights[0], name, architecture


@contextlib.contextmanager
def _quiet_open_clip():
    """open_clip warns on the root logger that no pretrained weights were loaded; we load our own next."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def load_model(spec: str | None = None, checkpoint: str | Path | None = None, *,
               device: str | None = None) -> LoadedModel:
    """Load a model for inference.

    ``spec`` is None or "demo" (the bundled demo model), "local-dir:/path", or an open_clip
    architecture name (built-in or from ``model_configs/``) together with ``checkpoint``.
    """
    dev = pick_device(device)
    spec = spec or DEMO_NAME
    if spec == DEMO_NAME:
        spec = f"local-dir:{DEMO_MODEL_DIR}"
        if not DEMO_MODEL_DIR.is_dir():
            raise ModelLoadError(f"The bundled demo model is missing at {DEMO_MODEL_DIR}; restore it from git "
                                 "or retrain it with `python -m revision_core train` (see README).")
    if spec.startswith("hf-hub:"):
        raise ModelLoadError(f"{spec!r} would need a download, and this system never downloads weights. "
                             "Download the weights elsewhere and pass a local file: "
                             "--model ARCHITECTURE --checkpoint FILE, or --model local-dir:FOLDER.")
    precision = "fp16" if dev.type == "cuda" else "fp32"
    if spec.startswith("local-dir:"):
        folder = Path(spec[len("local-dir:"):]).expanduser()
        preprocess_cfg, weights_path, name, architecture = _local_dir_config(folder)
        with _quiet_open_clip():
            model = open_clip.create_model(f"local-dir:{folder}", load_weights=False)
        source = str(folder)
        is_demo = folder.resolve() == DEMO_MODEL_DIR.resolve()
    else:
        architecture = spec
        if open_clip.get_model_config(spec) is None:
            raise ModelLoadError(f"Unknown open_clip architecture {spec!r}. Known: "
                                 f"{', '.join(open_clip.list_models()[:12])}, ... (see open_clip.list_models()).")
        if checkpoint is None:
            raise ModelLoadError(
                f"Architecture {spec!r} needs its weights, and nothing is downloaded here. Pass a local "
                f"checkpoint file: --model {spec} --checkpoint /path/to/weights.safetensors (.pt/.bin too).")
        weights_path = Path(checkpoint)
        with _quiet_open_clip():
            model = open_clip.create_model(spec, load_weights=False)
        preprocess_cfg, name, source, is_demo = {}, f"{spec} ({weights_path.name})", str(weights_path), False
    state_dict = read_state_dict(weights_path)
    _apply_state_dict(model, state_dict, weights_path, architecture)
    version = weights_version(state_dict)
    if precision == "fp16":
        model = model.half()
    model = model.to(dev).eval()
    preprocess = image_transform_v2(
        PreprocessCfg(**{**model.visual.preprocess_cfg, **preprocess_cfg}), is_train=False)
    tokenizer = open_clip.get_tokenizer(spec if not spec.startswith("local-dir:") else spec)
    size = model.visual.preprocess_cfg.get("size", 224)
    card = ModelCard(name=name, architecture=architecture, version=version,
                     input_size=int(size[0] if isinstance(size, (tuple, list)) else size), device=str(dev),
                     precision=precision, source=source, is_demo=is_demo)
    return LoadedModel(model=model, preprocess=preprocess, tokenizer=tokenizer, card=card, device=dev,
                       dtype=torch.float16 if precision == "fp16" else torch.float32)
