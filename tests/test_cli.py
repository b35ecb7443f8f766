"""The command line as an investigator scripts it: JSON output, clear errors with exit code 2."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from revision_core.synthetic import generate_case


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "revision_core", *map(str, args)], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


@pytest.mark.heavy
def test_predict_json_and_a_broken_image(tiny_cnn_checkpoint, tmp_path):
    good = tmp_path / "eye.png"
    Image.fromarray(generate_case(4, size=256).image).save(good)
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    out = _cli("predict", good, bad, "--model", "revision-tiny-cnn", "--checkpoint", tiny_cnn_checkpoint, "--json")
    assert out.returncode == 1, out.stderr
    result = json.loads(out.stdout)
    assert result["model"]["architecture"] == "revision-tiny-cnn" and result["model"]["version"]
    first, second = result["predictions"]
    assert set(first["probabilities"]) == {"diabetic_retinopathy", "amd", "glaucoma", "rvo", "pathologic_myopia"}
    assert "notes.txt" in second["error"]


@pytest.mark.heavy
def test_evaluate_json_shape(tiny_cnn_checkpoint):
    out = _cli("evaluate", "--synthetic", 24, "--seed", 5, "--model", "revision-tiny-cnn", "--checkpoint",
               tiny_cnn_checkpoint, "--size", 224, "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["n"] == 24
    for finding, entry in result["auroc"].items():
        assert entry["auc"] is None or 0 <= entry["auc"] <= 1
        if entry["ci"]:
            assert entry["ci"][0] <= entry["auc"] <= entry["ci"][1]
    aucs = [e["auc"] for e in result["auroc"].values() if e["auc"] is not None]
    assert abs(result["mean_auroc"] - sum(aucs) / len(aucs)) < 1e-12


@pytest.mark.heavy
def test_evaluate_a_manifest_of_labelled_images(tiny_cnn_checkpoint, tmp_path):
    assert _cli("synth", "--n", 12, "--seed", 3, "--out", tmp_path / "set", "--size", 224).returncode == 0
    out = _cli("evaluate", "--manifest", tmp_path / "set" / "manifest.csv", "--model", "revision-tiny-cnn",
               "--checkpoint", tiny_cnn_checkpoint, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["n"] == 12


@pytest.mark.heavy
def test_errors_are_one_clear_line_and_exit_2(tmp_path):
    out = _cli("predict", tmp_path / "x.png", "--model", "ViT-B-32")
    assert out.returncode == 2 and "--checkpoint" in out.stderr and "Traceback" not in out.stderr
    bad_manifest = tmp_path / "m.csv"
    bad_manifest.write_text("path,amd\nx.png,1\n")
    out = _cli("evaluate", "--manifest", bad_manifest, "--model", "revision-tiny-cnn", "--checkpoint", tmp_path / "none.pt")
    assert out.returncode == 2 and "none.pt" in out.stderr
