"""Saliency: every method on real open_clip models (a CNN tower and a ViT), IG completeness, overlays,
cache keys, user-facing errors, and the faithfulness metrics on maps whose answer is known."""
from __future__ import annotations

import json

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from revision_core.faithfulness import (
    deletion_auc,
    deletion_curve,
    deletion_order,
    energy_in_mask,
    evaluate_synthetic,
    pointing_game,
)
from revision_core.imageio import ImageLoadError
from revision_core.model import load_model
from revision_core.saliency import METHODS, FindingScore, explain, gradcam_layer, make_baseline, score_function
from revision_core.saliency_render import cache_key, render_overlay
from revision_core.synthetic import generate_case
from revision_core.zeroshot import ZeroShotClassifier

TINY_VIT = "revision-test-vit"
TINY_VIT_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def _save_random(arch: str, path, seed: int = 0) -> None:
    torch.manual_seed(seed)
    torch.save(open_clip.create_model(arch).state_dict(), path)


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("cnn") / "tiny.pt"
    _save_random("revision-tiny-cnn", path)
    loaded = load_model("revision-tiny-cnn", path, device="cpu")
    return loaded, ZeroShotClassifier(loaded)


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vit")
    (folder / f"{TINY_VIT}.json").write_text(json.dumps(TINY_VIT_CFG))
    open_clip.add_model_config(folder)
    _save_random(TINY_VIT, folder / "vit.pt", seed=1)
    loaded = load_model(TINY_VIT, folder / "vit.pt", device="cpu")
    return loaded, ZeroShotClassifier(loaded)


@pytest.fixture(scope="module")
def fundus():
    case = generate_case(1_000_000_007, size=256, findings={"diabetic_retinopathy": "severe"})
    return Image.fromarray(case.image), case


@pytest.mark.parametrize("method", METHODS)
def test_every_method_gives_a_finite_map_at_image_size(cnn, fundus, method):
    loaded, clf = cnn
    image, _ = fundus
    sal = explain(loaded, clf, image, "diabetic_retinopathy", method, steps=8, nt_samples=2)
    assert sal.map.shape == (image.height, image.width)
    assert sal.raw.shape == (96, 96)
    assert np.isfinite(sal.map).all() and np.isfinite(sal.raw).all()
    assert sal.map.min() >= 0 and sal.map.max() <= 1
    assert sal.method == method and sal.finding == "diabetic_retinopathy"
    assert sal.map[np.asarray(image).max(axis=2) <= 4].max(initial=0) == 0   # black surround stays clear
    assert sal.map[0, 0] == 0 and np.asarray(image)[0, 0].max() == 0


def test_map_follows_non_square_geometry(cnn):
    """Resize-shortest + centre crop: the map covers the central square, zero on the cropped margins."""
    loaded, clf = cnn
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 200, 3), dtype=np.uint8))
    sal = explain(loaded, clf, image, "amd", "occlusion")
    assert sal.map.shape == (120, 200)
    assert sal.map[:, :40].max() == 0 and sal.map[:, 160:].max() == 0


def test_gradcam_on_cnn_uses_last_stage_and_is_not_constant(cnn, fundus):
    loaded, clf = cnn
    layer, undo = gradcam_layer(loaded.model.visual)
    undo()
    assert layer is loaded.model.visual.trunk.stages[-1]
    # a random tower may have a negative CAM everywhere (ReLU -> 0); some finding must light up
    maps = [explain(loaded, clf, fundus[0], f, "gradcam").map for f in clf.findings]
    assert any(m.max() > 0 and m.std() > 0 for m in maps)


def test_gradcam_on_vit_reshapes_patch_tokens_and_leaves_model_unchanged(vit, fundus):
    loaded, clf = vit
    image, _ = fundus
    pixels = loaded.preprocess(image).unsqueeze(0)
    with torch.no_grad():
        before = loaded.model.encode_image(pixels)
    maps = [explain(loaded, clf, image, f, "gradcam") for f in clf.findings]
    for sal in maps:
        assert sal.map.shape == (256, 256) and np.isfinite(sal.map).all()
    assert any(s.map.max() > 0 for s in maps)
    # the 4x4 patch grid upsampled: not constant, and no hook left behind
    assert any(np.unique(np.round(s.raw, 6)).size > 4 for s in maps)
    assert not loaded.model.visual.transformer.resblocks[-1]._forward_pre_hooks
    with torch.no_grad():
        assert torch.equal(before, loaded.model.encode_image(pixels))


