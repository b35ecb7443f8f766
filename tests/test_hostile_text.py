"""Hostile input outside the exports (issue 11): user-supplied names render as plain text (items 7), uploads
are decoded within a pixel budget at reduced size and the upload cap is set (6), a checkpoint the model would
ignore is an error (11), and visitors see no tracebacks (12)."""
from __future__ import annotations

import io
import re
import string
import subprocess
import sys
import textwrap
import tomllib

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from pages._shared import WORD_JOINER, load_upload_reduced, plain
from revision_core.imageio import ImageLoadError
from tests.app_helpers import make_study, rendered_text
from testsupport.app import APP, REPO_ROOT

TRACKER = "![x](http://127.0.0.1:9/track.png?reader=1)"
HOSTILE = [TRACKER, "[click](javascript:alert(1))", "<img src=http://127.0.0.1:9/a.png>", "**bold** _it_ `code`",
           "# heading", "- item", "1. item", ":red[colour] :material/home:", "$x^2$", "a\nb\r\n# two", "&lt;b&gt;",
           "back\\slash [x]: http://127.0.0.1:9", "<http://127.0.0.1:9>", "~~gone~~ | table |", "> quote"]


def commonmark_literal(markdown: str) -> str | None:
    """The text ``markdown`` shows, or None when a character in it is left unescaped that could start Markdown
    (CommonMark + GFM as Streamlit renders it): anywhere, the openers of links, images, autolinks, HTML,
    code, emphasis, strikethrough, tables, entities, LaTeX and ``:directives:`` (``[ ] < > ` * _ ~ | { } \\
    & $ : @``) and the ``.`` of ``www.``; at the start, list, heading and quote markers (``- + # > =`` and
    ``1.`` / ``1)``); line breaks anywhere. A backslash before punctuation means that character, literally."""
    out, escaped, i = [], [], 0
    while i < len(markdown):
        ch = markdown[i]
        if ch == "\\" and i + 1 < len(markdown) and markdown[i + 1] in string.punctuation:
            out.append(markdown[i + 1])
            escaped.append(True)
            i += 2
            continue
        out.append(ch)
        escaped.append(False)
        i += 1
    text = "".join(out)
    lead = len(text) - len(text.lstrip(" "))
    digits = lead
    while digits < len(text) and text[digits].isdigit():
        digits += 1
    for j, (ch, esc) in enumerate(zip(text, escaped)):
        if ch in "\r\n":
            return None
        if esc:
            continue
        if (ch in "[]<>`*_~|{}\\&$:@" or (j == lead and ch in "-+#>=") or (j == digits > lead and ch in ".)")
                or (ch == "." and text[max(0, j - 3):j].lower() == "www")):
            return None
    return text


# --- item 7: plain text ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE)
def test_plain_leaves_no_markdown_and_shows_the_text(text):
    shown = commonmark_literal(plain(text))
    assert shown is not None, plain(text)
    # line breaks become spaces (no new Markdown block); a zero-width word joiner breaks URLs and addresses,
    # which Streamlit would otherwise turn into links after parsing (GFM autolink literals)
    assert shown.replace(WORD_JOINER, "") == re.sub(r"[\r\n]", " ", text)
    assert not re.search(r"(?i)https?://|www\.|\w@\w", shown)


@pytest.mark.parametrize("text", ["Study http://evil.example/x", "see www.evil.example", "mail a@b.org",
                                  "HTTPS://X.ORG and ftp://y"])
def test_plain_breaks_every_autolink(text):
    shown = commonmark_literal(plain(text))
    assert shown.replace(WORD_JOINER, "") == text and not re.search(r"(?i)(https?|ftp)://|www\.|\w@\w", shown)


def test_the_literal_check_catches_live_markdown():
    assert commonmark_literal(TRACKER) is None and commonmark_literal("a\\[b") == "a[b"
    for live in ("- item", "1. item", "www.x.org", "see http://x.org", "a & b", "<b>", "x\nb", "$x$"):
        assert commonmark_literal(live) is None, live
    assert commonmark_literal("Age-related (AMD) 1.5") == "Age-related (AMD) 1.5"
    assert plain(None) == "" and plain("Dr Jane Doe") == "Dr Jane Doe"


def test_reader_page_shows_a_hostile_study_name_as_text(tmp_path, monkeypatch):
    url, _, codes = make_study(tmp_path, design="sequential", n_cases=2, n_readers=1, name=TRACKER)
    monkeypatch.setenv("REVISION_DB_URL", url)
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/reader_signin.py").run()
    at.text_input(key="access_code").input(codes[0])
    at.button[0 if at.button[0].label == "Sign in" else -1].click()
    at.run()
    assert at.session_state["role"] == "reader"
    at.switch_page("pages/reader_study.py").run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == [plain(TRACKER)]  # consent page
    assert commonmark_literal(at.title[0].value).replace(WORD_JOINER, "") == TRACKER
    assert "127.0.0.1:9/track.png" not in rendered_text(at)  # no unescaped URL anywhere in what was sent
    at.checkbox(key="consent_box").check().run()
    at.button(key="consent_start").click().run()
    assert not at.exception, at.exception
    heads = [m.value for m in at.markdown if "reader" in m.value and "gray[" in m.value]
    assert len(heads) == 1 and plain(TRACKER) in heads[0], heads
    sent = rendered_text(at)
    assert "127.0.0.1:9/track.png" not in sent and not re.search(r"(?<!\\)!(?<!\\)\[x(?<!\\)\]\(", sent)


