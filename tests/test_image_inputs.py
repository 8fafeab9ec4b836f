"""Images as camera drivers send them, and the per-kind rate limit on the errors about them.

Expected pixels are computed here independently of the decoder: 16 -> 8 bit as v / 257 rounded
(cv_bridge's x * 255 / 65535), Bayer mosaics built by hand from a flat colour.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sam2_ros.ros.interfaces import messages as m
from sam2_ros.ros.interfaces.image_codec import ImageDecodeError, image_to_rgb
from sam2_ros.ros.interfaces.typesys import typestore
from sam2_ros.ros.node import log_limits
from sam2_ros.ros.node.log_limits import KindRateLimiter, one_line
from tests.test_ros_core import ListLogger

STORE = typestore()
TYPES = STORE.types
HEADER = m.header_msg(1_700_000_000_000_000_000, "camera")


def roundtrip(msg):
    return STORE.deserialize_cdr(STORE.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)


def compressed(data: np.ndarray | bytes, fmt: str):
    data = np.frombuffer(bytes(data), np.uint8) if isinstance(data, bytes) else data.reshape(-1)
    return roundtrip(TYPES["sensor_msgs/msg/CompressedImage"](header=HEADER, format=fmt, data=data))


def raw(pixels: np.ndarray, encoding: str, bigendian: bool = False):
    if pixels.dtype.itemsize > 1:
        pixels = pixels.astype(pixels.dtype.newbyteorder(">" if bigendian else "<"))
    height, width = pixels.shape[:2]
    data = np.ascontiguousarray(pixels).reshape(-1).view(np.uint8)
    return roundtrip(
        TYPES["sensor_msgs/msg/Image"](
            header=HEADER,
            height=height,
            width=width,
            encoding=encoding,
            is_bigendian=int(bigendian),
            step=data.size // height,
            data=data,
        )
    )


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (24, 32, 3), dtype=np.uint8)


@pytest.fixture
def rgb16() -> np.ndarray:
    return np.random.default_rng(4).integers(0, 65536, (24, 32, 3), dtype=np.uint16)


def to8(values: np.ndarray) -> np.ndarray:
    return np.round(values / 257.0).astype(np.uint8)


# ------------------------------------------------------------------ CompressedImage
@pytest.mark.parametrize("fmt", ["", "jpeg", "rgb8; jpeg compressed bgr8", "something else"])
def test_empty_or_unknown_format_is_jpeg(fmt):
    """sensor_msgs/CompressedImage: an empty format, or one not in the pattern, is a bgr8 or mono8 JPEG."""
    ys, xs = np.mgrid[0:24, 0:32]
    rgb = np.stack([xs * 8, ys * 10, np.full_like(xs, 60)], axis=2).astype(np.uint8)  # smooth: JPEG keeps it
    _, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 98])
    out = image_to_rgb(compressed(jpeg, fmt))
    assert out.shape == rgb.shape and np.abs(out.astype(int) - rgb).mean() < 4  # a channel swap is ~100 off
    gray = rgb[..., 1].copy()
    _, mono = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, 98])
    out = image_to_rgb(compressed(mono, fmt))
    assert (out[..., 0] == out[..., 2]).all() and np.abs(out[..., 1].astype(int) - gray).mean() < 4


def test_empty_data_is_one_clear_line():
    for fmt, named in [("", "data (empty format: JPEG)"), ("jpeg", "'jpeg' data")]:
        with pytest.raises(ImageDecodeError) as caught:
            image_to_rgb(compressed(b"", fmt))
        assert str(caught.value) == f"empty compressed image: 0 bytes of {named}" and caught.value.kind == "empty"


@pytest.mark.parametrize("fmt", ["", "png", "rgb8; jpeg compressed bgr8"])
def test_garbage_data_is_one_clear_line(fmt):
    with pytest.raises(ImageDecodeError, match="could not decode 7 bytes of") as caught:
        image_to_rgb(compressed(b"garbage", fmt))
    assert "\n" not in str(caught.value) and caught.value.kind == "undecodable"


@pytest.mark.parametrize("fmt", ["", "png", "16UC1; png compressed", "mono8; png compressed"])
def test_16bit_single_channel_png_is_refused_as_depth(fmt):
    depth = np.full((24, 32), 1234, np.uint16)  # 1.234 m in millimetres
    _, png = cv2.imencode(".png", depth)
    with pytest.raises(ImageDecodeError, match="holds depth or other measurements, not a camera picture") as caught:
        image_to_rgb(compressed(png, fmt))
    assert caught.value.kind == "depth"


def test_mono16_png_is_scaled_to_8_bit_gray(rgb16):
    _, png = cv2.imencode(".png", rgb16[..., 0])
    out = image_to_rgb(compressed(png, "mono16; png compressed"))
    np.testing.assert_array_equal(out, np.repeat(to8(rgb16[..., :1]), 3, axis=2))


@pytest.mark.parametrize("fmt", ["rgb16; png compressed bgr16", "bgr16; png compressed bgr16", "png"])
def test_16bit_colour_png_is_scaled_to_8_bit_rgb(rgb16, fmt):
    _, png = cv2.imencode(".png", np.ascontiguousarray(rgb16[..., ::-1]))  # OpenCV writes BGR
    np.testing.assert_array_equal(image_to_rgb(compressed(png, fmt)), to8(rgb16))


def test_compressed_rgb_order_is_respected(rgb):
    """A format ending in "compressed rgb8": the encoder got RGB, so the decoded channels are RGB already."""
    _, png = cv2.imencode(".png", rgb)
    np.testing.assert_array_equal(image_to_rgb(compressed(png, "rgb8; png compressed rgb8")), rgb)


def test_png_with_alpha_drops_it(rgb):
    alpha = np.full(rgb.shape[:2] + (1,), 7, np.uint8)
    _, png = cv2.imencode(".png", np.concatenate([rgb[..., ::-1], alpha], axis=2))
    np.testing.assert_array_equal(image_to_rgb(compressed(png, "bgra8; png compressed bgra8")), rgb)


def test_compressed_depth_is_refused(rgb):
    _, png = cv2.imencode(".png", rgb)
    with pytest.raises(ImageDecodeError, match="'16UC1; compressedDepth png' holds depth"):
        image_to_rgb(compressed(png, "16UC1; compressedDepth png"))


# ------------------------------------------------------------------ raw Image
@pytest.mark.parametrize("bigendian", [False, True], ids=["little", "big"])
@pytest.mark.parametrize("encoding", ["mono16", "rgb16", "bgr16", "rgba16", "bgra16"])
def test_16bit_raw_encodings_are_scaled(rgb16, encoding, bigendian):
    alpha = np.full(rgb16.shape[:2] + (1,), 65535, np.uint16)
    pixels, expected = {
        "mono16": (rgb16[..., 0], np.repeat(to8(rgb16[..., :1]), 3, axis=2)),
        "rgb16": (rgb16, to8(rgb16)),
        "bgr16": (rgb16[..., ::-1], to8(rgb16)),
        "rgba16": (np.concatenate([rgb16, alpha], axis=2), to8(rgb16)),
        "bgra16": (np.concatenate([rgb16[..., ::-1], alpha], axis=2), to8(rgb16)),
    }[encoding]
    np.testing.assert_array_equal(image_to_rgb(raw(pixels, encoding, bigendian)), expected)


def test_16bit_raw_sizes_count_two_bytes(rgb16):
    image = raw(rgb16[..., 0], "mono16")
    image.data = image.data[:-2]
    with pytest.raises(ImageDecodeError, match="mono16 image 32x24 with step 64 needs 1536 bytes, got 1534"):
        image_to_rgb(image)


@pytest.mark.parametrize(
    "encoding,origin",
    [("bayer_rggb8", "RGGB"), ("bayer_bggr8", "BGGR"), ("bayer_gbrg8", "GBRG"), ("bayer_grbg8", "GRBG")],
)
def test_bayer_patterns_demosaic_to_the_right_colours(encoding, origin):
    colour = {"R": 200, "G": 120, "B": 40}
    mosaic = np.zeros((16, 16), np.uint8)
    for (dy, dx), channel in zip([(0, 0), (0, 1), (1, 0), (1, 1)], origin):
        mosaic[dy::2, dx::2] = colour[channel]
    out = image_to_rgb(raw(mosaic, encoding))
    np.testing.assert_array_equal(out[4:12, 4:12].reshape(-1, 3), np.tile([[200, 120, 40]], (64, 1)))


def test_raw_depth_and_unknown_encodings_say_which():
    with pytest.raises(ImageDecodeError, match="image encoding '16UC1' holds depth"):
        image_to_rgb(raw(np.zeros((4, 6), np.uint16), "16UC1"))
    with pytest.raises(ImageDecodeError, match="unsupported image encoding '8UC3'.*mono16, rgb16"):
        image_to_rgb(raw(np.zeros((4, 6, 3), np.uint8), "8UC3"))


# ------------------------------------------------------------------ rate-limited logs


def test_each_kind_is_logged_at_once_then_once_per_period():
    clock = [0.0]
    logger = ListLogger()
    limiter = KindRateLimiter(logger, period_s=5.0, clock=lambda: clock[0])
    assert limiter.log("error", "16UC1", "depth") and limiter.log("warning", "cdr", "bad bytes")
    assert not limiter.log("error", "16UC1", "depth") and not limiter.log("error", "16UC1", "depth")
    assert limiter.log("error", "jpeg", "undecodable")  # a different fault is not held back by the first
    clock[0] = 4.9
    assert not limiter.log("error", "16UC1", "depth") and limiter.suppressed("16UC1") == 3
    clock[0] = 5.0
    assert limiter.log("error", "16UC1", "depth")
    clock[0] = 10.0
    assert limiter.log("error", "16UC1", "depth")  # nothing held back in between: no count
    assert logger.lines == [
        ("error", "depth"),
        ("warning", "bad bytes"),
        ("error", "undecodable"),
        ("error", "depth (3 more like this in the last 5 s not logged)"),
        ("error", "depth"),
    ]


def test_messages_are_one_line_and_levels_checked():
    logger = ListLogger()
    limiter = KindRateLimiter(logger, clock=lambda: 0.0)
    limiter.log("error", "cv", "OpenCV(5.0.0) loadsave.cpp:1291: error: (-215:Assertion failed)\n !buf.empty()\n")
    assert logger.lines == [("error", "OpenCV(5.0.0) loadsave.cpp:1291: error: (-215:Assertion failed) !buf.empty()")]
    assert one_line("x" * 1000).endswith("...") and len(one_line("x" * 1000)) == log_limits.MAX_MESSAGE_CHARS
    with pytest.raises(ValueError, match="level must be"):
        limiter.log("fatal", "k", "m")


def test_kinds_are_bounded(monkeypatch):
    monkeypatch.setattr(log_limits, "MAX_KINDS", 3)
    clock = [0.0]
    limiter = KindRateLimiter(ListLogger(), clock=lambda: clock[0])
    for i in range(5):  # e.g. garbage encodings, each a new kind
        limiter.log("error", f"kind{i}", "x")
    assert len(limiter._kinds) == 3 and limiter.log("error", "kind0", "x")  # the oldest was forgotten
