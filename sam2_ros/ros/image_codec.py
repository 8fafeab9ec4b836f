"""sensor_msgs Image / CompressedImage <-> numpy, without cv_bridge.

Why: the tracker needs RGB frames whatever the camera publishes, and must reject what it cannot
read with an error that says why (the node logs it and drops the frame rather than dying);
cv_bridge would tie this code to a ROS installation. Only 8-bit encodings are accepted, so
``is_bigendian`` never matters (it describes the byte order of multi-byte channels).
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from sam2_ros.ros.typesys import typestore


class ImageDecodeError(ValueError):
    """An image message that cannot be turned into RGB; the text names the encoding or size problem."""


#: Raw encodings -> bytes per pixel. Per sensor_msgs/image_encodings, "yuv422" is UYVY and
#: "yuv422_yuy2" is YUYV; "uyvy" and "yuyv" are the names some camera drivers use instead.
_BYTES_PER_PIXEL = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1,
                    "yuv422": 2, "uyvy": 2, "yuv422_yuy2": 2, "yuyv": 2}
SUPPORTED_ENCODINGS = tuple(_BYTES_PER_PIXEL)
_YUV_TO_RGB = {"yuv422": cv2.COLOR_YUV2RGB_UYVY, "uyvy": cv2.COLOR_YUV2RGB_UYVY,
               "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUYV, "yuyv": cv2.COLOR_YUV2RGB_YUYV}


def image_to_rgb(msg: Any) -> np.ndarray:
    """Decode a sensor_msgs/Image or sensor_msgs/CompressedImage into a new HxWx3 uint8 RGB array.

    Raises:
        ImageDecodeError: unsupported encoding or format, or data inconsistent with the size.
    """
    if hasattr(msg, "format"):
        return _compressed_to_rgb(msg)
    return _raw_to_rgb(msg)


def _raw_to_rgb(msg: Any) -> np.ndarray:
    encoding, height, width, step = msg.encoding, msg.height, msg.width, msg.step
    bpp = _BYTES_PER_PIXEL.get(encoding)
    if bpp is None:
        raise ImageDecodeError(f"unsupported image encoding {encoding!r} "
                               f"(supported: {', '.join(SUPPORTED_ENCODINGS)})")
    if height == 0 or width == 0:
        raise ImageDecodeError(f"empty {encoding} image ({width}x{height})")
    if step < width * bpp:
        raise ImageDecodeError(f"{encoding} image {width}x{height}: step {step} is shorter than a row "
                               f"({width} px * {bpp} bytes)")
    if encoding in _YUV_TO_RGB and width % 2:
        raise ImageDecodeError(f"{encoding} image {width}x{height}: YUV 4:2:2 needs an even width")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size != step * height:
        raise ImageDecodeError(f"{encoding} image {width}x{height} with step {step} needs {step * height} "
                               f"bytes, got {data.size}")
    pixels = data.reshape(height, step)[:, :width * bpp].reshape(height, width, bpp)
    if encoding in _YUV_TO_RGB:
        return cv2.cvtColor(pixels, _YUV_TO_RGB[encoding])
    if encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    channels = [0, 1, 2] if encoding.startswith("rgb") else [2, 1, 0]
    return pixels[:, :, channels]  # fancy indexing copies: the result never aliases msg.data


def _compressed_to_rgb(msg: Any) -> np.ndarray:
    fmt = msg.format.lower()
    # compressed_image_transport writes e.g. "jpeg", "png" or "bgr8; jpeg compressed bgr8";
    # compressedDepth carries a private header before its PNG and 16/32-bit depth, not colour.
    if "compresseddepth" in fmt or not ("jpeg" in fmt or "jpg" in fmt or "png" in fmt):
        raise ImageDecodeError(f"unsupported compressed image format {msg.format!r} (supported: jpeg, png)")
    bgr = cv2.imdecode(np.frombuffer(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageDecodeError(f"could not decode {len(msg.data)} bytes of {msg.format!r} data")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


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
        header=header, height=height, width=width, encoding=encoding, is_bigendian=0,
        step=data.size // height, data=data)
