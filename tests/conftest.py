"""Shared fixtures: small open_clip models saved as real checkpoint files."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_configure(config):
    """AppTest reads .streamlit/config.toml, which hides error details from visitors; tests want them."""
    from streamlit import config as st_config

    st_config.set_option("client.showErrorDetails", "full")

REPO = Path(__file__).resolve().parents[1]
# Public reference data with published results (Van Dyke, Franken, aSAH): part of the repository, with their
# sources, licences and citations in tests/data/README.md, so the checks against OR-DBM, MRMCaov, RJafroc and
# pROC run on every clone.
REFERENCE = Path(__file__).resolve().parent / "data"
REFERENCE_FILES = ("vandyke.csv", "franken.csv", "asah.csv")


@pytest.fixture(scope="session")
def reference_data() -> Path:
    """The reference data folder, checked complete: a missing file fails the tests that use it (never a skip)."""
    missing = [name for name in REFERENCE_FILES if not (REFERENCE / name).is_file()]
    assert not missing, f"reference data missing from {REFERENCE}: {missing} (see tests/data/README.md)"
    return REFERENCE


# for the tests that compare with published results: they fail, never skip, without their data
needs_reference = pytest.mark.usefixtures("reference_data")


@pytest.fixture(scope="session")
def vandyke(reference_data):
    """The Van Dyke et al. (1993) MRMC reads (tests/data), read once (tests never modify it)."""
    import pandas as pd

    return pd.read_csv(reference_data / "vandyke.csv")


# ------------------------------------------------------------------ tiers: markers from what a test uses

@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Mark what needs PostgreSQL from the fixtures it uses (``pg_server``, directly or through the database
    fixtures' ``postgresql`` parameter), so that ``-m "not postgresql"`` leaves it out; ``browser``, ``r``
    and ``slow`` are marked where the test is written (the tiers: pyproject.toml, Makefile)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        on_pg = any(isinstance(value, str) and value == "postgresql" for value in params.values())
        if on_pg or "pg_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgresql)


TINY_VIT = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(autouse=True)
def _study_store(tmp_path_factory, monkeypatch):
    """Every test's image store is a temporary folder unless the test sets its own: display files made
    for a case (study.domain.cases.display_files) never land in the repository's data/."""
    if "REVISION_STORE_ROOT" not in os.environ:
        monkeypatch.setenv("REVISION_STORE_ROOT", str(tmp_path_factory.mktemp("store")))


@pytest.fixture(scope="session")
def tiny_vit_arch(tmp_path_factory) -> str:
    """Register a tiny ViT config with open_clip (any open_clip architecture must load)."""
    import open_clip

    folder = tmp_path_factory.mktemp("model_configs")
    (folder / "test-vit-tiny.json").write_text(json.dumps(TINY_VIT))
    open_clip.add_model_config(folder)
    return "test-vit-tiny"


@pytest.fixture(scope="session")
def tiny_cnn_checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised revision-tiny-cnn saved as safetensors."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    import revision_core.model  # noqa: F401  (registers configs and towers)

    torch.manual_seed(0)
    model = open_clip.create_model("revision-tiny-cnn")
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path
