"""Every kind of upload a reader study sees becomes 8-bit RGB, or a clear ImageLoadError."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from revision_core.imageio import ImageLoadError, image_sha256, load_image, strip_to_png_bytes

# --------------------------------------------------------------------------- helpers


def _px(img, xy):
    return np.asarray(img)[xy[1], xy[0]].astype(int)


def _assert_plain_rgb(img):
    assert isinstance(img, Image.Image)
    assert img.mode == "RGB"
    assert img.info == {}
    assert len(img.getexif()) == 0


def _dicom(path, arr, pi, bits_stored=None, **extra):
    """Write a minimal secondary-capture DICOM file with pydicom."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Test^Patient"
    ds.Modality = "OP"
    if arr is not None:
        ds.set_pixel_data(arr, pi, bits_stored or arr.dtype.itemsize * 8)
    for k, v in extra.items():
        setattr(ds, k, v)
    ds.save_as(path, enforce_file_format=True)
    return path


# --------------------------------------------------------------------------- common formats


def test_jpeg_exif_orientation_6_is_rotated(tmp_path):
    im = Image.new("RGB", (40, 20), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 20, 20))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    exif[0x010F] = "CameraMaker"
    p = tmp_path / "oriented.jpg"
    im.save(p, quality=95, exif=exif)
    assert Image.open(p).getexif()[0x0112] == 6

    out = load_image(p)
    _assert_plain_rgb(out)
    assert out.size == (20, 40)  # width and height swapped
    top, bottom = _px(out, (10, 5)), _px(out, (10, 34))
    assert top[0] > 200 and top[2] < 60  # red went to the top
    assert bottom[2] > 200 and bottom[0] < 60


def test_png_from_bytes_and_filelike(tmp_path):
    im = Image.new("RGB", (8, 6), (10, 20, 30))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    a = load_image(buf.getvalue())
    b = load_image(io.BytesIO(buf.getvalue()))
    assert np.array_equal(np.asarray(a), np.asarray(im))
    assert image_sha256(a) == image_sha256(b)


def test_grayscale_and_bilevel(tmp_path):
    p = tmp_path / "gray.png"
    Image.fromarray(np.array([[0, 100], [200, 255]], np.uint8), "L").save(p)
    out = load_image(p)
    _assert_plain_rgb(out)
    assert _px(out, (1, 0)).tolist() == [100, 100, 100]
    p1 = tmp_path / "bw.png"
    Image.new("1", (4, 4), 1).save(p1)
    assert _px(load_image(p1), (0, 0)).tolist() == [255, 255, 255]


@pytest.mark.parametrize("fmt", ["TIFF", "PNG"])
def test_16bit_gray_scaled_by_depth(tmp_path, fmt):
    arr = np.array([[0, 65535], [32896, 257 * 10]], np.uint16)
    p = tmp_path / f"g16.{fmt.lower()}"
    Image.fromarray(arr).save(p, fmt)
    assert Image.open(p).mode.startswith("I")
    out = np.asarray(load_image(p))
    assert out.dtype == np.uint8
    assert out[0, 0].tolist() == [0, 0, 0]
    assert out[0, 1].tolist() == [255, 255, 255]
    assert out[1, 0].tolist() == [128, 128, 128]
    assert out[1, 1].tolist() == [10, 10, 10]  # full-depth scaling, not stretched to the range


def test_16bit_rgb_tiff(tmp_path):
    cv2 = pytest.importorskip("cv2")
    bgr = np.zeros((4, 5, 3), np.uint16)
    bgr[..., 2], bgr[..., 1], bgr[..., 0] = 65535, 32896, 0  # R, G, B
    p = tmp_path / "rgb48.tif"
    assert cv2.imwrite(str(p), bgr)
    out = np.asarray(load_image(p)).astype(int)
    assert out.shape == (4, 5, 3)
    assert np.all(np.abs(out[0, 0] - [255, 128, 0]) <= 1)


