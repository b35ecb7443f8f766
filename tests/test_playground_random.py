"""Random widget actions on the public demo (issue 13): the playground and the evaluation page never raise,
whatever a visitor clicks in whatever order (leaving for another page and coming back included), and an
overlay on screen always belongs to the photograph on screen (its image's SHA-256).

The demo model, with cheap saliency settings and small evaluation sets from a settings file
(REVISION_DEMO_SETTINGS) so that the walk stays fast; real photographs from ../shared/real when present.
"""
from __future__ import annotations

import functools
import random

import pytest
from streamlit.testing.v1 import AppTest

from tests.app_helpers import rendered_text
from testsupport.app import APP, REPO_ROOT

ACTIONS = 200
REAL = REPO_ROOT.parent / "shared" / "real"
PLAYGROUND, EVALUATION, WELCOME = "pages/demo_playground.py", "pages/demo_evaluation.py", "pages/welcome.py"
SETTINGS = """
[saliency]
threads = 1
[saliency.integrated_gradients]
steps = 4
[saliency.smoothgrad]
steps = 2
nt_samples = 2
[saliency.gradcam]
[saliency.occlusion]
window = 64
stride = 64
[evaluation]
sizes = [12, 16]
default_size = 12
fewshot_train = 24
fewshot_test = 16
[gallery]
size = 256
[[gallery.synthetic]]
title = "Normal"
seed = 1_000_090_001
findings = {}
[[gallery.synthetic]]
title = "Diabetic retinopathy (moderate)"
seed = 1_000_090_002
findings = { diabetic_retinopathy = "moderate" }
[[gallery.real_source]]
glob = "idrid/*.jpg"
findings = ["diabetic_retinopathy"]
credit = "IDRiD"
[gallery.real]
longest = 512
max_files = 3
"""
# every widget of the two pages, by key (the upload widget cannot be driven by AppTest: "Upload" is chosen
# with no file, which must show no photograph and no overlay)
PLAYGROUND_WIDGETS = {"pg_source", "pg_sample", "pg_seed", "sal_finding", "sal_method", "sal_run"}
EVALUATION_WIDGETS = {"eval_n", "fewshot_on"}


@pytest.fixture(autouse=True)
def demo_settings(monkeypatch, tmp_path):
    path = tmp_path / "demo_settings.toml"
    path.write_text(SETTINGS)
    monkeypatch.setenv("REVISION_DEMO_SETTINGS", str(path))
    monkeypatch.setenv("REVISION_REAL_SAMPLES", str(REAL) if REAL.is_dir() else "")  # "" = none
    monkeypatch.setenv("REVISION_DB_URL", f"sqlite:///{tmp_path / 'none' / 'absent.sqlite'}")
    monkeypatch.setenv("REVISION_PUBLIC_DEMO", "on")
    monkeypatch.delenv("REVISION_APP_MODEL", raising=False)  # the bundled demo model
    monkeypatch.delenv("REVISION_APP_CHECKPOINT", raising=False)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the page's predictions too: two threads crawl on a busy 2-core machine
    yield path
    torch.set_num_threads(threads)


@functools.lru_cache(maxsize=64)
def _synthetic_sha(seed: int) -> str:
    from PIL import Image

    from revision_core.imageio import image_sha256
    from revision_core.synthetic import generate_case

    return image_sha256(Image.fromarray(generate_case(1_000_000_000 + seed, size=512).image))


def expected_sha(at: AppTest, gallery) -> str | None:
    """The SHA-256 of the photograph the playground shows now, worked out from its widgets."""
    source = at.radio(key="pg_source").value
    if source == "Upload":
        return None  # no file: no photograph
    if source == "Synthetic case by number":
        return _synthetic_sha(int(at.number_input(key="pg_seed").value))
    return gallery[at.selectbox(key="pg_sample").value].sha256


def _keys(at: AppTest) -> set[str]:
    present = set()
    for kind in ("radio", "selectbox", "number_input", "slider", "button", "select_slider", "toggle"):
        for w in at.get(kind):
            if getattr(w, "key", None):
                present.add(w.key)
    return present


