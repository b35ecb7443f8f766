"""Where in the image does a zero-shot suggestion come from? Captum attributions of one finding's score.

What is attributed: the finding's log-odds, ``scale * (cos(img, pos_f) - cos(img, neg_f))`` (see
:mod:`revision_core.zeroshot`), i.e. exactly the number that becomes the suggestion shown to the reader,
as a function of the preprocessed pixels.

Methods (:data:`METHODS`):

* ``integrated_gradients``: Captum ``IntegratedGradients`` from a baseline image to the input
  (``steps`` points, ``internal_batch_size`` bounds memory). Satisfies completeness: the attributions
  sum to score(input) - score(baseline), up to the reported convergence delta.
* ``smoothgrad``: ``NoiseTunnel(nt_type="smoothgrad")`` over IG; averages IG over noisy copies of the
  input, which removes the pixel-level speckle of plain gradients at ``nt_samples`` times the cost.
* ``gradcam``: Captum ``LayerGradCam`` on the last spatial feature map of the image tower: the last
  stage of a CNN tower (``trunk.stages[-1]``; timm/open_clip ResNets: ``layer4``) or, for an open_clip
  ViT, the patch tokens entering the last transformer block reshaped to the patch grid. (The *output*
  patch tokens of the last block are not used by a class-token ViT, so their gradient is zero; the
  input of that block is the standard choice.) Cheapest method, coarse (one value per feature cell).
* ``occlusion``: Captum ``Occlusion``; a square window (default 1/8 of the input side, stride half
  of it, 225 forward passes: the scale of a lesion cluster, a cup or a haemorrhage patch) is replaced by the baseline.

Baselines, both built in the preprocessed (normalised) space the model sees:

* ``black``: all-zero *pixels* (normalised to ``-mean/std``): the absence of signal. Simple, but far
  from the data, so IG paths pass through unnatural images and large uniform regions get credit.
* ``blurred`` (default): a Gaussian blur of the input (sigma ~4% of the side). It keeps the global
  colour, illumination and the disc, and removes lesion-scale detail, so attributions concentrate on
  what the blur removed: usually better for small lesions (microaneurysms, drusen, haemorrhages).
  The blur stays within the field of view (the black surround of a fundus photograph is kept), or the
  smeared bright rim would draw attribution to the corners.

Maps: the signed, channel-summed attribution at the model's input resolution is kept as ``raw``;
``map`` is its positive part (evidence *for* the finding), lightly smoothed, divided by its 99.5th
percentile and clipped to [0, 1], then mapped back through the preprocessing geometry (resize +
centre crop, squash, or letterbox) to the original image size. Outside a centre crop the map is 0, and
so it is on black pixels (the surround of a fundus photograph): there is no retina there, and SmoothGrad's
noise, added to the black corners too, would otherwise light them up. ``raw`` keeps everything (the
faithfulness metrics use it), so a model that does look at the corners is still caught there.

Devices and precision: attributions run on the model's device in float32. On CUDA the loaded model is
fp16, whose gradients of a difference of cosines are too coarse for IG completeness, so a float32
copy of the image tower is made once per model and cached (the tower only: a few MB for the demo).
Attribution calls are serialised with a lock because Captum and the Grad-CAM tap use forward hooks.
"""
from __future__ import annotations

import contextlib
import copy
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from revision_core.saliency_methods import METHODS, NOTES
from revision_core.saliency_methods import METHOD_NAMES as _SHORT_NAMES

METHOD_NAMES = {k: v + (f" ({NOTES[k]})" if k in NOTES else "") for k, v in _SHORT_NAMES.items()}  # the playground's
from revision_core.saliency_render import retina_mask
BASELINES = ("blurred", "black")
BLUR_SIGMA_FRACTION = 0.04
_LOCK = threading.Lock()
_FP32_TOWERS: "weakref.WeakKeyDictionary[nn.Module, nn.Module]" = weakref.WeakKeyDictionary()


