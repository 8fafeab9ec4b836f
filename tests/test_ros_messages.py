"""Interface definitions, image decoding and message conversion on rosbags messages (no ROS needed).

Every message here goes through CDR (serialize, deserialize) before it is read, so the code is
exercised on the same kind of objects a bag or the node's adapters hand it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys.base import Nodetype

from sam2_ros.ros.interfaces import messages as m
from sam2_ros.ros.interfaces.image_codec import ImageDecodeError, image_to_rgb, label_image_msg, rgb_to_image_msg
from sam2_ros.ros.interfaces.typesys import (
    ADD_OBJECTS_REQUEST,
    ADD_OBJECTS_RESPONSE,
    OBJECT_PROMPT,
    PACKAGE,
    REMOVE_OBJECT_REQUEST,
    TRACKED_OBJECT_ARRAY,
    interface_definitions,
    typestore,
)

MSG_DIR = Path(__file__).resolve().parents[1] / "msg"
STORE = typestore()
TYPES = STORE.types
HEADER = m.header_msg(1_700_000_000_123_456_789, "camera_optical")


def roundtrip(msg):
    """The message as a reader gets it: serialized to CDR and deserialized again."""
    return STORE.deserialize_cdr(STORE.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)


# --- definitions ------------------------------------------------------------------------------

_NUMPY = {
    "bool": np.bool_,
    "byte": np.uint8,
    "char": np.uint8,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
    "float32": np.float32,
    "float64": np.float64,
}


def _base_value(typename: str, seed: int):
    if typename == "string":
        return f"s{seed}-é"
    if typename == "bool":
        return seed % 2 == 0
    if typename.startswith("float"):
        return seed + 0.25  # exact in float32 too
    return seed % 100 + 1  # fits every integer type


def sample(typename: str, seed: int = 1):
    """A message of ``typename`` with distinct non-default values in every field, recursively."""
    _, fields = STORE.fielddefs[typename]
    values = {}
    for i, (name, (node, arg)) in enumerate(fields):
        s = seed * 7 + i
        if node == Nodetype.BASE:
            values[name] = _base_value(arg[0], s)
        elif node == Nodetype.NAME:
            values[name] = sample(arg, s)
        else:  # ARRAY (fixed length) or SEQUENCE (bound 0 = unbounded)
            (sub_node, sub_arg), length = arg
            count = length if node == Nodetype.ARRAY else min(length or 2, 2)
            items = [
                _base_value(sub_arg[0], s + k) if sub_node == Nodetype.BASE else sample(sub_arg, s + k)
                for k in range(count)
            ]
            base = sub_node == Nodetype.BASE and sub_arg[0] != "string"
            values[name] = np.array(items, dtype=_NUMPY[sub_arg[0]]) if base else items
    return TYPES[typename](**values)


def assert_same(a, b, path="msg"):
    if dataclasses.is_dataclass(a):
        assert type(a).__msgtype__ == type(b).__msgtype__, path
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b), path
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for k, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{k}]")
    else:
        assert a == b, path


def test_every_definition_file_is_registered():
    expected = {f"{PACKAGE}/msg/{p.stem}" for p in MSG_DIR.glob("*.msg")}
    expected |= {
        f"{PACKAGE}/srv/{p.stem}_{half}" for p in (MSG_DIR / "srv").glob("*.srv") for half in ("Request", "Response")
    }
    assert len(expected) >= 7 and set(interface_definitions()) == expected
    assert expected <= set(TYPES)


@pytest.mark.parametrize("typename", sorted(interface_definitions()))
def test_definition_roundtrips_through_cdr(typename):
    msg = sample(typename)
    assert_same(roundtrip(msg), msg)
    assert STORE.hash_rihs01(typename).startswith("RIHS01_")


def test_vision_msgs_match_the_generated_jazzy_type_hashes():
    """RIHS01 covers every field name, type and order, recursively: these are rosidl's own hashes."""
    jazzy = typestore("jazzy")
    assert jazzy.hash_rihs01("vision_msgs/msg/Detection2DArray") == (
        "RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968"
    )
    assert jazzy.hash_rihs01("vision_msgs/msg/LabelInfo") == (
        "RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783"
    )