def _act(at: AppTest, key: str, rng: random.Random, n_samples: int) -> None:
    """One visitor action on the widget ``key`` (a random new value, or a click)."""
    from revision_core.labels import load_label_set
    from revision_core.saliency import METHODS

    if key == "pg_source":
        at.radio(key=key).set_value(rng.choice(at.radio(key=key).options))
    elif key == "pg_sample":
        at.selectbox(key=key).set_value(rng.randrange(n_samples))
    elif key == "sal_finding":
        at.selectbox(key=key).set_value(rng.choice([f.key for f in load_label_set().findings]))
    elif key == "sal_method":
        at.selectbox(key=key).set_value(rng.choice(METHODS))
    elif key == "pg_seed":
        at.number_input(key=key).set_value(rng.choice([0, 1, 7, 42, rng.randrange(10_001)]))
    elif key == "sal_run":
        at.button(key=key).click()
    elif key == "eval_n":
        at.select_slider(key=key).set_value(rng.choice(at.select_slider(key=key).options))
    elif key == "fewshot_on":
        at.toggle(key=key).set_value(not at.toggle(key=key).value)
    at.run()


@pytest.mark.heavy
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_actions_never_raise_and_an_overlay_belongs_to_its_image(seed, demo_settings):
    from revision_core.samples import real_samples, synthetic_samples
    from study.storage.settings import real_samples_folder

    gallery = synthetic_samples() + real_samples(real_samples_folder())
    rng = random.Random(seed)
    at = AppTest.from_file(APP, default_timeout=180)
    at.switch_page(PLAYGROUND).run()
    page, done, overlays = PLAYGROUND, set(), 0
    for step in range(ACTIONS):
        present = _keys(at) & (PLAYGROUND_WIDGETS if page == PLAYGROUND else EVALUATION_WIDGETS)
        choices = sorted(present) + ["leave"]
        if page == PLAYGROUND and "sal_run" in present:
            choices += ["sal_run"] * 2  # Explain often: overlays are what can go stale
        if page == PLAYGROUND and "pg_seed" not in done and "pg_seed" in present:
            choices += ["pg_seed"]  # shown only for one of the three sources: drive it when it is there
        key = rng.choice(choices)
        if key == "leave":  # to another page and, on the next action, maybe back
            page = rng.choice([p for p in (PLAYGROUND, EVALUATION, WELCOME) if p != page])
            at.switch_page(page).run()
        elif page == WELCOME:
            page = rng.choice([PLAYGROUND, EVALUATION])
            at.switch_page(page).run()
        else:
            _act(at, key, rng, len(gallery))
            done.add(key)
        assert not at.exception, (step, key, at.exception)
        if page == PLAYGROUND:
            shown = at.session_state["sal_shown"] if "sal_shown" in at.session_state else None
            drawn = "saliency for" in rendered_text(at)
            assert drawn == (shown is not None), (step, key)
            if shown is not None:
                overlays += 1
                assert shown == expected_sha(at, gallery), (step, key)  # never a stale overlay
    assert done >= PLAYGROUND_WIDGETS | EVALUATION_WIDGETS, f"widgets never driven: {(PLAYGROUND_WIDGETS | EVALUATION_WIDGETS) - done}"
    assert overlays > 0


def test_the_gallery_is_the_one_the_settings_in_force_describe(demo_settings, monkeypatch):
    """One process, two settings files (as in a test session): the playground's gallery, and so the photograph an
    overlay is computed for, follows the settings in force, not the first ones the process saw (the gallery's
    cache was keyed by the real-photograph folder only; an overlay's SHA-256 then named another image than the
    test's gallery)."""
    from revision_core.samples import real_samples, synthetic_samples
    from study.storage.settings import real_samples_folder

    monkeypatch.delenv("REVISION_DEMO_SETTINGS")  # the bundled settings: six synthetic photographs at 512 px
    at = AppTest.from_file(APP, default_timeout=180)
    at.switch_page(PLAYGROUND).run()
    assert not at.exception, at.exception
    monkeypatch.setenv("REVISION_DEMO_SETTINGS", str(demo_settings))  # two at 256 px
    gallery = synthetic_samples() + real_samples(real_samples_folder())
    at = AppTest.from_file(APP, default_timeout=180)
    at.switch_page(PLAYGROUND).run()
    assert at.selectbox(key="pg_sample").options == [f"{s.kind.capitalize()}: {s.title}" for s in gallery]
    at.button(key="sal_run").click().run()
    assert not at.exception, at.exception
    assert at.session_state["sal_shown"] == gallery[0].sha256