def test_cmyk_jpeg(tmp_path):
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(p, quality=95)  # red in CMYK
    assert Image.open(p).mode == "CMYK"
    out = load_image(p)
    _assert_plain_rgb(out)
    r, g, b = _px(out, (8, 8))
    assert r > 230 and g < 25 and b < 25


def test_palette_png_with_and_without_transparency(tmp_path):
    im = Image.new("P", (4, 4), 1)
    im.putpalette([0, 0, 0, 0, 200, 100] + [0] * 762)
    p = tmp_path / "pal.png"
    im.save(p)
    assert _px(load_image(p), (0, 0)).tolist() == [0, 200, 100]
    pt = tmp_path / "pal_t.png"
    im.save(pt, transparency=1)  # index 1 fully transparent -> black
    assert _px(load_image(pt), (0, 0)).tolist() == [0, 0, 0]


def test_rgba_composited_on_black(tmp_path):
    p = tmp_path / "rgba.png"
    Image.new("RGBA", (3, 3), (255, 100, 0, 128)).save(p)
    r, g, b = _px(load_image(p), (1, 1))
    assert abs(r - 128) <= 1 and abs(g - 50) <= 1 and b == 0
    p2 = tmp_path / "la.png"
    Image.new("LA", (3, 3), (200, 0)).save(p2)  # fully transparent gray
    assert _px(load_image(p2), (0, 0)).tolist() == [0, 0, 0]


def test_metadata_dropped_and_png_store(tmp_path):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("PatientName", "Doe^Jane")
    p = tmp_path / "meta.png"
    Image.new("RGB", (5, 5), (1, 2, 3)).save(p, pnginfo=info)
    assert "PatientName" in Image.open(p).info
    out = load_image(p)
    _assert_plain_rgb(out)
    data = strip_to_png_bytes(out)
    assert b"Doe^Jane" not in data and b"tEXt" not in data and b"eXIf" not in data
    back = Image.open(io.BytesIO(data))
    assert back.info.get("PatientName") is None
    assert image_sha256(back.convert("RGB")) == image_sha256(out)


def test_sha256_depends_on_pixels_only(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    Image.fromarray(arr).save(tmp_path / "a.tif", compression="tiff_lzw")
    h_png, h_tif = image_sha256(load_image(tmp_path / "a.png")), image_sha256(load_image(tmp_path / "a.tif"))
    assert h_png == h_tif and len(h_png) == 64
    arr2 = arr.copy()
    arr2[0, 0, 0] ^= 1
    assert image_sha256(Image.fromarray(arr2)) != h_png
    # same bytes, different shape -> different hash
    assert image_sha256(Image.fromarray(arr.reshape(9, 7, 3))) != h_png


# --------------------------------------------------------------------------- DICOM


def test_dicom_rgb(tmp_path):
    arr = np.zeros((6, 8, 3), np.uint8)
    arr[..., 0], arr[:, 4:, 2] = 200, 50
    out = load_image(_dicom(tmp_path / "rgb.dcm", arr, "RGB"))
    _assert_plain_rgb(out)
    assert np.array_equal(np.asarray(out), arr)


def test_dicom_monochrome2_16bit(tmp_path):
    arr = np.array([[0, 4095], [2048, 1000]], np.uint16)
    out = np.asarray(load_image(_dicom(tmp_path / "m2.dcm", arr, "MONOCHROME2", bits_stored=12)))
    assert out[0, 0].tolist() == [0, 0, 0] and out[0, 1].tolist() == [255, 255, 255]
    assert out[1, 0, 0] == round(2048 * 255 / 4095)
    assert out[1, 1, 0] == round(1000 * 255 / 4095)


def test_dicom_monochrome1_inverted(tmp_path):
    arr = np.array([[0, 255]], np.uint8)
    out = np.asarray(load_image(_dicom(tmp_path / "m1.dcm", arr, "MONOCHROME1")))
    assert out[0, 0, 0] == 255 and out[0, 1, 0] == 0


def test_dicom_ybr_full_converted(tmp_path):
    from pydicom.pixels import convert_color_space

    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 220, 40, 90
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    assert not np.allclose(ybr, rgb, atol=10)
    out = np.asarray(load_image(_dicom(tmp_path / "ybr.dcm", ybr, "YBR_FULL"))).astype(int)
    assert np.all(np.abs(out - rgb) <= 2)


def test_dicom_jpeg_baseline_ybr_full_422(tmp_path):
    """The common camera export: JPEG-compressed YBR_FULL_422, decoded by pydicom's Pillow plugin."""
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 30, 160, 220
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=95, subsampling=1)  # 4:2:2
    p = _dicom(tmp_path / "jpg.dcm", rgb, "RGB")
    ds = pydicom.dcmread(p)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.save_as(p, enforce_file_format=True)
    out = np.asarray(load_image(p)).astype(int)
    assert out.shape == (16, 16, 3)
    assert np.all(np.abs(out - rgb) <= 4)


