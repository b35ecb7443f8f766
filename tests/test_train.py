"""Contrastive image-report training: the loss falls, and the false-negative-aware loss is ClipLoss
when no two reports in a batch agree."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from open_clip.loss import ClipLoss

from revision_core.model import load_model
from revision_core.train import ReportAwareClipLoss, TrainConfig, findings_signature, train


def test_report_aware_loss_equals_clip_loss_without_duplicates():
    torch.manual_seed(0)
    img, txt = torch.randn(8, 16), torch.randn(8, 16)
    img, txt = img / img.norm(dim=1, keepdim=True), txt / txt.norm(dim=1, keepdim=True)
    scale = torch.tensor(10.0)
    plain = ClipLoss()(img, txt, scale)
    assert torch.allclose(ReportAwareClipLoss()(img, txt, scale, signatures=torch.arange(8)), plain)
    dup = torch.tensor([0, 0, 1, 2, 3, 4, 5, 6])
    assert not torch.allclose(ReportAwareClipLoss()(img, txt, scale, signatures=dup), plain)


def test_signature_separates_findings_and_dr_severity():
    base = {"diabetic_retinopathy": 1, "amd": 0, "glaucoma": 0, "rvo": 0, "pathologic_myopia": 0}
    mild = findings_signature(base, {"diabetic_retinopathy": "mild"})
    severe = findings_signature(base, {"diabetic_retinopathy": "severe"})
    normal = findings_signature({k: 0 for k in base}, {})
    assert len({mild, severe, normal}) == 3
    assert mild == findings_signature(dict(base), {"diabetic_retinopathy": "mild"})


@pytest.mark.heavy
def test_a_tiny_model_learns_and_is_saved_in_local_dir_layout(tmp_path):
    config = TrainConfig(architecture="revision-tiny-cnn", n_images=64, steps=40, batch_size=32, lr=3e-3,
                         warmup=5, workers=1, validate_every=0, n_validation=16, cache_dir=None, log_every=1000)
    summary = train(config, out_dir=tmp_path / "tiny", log=lambda msg: None)
    history = summary["loss_history"]
    assert len(history) == 40
    assert np.mean(history[-5:]) < np.mean(history[:5]) - 0.3, "the contrastive loss must fall"
    saved = json.loads((tmp_path / "tiny" / "open_clip_config.json").read_text())
    assert saved["architecture"] == "revision-tiny-cnn" and saved["training"]["steps_done"] == 40
    loaded = load_model(f"local-dir:{tmp_path / 'tiny'}", device="cpu")
    x = torch.rand(2, 3, 96, 96)
    expected = summary["model"].encode_image(x)
    assert torch.allclose(loaded.model.encode_image(x), expected, atol=2e-2), "fp16 storage keeps the model"


def test_train_command_reads_camera_as_yes_or_no(capsys):
    """``--camera no`` must switch random cameras off (argparse's bool() would read it as True)."""
    import argparse

    from revision_core.commands import train as command

    parser = argparse.ArgumentParser()
    command.configure(parser)
    assert parser.parse_args(["--out", "x"]).camera is True
    assert parser.parse_args(["--out", "x", "--camera", "no"]).camera is False
    assert parser.parse_args(["--out", "x", "--camera", "yes"]).camera is True
    with pytest.raises(SystemExit):
        parser.parse_args(["--out", "x", "--camera", "maybe"])
    assert "--camera" in capsys.readouterr().err
