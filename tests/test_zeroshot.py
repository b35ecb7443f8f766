"""Zero-shot scoring: label sets from TOML, probabilities formed as documented, batched file input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from revision_core.labels import LabelSetError, available_label_sets, load_label_set
from revision_core.model import load_model
from revision_core.synthetic import generate_case
from revision_core.zeroshot import ZeroShotClassifier


@pytest.fixture(scope="module")
def classifier(tiny_cnn_checkpoint):
    return ZeroShotClassifier(load_model("revision-tiny-cnn", tiny_cnn_checkpoint, device="cpu"))


def test_builtin_label_sets_load_and_cover_the_synthetic_findings():
    assert {"revision_findings", "revision_benchmark_style"} <= set(available_label_sets())
    ls = load_label_set()
    assert ls.keys == ["diabetic_retinopathy", "amd", "glaucoma", "rvo", "pathologic_myopia"]
    assert all(f.positive and f.negative for f in ls.findings)


def test_a_new_label_set_is_just_a_toml_file(tmp_path, classifier):
    path = tmp_path / "mine.toml"
    path.write_text('name = "two findings"\n[[finding]]\nkey = "dr"\nname = "DR"\npositive = ["Diabetic retinopathy."]\n'
                    'negative = ["No DR."]\n[[finding]]\nkey = "gon"\npositive = ["Glaucoma."]\nnegative = ["No glaucoma."]\n')
    clf = ZeroShotClassifier(classifier.loaded, load_label_set(path))
    probs = clf.predict_images([Image.fromarray(generate_case(1, size=256).image)])
    assert probs.shape == (1, 2) and np.all((probs > 0) & (probs < 1))


@pytest.mark.parametrize("text, message", [
    ("name = 'x'\n", "no \\[\\[finding\\]\\] tables"),
    ("[[finding]]\nkey = 'a'\npositive = ['A.']\n", "lacks 'negative'"),
    ("[[finding]]\nkey = 'a'\npositive = ['A.']\nnegative = ['No A.']\n[[finding]]\nkey = 'a'\n"
     "positive = ['A.']\nnegative = ['No A.']\n", "appears twice"),
    ("[[finding]\n", "not valid UTF-8 TOML"),
])
def test_bad_label_sets_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(LabelSetError, match=message):
        load_label_set(path)
    with pytest.raises(LabelSetError, match="Built-in label sets"):
        load_label_set("no_such_set")


def test_probability_is_the_softmax_of_finding_against_its_negation(classifier):
    clf = classifier
    image = Image.fromarray(generate_case(3, size=256).image)
    pixels = clf.loaded.preprocess(image).unsqueeze(0)
    with torch.no_grad():
        img = F.normalize(clf.loaded.model.encode_image(pixels), dim=-1)
        finding = clf.label_set.findings[0]
        pos = F.normalize(F.normalize(clf.loaded.model.encode_text(clf.loaded.tokenizer(list(finding.positive))),
                                      dim=-1).mean(0), dim=-1)
        neg = F.normalize(F.normalize(clf.loaded.model.encode_text(clf.loaded.tokenizer(list(finding.negative))),
                                      dim=-1).mean(0), dim=-1)
        scale = clf.loaded.model.logit_scale.exp()
        expected = torch.softmax(scale * torch.stack([img[0] @ pos, img[0] @ neg]), dim=0)[0].item()
    assert clf.predict_images([image])[0, 0] == pytest.approx(expected, rel=1e-5)


def test_batched_files_match_single_images_and_report_broken_files(classifier, tmp_path):
    paths = []
    for i in range(5):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(generate_case(10 + i, size=256).image).save(p)
        paths.append(p)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    sources = paths[:2] + [broken] + paths[2:]
    result = classifier.predict_files(sources, batch_size=2)
    assert list(result.errors) == [2] and "broken.jpg" in result.errors[2]
    assert np.isnan(result.probabilities[2]).all()
    singles = classifier.predict_images([Image.open(p) for p in paths])
    ok = np.delete(result.probabilities, 2, axis=0)
    np.testing.assert_allclose(ok, singles, rtol=1e-5, atol=1e-6)
    records = result.as_records([str(s) for s in sources])
    assert "error" in records[2] and set(records[0]["probabilities"]) == set(classifier.findings)


def test_prompt_embeddings_are_cached_per_model_and_label_set(classifier):
    again = ZeroShotClassifier(classifier.loaded)
    assert again.pos is classifier.pos