def test_dicom_multiframe_first_frame(tmp_path):
    frames = np.zeros((3, 4, 4), np.uint8)
    frames[0], frames[1] = 10, 200
    out = np.asarray(load_image(_dicom(tmp_path / "mf.dcm", frames, "MONOCHROME2")))
    assert out.shape == (4, 4, 3) and out[0, 0, 0] == 10


def test_dicom_without_pixels(tmp_path):
    p = _dicom(tmp_path / "sr.dcm", None, None)
    with pytest.raises(ImageLoadError, match="without an image"):
        load_image(p)


def test_dicom_compressed_without_plugin(tmp_path):
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLSLossless

    p = _dicom(tmp_path / "jls.dcm", np.zeros((4, 4), np.uint8), "MONOCHROME2")
    ds = pydicom.dcmread(p)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7" + b"\x00" * 20])
    ds["PixelData"].VR = "OB"
    ds.save_as(p, enforce_file_format=True)
    with pytest.raises(ImageLoadError) as err:
        load_image(p)
    msg = str(err.value)
    assert "jls.dcm" in msg and "JPEG-LS" in msg and "no decoder" in msg
    assert "pylibjpeg" in msg and "PNG" in msg


def test_dicom_truncated_pixels(tmp_path):
    p = _dicom(tmp_path / "cut.dcm", np.full((64, 64), 7, np.uint16), "MONOCHROME2", bits_stored=16)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 4000])
    with pytest.raises(ImageLoadError, match="cut.dcm"):
        load_image(p)


def test_dicom_pixel_limit_checked(tmp_path):
    p = _dicom(tmp_path / "big.dcm", np.zeros((100, 100), np.uint8), "MONOCHROME2")
    with pytest.raises(ImageLoadError, match="more than the limit"):
        load_image(p, max_pixels=5000)


# --------------------------------------------------------------------------- failures


def test_truncated_jpeg(tmp_path):
    arr = np.random.default_rng(1).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    full = tmp_path / "full.jpg"
    Image.fromarray(arr).save(full, quality=90)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(ImageLoadError) as err:
        load_image(cut)
    msg = str(err.value)
    assert "cut.jpg" in msg and "truncated" in msg and "PNG or JPEG" in msg
    assert "Traceback" not in msg