@pytest.mark.parametrize("method", ["integrated_gradients", "occlusion"])
def test_vit_other_methods(vit, fundus, method):
    loaded, clf = vit
    sal = explain(loaded, clf, fundus[0], "glaucoma", method, steps=8)
    assert sal.map.shape == (256, 256) and np.isfinite(sal.raw).all() and sal.raw.shape == (64, 64)


@pytest.mark.parametrize("baseline", ["blurred", "black"])
def test_integrated_gradients_completeness(cnn, fundus, baseline):
    loaded, clf = cnn
    sal = explain(loaded, clf, fundus[0], "diabetic_retinopathy", "integrated_gradients", baseline=baseline,
                  steps=64)
    gap = sal.score - sal.baseline_score
    assert abs(gap) > 0.03                       # the test means something only if the scores differ
    tol = 0.1 * abs(gap) + 0.01                  # ReLU kinks: a random tower's path integral is not smooth
    assert sal.raw.sum() == pytest.approx(gap, abs=tol)
    assert sal.convergence_delta < tol


def test_baselines_live_in_normalised_space(cnn, fundus):
    loaded, _ = cnn
    pixels = loaded.preprocess(fundus[0]).unsqueeze(0)
    black = make_baseline(pixels, "black", loaded.preprocess)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    assert torch.allclose(black * std + mean, torch.zeros_like(black), atol=1e-6)
    blurred = make_baseline(pixels, "blurred", loaded.preprocess)
    assert blurred.shape == pixels.shape
    assert torch.allclose(blurred.mean(dim=(2, 3)), pixels.mean(dim=(2, 3)), atol=0.05)  # colour kept
    assert blurred.std() < pixels.std()                                                  # detail removed


def test_score_function_matches_classifier(cnn, fundus):
    loaded, clf = cnn
    pixels = loaded.preprocess(fundus[0]).unsqueeze(0)
    for i, f in enumerate(clf.findings):
        with torch.no_grad():
            s = float(score_function(loaded, clf, f)(pixels)[0])
        p = float(clf.predict_pixels(pixels)[0, i])
        assert 1 / (1 + np.exp(-s)) == pytest.approx(p, abs=1e-5)


def test_overlay_png_is_deterministic_and_depends_on_opacity_and_style(fundus):
    image, _ = fundus
    m = np.zeros((256, 256), np.float32)
    m[100:140, 60:90] = 1.0
    m[110:120, 70:80] = 2.0
    a = render_overlay(image, m, opacity=0.45)
    assert a[:8] == b"\x89PNG\r\n\x1a\n"
    assert a == render_overlay(image, m, opacity=0.45)
    assert a != render_overlay(image, m, opacity=0.8)
    assert a != render_overlay(image, m, opacity=0.45, style="outline")
    assert b"tIME" not in a and b"tEXt" not in a
    with pytest.raises(ValueError, match="filled, outline"):
        render_overlay(image, m, style="heat")


def test_map_bands_are_the_retinas_top_quantiles_in_colours_no_lesion_has():
    """The display map puts the band edges at fixed grey levels where 10%, 5% and 1% of the retina's pixels
    lie above them; the surround is 0; the bands are blue to cyan (no red, yellow or white of a fundus)."""
    import colorsys

    from revision_core.saliency_render import BAND_GREY, BANDS, LEVELS, bands_of, display_map, palette

    rng = np.random.default_rng(0)
    m = rng.random((300, 400)).astype(np.float32) ** 3
    yy, xx = np.mgrid[:300, :400]
    retina = (yy - 150) ** 2 + (xx - 200) ** 2 < 140 ** 2
    grey = display_map(m, retina)
    assert grey.dtype == np.uint8 and not grey[~retina].any()
    band = bands_of(grey)[retina]
    for k, level in enumerate(LEVELS, start=1):
        assert (band >= k).mean() == pytest.approx(1 - level, abs=0.002)
    order = np.argsort(m[retina])
    assert (np.diff(grey[retina][order].astype(int)) >= 0).all()  # monotone: the order of the map is kept
    assert palette()["grey"] == list(BAND_GREY) and len(palette()["bands"]) == len(LEVELS)
    for fill, _alpha, line in BANDS:
        for rgb in (fill, line):
            hue = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))[0] * 360
            assert 180 <= hue <= 240 and rgb[2] > rgb[0], rgb  # cyan (180) to blue (240)
    flat = display_map(np.zeros((20, 20), np.float32))
    assert not flat.any()  # no evidence: no band at all


