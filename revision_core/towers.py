"""A small convolutional image tower for fundus photographs, registered with timm.

Why a custom tower: the demo model must train on two CPU cores in under an hour, and retinal
lesions such as microaneurysms are a few pixels wide. Stock towers either downsample too early or cost
too much per image. Registering the tower with timm lets open_clip build it from a plain JSON model
config (``"timm_model_name": "fundus_cnn_small_ci"``), so the demo model stays an ordinary open_clip CLIP.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from torch import nn
from timm.layers import SelectAdaptivePool2d
from timm.models import register_model


def _conv_bn_act(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class _ResidualBlock(nn.Module):
    """Two 3x3 convolutions with an identity shortcut (ResNet basic block)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn_act(channels, channels),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class CameraInvariantInput(nn.Module):
    """Turns a normalised RGB photograph into six channels that no camera gain can change.

    Why: fundus cameras differ mostly by multiplicative factors - exposure, colour response (a red-saturated
    Topcon vs a yellow-green Kowa), illumination fall-off and vignetting. In log space each is an additive
    offset, so (1) the log image minus its per-channel mean over the field of view removes exposure and
    colour cast, and (2) the log image minus its local average (a normalised-convolution blur, about a tenth
    of the image wide) also removes illumination gradients and vignetting, leaving lesions, vessels and the
    disc as ratios to the retina around them (the idea behind Graham's Kaggle preprocessing, in log space).
    Outside the field of view (black) both are zero. It is part of the model, so training, zero-shot
    prediction and saliency all see the same input.
    """

    def __init__(self, mean=OPENAI_DATASET_MEAN, std=OPENAI_DATASET_STD, pool: int = 8, sigma: float = 1.5,
                 floor: float = 0.04):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        radius = int(3 * sigma + 0.5)
        taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
        self.register_buffer("taps", (taps / taps.sum()).view(1, 1, 1, -1), persistent=False)
        self.pool, self.floor = pool, floor

    def _smooth(self, x: torch.Tensor) -> torch.Tensor:
        """A wide blur at low cost: average-pool by ``pool``, a small separable Gaussian, upsample back."""
        size = x.shape[-2:]
        low = F.avg_pool2d(x, self.pool, ceil_mode=True)
        c = low.shape[1]
        pad = self.taps.shape[-1] // 2
        low = F.conv2d(F.pad(low, (pad, pad, 0, 0), mode="replicate"), self.taps.expand(c, 1, 1, -1), groups=c)
        low = F.conv2d(F.pad(low, (0, 0, pad, pad), mode="replicate"),
                       self.taps.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
        return F.interpolate(low, size=size, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raw = (x * self.std + self.mean).clamp(0.0, 1.0)
        field = (raw.amax(dim=1, keepdim=True) > self.floor).to(raw.dtype)
        log = torch.log(raw + 1.0 / 255.0) * field
        area = field.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)
        global_offset = log.sum(dim=(2, 3), keepdim=True) / area
        local_offset = self._smooth(log) / self._smooth(field).clamp_min(1e-3)
        return torch.cat([(log - global_offset) * field, 3.0 * (log - local_offset) * field], dim=1)


class FundusCNN(nn.Module):
    """A patchify stem (a 4x4 patch of pixels -> features, cheap on a CPU and lossless for
    few-pixel lesions) followed by stride-2 stages of residual blocks.

    ``stages`` ends with the last stage (a plain conv feature map) so that Grad-CAM can hook it.
    """

    def __init__(self, stem_width: int = 24, patch: int = 4, widths=(48, 96, 192), depths=(1, 1, 1),
                 num_classes: int = 0, global_pool: str = "catavgmax", in_chans: int = 3,
                 camera_invariant: bool = False, **_):
        super().__init__()
        self.camera_input = CameraInvariantInput() if camera_invariant else nn.Identity()
        self.input_prepared = False   # True while a trainer feeds camera_input's output directly
        stem_in = 6 if camera_invariant else in_chans
        layers = [nn.Sequential(nn.Conv2d(stem_in, stem_width, patch, stride=patch, bias=False),
                                nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True))]
        c_prev = stem_width
        for width, depth in zip(widths, depths):
            stage = [_conv_bn_act(c_prev, width, stride=2)]
            stage += [_ResidualBlock(width) for _ in range(depth)]
            layers.append(nn.Sequential(*stage))
            c_prev = width
        self.stages = nn.Sequential(*layers)
        self.default_cfg = {"pool_size": None, "input_size": (3, 224, 224)}
        self.pretrained_cfg = self.default_cfg
        self._feature_channels = c_prev
        self.reset_classifier(num_classes, global_pool)

    def reset_classifier(self, num_classes: int = 0, global_pool: str = "catavgmax") -> None:
        self.global_pool = SelectAdaptivePool2d(pool_type=global_pool or "", flatten=bool(global_pool))
        self.num_features = self._feature_channels * self.global_pool.feat_mult()
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x if self.input_prepared else self.camera_input(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.global_pool(self.forward_features(x)))


def input_transform(model: nn.Module):
    """The camera-invariant input transform of ``model``'s image tower, or None if it has none."""
    for module in model.modules():
        if isinstance(module, FundusCNN) and isinstance(module.camera_input, CameraInvariantInput):
            return module.camera_input
    return None


@contextmanager
def prepared_input(model: nn.Module):
    """While inside, the tower takes the input transform's output (computed elsewhere, e.g. in a data
    thread on the other core during training) instead of applying the transform itself."""
    towers = [m for m in model.modules() if isinstance(m, FundusCNN)]
    for t in towers:
        t.input_prepared = True
    try:
        yield
    finally:
        for t in towers:
            t.input_prepared = False


@register_model
def fundus_cnn_small(pretrained: bool = False, **kwargs) -> FundusCNN:
    """The previous demo model's tower (about 0.6 M parameters), without the camera-invariant input."""
    if pretrained:
        raise ValueError("fundus_cnn_small has no pretrained weights; load a checkpoint file instead.")
    return FundusCNN(stem_width=24, widths=(48, 96, 192), depths=(1, 1, 1), **kwargs)


@register_model
def fundus_cnn_small_ci(pretrained: bool = False, **kwargs) -> FundusCNN:
    """The demo model's tower with the camera-invariant input (:class:`CameraInvariantInput`)."""
    if pretrained:
        raise ValueError("fundus_cnn_small_ci has no pretrained weights; load a checkpoint file instead.")
    return FundusCNN(stem_width=24, widths=(48, 96, 192), depths=(1, 1, 1), camera_invariant=True, **kwargs)


@register_model
def fundus_cnn_tiny(pretrained: bool = False, **kwargs) -> FundusCNN:
    """A smaller tower for tests and quick experiments."""
    if pretrained:
        raise ValueError("fundus_cnn_tiny has no pretrained weights; load a checkpoint file instead.")
    return FundusCNN(stem_width=8, widths=(16, 32, 32), depths=(0, 1, 0), **kwargs)