def test_text_file(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("this is not an image\n" * 10)
    with pytest.raises(ImageLoadError, match=r"notes\.txt.*not a recognised image.*PNG or JPEG"):
        load_image(p)


def test_empty_and_missing(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    with pytest.raises(ImageLoadError, match=r"empty\.png.*empty"):
        load_image(p)
    with pytest.raises(ImageLoadError, match="not found"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageLoadError, match="upload.jpg"):
        load_image(b"", name="upload.jpg")
    assert issubclass(ImageLoadError, ValueError)


def _png_with_header(width, height):
    """A PNG whose IHDR declares the given size, with almost no pixel data."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) \
        + chunk(b"IEND", b"")


def test_decompression_bomb_checked_before_decoding(tmp_path):
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_with_header(3000, 2000))  # 6 Mpx declared, pixel data missing
    # with the limit it fails on size (a decode would have failed with "truncated" instead)
    with pytest.raises(ImageLoadError, match=r"bomb\.png.*6,000,000 pixels.*limit of 1,000,000"):
        load_image(p, max_pixels=1_000_000)
    with pytest.raises(ImageLoadError, match="truncated|damaged|decoded"):
        load_image(p)  # under the default limit it is attempted, and is incomplete
    huge = tmp_path / "huge.png"
    huge.write_bytes(_png_with_header(100_000, 100_000))
    with pytest.raises(ImageLoadError, match="pixels"):
        load_image(huge)


def test_text_mode_stream_is_explained(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("abc")
    with open(p) as fh, pytest.raises(ImageLoadError, match="binary mode"):
        load_image(fh)


# --------------------------------------------------------------------------- the study store's encoding

from PIL import ImageOps  # noqa: E402

from revision_core.imageio import (  # noqa: E402
    OrientedFile, apply_orientation, encode_for_store, screen_jpeg, strip_jpeg_metadata)

XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description>PATIENT-XMP</rdf:Description></x:xmpmeta>'
ICC = b"\x00\x00\x02\x0cfake-icc-profile PATIENT-ICC" + b"\x00" * 64


def jpeg_markers(data: bytes) -> list[int]:
    """Every marker of a JPEG in order (a separate walker from the one under test)."""
    assert data[:2] == b"\xff\xd8"
    out, pos = [0xD8], 2
    while True:
        while data[pos + 1] == 0xFF:
            pos += 1
        marker = data[pos + 1]
        out.append(marker)
        if marker == 0xD9:
            return out
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker == 0xDA:  # skip entropy-coded data to the next real marker
            while not (data[pos] == 0xFF and data[pos + 1] not in (0x00, *range(0xD0, 0xD8))):
                pos += 1


def _noise(size=(48, 32), mode="RGB", seed=0):
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    im = Image.fromarray(arr)
    return im.convert(mode) if mode != "RGB" else im


def _with_app13(data: bytes) -> bytes:
    """Insert an IPTC (APP13) segment after SOI, as photo tools do."""
    payload = b"Photoshop 3.0\x00PATIENT-IPTC"
    return data[:2] + b"\xff\xed" + (len(payload) + 2).to_bytes(2, "big") + payload + data[2:]


def _metadata_jpeg(path, orientation=None, mode="RGB", **save):
    exif = Image.Exif()
    exif[0x010E] = "PATIENT-EXIF"
    if orientation:
        exif[0x0112] = orientation
    buf = io.BytesIO()
    _noise(mode=mode).save(buf, "JPEG", quality=90, exif=exif, icc_profile=ICC, comment=b"PATIENT-COM", xmp=XMP,
                           **save)
    path.write_bytes(_with_app13(buf.getvalue()))
    return path


def _assert_no_metadata(data: bytes):
    for secret in (b"PATIENT", b"Exif\x00", b"ICC_PROFILE", b"http://ns.adobe.com/xap", b"Photoshop"):
        assert secret not in data
    assert not set(jpeg_markers(data)) & (set(range(0xE1, 0xEE)) | {0xEF, 0xFE})


@pytest.mark.parametrize("save", [{}, {"progressive": True}, {"restart_marker_blocks": 2}],
                         ids=["baseline", "progressive", "restart-markers"])
def test_strip_jpeg_metadata_keeps_pixels_and_drops_every_metadata_segment(tmp_path, save):
    p = _metadata_jpeg(tmp_path / "m.jpg", **save)
    data = p.read_bytes()
    assert {0xE1, 0xE2, 0xED, 0xFE} <= set(jpeg_markers(data))  # the source really has EXIF/XMP, ICC, IPTC, COM
    out = strip_jpeg_metadata(data)
    _assert_no_metadata(out)
    assert np.array_equal(np.asarray(load_image(out)), np.asarray(load_image(p)))
    assert strip_jpeg_metadata(out) == out  # idempotent


@pytest.mark.parametrize("orientation", range(1, 9))
def test_store_encoding_round_trips_every_orientation(tmp_path, orientation):
    p = _metadata_jpeg(tmp_path / f"o{orientation}.jpg", orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(p)).convert("RGB"))
    assert np.array_equal(np.asarray(load_image(p)), expected)
    enc = encode_for_store(p)
    assert (enc.suffix, enc.orientation, enc.browser_ready) == (".jpg", orientation, orientation == 1)
    _assert_no_metadata(enc.data)
    stored = tmp_path / "stored.jpg"
    stored.write_bytes(enc.data)
    back = load_image(OrientedFile(stored, orientation))
    _assert_plain_rgb(back)
    assert np.array_equal(np.asarray(back), expected) and np.array_equal(np.asarray(enc.image), expected)
    assert np.array_equal(np.asarray(apply_orientation(load_image(enc.data), orientation)), expected)


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_store_encoding_greyscale_and_cmyk_jpeg_kept_as_jpeg(tmp_path, mode):
    p = _metadata_jpeg(tmp_path / f"{mode}.jpg", 6, mode=mode)
    assert Image.open(p).mode == mode
    enc = encode_for_store(p)
    assert enc.suffix == ".jpg" and enc.orientation == 6
    assert enc.browser_ready is False  # rotated (and a browser's CMYK colours differ)
    _assert_no_metadata(enc.data)
    assert Image.open(io.BytesIO(enc.data)).mode == mode
    assert np.array_equal(np.asarray(apply_orientation(load_image(enc.data), 6)), np.asarray(load_image(p)))


def test_store_encoding_of_png_is_todays_metadata_free_png(tmp_path):
    p = tmp_path / "a.png"
    _noise().save(p)
    enc = encode_for_store(p)
    assert (enc.suffix, enc.orientation, enc.browser_ready) == (".png", 1, False)
    assert enc.data == strip_to_png_bytes(load_image(p))


@pytest.mark.parametrize("damage", ["no-soi", "truncated-scan", "bad-length", "no-frame", "odd-marker"])
def test_strip_jpeg_metadata_refuses_malformed_input(damage):
    buf = io.BytesIO()
    _noise().save(buf, "JPEG")
    data = buf.getvalue()
    sof = data.index(b"\xff\xc0")
    bad = {"no-soi": data[2:],
           "truncated-scan": data[:-40],
           "bad-length": data[:sof + 2] + b"\xff\xff" + data[sof + 4:],
           "no-frame": data[:sof] + data[sof + 2 + int.from_bytes(data[sof + 2:sof + 4], "big"):],
           "odd-marker": data[:2] + b"\xff\xf7\x00\x04ab" + data[2:]}[damage]
    with pytest.raises(ImageLoadError):
        strip_jpeg_metadata(bad)


def test_screen_jpeg_longest_side_and_never_enlarged():
    big = Image.new("RGB", (3000, 1000), (200, 10, 10))
    small = Image.new("RGB", (300, 200), (10, 200, 10))
    out = Image.open(io.BytesIO(screen_jpeg(big)))
    assert out.size == (2048, 683) and out.format == "JPEG" and "exif" not in out.info
    assert Image.open(io.BytesIO(screen_jpeg(small))).size == (300, 200)
    tall = Image.open(io.BytesIO(screen_jpeg(Image.new("RGB", (1000, 2500)))))
    assert tall.size == (819, 2048)


def test_reduced_decoding_reserves_with_the_drafted_header_and_turns_upright():
    """load_image_reduced hands its caller the JPEG header after DCT drafting (so a memory budget sees the
    reduced size, not the full one), applies EXIF orientation, and keeps no metadata."""
    from contextlib import nullcontext

    from revision_core.imageio import load_image_reduced

    img = Image.new("RGB", (2000, 1000), (200, 40, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view: the upright image is portrait
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes())
    seen = []
    out = load_image_reduced(buf.getvalue(), longest=256, name="eye.jpg",
                             reserve=lambda header: seen.append(header.size) or nullcontext())
    assert seen and seen[0] == (1000, 500)  # drafted by the DCT (to the smallest scale keeping 256 px a side)
    assert out.mode == "RGB" and max(out.size) <= 256 and out.size[1] > out.size[0] and not out.info
    with pytest.raises(ImageLoadError, match="notes.txt"):
        load_image_reduced(b"not an image", longest=256, name="notes.txt")