def test_display_png_is_small_and_keeps_the_photographs_shape():
    import cv2

    from revision_core.saliency_render import DISPLAY_SIDE, display_png

    image = Image.fromarray(np.full((680, 1024, 3), 120, np.uint8))
    m = np.zeros((680, 1024), np.float32)
    m[300:340, 500:560] = 1.0
    png, w, h = display_png(image, m)
    assert (w, h) == (DISPLAY_SIDE, round(680 * DISPLAY_SIDE / 1024))
    grey = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert grey.shape == (h, w) and grey.ndim == 2 and len(png) < 20_000
    y, x = np.unravel_index(int(np.argmax(grey)), grey.shape)
    assert 300 * h / 680 <= y <= 340 * h / 680 and 500 * w / 1024 <= x <= 560 * w / 1024


def test_what_the_model_did_not_see_is_carried_in_the_alpha_and_drawn_as_a_dashed_edge(cnn):
    """A centre crop leaves a wide photograph's sides out: the map says so (alpha 0 there), the bands are
    cut at the quantiles of the part the model saw, and the server's drawing marks the edge."""
    import io

    from revision_core.saliency_render import SEEN_EDGE, display_png, render_overlay

    loaded, clf = cnn
    rng = np.random.default_rng(3)
    wide = Image.fromarray(rng.integers(30, 220, (64, 128, 3), dtype=np.uint8))
    sal = explain(loaded, clf, wide, "amd", "gradcam")
    assert sal.seen.shape == (64, 128) and sal.seen[:, 64].all() and not sal.seen[:, :16].any()
    png, w, h = display_png(wide, sal.map, seen=sal.seen)
    im = Image.open(io.BytesIO(png))
    assert im.mode == "LA" and (w, h) == (128, 64)
    alpha = np.asarray(im)[..., 1]
    assert (alpha[:, :16] == 0).all() and (alpha[:, 48:80] == 255).all()
    square = Image.fromarray(rng.integers(30, 220, (64, 64, 3), dtype=np.uint8))
    sq = explain(loaded, clf, square, "amd", "gradcam")
    assert sq.seen.all() and Image.open(io.BytesIO(display_png(square, sq.map, seen=sq.seen)[0])).mode == "L"
    drawn = np.asarray(Image.open(io.BytesIO(render_overlay(wide, np.asarray(im)))))
    assert (drawn == SEEN_EDGE).all(axis=2).any()  # the dashed edge of what the model saw


def test_several_findings_at_once_equal_one_at_a_time(cnn, fundus):
    from revision_core.saliency import explain_findings

    loaded, clf = cnn
    both = explain_findings(loaded, clf, fundus[0], ["amd", "glaucoma"], "integrated_gradients", steps=4)
    for sal, finding in zip(both, ["amd", "glaucoma"]):
        alone = explain(loaded, clf, fundus[0], finding, "integrated_gradients", steps=4)
        assert sal.finding == finding and np.allclose(sal.raw, alone.raw) and np.allclose(sal.map, alone.map)


def test_explain_at_a_display_size(cnn, fundus):
    loaded, clf = cnn
    image = fundus[0]
    full = explain(loaded, clf, image, "amd", "gradcam")
    small = explain(loaded, clf, image, "amd", "gradcam", size=(64, 64))
    assert full.map.shape == (image.height, image.width) and small.map.shape == (64, 64)
    assert np.array_equal(full.raw, small.raw)  # the same attribution, only mapped to another size


def test_maps_in_worker_processes_equal_this_process(cnn, fundus, tmp_path):
    """Every core: two worker processes give byte-identical maps to the in-process computation."""
    from revision_core.saliency_batch import MapJob, MapPool

    loaded, clf = cnn
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.roll(np.asarray(fundus[0]), 7 * i, axis=1)).save(paths[-1])
    jobs = [MapJob(i, p, ("amd", "glaucoma")) for i, p in enumerate(paths)]
    with MapPool(loaded, clf, method="integrated_gradients", workers=1, steps=4) as pool:
        here = {r.key: r for r in pool.run(jobs)}
    with MapPool(loaded, clf, method="integrated_gradients", workers=2, steps=4) as pool:
        there = {r.key: r for r in pool.run(jobs)}
    assert set(here) == set(there) == {0, 1}
    for key in here:
        assert here[key].error is None and [m.finding for m in here[key].maps] == ["amd", "glaucoma"]
        assert [m.png for m in here[key].maps] == [m.png for m in there[key].maps]
    with MapPool(loaded, clf, method="integrated_gradients", workers=1, steps=4) as pool:
        bad = list(pool.run([MapJob("x", tmp_path / "missing.png", ("amd",))]))
    assert bad[0].maps == () and "ImageLoadError" in bad[0].error