def _fields(typename):
    """(name, type) pairs in .msg spelling, e.g. ("bbox_coords", "vision_msgs/BoundingBox2D[]")."""

    def spell(node, arg):
        if node == Nodetype.BASE:
            return arg[0]
        if node == Nodetype.NAME:
            return arg.replace("/msg/", "/")
        (sub_node, sub_arg), length = arg
        suffix = f"[{length}]" if node == Nodetype.ARRAY else f"[<={length}]" if length else "[]"
        return spell(sub_node, sub_arg) + suffix

    return [(name, spell(node, arg)) for name, (node, arg) in STORE.fielddefs[typename][1]]


def test_services_have_isaac_ros_sam2_fields():
    assert _fields(ADD_OBJECTS_REQUEST) == [
        ("request_header", "std_msgs/Header"),
        ("bbox_object_ids", "string[]"),
        ("bbox_coords", "vision_msgs/BoundingBox2D[]"),
        ("point_object_ids", "string[]"),
        ("point_coords", "vision_msgs/Point2D[]"),
        ("point_labels", "int32[]"),
    ]
    response = [("object_ids", "string[]"), ("object_indices", "int32[]"), ("success", "bool"), ("message", "string")]
    assert _fields(ADD_OBJECTS_RESPONSE) == response
    assert _fields(REMOVE_OBJECT_REQUEST) == [("request_header", "std_msgs/Header"), ("object_id", "string")]
    assert _fields(REMOVE_OBJECT_REQUEST.replace("Request", "Response")) == response


def test_prompt_constants_match_the_python_side():
    prompt = TYPES[OBJECT_PROMPT]
    assert (prompt.NEW_OBJECT, prompt.FOREGROUND, prompt.BACKGROUND) == (-1, m.FOREGROUND, m.BACKGROUND)


# --- images -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rgb(data_dir: Path) -> np.ndarray:
    bgr = cv2.resize(cv2.imread(str(data_dir / "images" / "truck.jpg")), (64, 48), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def raw_image(pixels: np.ndarray, encoding: str, pad: int = 0):
    """A deserialized sensor_msgs/Image of ``pixels`` with ``pad`` junk bytes after every row."""
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    data = np.concatenate([rows, np.full((height, pad), 0xAB, np.uint8)], axis=1).reshape(-1)
    return roundtrip(
        TYPES["sensor_msgs/msg/Image"](
            header=HEADER,
            height=height,
            width=width,
            encoding=encoding,
            is_bigendian=0,
            step=rows.shape[1] + pad,
            data=data,
        )
    )


def compressed_image(encoded: np.ndarray, fmt: str):
    return roundtrip(TYPES["sensor_msgs/msg/CompressedImage"](header=HEADER, format=fmt, data=encoded.reshape(-1)))


@pytest.mark.parametrize("pad", [0, 5])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
def test_raw_encodings_decode_exactly(rgb, encoding, pad):
    alpha = np.arange(rgb[..., :1].size, dtype=np.uint8).reshape(rgb.shape[:2] + (1,))
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    pixels, expected = {
        "rgb8": (rgb, rgb),
        "bgr8": (rgb[..., ::-1], rgb),
        "rgba8": (np.concatenate([rgb, alpha], axis=2), rgb),
        "bgra8": (np.concatenate([rgb[..., ::-1], alpha], axis=2), rgb),
        "mono8": (gray, np.stack([gray] * 3, axis=2)),
    }[encoding]
    out = image_to_rgb(raw_image(np.ascontiguousarray(pixels), encoding, pad))
    assert out.dtype == np.uint8 and out.flags.writeable
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(
    "encoding,packing",
    [
        ("yuv422", cv2.COLOR_RGB2YUV_UYVY),
        ("uyvy", cv2.COLOR_RGB2YUV_UYVY),
        ("yuv422_yuy2", cv2.COLOR_RGB2YUV_YUYV),
        ("yuyv", cv2.COLOR_RGB2YUV_YUYV),
    ],
)
def test_yuv422_encodings_decode_in_their_byte_order(rgb, encoding, packing):
    """sensor_msgs' "yuv422" is UYVY: reading the other byte order is off by ~60 levels on average."""
    out = image_to_rgb(raw_image(cv2.cvtColor(rgb, packing), encoding, pad=4))
    error = np.abs(out.astype(int) - rgb)
    assert out.shape == rgb.shape and error.mean() < 2 and error.max() < 40  # 4:2:2 chroma subsampling


@pytest.mark.parametrize("fmt", ["png", "rgb8; png compressed bgr8"])
def test_png_decodes_exactly(rgb, fmt):
    _, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(image_to_rgb(compressed_image(png, fmt)), rgb)


@pytest.mark.parametrize("fmt", ["jpeg", "bgr8; jpeg compressed bgr8"])
def test_jpeg_decodes_closely(rgb, fmt):
    _, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    error = np.abs(image_to_rgb(compressed_image(jpeg, fmt)).astype(int) - rgb)
    assert error.mean() < 4


@pytest.mark.parametrize("encoding", ["8UC3", "nv21", "RGB8", "bayer_rggb16"])
def test_unsupported_encodings_are_named(rgb, encoding):
    with pytest.raises(ImageDecodeError, match=f"unsupported image encoding '{encoding}'") as caught:
        image_to_rgb(raw_image(rgb, encoding))
    assert caught.value.kind == "unsupported"


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_depth_encodings_are_refused_as_depth(encoding):
    depth = np.full((6, 8), 1500, np.uint16 if encoding == "16UC1" else np.float32)
    with pytest.raises(ImageDecodeError, match=f"image encoding '{encoding}' holds depth") as caught:
        image_to_rgb(raw_image(depth.view(np.uint8), encoding))
    assert caught.value.kind == "depth"


def test_inconsistent_sizes_are_rejected(rgb):
    image = raw_image(rgb, "rgb8", pad=2)
    with pytest.raises(ImageDecodeError, match=r"rgb8 image 64x48 with step 194 needs 9312 bytes, got 9302"):
        image_to_rgb(dataclasses.replace(image, data=image.data[:-10]))
    with pytest.raises(ImageDecodeError, match="step 100 is shorter than a row"):
        image_to_rgb(dataclasses.replace(image, step=100))
    with pytest.raises(ImageDecodeError, match="empty rgb8 image"):
        image_to_rgb(dataclasses.replace(image, height=0, data=image.data[:0]))
    with pytest.raises(ImageDecodeError, match="needs an even width"):
        image_to_rgb(raw_image(np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_YUYV)[:, :63]), "yuyv"))


