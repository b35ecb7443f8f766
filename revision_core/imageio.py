"""Robust image input: any uploaded fundus/OCT photograph becomes a plain 8-bit RGB PIL image.

Uploads in a reader study come from many cameras and export tools. Every failure (empty,
truncated, not an image, compressed DICOM without a decoder, decompression bomb) becomes an
ImageLoadError that names the file, says what is wrong and what to do, so the UI can show it
instead of a traceback. Metadata (EXIF, ICC, text chunks, DICOM header) is dropped so that no
patient information travels further than this function.

For a study's image store, :func:`encode_for_store` decodes an upload once and returns what to keep:
a JPEG's own compressed data with every metadata segment removed (:func:`strip_jpeg_metadata`; no
re-encoding, so the pixels stay exactly load_image's and the size stays the source's) plus the EXIF
orientation to apply after decoding it (:class:`OrientedFile`), or else a metadata-free PNG.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

__all__ = ["ImageLoadError", "OrientedFile", "StoreEncoding", "apply_orientation", "browser_ready",
           "encode_for_store", "image_sha256", "jpeg_bytes", "load_image", "load_image_reduced", "screen_jpeg", "strip_jpeg_metadata",
           "strip_to_png_bytes"]


@dataclass(frozen=True)
class OrientedFile:
    """A stored file whose decoded pixels must still be turned by its recorded EXIF orientation (1-8),
    because the file itself no longer carries EXIF; :func:`load_image` accepts it like a path."""
    path: Path
    orientation: int = 1


Source = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO, OrientedFile]

# EXIF orientation -> the transpose that shows the image upright (as ImageOps.exif_transpose does)
TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

REEXPORT = "Re-export the image as PNG or JPEG and upload it again."


class ImageLoadError(ValueError):
    """An image could not be read; the message is meant to be shown to the user as is."""


# --------------------------------------------------------------------------- reading bytes


def _read_source(source: Source, name: str | None) -> tuple[bytes, str]:
    """Return the raw bytes and a display name for messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), name or "uploaded image"
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = name or str(path)
        if not path.exists():
            raise ImageLoadError(f"{label}: file not found.")
        if not path.is_file():
            raise ImageLoadError(f"{label}: is not a file.")
        try:
            return path.read_bytes(), label
        except OSError as exc:
            raise ImageLoadError(f"{label}: could not be read ({exc.strerror or exc}).") from None
    if hasattr(source, "read"):
        label = name or str(getattr(source, "name", "") or "uploaded image")
        try:
            data = source.read()
        except Exception as exc:  # noqa: BLE001 - any stream failure is a load failure
            raise ImageLoadError(f"{label}: could not be read ({exc}).") from None
        if isinstance(data, str):
            raise ImageLoadError(f"{label}: was opened in text mode; open it in binary mode ('rb').")
        return bytes(data), label
    raise TypeError(f"source must be a path, bytes or a binary file-like object, not {type(source)!r}")


def _check_pixels(width: int, height: int, max_pixels: int, label: str) -> None:
    if width <= 0 or height <= 0:
        raise ImageLoadError(f"{label}: declares an empty image ({width} x {height} pixels). {REEXPORT}")
    if width * height > max_pixels:
        raise ImageLoadError(
            f"{label}: declares {width} x {height} = {width * height:,} pixels, more than the limit "
            f"of {max_pixels:,} (a protection against decompression bombs). Downscale the image "
            f"before uploading, or raise max_pixels if the image is genuine."
        )


# --------------------------------------------------------------------------- pixel conversion