@dataclass
class Saliency:
    """A map in [0, 1] at the original image size (H x W) plus what produced it."""

    map: np.ndarray
    raw: np.ndarray          # signed attribution at the model input resolution (h x w)
    method: str
    finding: str
    params: dict[str, Any] = field(default_factory=dict)
    score: float = float("nan")            # the finding's log-odds for this image
    baseline_score: float = float("nan")   # ... for the baseline image (IG / SmoothGrad / occlusion)
    convergence_delta: float = float("nan")  # IG: sum(attr) - (score - baseline_score)
    seen: np.ndarray | None = None  # True where the model saw the image (a centre crop leaves the sides out)


# --------------------------------------------------------------------------- validation


def check_choice(value: str, choices, what: str) -> str:
    """ValueError that lists the valid choices, for user-facing input."""
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")
    return value


# --------------------------------------------------------------------------- the scored function


def float32_tower(loaded) -> nn.Module:
    """The image tower in float32 on the model's device (a cached copy when the model is fp16)."""
    visual = loaded.model.visual
    if loaded.dtype == torch.float32:
        return visual
    tower = _FP32_TOWERS.get(visual)
    if tower is None:
        tower = copy.deepcopy(visual).float().eval()
        _FP32_TOWERS[visual] = tower
    return tower


class FindingScore(nn.Module):
    """Preprocessed pixels (n, 3, h, w) -> the finding's zero-shot log-odds (n,)."""

    def __init__(self, tower: nn.Module, pos: torch.Tensor, neg: torch.Tensor, scale: float):
        super().__init__()
        self.tower = tower
        self.register_buffer("direction", (pos - neg).float().reshape(-1, 1) * float(scale))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        feats = F.normalize(self.tower(pixels).float(), dim=-1)
        return (feats @ self.direction)[:, 0]


def score_function(loaded, classifier, finding: str) -> FindingScore:
    check_choice(finding, classifier.findings, "finding")
    i = classifier.findings.index(finding)
    return FindingScore(float32_tower(loaded), classifier.pos[i], classifier.neg[i], classifier.scale).eval()


# --------------------------------------------------------------------------- baselines


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (n, c, h, w) with reflect padding (torch, so it runs on any device)."""
    radius = max(1, int(round(3 * sigma)))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    radius = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    k = k[len(k) // 2 - radius: len(k) // 2 + radius + 1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _normalise_stats(preprocess) -> tuple[torch.Tensor, torch.Tensor]:
    for t in getattr(preprocess, "transforms", []):
        if hasattr(t, "mean") and hasattr(t, "std"):
            return torch.tensor(t.mean, dtype=torch.float32), torch.tensor(t.std, dtype=torch.float32)
    return torch.zeros(3), torch.ones(3)


def make_baseline(pixels: torch.Tensor, kind: str, preprocess, blur_sigma: float | None = None) -> torch.Tensor:
    """The baseline image in the normalised space: blurred input, or black pixels (-mean/std)."""
    check_choice(kind, BASELINES, "baseline")
    mean, std = _normalise_stats(preprocess)
    mean = mean.to(pixels.device, pixels.dtype).view(1, -1, 1, 1)
    std = std.to(pixels.device, pixels.dtype).view(1, -1, 1, 1)
    if kind == "blurred":
        sigma = blur_sigma if blur_sigma is not None else BLUR_SIGMA_FRACTION * pixels.shape[-1]
        # Blur within the field of view (normalised convolution) and keep the black surround as it is:
        # a plain blur smears the bright rim into the black corners, and every attribution method then
        # credits the corners. Pixels darker than 4/255 in every channel count as outside.
        fov = ((pixels * std + mean).amax(dim=1, keepdim=True) > 4 / 255).to(pixels.dtype)
        if fov.mean() < 0.05:  # (almost) all dark: nothing to protect
            return gaussian_blur(pixels, sigma)
        blurred = gaussian_blur(pixels * fov, sigma) / gaussian_blur(fov, sigma).clamp_min(1e-3)
        return torch.where(fov > 0, blurred, pixels)
    return (-mean / std).expand_as(pixels).clone()


# --------------------------------------------------------------------------- Grad-CAM layers


class _Tap(nn.Identity):
    """An identity module that Captum's LayerGradCam hooks: it sees the (n, C, gh, gw) token grid."""