# --- item 6: bounded decoding ---------------------------------------------------------------------------------


def test_a_large_jpeg_is_decoded_at_reduced_size_and_upright(tmp_path):
    arr = np.zeros((3000, 4500, 3), np.uint8)
    arr[:, :2250] = (200, 40, 40)  # left half red: tells a rotation apart
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90, exif=exif)
    img = load_upload_reduced(buf.getvalue(), "eye.jpg", longest=1024)
    assert img.mode == "RGB" and max(img.size) <= 1024 and img.size[1] > img.size[0]  # portrait after EXIF 6
    assert img.size == (1024 * 3000 // 4500, 1024) or abs(img.size[0] / img.size[1] - 3000 / 4500) < 0.01
    top, bottom = np.asarray(img)[5, img.size[0] // 2], np.asarray(img)[-5, img.size[0] // 2]
    assert top[0] > 150 and bottom[0] < 60  # the red (left) half is on top after the rotation
    assert not img.info and not img.getexif()


def test_the_pixel_budget_is_checked_before_decoding():
    buf = io.BytesIO()
    Image.fromarray(np.zeros((200, 300, 3), np.uint8)).save(buf, "PNG")
    with pytest.raises(ImageLoadError, match="eye.png"):
        load_upload_reduced(buf.getvalue(), "eye.png", max_pixels=50_000)
    assert load_upload_reduced(buf.getvalue(), "eye.png", max_pixels=60_000).size == (300, 200)
    with pytest.raises(ImageLoadError, match="notes.txt"):
        load_upload_reduced(b"not an image at all", "notes.txt")


def test_a_16_bit_7000_px_png_costs_far_less_than_a_gigabyte(tmp_path):
    """The issue's probe: a ~100 KB 16-bit 7000 x 7000 PNG added 1.0 GB to the server's peak memory."""
    path = tmp_path / "bomb16.png"
    Image.fromarray(np.full((7000, 7000), 30000, np.uint16)).save(path)
    assert path.stat().st_size < 1_000_000
    probe = textwrap.dedent(f"""
        import resource, sys
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from pages._shared import load_upload_reduced
        data = open({str(path)!r}, "rb").read()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        img = load_upload_reduced(data, "bomb16.png")
        print(img.size, img.mode, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    size, mode, peak_mb = out.stdout.strip().splitlines()[-1].rsplit(" ", 2)
    assert size == "(1000, 1000)" and mode == "RGB"  # kept at most 1024 px a side (issue 20: sessions keep it)
    assert int(peak_mb) < 300, f"peak memory grew by {peak_mb} MB"  # full decode to RGB: about 1,100 MB


# --- items 6 and 12: the server's configuration ---------------------------------------------------------------


def test_streamlit_config_caps_uploads_and_hides_error_details():
    from streamlit import config

    cfg = tomllib.loads((REPO_ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["maxUploadSize"] == 200
    assert cfg["client"]["showErrorDetails"] == "none"
    assert "none" in {o.value for o in config.ShowErrorDetailsConfigOptions}  # a value Streamlit accepts


def test_a_visitor_sees_the_generic_message_not_the_traceback(tmp_path):
    """With the project's config, an uncaught exception shows Streamlit's redacted message: no type, no
    message, no stack (the server log keeps them)."""
    from streamlit import config

    script = tmp_path / "boom.py"
    script.write_text("raise RuntimeError('secret /srv/checkout/path')\n")
    before = config.get_option("client.showErrorDetails")
    cfg = tomllib.loads((REPO_ROOT / ".streamlit" / "config.toml").read_text())
    config.set_option("client.showErrorDetails", cfg["client"]["showErrorDetails"])
    try:
        at = AppTest.from_file(str(script)).run()
    finally:
        config.set_option("client.showErrorDetails", before)
    assert len(at.exception) == 1
    exc = at.exception[0]
    assert "secret" not in exc.message and "redacted" in exc.message and not list(exc.stack_trace)
    assert "RuntimeError" not in str(exc.proto)


# --- item 11: a checkpoint the model would ignore --------------------------------------------------------------


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "revision_core", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=REPO_ROOT)


@pytest.mark.heavy
@pytest.mark.parametrize("command", [["predict", "eye.png"], ["evaluate", "--synthetic", "8"]])
def test_a_checkpoint_with_the_demo_model_is_an_error(tmp_path, command):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not weights")
    out = _cli(*command, "--model", "demo", "--checkpoint", garbage)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "--checkpoint is for an open_clip architecture; the demo model has its own weights" in out.stderr
    assert "Traceback" not in out.stderr and not out.stdout


@pytest.mark.heavy
def test_a_checkpoint_with_a_local_dir_model_is_an_error(tmp_path):
    out = _cli("predict", "eye.png", "--model", f"local-dir:{tmp_path}", "--checkpoint", tmp_path / "w.pt")
    assert out.returncode == 2 and "local-dir: model has its own weights" in out.stderr, out.stderr