def _scale_to_uint8(arr: np.ndarray, bits: int | None) -> np.ndarray:
    """Scale integer data by its declared bit depth (so brightness is kept); floats by their range."""
    a = np.asarray(arr)
    if a.dtype == np.uint8:
        return a
    if bits is not None and np.issubdtype(a.dtype, np.integer):
        top = float(2**bits - 1)
        return np.clip(np.rint(a.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)
    a = a.astype(np.float64)
    lo, hi = float(np.min(a)), float(np.max(a))
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    return np.clip(np.rint((a - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def _composite_on_black(im: Image.Image) -> Image.Image:
    rgba = im.convert("RGBA")
    out = Image.new("RGB", rgba.size, (0, 0, 0))
    out.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
    return out


def _to_rgb8(im: Image.Image, label: str) -> Image.Image:
    """Any PIL mode to 8-bit RGB: alpha composited on black, 16-bit scaled by its depth."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        return _composite_on_black(im)
    if mode == "P":
        if "transparency" in im.info:
            return _composite_on_black(im)
        return im.convert("RGB")
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(im)
        if mode == "I" and (arr.min() < 0 or arr.max() > 65535):
            g = _scale_to_uint8(arr.astype(np.float64), None)
        else:
            g = _scale_to_uint8(arr.astype(np.uint32), 16)
        return Image.fromarray(g, "L").convert("RGB")
    if mode == "F":
        return Image.fromarray(_scale_to_uint8(np.asarray(im), None), "L").convert("RGB")
    try:
        return im.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    except (ValueError, OSError) as exc:
        raise ImageLoadError(f"{label}: uses colour mode {mode!r}, which cannot be converted to RGB "
                             f"({exc}). {REEXPORT}") from None


def _fresh(im: Image.Image) -> Image.Image:
    """A plain copy of the pixels with empty info, so no EXIF/ICC/text metadata can leak through
    (one copy: a full-size photograph is 30 MB, and decoding is what an import pays for)."""
    out = im.copy()
    out.info = {}
    return out


def apply_orientation(img: Image.Image, orientation: int) -> Image.Image:
    """Turn decoded pixels upright for an EXIF orientation (1-8; anything else leaves them as they are)."""
    method = TRANSPOSE.get(orientation)
    return img if method is None else img.transpose(method)


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation exif_transpose would apply (EXIF, or XMP where EXIF has none); 1 if none."""
    value = im.getexif().get(ExifTags.Base.Orientation, 1)
    return value if isinstance(value, int) and value in TRANSPOSE else 1


# --------------------------------------------------------------------------- PIL formats


def _decode_pil(data: bytes, label: str, max_pixels: int) -> tuple[Image.Image, int]:
    """The first frame decoded as stored (not yet upright) and its EXIF orientation."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError:
        raise ImageLoadError(
            f"{label}: declares far more pixels than allowed (a protection against decompression "
            f"bombs). Downscale the image before uploading."
        ) from None
    except UnidentifiedImageError:
        raise ImageLoadError(
            f"{label}: is not a recognised image (expected JPEG, PNG, TIFF or DICOM). "
            f"{REEXPORT}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - malformed headers raise many types
        raise ImageLoadError(f"{label}: has a damaged header and cannot be read ({exc}). "
                             f"{REEXPORT}") from None
    _check_pixels(im.size[0], im.size[1], max_pixels, label)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im.seek(0)  # first frame/page of a multi-page TIFF or animation
            im.load()
            orientation = _orientation(im)
    except Image.DecompressionBombError:
        raise ImageLoadError(f"{label}: exceeds the decompression-bomb pixel limit.") from None
    except Exception as exc:  # noqa: BLE001 - truncated data raises OSError, SyntaxError, ...
        text = str(exc)
        what = "is truncated or damaged" if ("truncated" in text or "broken" in text) else \
            "could not be decoded"
        raise ImageLoadError(f"{label}: {what} ({text}). The upload may be incomplete. "
                             f"{REEXPORT}") from None
    return im, orientation


# --------------------------------------------------------------------------- DICOM


def _is_dicom(data: bytes) -> bool:
    return len(data) >= 132 and data[128:132] == b"DICM"


def _load_dicom(data: bytes, label: str, max_pixels: int) -> Image.Image:
    import pydicom
    from pydicom.pixels import apply_color_lut, pixel_array

    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - InvalidDicomError, short reads, bad VRs
        raise ImageLoadError(f"{label}: is a damaged DICOM file ({exc}). {REEXPORT}") from None
    if "PixelData" not in ds:
        raise ImageLoadError(
            f"{label}: is a DICOM file without an image (e.g. a report or structured document). "
            f"Export the photograph itself."
        )
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError):
        raise ImageLoadError(f"{label}: DICOM image lacks Rows/Columns. {REEXPORT}") from None
    _check_pixels(cols, rows, max_pixels, label)
    meta = getattr(ds, "file_meta", None)
    tsyntax = meta.get("TransferSyntaxUID") if meta is not None else None
    try:
        arr = pixel_array(ds, index=0 if int(ds.get("NumberOfFrames", 1) or 1) > 1 else None)
    except (RuntimeError, NotImplementedError) as exc:
        ts_name = getattr(tsyntax, "name", str(tsyntax))
        raise ImageLoadError(
            f"{label}: DICOM pixel data are compressed as {ts_name} ({tsyntax}), and no decoder "
            f"for it is installed. Ask the administrator to install pylibjpeg with "
            f"pylibjpeg-libjpeg / pylibjpeg-openjpeg (or python-gdcm), or export the image "
            f"uncompressed or as PNG/JPEG. (detail: {str(exc).splitlines()[0]})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - pixel data shorter than declared, etc.
        raise ImageLoadError(f"{label}: DICOM pixel data could not be decoded ({exc}). "
                             f"{REEXPORT}") from None

    pi = str(ds.get("PhotometricInterpretation", "")).upper()
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 8)) or 8)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    if signed:
        arr = arr.astype(np.int64) + 2 ** (bits - 1)  # shift to unsigned range, keeping order
    if pi == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
        lut_bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
        rgb = _scale_to_uint8(arr, lut_bits)
    elif pi in ("MONOCHROME1", "MONOCHROME2"):
        if arr.ndim != 2:
            raise ImageLoadError(f"{label}: unexpected monochrome pixel shape {arr.shape}.")
        g = _scale_to_uint8(arr, bits)
        if pi == "MONOCHROME1":  # MONOCHROME1: low values are white
            g = 255 - g
        rgb = np.repeat(g[:, :, None], 3, axis=2)
    elif pi in ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"):
        # pydicom converts YBR_FULL / YBR_FULL_422 to RGB by default (as_rgb=True); the
        # JPEG 2000 ICT/RCT variants are RGB after decoding.
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise ImageLoadError(f"{label}: unexpected colour pixel shape {arr.shape}.")
        rgb = _scale_to_uint8(arr, bits)
    else:
        raise ImageLoadError(f"{label}: DICOM photometric interpretation {pi or '(missing)'} is "
                             f"not supported. {REEXPORT}")
    return Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")


# --------------------------------------------------------------------------- public API


def load_image(source: Source, *, max_pixels: int = 50_000_000, name: str | None = None) -> Image.Image:
    """Decode a path, bytes or binary file-like to a metadata-free 8-bit RGB image.

    JPEG, PNG, TIFF (first page, 8/16-bit) and DICOM are read; EXIF orientation is applied; the
    pixel count is checked against max_pixels from the header before any pixels are decoded.
    `name` labels the file in error messages (e.g. an upload's original filename).
    Raises ImageLoadError (a ValueError) with a user-facing message for every unreadable input.
    """
    if isinstance(source, OrientedFile):
        return apply_orientation(load_image(source.path, max_pixels=max_pixels, name=name), source.orientation)
    return _decode(source, max_pixels, name)[0]


def load_image_reduced(data: bytes, *, longest: int, max_pixels: int = 50_000_000, name: str | None = None,
                       reserve: Callable[[Image.Image | None], contextlib.AbstractContextManager] | None = None
                       ) -> Image.Image:
    """Decode ``data`` to a metadata-free 8-bit RGB image whose longest side is at most ``longest``, without
    holding the full-size RGB pixels where the format allows it (a public upload: the server is one process).

    The pixel count is checked from the header before any pixels are decoded (``max_pixels``, the same
    message as :func:`load_image`). A JPEG is decoded at reduced size by the DCT itself (PIL ``draft``: 1/2,
    1/4 or 1/8 scale). PNG and TIFF are decoded once in their stored mode (16-bit stays 2 bytes a pixel),
    shrunk in that mode (``Image.reduce``, or a box filter for 16-bit grey), and only the small result is
    converted to RGB. DICOM, and anything PIL cannot open, goes through :func:`load_image` and is then shrunk.
    EXIF orientation is applied. ``reserve(header)`` (the PIL image opened from the header, ``None`` when it
    could not be opened or is too large) returns a context manager held while the pixels are decoded: the
    caller's memory budget. Raises :class:`ImageLoadError` with a user-facing message.
    """
    reserve = reserve or (lambda _header: contextlib.nullcontext())
    label = name or "upload"

    def shrunk(img: Image.Image) -> Image.Image:
        if max(img.size) > longest:
            img = img.copy()
            img.thumbnail((longest, longest), Image.Resampling.LANCZOS)
        img.info = {}
        return img

    header = None
    if not _is_dicom(data):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                header = Image.open(io.BytesIO(data))  # the header only
        except Exception:  # noqa: BLE001 - load_image below gives the user-facing message
            header = None
    if header is None or header.size[0] * header.size[1] > max_pixels:
        with reserve(None):  # refuses, or the DICOM path
            return shrunk(load_image(data, max_pixels=max_pixels, name=name))
    if header.format == "JPEG":
        header.draft(header.mode, (longest, longest))  # DCT scaling only; the mode stays (and the size shrinks)
    with reserve(header):
        im = header
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im.seek(0)
                im.load()
                orientation = _orientation(im)
        except Exception:  # noqa: BLE001 - truncated or damaged: load_image explains it
            return shrunk(load_image(data, max_pixels=max_pixels, name=name))
        factor = math.ceil(max(im.size) / longest)
        if factor > 1:
            size = (max(1, im.size[0] // factor), max(1, im.size[1] // factor))
            try:
                im = im.reduce(factor)
            except (ValueError, NotImplementedError):  # e.g. 16-bit grey (I;16): box-average in the stored mode
                try:
                    im = im.resize(size, Image.Resampling.BOX)
                except (ValueError, NotImplementedError):  # any other mode: convert at full size, then shrink
                    im = _to_rgb8(im, label).reduce(factor)
        return shrunk(_fresh(_to_rgb8(apply_orientation(im, orientation), label)))


def _decode(source: Source, max_pixels: int, name: str | None
            ) -> tuple[Image.Image, bytes, Image.Image | None, int]:
    """(load_image's upright RGB image, the source bytes, the PIL image as decoded (None for DICOM), its
    EXIF orientation)."""
    if max_pixels <= 0:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    data, label = _read_source(source, name)
    if not data:
        raise ImageLoadError(f"{label}: the file is empty (0 bytes); the upload may have failed. "
                             f"Upload the file again.")
    if _is_dicom(data):
        return _fresh(_load_dicom(data, label, max_pixels)), data, None, 1
    im, orientation = _decode_pil(data, label, max_pixels)
    return _fresh(_to_rgb8(apply_orientation(im, orientation), label)), data, im, orientation


def image_sha256(img: Image.Image) -> str:
    """Hex SHA-256 of the decoded pixels (with mode and size), independent of file encoding."""
    h = hashlib.sha256()
    h.update(f"{img.mode}:{img.size[0]}x{img.size[1]}:".encode())
    h.update(img.tobytes())
    return h.hexdigest()


def strip_to_png_bytes(img: Image.Image) -> bytes:
    """Lossless PNG of the pixels only (no EXIF, ICC or text chunks), for the study's image store."""
    fresh = Image.frombytes(img.mode, img.size, img.tobytes())
    buf = io.BytesIO()
    fresh.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


# --------------------------------------------------------------------------- the study's image store

# Markers a decoder needs: SOF0-15 (C0-CF except C4 DHT, C8 reserved, CC DAC), DHT, DAC, DQT, DNL, DRI,
# DHP, EXP. APP0 (JFIF) and APP14 (Adobe) decide the colour transform, so a minimal copy of each is kept.
_KEEP = {m for m in range(0xC0, 0xD0) if m != 0xC8} | {0xDB, 0xDC, 0xDD, 0xDE, 0xDF}
_DROP = set(range(0xE1, 0xEE)) | {0xEF, 0xFE}  # APP1-13, APP15 (EXIF, XMP, ICC, IPTC, ...), COM
_SOI, _EOI, _SOS, _APP0, _APP14 = 0xD8, 0xD9, 0xDA, 0xE0, 0xEE


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload


def _scan_end(data: bytes, pos: int) -> int:
    """Index of the first marker after entropy-coded data starting at ``pos`` (stuffed 00 and RSTn skipped)."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            raise ImageLoadError("JPEG: the scan data end without an end-of-image marker (truncated file).")
        nxt = data[pos + 1]
        if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
            pos += 2
        elif nxt == 0xFF:
            pos += 1  # fill byte before a marker
        else:
            return pos


def strip_jpeg_metadata(data: bytes) -> bytes:
    """The JPEG with every metadata segment removed and its compressed image data untouched.

    Kept: SOI, the JFIF header (without thumbnail), Adobe APP14's colour-transform flag, DQT, SOFn, DHT,
    DAC, DRI, DNL, every SOS with its scan data, EOI; anything after EOI (e.g. MPO's other pictures) is
    dropped. Removed: APP1-APP13 and APP15 (EXIF, XMP, ICC, IPTC, MPF, ...), COM, other APP0 and APP14
    segments. A decoder reads the result to exactly the same pixels. Malformed or unexpected input raises
    ImageLoadError rather than guessing.
    """
    data = bytes(data)
    if data[:2] != b"\xff\xd8":
        raise ImageLoadError("JPEG: does not start with the start-of-image marker.")
    out = [b"\xff\xd8"]
    pos, frame, scans = 2, False, 0
    while True:
        if pos + 1 >= len(data) or data[pos] != 0xFF:
            raise ImageLoadError(f"JPEG: expected a marker at byte {pos} (truncated or damaged file).")
        while pos + 1 < len(data) and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes
        if pos + 1 >= len(data):
            raise ImageLoadError("JPEG: ends inside a marker (truncated file).")
        marker = data[pos + 1]
        if marker == _EOI:
            if not (frame and scans):
                raise ImageLoadError("JPEG: ends before any image data.")
            out.append(b"\xff\xd9")
            return b"".join(out)
        if pos + 4 > len(data):
            raise ImageLoadError("JPEG: ends inside a segment header (truncated file).")
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        end = pos + 2 + length
        if length < 2 or end > len(data):
            raise ImageLoadError(f"JPEG: segment 0xFF{marker:02X} at byte {pos} has a bad length {length}.")
        payload = data[pos + 4:end]
        if marker == _SOS:
            if not frame:
                raise ImageLoadError("JPEG: scan data before the frame header.")
            scan_end = _scan_end(data, end)
            out.append(data[pos:scan_end])
            scans += 1
            pos = scan_end
            continue
        if marker in _KEEP:
            frame = frame or (0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xCC))
            out.append(data[pos:end])
        elif marker == _APP0 and payload[:5] == b"JFIF\x00" and len(payload) >= 14:
            out.append(_segment(_APP0, payload[:12] + b"\x00\x00"))  # no thumbnail
        elif marker == _APP14 and payload[:5] == b"Adobe" and len(payload) >= 12:
            out.append(_segment(_APP14, payload[:12]))
        elif marker not in _DROP and marker not in (_APP0, _APP14):
            raise ImageLoadError(f"JPEG: unexpected marker 0xFF{marker:02X} at byte {pos}.")
        pos = end


@dataclass(frozen=True)
class StoreEncoding:
    """What a study keeps of one image: the bytes to store and how to show them.

    ``data`` is a metadata-free JPEG (``suffix`` ".jpg") or PNG (".png"); decoding it and applying
    ``orientation`` gives ``image``, which is exactly :func:`load_image`'s result. ``browser_ready``:
    a browser shows ``data`` as is with those pixels (an upright greyscale or colour JPEG)."""
    data: bytes
    suffix: str
    orientation: int
    image: Image.Image
    browser_ready: bool


def encode_for_store(source: Source, *, max_pixels: int = 50_000_000, name: str | None = None) -> StoreEncoding:
    """Decode ``source`` once (errors as :func:`load_image`) and choose the stored form: a JPEG keeps its
    own compressed data minus metadata (no second lossy encoding, about the source's size); other
    formats, or a JPEG the segment parser refuses, become a metadata-free PNG of the pixels."""
    image, data, decoded, orientation = _decode(source, max_pixels, name)
    if decoded is not None and decoded.format in ("JPEG", "MPO") and decoded.mode in ("L", "RGB", "CMYK"):
        try:
            stripped = strip_jpeg_metadata(data)
        except ImageLoadError:
            pass
        else:
            return StoreEncoding(stripped, ".jpg", orientation, image, orientation == 1 and decoded.mode != "CMYK")
    return StoreEncoding(strip_to_png_bytes(image), ".png", 1, image, False)


def browser_ready(path: str | os.PathLike) -> bool:
    """Whether a stored file (no EXIF) is a greyscale or colour JPEG, which a browser shows as load_image
    decodes it (a CMYK JPEG's colours depend on the browser)."""
    try:
        with Image.open(path) as im:
            return im.format == "JPEG" and im.mode in ("L", "RGB")
    except (OSError, ValueError, SyntaxError):
        return False


def jpeg_bytes(img: Image.Image, quality: int = 95) -> bytes:
    """A baseline JPEG of the pixels only (PIL writes no EXIF, XMP or ICC for an image with empty info)."""
    plain = _fresh(img if img.mode == "RGB" else img.convert("RGB")) if img.info or img.mode != "RGB" else img
    buf = io.BytesIO()
    plain.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def screen_jpeg(img: Image.Image, longest: int = 2048, quality: int = 90) -> bytes:
    """A screen-size JPEG: longest side ``longest`` (never enlarged), area-averaged from the decoded pixels
    (for a 3410 px photograph 52 dB PSNR against Lanczos, below what JPEG q90 loses, at a third of its time)."""
    w, h = img.size
    scale = longest / max(w, h)
    if scale < 1:
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX)
    return jpeg_bytes(img, quality)