def gradcam_layer(tower: nn.Module) -> tuple[nn.Module, Callable[[], None]]:
    """(layer for LayerGradCam, undo) for a supported tower; ValueError otherwise."""
    trunk = getattr(tower, "trunk", None)
    for owner in (trunk, tower):
        if owner is None:
            continue
        stages = getattr(owner, "stages", None)
        if isinstance(stages, nn.Sequential) and len(stages):
            return stages[-1], lambda: None            # FundusCNN, timm ConvNeXt-style towers
        if isinstance(getattr(owner, "layer4", None), nn.Module):
            return owner.layer4, lambda: None          # open_clip ModifiedResNet, timm ResNet
    transformer = getattr(tower, "transformer", None)
    blocks = getattr(transformer, "resblocks", None)
    grid = getattr(tower, "grid_size", None)
    if blocks is not None and len(blocks) and grid is not None:
        return _vit_tap(blocks[-1], tuple(grid), bool(getattr(transformer, "batch_first", True)))
    raise ValueError(
        f"Grad-CAM needs a spatial feature map, and this image tower ({type(trunk or tower).__name__}) has no "
        "supported layer (CNN stages, ResNet layer4 or ViT resblocks). Use integrated_gradients or occlusion.")


def _vit_tap(block: nn.Module, grid: tuple[int, int], batch_first: bool):
    """Route the patch tokens entering ``block`` through a tap as an (n, C, gh, gw) map (values unchanged)."""
    tap = _Tap()
    gh, gw = grid

    def pre_hook(module, args):
        x = args[0]
        x_bf = x if batch_first else x.transpose(0, 1)
        n_prefix = x_bf.shape[1] - gh * gw
        prefix, tokens = x_bf[:, :n_prefix], x_bf[:, n_prefix:]
        g = tap(tokens.reshape(tokens.shape[0], gh, gw, -1).permute(0, 3, 1, 2))
        tokens = g.permute(0, 2, 3, 1).reshape(tokens.shape[0], gh * gw, -1)
        y = torch.cat([prefix, tokens], dim=1)
        return (y if batch_first else y.transpose(0, 1),) + tuple(args[1:])

    handle = block.register_forward_pre_hook(pre_hook)
    return tap, handle.remove


# --------------------------------------------------------------------------- geometry