def test_cache_key_changes_with_every_input():
    base = cache_key("v1", "abc", "amd", "integrated_gradients", {"steps": 32, "baseline": "blurred"})
    assert base == cache_key("v1", "abc", "amd", "integrated_gradients", {"baseline": "blurred", "steps": 32})
    others = [cache_key("v2", "abc", "amd", "integrated_gradients", {"steps": 32, "baseline": "blurred"}),
              cache_key("v1", "abd", "amd", "integrated_gradients", {"steps": 32, "baseline": "blurred"}),
              cache_key("v1", "abc", "rvo", "integrated_gradients", {"steps": 32, "baseline": "blurred"}),
              cache_key("v1", "abc", "amd", "smoothgrad", {"steps": 32, "baseline": "blurred"}),
              cache_key("v1", "abc", "amd", "integrated_gradients", {"steps": 16, "baseline": "blurred"}),
              cache_key("v1", "abc", "amd", "integrated_gradients", {"steps": 32, "baseline": "black"})]
    assert len({base, *others}) == 7


def test_smoothgrad_is_reproducible_and_leaves_the_global_rng_alone(cnn, fundus):
    loaded, clf = cnn
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a = explain(loaded, clf, fundus[0], "amd", "smoothgrad", steps=4, nt_samples=2)
    assert torch.equal(torch.rand(1), expected)
    b = explain(loaded, clf, fundus[0], "amd", "smoothgrad", steps=4, nt_samples=2)
    c = explain(loaded, clf, fundus[0], "amd", "smoothgrad", steps=4, nt_samples=2, seed=1)
    assert np.array_equal(a.raw, b.raw) and not np.array_equal(a.raw, c.raw)
    assert a.params != c.params


def test_explain_params_distinguish_settings(cnn, fundus):
    loaded, clf = cnn
    a = explain(loaded, clf, fundus[0], "amd", "integrated_gradients", steps=4).params
    b = explain(loaded, clf, fundus[0], "amd", "integrated_gradients", steps=8).params
    c = explain(loaded, clf, fundus[0], "amd", "integrated_gradients", steps=4, baseline="black").params
    assert len({cache_key("v", "i", "amd", "integrated_gradients", p) for p in (a, b, c)}) == 3


def test_errors_list_valid_choices(cnn, fundus, tmp_path):
    loaded, clf = cnn
    with pytest.raises(ValueError, match="unknown finding 'cataract'.*diabetic_retinopathy.*pathologic_myopia"):
        explain(loaded, clf, fundus[0], "cataract", "gradcam")
    with pytest.raises(ValueError, match="unknown method 'lime'.*integrated_gradients.*occlusion"):
        explain(loaded, clf, fundus[0], "amd", "lime")
    with pytest.raises(ValueError, match="unknown baseline 'white'.*blurred.*black"):
        explain(loaded, clf, fundus[0], "amd", "integrated_gradients", baseline="white")
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ImageLoadError, match="broken.png"):
        explain(loaded, clf, str(bad), "amd", "gradcam")


def test_gradcam_without_supported_layer_says_so(cnn, fundus):
    loaded, clf = cnn
    i = clf.findings.index("amd")
    flat = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(32))  # no spatial feature map
    scorer = FindingScore(flat, clf.pos[i], clf.neg[i], clf.scale)
    with pytest.raises(ValueError, match="no supported layer.*integrated_gradients or occlusion"):
        gradcam_layer(scorer.tower)
    # and through explain(): a loaded open_clip model whose tower lost its stages
    trunk = loaded.model.visual.trunk
    stages = trunk.stages
    try:
        del trunk.stages
        with pytest.raises(ValueError, match="Grad-CAM.*integrated_gradients or occlusion"):
            explain(loaded, clf, fundus[0], "amd", "gradcam")
    finally:
        trunk.stages = stages


