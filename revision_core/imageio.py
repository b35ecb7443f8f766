"""Robust image input: any uploaded fundus/OCT photograph becomes a plain 8-bit RGB PIL image.

Uploads in a reader study come from many cameras and export tools. Every failure (empty,
truncated, not an image, compressed DICOM without a decoder, decompression bomb) becomes an
ImageLoadError that names the file, says what is wrong and what to do, so the UI can show it
instead of a traceback. Metadata (EXIF, ICC, text chunks, DICOM header) is dropped so that no
patient information travels further than this function.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageLoadError", "load_image", "image_sha256", "strip_to_png_bytes"]

Source = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]

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
    """A new image from the pixels alone, so no EXIF/ICC/text metadata can leak through."""
    return Image.frombytes("RGB", im.size, im.tobytes())


# --------------------------------------------------------------------------- PIL formats


def _load_pil(data: bytes, label: str, max_pixels: int) -> Image.Image:
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
            im = ImageOps.exif_transpose(im) or im
    except Image.DecompressionBombError:
        raise ImageLoadError(f"{label}: exceeds the decompression-bomb pixel limit.") from None
    except Exception as exc:  # noqa: BLE001 - truncated data raises OSError, SyntaxError, ...
        text = str(exc)
        what = "is truncated or damaged" if ("truncated" in text or "broken" in text) else \
            "could not be decoded"
        raise ImageLoadError(f"{label}: {what} ({text}). The upload may be incomplete. "
                             f"{REEXPORT}") from None
    return _to_rgb8(im, label)


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
    if max_pixels <= 0:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    data, label = _read_source(source, name)
    if not data:
        raise ImageLoadError(f"{label}: the file is empty (0 bytes); the upload may have failed. "
                             f"Upload the file again.")
    if _is_dicom(data):
        im = _load_dicom(data, label, max_pixels)
    else:
        im = _load_pil(data, label, max_pixels)
    return _fresh(im)


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