def test_bad_compressed_images_are_rejected(rgb):
    _, png = cv2.imencode(".png", rgb)
    with pytest.raises(ImageDecodeError, match="compressed image format '16UC1; compressedDepth png' holds depth"):
        image_to_rgb(compressed_image(png, "16UC1; compressedDepth png"))
    with pytest.raises(ImageDecodeError, match="could not decode 100 bytes of 'jpeg' data"):
        image_to_rgb(compressed_image(png[:100], "jpeg"))


def test_outgoing_images_keep_pixels_and_header(rgb):
    overlay = roundtrip(rgb_to_image_msg(rgb, HEADER))
    assert (overlay.encoding, overlay.header.frame_id) == ("rgb8", HEADER.frame_id)
    np.testing.assert_array_equal(image_to_rgb(overlay), rgb)
    labels = (np.arange(48 * 64) % 4).astype(np.uint8).reshape(48, 64)
    label_image = roundtrip(label_image_msg(labels, HEADER))
    assert (label_image.encoding, label_image.step, m.stamp_ns(label_image.header)) == ("mono8", 64, m.stamp_ns(HEADER))
    np.testing.assert_array_equal(label_image.data.reshape(48, 64), labels)


@pytest.mark.parametrize("storage", [StoragePlugin.MCAP, StoragePlugin.SQLITE3], ids=["mcap", "sqlite3"])
def test_video_frames_survive_a_bag(data_dir, tmp_path, storage):
    capture = cv2.VideoCapture(str(data_dir / "videos" / "16_robotarm.mp4"))
    frames = []
    while len(frames) < 20:
        ok, bgr = capture.read()
        assert ok, "video has fewer than 20 frames"
        frames.append(cv2.resize(bgr, (160, 90), interpolation=cv2.INTER_AREA))
    capture.release()
    stamps = [1_700_000_000_000_000_000 + i * 33_333_333 for i in range(len(frames))]
    with Writer(tmp_path / "bag", version=9, storage_plugin=storage) as writer:
        images = writer.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        tracks = writer.add_connection("/sam2/tracked_objects", TRACKED_OBJECT_ARRAY, typestore=STORE)
        for stamp, bgr in zip(stamps, frames):
            header = m.header_msg(stamp, "camera")
            image = TYPES["sensor_msgs/msg/Image"](
                header=header, height=90, width=160, encoding="bgr8", is_bigendian=0, step=480, data=bgr.reshape(-1)
            )
            writer.write(images, stamp, STORE.serialize_cdr(image, image.__msgtype__))
            result = m.tracked_object_array_msg(header, [m.PublishedObject(1, 1, 0.75, True, (2, 3, 40, 50))])
            writer.write(tracks, stamp, STORE.serialize_cdr(result, TRACKED_OBJECT_ARRAY))
    decoded, results = [], []
    with Reader(tmp_path / "bag") as reader:
        for connection, stamp, raw in reader.messages():
            msg = STORE.deserialize_cdr(raw, connection.msgtype)
            assert m.stamp_ns(msg.header) == stamp
            (decoded if connection.topic == "/camera/image_raw" else results).append(msg)
    assert len(decoded) == len(results) == len(frames)
    for msg, bgr in zip(decoded, frames):
        np.testing.assert_array_equal(image_to_rgb(msg), bgr[..., ::-1])
    assert [r.objects[0].score for r in results] == [0.75] * len(frames)