def test_saliency_cli_writes_overlay_and_reports_errors(tmp_path, fundus, capsys):
    from revision_core.cli import main

    path = tmp_path / "tiny.pt"
    _save_random("revision-tiny-cnn", path)
    img = tmp_path / "eye.png"
    fundus[0].save(img)
    out = tmp_path / "ov.png"
    args = ["saliency", str(img), "--finding", "amd", "--method", "gradcam", "--out", str(out),
            "--model", "revision-tiny-cnn", "--checkpoint", str(path), "--device", "cpu"]
    assert main(args) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert Image.open(out).size == (256, 256)
    assert main(args[:5] + ["lime"] + args[6:]) == 2
    assert "choose one of: integrated_gradients" in capsys.readouterr().err


# --------------------------------------------------------------------------- faithfulness metrics


def test_pointing_game_on_known_maps():
    mask = np.zeros((100, 100), bool)
    mask[40:50, 40:50] = True
    inside = np.zeros((100, 100))
    inside[45, 45] = 1
    outside = np.zeros((100, 100))
    outside[5, 90] = 1
    near = np.zeros((100, 100))
    near[45, 51] = 1                                   # one pixel off: inside the 2 px tolerance
    assert pointing_game(inside, mask) == 1.0
    assert pointing_game(outside, mask) == 0.0
    assert pointing_game(near, mask) == 1.0
    assert pointing_game(near, mask, tolerance=0) == 0.0


def test_energy_in_mask_on_known_maps():
    mask = np.zeros((100, 100), bool)
    mask[:, :50] = True
    assert energy_in_mask(mask.astype(float), mask, tolerance=0) == pytest.approx(1.0)
    assert energy_in_mask((~mask).astype(float), mask, tolerance=0) == pytest.approx(0.0)
    assert energy_in_mask(np.ones((100, 100)), mask, tolerance=0) == pytest.approx(0.5)
    neg = np.where(mask, -5.0, 1.0)                    # negative evidence does not count
    assert energy_in_mask(neg, mask, tolerance=0) == pytest.approx(0.0)
    assert energy_in_mask(np.zeros((100, 100)), mask) == 0.0


def test_deletion_ranks_a_faithful_order_below_random():
    """A scorer that counts bright pixels in one square: deleting that square first kills the score."""
    target = torch.zeros(1, 1, 32, 32)
    target[..., 8:16, 8:16] = 1

    def scorer(x):
        return 8 * (x[:, :1] * target).sum(dim=(1, 2, 3)) / target.sum() - 4

    pixels = torch.ones(1, 3, 32, 32)
    base = torch.zeros_like(pixels)
    rng = np.random.default_rng(0)
    good = deletion_curve(scorer, pixels, base, deletion_order(target[0, 0].numpy(), rng), steps=16)
    rand = deletion_curve(scorer, pixels, base, rng.permutation(32 * 32), steps=16)
    bad = deletion_curve(scorer, pixels, base, deletion_order(-target[0, 0].numpy(), rng), steps=16)
    assert good[0] == pytest.approx(rand[0]) and good[-1] == pytest.approx(rand[-1])
    assert good[0] == pytest.approx(4) and good[1] == pytest.approx(-4)   # the square is the first 1/16
    assert deletion_auc(good) == pytest.approx(1 / 32)                       # triangle over the first step
    assert deletion_auc(good) < deletion_auc(rand) < deletion_auc(bad)
    assert deletion_auc(np.linspace(1, 0, 11) * 8) == pytest.approx(0.5)
    assert deletion_auc(np.ones(11)) == 0.0           # a score the pixels do not change: nothing to delete


def test_evaluate_synthetic_runs_end_to_end(cnn):
    loaded, clf = cnn
    result = evaluate_synthetic(loaded, clf, 5, seed=3, methods=("gradcam", "occlusion"), size=256)
    assert set(result["methods"]) == {"gradcam", "occlusion"}
    assert set(result["per_finding"]) == {"diabetic_retinopathy", "amd", "glaucoma", "rvo", "pathologic_myopia"}
    for summary in result["methods"].values():
        assert summary["n"] == 5
        assert 0 <= summary["pointing_game"] <= 1 and 0 <= summary["energy_in_mask"] <= 1
        assert np.isfinite(summary["deletion_auc"]) and np.isfinite(summary["random_deletion_auc"])
    with pytest.raises(ValueError, match="unknown method"):
        evaluate_synthetic(loaded, clf, 1, methods=("lime",))


