"""sensor_msgs Image / CompressedImage <-> numpy, without cv_bridge.

Why: the tracker needs 8-bit RGB frames whatever the camera publishes, and must reject what it
cannot read with an error that says why (the node logs it and drops the frame rather than
dying); cv_bridge would tie this code to a ROS installation. Conversions follow what ROS's own
tools do: cv_bridge's 16 -> 8 bit scaling (255/65535) and Bayer pattern names,
compressed_image_transport's reading of ``CompressedImage.format`` (``"ORIG_PIXFMT; CODEC
compressed [PIXFMT]"``; an empty or unknown format is a JPEG, as the message definition says, and
OpenCV reads the codec from the data itself). Depth images (``16UC1``, ``32FC1``,
``compressedDepth``) are refused: they measure distance, and tracking them as pictures would
silently give nonsense.
"""

from __future__ import annotations

import re
from typing import Any

import cv2
import numpy as np

from sam2_ros.errors import InputError
from sam2_ros.ros.interfaces.typesys import typestore


class ImageDecodeError(InputError, ValueError):
    """An image message that cannot be turned into RGB; the text names the encoding or size problem.

    ``kind`` names the sort of problem (``unsupported``, ``depth``, ``size``, ``empty``,
    ``undecodable``), so that distinct faults are logged separately.
    """

    def __init__(self, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.kind = kind


#: Raw 8-bit encodings -> bytes per pixel. Per sensor_msgs/image_encodings, "yuv422" is UYVY and
#: "yuv422_yuy2" is YUYV; "uyvy" and "yuyv" are the names some camera drivers use instead.
_BYTES_PER_PIXEL = {
    "rgb8": 3,
    "bgr8": 3,
    "rgba8": 4,
    "bgra8": 4,
    "mono8": 1,
    "yuv422": 2,
    "uyvy": 2,
    "yuv422_yuy2": 2,
    "yuyv": 2,
    "bayer_rggb8": 1,
    "bayer_bggr8": 1,
    "bayer_gbrg8": 1,
    "bayer_grbg8": 1,
}
#: Raw 16-bit encodings -> channels; scaled to 8 bits as cv_bridge does (x * 255 / 65535).
_CHANNELS_16 = {"mono16": 1, "rgb16": 3, "bgr16": 3, "rgba16": 4, "bgra16": 4}
SUPPORTED_ENCODINGS = (*_BYTES_PER_PIXEL, *_CHANNELS_16)
_YUV_TO_RGB = {
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,
    "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUYV,
    "yuyv": cv2.COLOR_YUV2RGB_YUYV,
}
#: ROS Bayer names -> OpenCV codes. OpenCV names a pattern by its second row's first two pixels,
#: so ROS "rggb" is OpenCV "BG" (the same table as cv_bridge's).
_BAYER_TO_RGB = {
    "bayer_rggb8": cv2.COLOR_BayerBG2RGB,
    "bayer_bggr8": cv2.COLOR_BayerRG2RGB,
    "bayer_gbrg8": cv2.COLOR_BayerGR2RGB,
    "bayer_grbg8": cv2.COLOR_BayerGB2RGB,
}
#: Single-channel wide matrix encodings ("16UC1", "32FC1", ...): depth maps and other measurements.
_MEASUREMENT_ENCODING = re.compile(r"(16|32|64)[usf]c1")


def image_to_rgb(msg: Any) -> np.ndarray:
    """Decode a sensor_msgs/Image or sensor_msgs/CompressedImage into a new HxWx3 uint8 RGB array.

    Raises:
        ImageDecodeError: unsupported encoding or format, a depth image, or data inconsistent
            with the size.
    """
    if hasattr(msg, "format"):
        return _compressed_to_rgb(msg)
    return _raw_to_rgb(msg)


def _depth_error(what: str) -> ImageDecodeError:
    return ImageDecodeError(
        f"{what} holds depth or other measurements, not a camera picture; publish the "
        f"colour (or mono8/mono16) stream on the tracker's image topic",
        "depth",
    )


def _raw_to_rgb(msg: Any) -> np.ndarray:
    encoding, height, width, step = msg.encoding, msg.height, msg.width, msg.step
    channels16 = _CHANNELS_16.get(encoding)
    bpp = _BYTES_PER_PIXEL.get(encoding) or (2 * channels16 if channels16 else None)
    if bpp is None:
        if _MEASUREMENT_ENCODING.fullmatch(encoding.lower()):
            raise _depth_error(f"image encoding {encoding!r}")
        raise ImageDecodeError(
            f"unsupported image encoding {encoding!r} (supported: {', '.join(SUPPORTED_ENCODINGS)})", "unsupported"
        )
    if height == 0 or width == 0:
        raise ImageDecodeError(f"empty {encoding} image ({width}x{height})", "size")
    if step < width * bpp:
        raise ImageDecodeError(
            f"{encoding} image {width}x{height}: step {step} is shorter than a row ({width} px * {bpp} bytes)", "size"
        )
    if encoding in _YUV_TO_RGB and width % 2:
        raise ImageDecodeError(f"{encoding} image {width}x{height}: YUV 4:2:2 needs an even width", "size")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size != step * height:
        raise ImageDecodeError(
            f"{encoding} image {width}x{height} with step {step} needs {step * height} bytes, got {data.size}", "size"
        )
    rows = data.reshape(height, step)[:, : width * bpp]
    if channels16:
        wide = np.ascontiguousarray(rows).view(">u2" if msg.is_bigendian else "<u2")
        pixels = _to_8bit(wide.reshape(height, width, channels16))
    else:
        pixels = rows.reshape(height, width, bpp)
    if encoding in _YUV_TO_RGB:
        return cv2.cvtColor(pixels, _YUV_TO_RGB[encoding])
    if encoding in _BAYER_TO_RGB:
        return cv2.cvtColor(np.ascontiguousarray(pixels[:, :, 0]), _BAYER_TO_RGB[encoding])
    if pixels.shape[2] == 1:  # mono8, mono16
        return np.repeat(pixels, 3, axis=2)
    channels = [0, 1, 2] if encoding.startswith("rgb") else [2, 1, 0]
    return pixels[:, :, channels]  # fancy indexing copies: the result never aliases msg.data


def _to_8bit(pixels: np.ndarray) -> np.ndarray:
    """16-bit values scaled to 8 bits, rounded, as cv_bridge converts (x * 255 / 65535)."""
    return ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _compressed_to_rgb(msg: Any) -> np.ndarray:
    fmt = msg.format
    low = fmt.lower()
    # compressed_image_transport writes "ORIG_PIXFMT; CODEC compressed [PIXFMT]" (older versions
    # and other drivers: "jpeg", "png", or nothing). compressedDepth puts a private header before
    # its PNG/RVL data and holds 16/32-bit depth, not colour.
    original = low.split(";", 1)[0].strip() if ";" in low else ""
    if "compresseddepth" in low:
        raise _depth_error(f"compressed image format {fmt!r}")
    if _MEASUREMENT_ENCODING.fullmatch(original):
        raise _depth_error(f"compressed image format {fmt!r}")
    named = f"{fmt!r} data" if fmt else "data (empty format: JPEG)"
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size == 0:
        raise ImageDecodeError(f"empty compressed image: 0 bytes of {named}", "empty")
    try:
        pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        pixels = None
    if pixels is None or pixels.size == 0:
        raise ImageDecodeError(
            f"could not decode {data.size} bytes of {named} (not a JPEG, PNG or other image OpenCV reads)",
            "undecodable",
        )
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ImageDecodeError(
            f"compressed image {fmt!r} decodes to {pixels.dtype} pixels; only 8- and 16-bit camera images are tracked",
            "unsupported",
        )
    if pixels.ndim == 2 or pixels.shape[2] <= 2:
        gray = pixels if pixels.ndim == 2 else pixels[:, :, 0]
        if gray.dtype == np.uint16:
            if original != "mono16":
                raise _depth_error(
                    f"16-bit single-channel compressed image (format {fmt!r}; a 16-bit intensity "
                    f"image is tracked when its format says 'mono16; png compressed')"
                )
            gray = _to_8bit(gray)
        return np.repeat(gray[:, :, None], 3, axis=2)
    colour = _to_8bit(pixels) if pixels.dtype == np.uint16 else pixels
    if "compressed rgb" in low:  # the codec was given RGB order, so OpenCV's "BGR" is RGB
        return np.ascontiguousarray(colour[:, :, :3])
    return cv2.cvtColor(np.ascontiguousarray(colour[:, :, :3]), cv2.COLOR_BGR2RGB)


def rgb_to_image_msg(rgb: np.ndarray, header: Any) -> Any:
    """An rgb8 sensor_msgs/Image of an HxWx3 uint8 array (e.g. the overlay), stamped with ``header``."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 array, got {rgb.shape} {rgb.dtype}")
    return _image_msg(rgb, header, "rgb8")


def label_image_msg(labels: np.ndarray, header: Any) -> Any:
    """A mono8 sensor_msgs/Image of an HxW uint8 label map (0 = background), stamped with ``header``."""
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"expected an HxW uint8 label map, got {labels.shape} {labels.dtype}")
    return _image_msg(labels, header, "mono8")


def _image_msg(pixels: np.ndarray, header: Any, encoding: str) -> Any:
    height, width = pixels.shape[:2]
    data = np.ascontiguousarray(pixels).reshape(-1)
    return typestore().types["sensor_msgs/msg/Image"](
        header=header,
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=data.size // height,
        data=data,
    )
