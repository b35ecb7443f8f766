"""Bounded decoding of uploads (issue 20): every decode reserves its estimated memory from one budget shared by
all sessions of the server, at most so many at once; a burst waits its turn, a decode too big for the whole
budget is refused with a message, and a bad setting names itself. The memory of a real burst of 16 uploads
to a real server is measured by bench/bench_upload_burst.py."""
from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from pages._shared import load_upload_reduced
from pages._uploads import DecodeBudget, decode_estimate
from revision_core.imageio import ImageLoadError


def _png16(w: int = 1200, h: int = 900) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((np.arange(w * h, dtype=np.uint32).reshape(h, w) % 65535).astype(np.uint16)).save(buf, "PNG")
    return buf.getvalue()


def test_a_burst_of_decodes_stays_within_the_budget_and_the_concurrency():
    data = _png16()
    with Image.open(io.BytesIO(data)) as im:
        need = decode_estimate(im, len(data))
    budget = DecodeBudget(total_bytes=int(2.5 * need), concurrency=3)
    results, errors = [], []

    def upload():
        try:
            results.append(load_upload_reduced(data, "burst.png", budget=budget).size)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=upload) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 16
    assert budget.peak_active == 2  # the bytes allow two at once, though the concurrency would allow three
    assert budget.peak_in_use <= budget.total and budget.in_use == budget.active == 0


def test_a_decode_bigger_than_the_whole_budget_is_refused_saying_what_to_do():
    data = _png16()
    with pytest.raises(ImageLoadError, match=r"big\.png: decoding it would take about .* MB of memory, more than "
                                             r"this server allows for uploads \(1 MB\): upload a smaller"):
        load_upload_reduced(data, "big.png", budget=DecodeBudget(total_bytes=1_000_000))


def test_waiting_too_long_is_a_clear_message():
    budget = DecodeBudget(total_bytes=100, concurrency=1, wait_seconds=0.2)
    with budget.reserve(50):
        start = time.monotonic()
        with pytest.raises(ImageLoadError, match="The server is busy decoding other uploads: try again in a minute."):
            with budget.reserve(10):
                pass
        assert time.monotonic() - start < 5
    with budget.reserve(100):  # free again
        pass


def test_the_estimate_covers_a_16_bit_photograph_and_a_jpeg_at_reduced_size():
    data = _png16(7000, 7000)
    with Image.open(io.BytesIO(data)) as im:
        assert decode_estimate(im, len(data)) > 7000 * 7000 * 2  # 16-bit grey: 2 bytes a pixel, and more
    buf = io.BytesIO()
    Image.new("RGB", (6000, 4000), (120, 40, 20)).save(buf, "JPEG")
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        im.draft("RGB", (1024, 1024))  # what load_upload_reduced does first: the DCT decodes at 1/4
        assert decode_estimate(im, len(buf.getvalue())) < 100 * 1000 ** 2


@pytest.mark.parametrize("env, value, words", [
    ("REVISION_DECODE_BUDGET", "lots", "REVISION_DECODE_BUDGET must be a size such as"),
    ("REVISION_DECODE_CONCURRENCY", "0", "REVISION_DECODE_CONCURRENCY must be a whole number, at least 1"),
    ("REVISION_PLAYGROUND_UPLOAD_MB", "big", "REVISION_PLAYGROUND_UPLOAD_MB must be a whole number, at least 1"),
])
def test_a_bad_setting_names_itself(monkeypatch, env, value, words):
    from pages import _shared, _uploads

    monkeypatch.setattr(_uploads, "_budget", None)
    monkeypatch.setenv(env, value)
    with pytest.raises(ValueError, match=words):
        _shared.check_server_settings()
    monkeypatch.setattr(_uploads, "_budget", None)