def test_gradcam_on_modified_resnet_uses_layer4(tmp_path, fundus):
    name = "revision-test-rn"
    cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (tmp_path / f"{name}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path)
    _save_random(name, tmp_path / "rn.pt", seed=2)
    loaded = load_model(name, tmp_path / "rn.pt", device="cpu")
    clf = ZeroShotClassifier(loaded)
    layer, undo = gradcam_layer(loaded.model.visual)
    undo()
    assert layer is loaded.model.visual.layer4
    maps = [explain(loaded, clf, fundus[0], f, "gradcam") for f in clf.findings]
    assert all(m.map.shape == (256, 256) and np.isfinite(m.map).all() for m in maps)
    assert any(m.map.max() > 0 for m in maps)


def test_fp16_model_is_attributed_in_float32_without_touching_it(cnn, fundus):
    """What happens on CUDA (fp16 weights), simulated on the CPU: a float32 copy of the tower is used."""
    import copy
    import dataclasses

    loaded, clf = cnn
    half = dataclasses.replace(loaded, model=copy.deepcopy(loaded.model).half(), dtype=torch.float16)
    sal = explain(half, clf, fundus[0], "diabetic_retinopathy", "integrated_gradients", steps=16)
    ref = explain(loaded, clf, fundus[0], "diabetic_retinopathy", "integrated_gradients", steps=16)
    assert np.isfinite(sal.raw).all()
    assert next(half.model.visual.parameters()).dtype == torch.float16
    assert np.corrcoef(sal.raw.ravel(), ref.raw.ravel())[0, 1] > 0.9   # same map up to fp16 rounding of weights


def test_saliency_check_cli_prints_the_table_as_json(tmp_path, capsys):
    from revision_core.cli import main

    path = tmp_path / "tiny.pt"
    _save_random("revision-tiny-cnn", path)
    args = ["saliency-check", "--synthetic", "2", "--methods", "gradcam", "integrated_gradients", "--steps", "4",
            "--size", "256", "--model", "revision-tiny-cnn", "--checkpoint", str(path), "--device", "cpu", "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["methods"]) == {"gradcam", "integrated_gradients"}
    assert out["methods"]["gradcam"]["n"] == 2
    assert set(out["methods"]["gradcam"]) >= {"pointing_game", "energy_in_mask", "deletion_auc", "random_deletion_auc"}
    assert set(out["per_finding"]) == {"diabetic_retinopathy", "amd"}
    assert main(args[:4] + ["lime"] + args[6:]) == 2


@pytest.mark.parametrize("method", METHODS)
def test_progress_is_reported_and_leaves_the_map_unchanged(cnn, fundus, method):
    """Every method reports its progress (fractions rising to 1.0) for the playground's progress bar, and
    counting the passes changes nothing in the map."""
    loaded, clf = cnn
    kwargs = {"steps": 4, "internal_batch_size": 2, "nt_samples": 2, "window": 32, "stride": 32}
    if method == "gradcam":
        kwargs = {}
    seen = []
    with_progress = explain(loaded, clf, fundus[0], "amd", method, progress=seen.append, **kwargs)
    plain = explain(loaded, clf, fundus[0], "amd", method, **kwargs)
    np.testing.assert_array_equal(with_progress.map, plain.map)
    assert seen[-1] == 1.0 and seen == sorted(seen) and all(0 < f <= 1 for f in seen)
    if method != "gradcam":
        assert len(seen) >= 3  # several steps, not a jump from nothing to done


def test_threads_setting_is_applied_for_the_call_only(cnn, fundus):
    import torch

    loaded, clf = cnn
    before = torch.get_num_threads()
    seen = []
    explain(loaded, clf, fundus[0], "amd", "gradcam", threads=1,
            progress=lambda f: seen.append(torch.get_num_threads()))
    assert seen[0] == 1 and torch.get_num_threads() == before


def test_describe_params_says_the_settings_in_words():
    from revision_core.saliency import describe_params, method_params

    assert describe_params("smoothgrad", method_params("smoothgrad", steps=8, nt_samples=4)) == \
        "8 steps, 4 noisy copies (noise 0.15), blurred baseline"
    assert describe_params("occlusion", method_params("occlusion", window=32, stride=32)) == \
        "32 px window, stride 32 px, blurred baseline"
    assert describe_params("gradcam", method_params("gradcam")) == ""