# --- outgoing messages ------------------------------------------------------------------------

OBJECTS = [m.PublishedObject(3, 1, 0.9, True, (10.0, 20.0, 30.0, 60.0)), m.PublishedObject(5, 2, 0.125, False, None)]


def test_detection_array_lists_visible_objects():
    msg = roundtrip(m.detection_array_msg(HEADER, OBJECTS))
    assert msg.header.frame_id == HEADER.frame_id and len(msg.detections) == 1
    det = msg.detections[0]
    assert det.id == det.results[0].hypothesis.class_id == "3"
    assert det.results[0].hypothesis.score == pytest.approx(0.9)
    assert (det.bbox.center.position.x, det.bbox.center.position.y, det.bbox.size_x, det.bbox.size_y) == (
        20.0,
        40.0,
        20.0,
        40.0,
    )
    assert m.box_from_bbox2d(det.bbox) == OBJECTS[0].box


def test_label_info_maps_label_values_to_object_ids():
    msg = roundtrip(m.label_info_msg(HEADER, {2: 5, 1: 3}, 0.5))
    assert [(c.class_id, c.class_name) for c in msg.class_map] == [(0, "background"), (1, "3"), (2, "5")]
    assert msg.threshold == 0.5


def test_tracked_objects_carry_every_object_and_optional_masks():
    mask = np.zeros((6, 8), bool)
    mask[2:4, 3:7] = True
    objects = [dataclasses.replace(OBJECTS[0], mask=mask), OBJECTS[1]]
    msg = roundtrip(m.tracked_object_array_msg(HEADER, objects))
    first, second = msg.objects
    assert (first.object_id, first.label, first.visible, second.object_id, second.visible) == (3, 1, True, 5, False)
    assert second.score == 0.125 and len(second.mask) == 0
    assert (second.box.size_x, second.box.size_y) == (0.0, 0.0)
    assert first.mask[0].encoding == "mono8"
    np.testing.assert_array_equal(first.mask[0].data.reshape(6, 8), np.where(mask, 255, 0))


# --- incoming prompts -------------------------------------------------------------------------


def _point2d(x, y):
    return TYPES["vision_msgs/msg/Point2D"](x=x, y=y)


def test_taps_become_one_foreground_point():
    point = TYPES["geometry_msgs/msg/Point"](x=12.5, y=7.0, z=0.0)
    stamped = roundtrip(TYPES["geometry_msgs/msg/PointStamped"](header=HEADER, point=point))
    assert m.prompt_from_point_stamped(stamped) == m.Prompt(None, [(12.5, 7.0)], [1], None, m.stamp_ns(HEADER))
    assert m.prompt_from_point(roundtrip(point)) == m.Prompt(None, [(12.5, 7.0)], [1])
    with pytest.raises(m.PromptError, match="not finite"):
        m.prompt_from_point(TYPES["geometry_msgs/msg/Point"](x=float("nan"), y=1.0, z=0.0))


