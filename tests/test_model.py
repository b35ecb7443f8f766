"""Loading CLIP-style models from local files: formats, architectures, model card, clear errors."""
from __future__ import annotations

import json

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from revision_core.model import (DEMO_MODEL_DIR, ModelLoadError, load_model, pick_device, read_state_dict,
                                 weights_version)


def _random_state(arch: str, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return open_clip.create_model(arch).state_dict()


def _save_all_formats(state: dict, folder) -> dict:
    paths = {
        "plain_pt": folder / "plain.pt",
        "wrapper_bin": folder / "wrapped.bin",
        "module_pt": folder / "module.pth",
        "safetensors": folder / "weights.safetensors",
    }
    torch.save(state, paths["plain_pt"])
    torch.save({"state_dict": state, "epoch": 3}, paths["wrapper_bin"])
    torch.save({f"module.{k}": v for k, v in state.items()}, paths["module_pt"])
    save_file({k: v.contiguous() for k, v in state.items()}, str(paths["safetensors"]))
    return paths


@pytest.mark.parametrize("arch", ["revision-tiny-cnn", "tiny_vit"])
def test_every_checkpoint_format_loads_to_the_same_weights(arch, tiny_vit_arch, tmp_path):
    arch = tiny_vit_arch if arch == "tiny_vit" else arch
    state = _random_state(arch)
    paths = _save_all_formats(state, tmp_path)
    loaded = {name: load_model(arch, path, device="cpu") for name, path in paths.items()}
    versions = {m.card.version for m in loaded.values()}
    assert versions == {weights_version(state)}, "the version must hash the weights, not the file format"
    size = loaded["plain_pt"].card.input_size
    x = torch.rand(2, 3, size, size)
    ref = loaded["plain_pt"].model.encode_image(x)
    for name, m in loaded.items():
        assert torch.allclose(m.model.encode_image(x), ref), name
        assert m.card.architecture == arch and m.card.device == "cpu" and not m.card.is_demo
        assert m.card.input_size == size


def test_different_weights_give_a_different_version(tmp_path):
    a, b = _random_state("revision-tiny-cnn", 0), _random_state("revision-tiny-cnn", 1)
    torch.save(a, tmp_path / "a.pt")
    torch.save(b, tmp_path / "b.pt")
    assert load_model("revision-tiny-cnn", tmp_path / "a.pt").card.version != \
        load_model("revision-tiny-cnn", tmp_path / "b.pt").card.version


def test_missing_file_names_the_file_and_the_expected_format(tmp_path):
    with pytest.raises(ModelLoadError, match=r"not found: .*nothere\.pt.*\.safetensors"):
        load_model("revision-tiny-cnn", tmp_path / "nothere.pt")


def test_corrupt_files_are_reported_not_crashed(tmp_path):
    bad_pt = tmp_path / "broken.pt"
    bad_pt.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(ModelLoadError, match=r"broken\.pt.*not a valid PyTorch checkpoint"):
        load_model("revision-tiny-cnn", bad_pt)
    state = _random_state("revision-tiny-cnn")
    good = tmp_path / "good.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(good))
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match=r"truncated\.safetensors.*not a valid safetensors"):
        load_model("revision-tiny-cnn", truncated)


def test_non_tensor_pickles_are_refused(tmp_path):
    path = tmp_path / "object.pt"
    torch.save({"weights": [1, 2, 3]}, path)
    with pytest.raises(ModelLoadError, match=r"object\.pt does not hold a state_dict"):
        read_state_dict(path)


def test_checkpoint_for_another_architecture(tiny_vit_arch, tmp_path):
    path = tmp_path / "cnn.pt"
    torch.save(_random_state("revision-tiny-cnn"), path)
    with pytest.raises(ModelLoadError, match=rf"cnn\.pt is not a checkpoint for the open_clip architecture "
                                             rf"'{tiny_vit_arch}'.*missing keys"):
        load_model(tiny_vit_arch, path)


def test_nothing_is_downloaded():
    with pytest.raises(ModelLoadError, match="never downloads"):
        load_model("hf-hub:someone/some-model")
    with pytest.raises(ModelLoadError, match=r"--checkpoint"):
        load_model("ViT-B-32")
    with pytest.raises(ModelLoadError, match="Unknown open_clip architecture"):
        load_model("no-such-architecture", "x.pt")


def test_wrong_suffix(tmp_path):
    path = tmp_path / "weights.onnx"
    path.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match=r"weights\.onnx has the suffix '\.onnx'"):
        load_model("revision-tiny-cnn", path)


def test_local_dir_layout(tmp_path):
    folder = tmp_path / "my-model"
    folder.mkdir()
    cfg = open_clip.get_model_config("revision-tiny-cnn")
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "model_name": "my-model",
                                                              "architecture": "revision-tiny-cnn"}))
    state = _random_state("revision-tiny-cnn", 5)
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "open_clip_model.safetensors"))
    m = load_model(f"local-dir:{folder}")
    assert m.card.name == "my-model" and m.card.version == weights_version(state)
    with pytest.raises(ModelLoadError, match="no open_clip_config.json"):
        load_model(f"local-dir:{tmp_path}")
    with pytest.raises(ModelLoadError, match="Model folder not found"):
        load_model(f"local-dir:{tmp_path / 'absent'}")


def test_device_selection_falls_back_to_cpu_and_refuses_absent_cuda():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and torch.backends.mps.is_available():
        expected = "mps"
    assert pick_device().type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="no CUDA GPU"):
            pick_device("cuda")


def test_bundled_demo_model_is_the_default_and_says_it_is_a_demo():
    m = load_model()
    assert m.card.is_demo and "not for clinical use" in m.card.disclaimer
    assert m.card.architecture == "revision-demo-cnn" and m.card.input_size == 256
    size_mb = sum(p.stat().st_size for p in DEMO_MODEL_DIR.iterdir()) / 2**20
    assert size_mb <= 30
