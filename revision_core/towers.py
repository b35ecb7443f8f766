"""A small convolutional image tower for fundus photographs, registered with timm.

Why a custom tower: the demo model must train on two CPU cores in about half an hour, and retinal
lesions such as microaneurysms are a few pixels wide. Stock towers either downsample too early or cost
too much per image. Registering the tower with timm lets open_clip build it from a plain JSON model
config (``"timm_model_name": "fundus_cnn_small"``), so the demo model stays an ordinary open_clip CLIP.
"""
from __future__ import annotations

import torch
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


class FundusCNN(nn.Module):
    """A patchify stem (a 4x4 patch of pixels -> features, cheap on a CPU and lossless for
    few-pixel lesions) followed by stride-2 stages of residual blocks.

    ``stages`` ends with the last stage (a plain conv feature map) so that Grad-CAM can hook it.
    """

    def __init__(self, stem_width: int = 24, patch: int = 4, widths=(48, 96, 192), depths=(1, 1, 1),
                 num_classes: int = 0, global_pool: str = "catavgmax", in_chans: int = 3, **_):
        super().__init__()
        layers = [nn.Sequential(nn.Conv2d(in_chans, stem_width, patch, stride=patch, bias=False),
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
        return self.stages(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.global_pool(self.forward_features(x)))


@register_model
def fundus_cnn_small(pretrained: bool = False, **kwargs) -> FundusCNN:
    """The demo model's tower (about 0.6 M parameters)."""
    if pretrained:
        raise ValueError("fundus_cnn_small has no pretrained weights; load a checkpoint file instead.")
    return FundusCNN(stem_width=24, widths=(48, 96, 192), depths=(1, 1, 1), **kwargs)


@register_model
def fundus_cnn_tiny(pretrained: bool = False, **kwargs) -> FundusCNN:
    """A smaller tower for tests and quick experiments."""
    if pretrained:
        raise ValueError("fundus_cnn_tiny has no pretrained weights; load a checkpoint file instead.")
    return FundusCNN(stem_width=8, widths=(16, 32, 32), depths=(0, 1, 0), **kwargs)