def test_detections_seed_boxes():
    detections = m.detection_array_msg(HEADER, [OBJECTS[0], m.PublishedObject(4, 2, 0.8, True, (0, 0, 8, 4))])
    detections.detections[1].id = "person"
    prompts = m.prompts_from_detections(roundtrip(detections))
    assert prompts == [
        m.Prompt(None, box=(10.0, 20.0, 30.0, 60.0), stamp_ns=m.stamp_ns(HEADER), caller_id=3),
        m.Prompt(None, box=(0.0, 0.0, 8.0, 4.0), stamp_ns=m.stamp_ns(HEADER), caller_id="person"),
    ]
    detections.detections[1].id = ""  # no id: a new object each time
    assert m.prompts_from_detections(roundtrip(detections))[1].caller_id is None


def _object_prompt(object_id, points, labels, boxes, header=HEADER):
    return roundtrip(
        TYPES[OBJECT_PROMPT](
            header=header,
            object_id=object_id,
            points=[_point2d(x, y) for x, y in points],
            labels=np.array(labels, dtype=np.int32),
            box=[m.bbox2d(b) for b in boxes],
        )
    )


def test_object_prompt_message():
    prompt = m.prompt_from_msg(
        _object_prompt(-1, [(1, 2), (3, 4)], [1, 0], [(0, 0, 10, 10)], header=m.header_msg(0, ""))
    )
    assert prompt == m.Prompt(None, [(1.0, 2.0), (3.0, 4.0)], [1, 0], (0.0, 0.0, 10.0, 10.0), None)
    assert m.prompt_from_msg(_object_prompt(7, [(5, 6)], [1], [])).obj_id == 7
    for bad, why in [
        (_object_prompt(1, [(1, 2)], [], []), "1 points but 0 labels"),
        (_object_prompt(1, [], [], []), "neither points nor a box"),
        (_object_prompt(1, [(1, 2)], [2], []), "point label 2"),
        (_object_prompt(-5, [(1, 2)], [1], []), "negative"),
        (_object_prompt(1, [], [], [(5, 5, 5, 9)]), "no area"),
    ]:
        with pytest.raises(m.PromptError, match=why):
            m.prompt_from_msg(bad)
    rotated = _object_prompt(1, [], [], [(0, 0, 4, 4)])
    rotated.box[0].center.theta = 0.5
    with pytest.raises(m.PromptError, match="rotated"):
        m.prompt_from_msg(rotated)


def _add_objects(box_ids, boxes, point_ids, points, labels):
    return roundtrip(
        TYPES[ADD_OBJECTS_REQUEST](
            request_header=HEADER,
            bbox_object_ids=box_ids,
            bbox_coords=[m.bbox2d(b) for b in boxes],
            point_object_ids=point_ids,
            point_coords=[_point2d(x, y) for x, y in points],
            point_labels=np.array(labels, dtype=np.int32),
        )
    )


def test_add_objects_groups_prompts_per_object():
    stamp = m.stamp_ns(HEADER)
    request = _add_objects(["2"], [(0, 0, 4, 4)], ["obj1", "02", "obj1"], [(1, 1), (2, 2), (3, 3)], [])
    assert m.prompts_from_add_objects(request) == [  # "02" is tracker id 2, as "2" is
        m.Prompt(None, [(2.0, 2.0)], [1], (0.0, 0.0, 4.0, 4.0), stamp, caller_id=2),
        m.Prompt(None, [(1.0, 1.0), (3.0, 3.0)], [1, 1], None, stamp, caller_id="obj1"),
    ]
    labelled = _add_objects([], [], ["1", "1"], [(1, 1), (2, 2)], [1, 0])
    assert m.prompts_from_add_objects(labelled)[0].labels == [1, 0]
    for bad, why in [
        (_add_objects([""], [(0, 0, 4, 4)], [], [], []), "object id is empty"),
        (_add_objects(["x" * 129], [(0, 0, 4, 4)], [], [], []), "129 characters; at most 128"),
        (_add_objects(["1", "1"], [(0, 0, 4, 4)] * 2, [], [], []), "more than one box"),
        (_add_objects([], [], ["1"], [(1, 1)], [1, 1]), "1 points but 2 labels"),
        (_add_objects([], [], [], [], []), "neither boxes nor points"),
    ]:
        with pytest.raises(m.PromptError, match=why):
            m.prompts_from_add_objects(bad)