def _resize(a: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    if a.shape == (height, width):
        return a.astype(np.float32)
    interp = cv2.INTER_LINEAR if width > a.shape[1] else cv2.INTER_AREA
    return cv2.resize(a.astype(np.float32), (width, height), interpolation=interp)


def to_image_geometry(m: np.ndarray, size: tuple[int, int], preprocess) -> np.ndarray:
    """Map an input-resolution map (h x w) back onto the original image (W, H) = ``size``."""
    width, height = size
    names = [type(t).__name__ for t in getattr(preprocess, "transforms", [])]
    h, w = m.shape
    if "ResizeKeepRatio" in names or "CenterCropOrPad" in names:   # letterbox ("longest")
        s = min(w / width, h / height)
        cw, ch = width * s, height * s
        x0, y0 = (w - cw) / 2, (h - ch) / 2
        crop = m[int(round(y0)):int(round(y0 + ch)), int(round(x0)):int(round(x0 + cw))]
        return _resize(crop, width, height)
    resize = next((t for t in getattr(preprocess, "transforms", []) if type(t).__name__ == "Resize"), None)
    if resize is not None and isinstance(resize.size, (tuple, list)) and len(resize.size) == 2:
        return _resize(m, width, height)                              # "squash"
    s = min(width, height)                                            # "shortest" + centre crop
    out = np.zeros((height, width), np.float32)
    x0, y0 = (width - s) // 2, (height - s) // 2
    out[y0:y0 + s, x0:x0 + s] = _resize(m, s, s)
    return out


def smoothed(raw: np.ndarray, method: str) -> np.ndarray:
    """The signed map the display and the faithfulness metrics use: IG/SmoothGrad speckle is blurred
    into lesion-sized blobs (sigma = side/128, 2 px at 256); Grad-CAM and occlusion are already smooth."""
    import cv2

    raw = np.nan_to_num(raw.astype(np.float32))
    if method in ("gradcam", "occlusion"):
        return raw
    return cv2.GaussianBlur(raw, (0, 0), raw.shape[-1] / 128)


def normalise_map(raw: np.ndarray, smooth_sigma: float = 0.0, percentile: float = 99.5) -> np.ndarray:
    """Positive evidence, optionally smoothed, scaled to [0, 1] by a high percentile (robust to outliers)."""
    import cv2

    pos = np.maximum(np.nan_to_num(raw.astype(np.float32)), 0)
    if smooth_sigma > 0:
        pos = cv2.GaussianBlur(pos, (0, 0), smooth_sigma)
    top = float(np.percentile(pos, percentile)) if pos.size else 0.0
    if top <= 0:
        top = float(pos.max())
    return np.clip(pos / top, 0, 1).astype(np.float32) if top > 0 else np.zeros_like(pos)


# --------------------------------------------------------------------------- attribution


def expected_passes(method: str, side: int, *, steps: int = 32, internal_batch_size: int = 16,
                    nt_samples: int = 8, window: int | None = None, stride: int | None = None) -> int:
    """How many forward calls of the scorer an attribution makes (for progress; an estimate within a few)."""
    check_choice(method, METHODS, "method")
    batches = -(-steps // internal_batch_size)
    if method == "integrated_gradients":
        return batches + 1
    if method == "smoothgrad":
        return nt_samples * batches
    if method == "gradcam":
        return 1
    window = window or max(4, side // 8)
    stride = stride or max(1, window // 2)
    per_side = (side - window) // stride + 1
    return -(-per_side * per_side // internal_batch_size) + 1


def _progress_hook(scorer: nn.Module, total: int, progress: Callable[[float], None] | None):
    """Call ``progress(fraction)`` after each forward call of ``scorer`` (capped below 1 until done); the
    returned handle's ``remove()`` detaches it. Counting calls leaves every result unchanged."""
    if progress is None:
        return None
    done = [0]

    def hook(module, args, output):
        done[0] += 1
        progress(min(0.99, done[0] / max(1, total)))

    return scorer.register_forward_hook(hook)


def attribute(scorer: FindingScore, pixels: torch.Tensor, method: str, *, baseline: torch.Tensor,
              steps: int = 32, internal_batch_size: int = 16, nt_samples: int = 8, nt_stdev: float = 0.15,
              window: int | None = None, stride: int | None = None, seed: int = 0,
              progress: Callable[[float], None] | None = None) -> tuple[np.ndarray, float]:
    """Signed attribution map (h x w, channel-summed) of the scorer at ``pixels`` (1, 3, h, w); + delta.
    ``progress`` (optional) is called with the fraction done, so a page can show a progress bar."""
    check_choice(method, METHODS, "method")
    total = expected_passes(method, pixels.shape[-1], steps=steps, internal_batch_size=internal_batch_size,
                            nt_samples=nt_samples, window=window, stride=stride)
    handle = _progress_hook(scorer, total, progress)
    try:
        return _attribute(scorer, pixels, method, baseline=baseline, steps=steps,
                          internal_batch_size=internal_batch_size, nt_samples=nt_samples, nt_stdev=nt_stdev,
                          window=window, stride=stride, seed=seed)
    finally:
        if handle is not None:
            handle.remove()


def _attribute(scorer, pixels, method, *, baseline, steps, internal_batch_size, nt_samples, nt_stdev, window,
               stride, seed) -> tuple[np.ndarray, float]:
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, NoiseTunnel, Occlusion

    pixels = pixels.detach().float()
    baseline = baseline.detach().float()
    delta = float("nan")
    if method == "integrated_gradients":
        ig = IntegratedGradients(scorer)
        attr, d = ig.attribute(pixels, baselines=baseline, n_steps=steps, internal_batch_size=internal_batch_size,
                               return_convergence_delta=True)
        delta = float(d.abs().max())
    elif method == "smoothgrad":
        # NoiseTunnel draws from torch's global generator: seed it for a reproducible map, inside fork_rng
        # so that the caller's random state is left as it was
        with torch.random.fork_rng(devices=[pixels.device] if pixels.device.type == "cuda" else []):
            torch.manual_seed(seed)
            nt = NoiseTunnel(IntegratedGradients(scorer))
            attr = nt.attribute(pixels, nt_type="smoothgrad", nt_samples=nt_samples, nt_samples_batch_size=1,
                                stdevs=nt_stdev, baselines=baseline, n_steps=steps,
                                internal_batch_size=internal_batch_size)
    elif method == "gradcam":
        layer, undo = gradcam_layer(scorer.tower)
        try:
            cam = LayerGradCam(scorer, layer).attribute(pixels, relu_attributions=True)
        finally:
            undo()
        attr = LayerAttribution.interpolate(cam, tuple(pixels.shape[-2:]), interpolate_mode="bilinear")
    else:
        side = pixels.shape[-1]
        window = window or max(4, side // 8)
        stride = stride or max(1, window // 2)
        attr = Occlusion(scorer).attribute(pixels, sliding_window_shapes=(pixels.shape[1], window, window),
                                           strides=(pixels.shape[1], stride, stride), baselines=baseline,
                                           perturbations_per_eval=internal_batch_size)
    return attr.detach().float().sum(dim=1)[0].cpu().numpy(), delta


def method_params(method: str, *, baseline: str = "blurred", steps: int = 32, nt_samples: int = 8,
                  nt_stdev: float = 0.15, window: int | None = None, stride: int | None = None, seed: int = 0,
                  input_size: int = 256) -> dict[str, Any]:
    """The parameters that change the map (these go into the cache key), per method."""
    if method == "gradcam":
        return {"relu": True}
    if method == "occlusion":
        window = window or max(4, input_size // 8)
        return {"baseline": baseline, "window": window, "stride": stride or max(1, window // 2)}
    params: dict[str, Any] = {"baseline": baseline, "steps": steps}
    if method == "smoothgrad":
        params.update(nt_samples=nt_samples, nt_stdev=nt_stdev, seed=seed)
    return params


@contextlib.contextmanager
def _cpu_threads(n: int | None):
    """torch's intra-op thread count set to ``n`` for the block (None: unchanged), then restored."""
    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def describe_params(method: str, params: dict[str, Any]) -> str:
    """The settings of a map in words, for the caption under an overlay (e.g. "8 steps, 4 noisy copies")."""
    parts = []
    if "steps" in params:
        parts.append(f"{params['steps']} steps")
    if "nt_samples" in params:
        parts.append(f"{params['nt_samples']} noisy copies (noise {params.get('nt_stdev', 0.15)})")
    if "window" in params:
        parts.append(f"{params['window']} px window, stride {params['stride']} px")
    if "baseline" in params:
        parts.append(f"{params['baseline']} baseline")
    return ", ".join(parts)


def explain(loaded, classifier, image, finding: str, method: str, *, baseline: str = "blurred", steps: int = 32,
            internal_batch_size: int = 16, nt_samples: int = 8, nt_stdev: float = 0.15,
            window: int | None = None, stride: int | None = None, seed: int = 0,
            progress: Callable[[float], None] | None = None, threads: int | None = None,
            size: tuple[int, int] | None = None) -> Saliency:
    """Attribute ``finding``'s zero-shot log-odds for ``image`` (PIL image, path or bytes) with ``method``;
    ``progress(fraction)`` is called as the attribution advances (and with 1.0 at the end). ``size`` (w, h)
    returns the map at that size instead of the image's (the display map: no full-size arrays). ``threads``
    (CPU only) runs the attribution on that many torch threads: on a shared 2-core machine one thread is
    several times faster than two, which wait on each other when the cores are busy (see demo_settings.toml).

    Raises ValueError (listing choices) for an unknown finding, method or baseline, ImageLoadError for an
    unreadable image, and ValueError for Grad-CAM on a tower without a supported layer.
    """
    return explain_findings(loaded, classifier, image, [finding], method, baseline=baseline, steps=steps,
                            internal_batch_size=internal_batch_size, nt_samples=nt_samples, nt_stdev=nt_stdev,
                            window=window, stride=stride, seed=seed, progress=progress, threads=threads,
                            size=size)[0]


def explain_findings(loaded, classifier, image, findings, method: str, *, baseline: str = "blurred",
                     steps: int = 32, internal_batch_size: int = 16, nt_samples: int = 8, nt_stdev: float = 0.15,
                     window: int | None = None, stride: int | None = None, seed: int = 0,
                     progress: Callable[[float], None] | None = None, threads: int | None = None,
                     size: tuple[int, int] | None = None) -> list[Saliency]:
    """:func:`explain` for several findings of one image (precompute's top findings): the image is read,
    preprocessed and blurred for the baseline once, and the geometry is worked out once."""
    from PIL import Image

    from .imageio import load_image

    check_choice(method, METHODS, "method")
    check_choice(baseline, BASELINES, "baseline")
    scorers = [score_function(loaded, classifier, f) for f in findings]
    if not isinstance(image, Image.Image):
        image = load_image(image)
    image = image.convert("RGB")
    pixels = loaded.preprocess(image).unsqueeze(0).to(loaded.device, torch.float32)
    base = make_baseline(pixels, baseline, loaded.preprocess)
    side = pixels.shape[-1]
    size = tuple(size) if size else image.size
    retina = retina_mask(image, size)   # no retina in the black surround (see module docstring)
    seen = to_image_geometry(np.ones(pixels.shape[-2:], np.float32), size, loaded.preprocess) > 0.5
    params = method_params(method, baseline=baseline, steps=steps, nt_samples=nt_samples, nt_stdev=nt_stdev,
                           window=window, stride=stride, seed=seed, input_size=side)
    out = []
    for k, (finding, scorer) in enumerate(zip(findings, scorers)):
        step = None if progress is None else (lambda f, k=k: progress((k + f) / len(findings)))
        with _LOCK, _cpu_threads(threads if loaded.device.type == "cpu" else None):
            raw, delta = attribute(scorer, pixels, method, baseline=base, steps=steps,
                                   internal_batch_size=internal_batch_size, nt_samples=nt_samples, nt_stdev=nt_stdev,
                                   window=window, stride=stride, seed=seed, progress=step)
            with torch.no_grad():
                scores = scorer(torch.cat([pixels, base])).cpu().numpy()
        m = to_image_geometry(normalise_map(smoothed(raw, method)), size, loaded.preprocess)
        m[~retina] = 0
        out.append(Saliency(map=np.clip(m, 0, 1), raw=raw, method=method, finding=finding, params=dict(params),
                            score=float(scores[0]), baseline_score=float(scores[1]), convergence_delta=delta,
                            seen=seen))
    if progress is not None:
        progress(1.0)
    return out
