"""``sam2-ros track`` with depth: --depth DIR for files, --depth-topic for bags, on the livingroom RGB-D frames.

Random weights (64 px model) make the masks meaningless; these tests show the plumbing: 3-D
results land in summary.json and in the output bag on the node's topics, stamped like the
images, and bad depth input is a one-line error. The output bag is read back with the ``mcap``
library (independent of rosbags, which wrote it).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from sam2_ros.ros.interfaces import messages as m
from sam2_ros.ros.interfaces.typesys import typestore

STORE = typestore()
TYPES = STORE.types
RANDOM_TINY = ["--random-weights", "--model", "sam2.1_hiera_t", "--image-size", "64"]
INTRINSICS = "525,525,319.5,239.5"
FRAMES = 3


def run_cli(argv: list) -> tuple[int, str, str]:
    """``sam2-ros`` in-process; argparse's own errors (exit 2, one usage line) count as a return code."""
    import contextlib
    import io

    from sam2_ros.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:
            rc = int(exc.code)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def livingroom(data_dir) -> Path:
    root = data_dir / "rgbd" / "livingroom"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    return root


def test_track_with_depth_writes_3d_and_track_state_to_the_summary(livingroom, tmp_path):
    rc, out, err = run_cli(
        [
            "track",
            livingroom / "color",
            "--depth",
            livingroom / "depth",
            "--intrinsics",
            INTRINSICS,
            "--out",
            tmp_path,
            *RANDOM_TINY,
            "--max-frames",
            FRAMES,
            "--no-overlay",
            "--box",
            "1:340,110,610,380",
            "--point",
            "2:100,100",
        ]
    )
    assert rc == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["depth"]["intrinsics"] == [525.0, 525.0, 319.5, 239.5]
    objects = [o for f in summary["frames"] for o in f["objects"]]
    assert len(objects) == 2 * FRAMES
    for o in objects:
        assert o["track"]["state"] in ("tracking", "occluded", "lost")
        assert ("3d" in o) == o["visible"]  # only visible objects are located
        if "3d" in o and o["3d"]["valid"]:
            assert 0.5 < o["3d"]["position"][2] < 3.0 and o["3d"]["samples"] >= 20
        elif "3d" in o:
            assert o["3d"]["position"] == [None, None, None]


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--depth", "{depth}"], "--depth needs --intrinsics"),
        (["--intrinsics", INTRINSICS], "go with --depth"),
        (["--depth", "{color}/00000.jpg", "--intrinsics", INTRINSICS], "not a folder"),
        (["--depth", "{depth}", "--intrinsics", "1,2,3"], "4 numbers"),
        (["--depth", "{color}", "--intrinsics", INTRINSICS], "holds no png/tif"),
        (["--depth", "{eight}", "--intrinsics", INTRINSICS], "single-channel 16-bit"),
        (["--depth", "{small}", "--intrinsics", INTRINSICS], "whole-number zoom"),
    ],
)
def test_bad_depth_input_is_one_line_and_exit_2(livingroom, tmp_path, extra, message):
    small = tmp_path / "small"
    small.mkdir()
    cv2.imwrite(str(small / "0.png"), np.full((300, 400), 1000, np.uint16))
    eight = tmp_path / "eight"
    eight.mkdir()
    cv2.imwrite(str(eight / "0.png"), np.full((480, 640), 100, np.uint8))
    argv = [a.format(depth=livingroom / "depth", color=livingroom / "color", small=small, eight=eight) for a in extra]
    rc, _, err = run_cli(
        [
            "track",
            livingroom / "color",
            "--out",
            tmp_path / "o",
            *RANDOM_TINY,
            "--max-frames",
            1,
            "--no-overlay",
            "--box",
            "1:340,110,610,380",
            *argv,
        ]
    )
    assert rc == 2 and message in err, err
    assert "Traceback" not in err


def _write_rgbd_bag(path: Path, root: Path) -> list[int]:
    """Colour, depth (recorded 3 ms after its image, as registered depth is) and camera info."""
    stamps = []
    with Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
        image = writer.add_connection("/camera/color/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        depth = writer.add_connection(
            "/camera/aligned_depth_to_color/image_raw", "sensor_msgs/msg/Image", typestore=STORE
        )
        info = writer.add_connection("/camera/color/camera_info", "sensor_msgs/msg/CameraInfo", typestore=STORE)
        roi = TYPES["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        for i in range(FRAMES):
            ns = 1_700_000_000_000_000_000 + i * 33_000_000
            stamps.append(ns)
            hdr = m.header_msg(ns, "camera_color_optical_frame")
            bgr = cv2.imread(str(root / "color" / f"{i:05d}.jpg"))
            d = cv2.imread(str(root / "depth" / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED)
            msgs = [
                (
                    info,
                    ns,
                    TYPES["sensor_msgs/msg/CameraInfo"](
                        header=hdr,
                        height=480,
                        width=640,
                        distortion_model="plumb_bob",
                        d=np.zeros(5),
                        k=np.array([525.0, 0, 319.5, 0, 525.0, 239.5, 0, 0, 1]),
                        r=np.eye(3).reshape(-1),
                        p=np.zeros(12),
                        binning_x=0,
                        binning_y=0,
                        roi=roi,
                    ),
                ),
                (
                    image,
                    ns + 1_000_000,
                    TYPES["sensor_msgs/msg/Image"](
                        header=hdr,
                        height=480,
                        width=640,
                        encoding="bgr8",
                        is_bigendian=0,
                        step=640 * 3,
                        data=bgr.reshape(-1),
                    ),
                ),
                (
                    depth,
                    ns + 4_000_000,
                    TYPES["sensor_msgs/msg/Image"](
                        header=hdr,
                        height=480,
                        width=640,
                        encoding="16UC1",
                        is_bigendian=0,
                        step=640 * 2,
                        data=d.reshape(-1).view(np.uint8),
                    ),
                ),
            ]
            for connection, record, msg in msgs:
                writer.write(connection, record, bytes(STORE.serialize_cdr(msg, msg.__msgtype__)))
    return stamps


def test_replay_with_depth_topics_writes_the_3d_topics(livingroom, tmp_path):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    stamps = _write_rgbd_bag(tmp_path / "in", livingroom)
    rc, out, err = run_cli(
        [
            "track",
            "--bag",
            tmp_path / "in",
            "--image-topic",
            "/camera/color/image_raw",
            "--depth-topic",
            "/camera/aligned_depth_to_color/image_raw",
            "--camera-info-topic",
            "/camera/color/camera_info",
            "--out-bag",
            tmp_path / "out.mcap",
            *RANDOM_TINY,
            "--no-overlay",
            "--box",
            "1:340,110,610,380",
        ]
    )
    assert rc == 0, err
    topics: dict[str, list] = {}
    with open(tmp_path / "out.mcap", "rb") as f:
        for _, channel, _, msg in make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
            topics.setdefault(channel.topic, []).append(msg)
    assert [(d.header.stamp.sec * 10**9 + d.header.stamp.nanosec) for d in topics["/tracker/detections_3d"]] == stamps
    assert len(topics["/tracker/object_points"]) == FRAMES
    for det_array, tracked, cloud in zip(
        topics["/tracker/detections_3d"], topics["/tracker/tracked_objects"], topics["/tracker/object_points"]
    ):
        visible = {o.object_id for o in tracked.objects if o.visible}
        assert {int(d.id) for d in det_array.detections} <= visible
        for d in det_array.detections:
            assert 0.5 < d.bbox.center.position.z < 3.0
        assert cloud.point_step == 16 and cloud.width * 16 == len(cloud.data)
        assert all(o.state in (1, 2, 3) for o in tracked.objects)
    valid_frames = sum(1 for d in topics["/tracker/detections_3d"] if d.detections)
    print(f"\nreplay: {valid_frames} of {FRAMES} frames with a valid 3-D detection (random weights)")
    assert len(topics.get("/tracker/target_point", [])) == valid_frames
    assert "replayed 3 images" in out


def test_replay_depth_topic_errors(livingroom, tmp_path):
    _write_rgbd_bag(tmp_path / "in", livingroom)
    for extra, message in [
        (["--depth-topic", "/camera/aligned_depth_to_color/image_raw"], "needs --camera-info-topic"),
        (["--depth-topic", "/nope", "--camera-info-topic", "/camera/color/camera_info"], "no sensor_msgs/msg/Image"),
        (
            ["--depth-topic", "/camera/color/camera_info", "--camera-info-topic", "/camera/color/camera_info"],
            "not sensor_msgs/msg/Image",
        ),
    ]:
        rc, _, err = run_cli(
            [
                "track",
                "--bag",
                tmp_path / "in",
                "--image-topic",
                "/camera/color/image_raw",
                "--out-bag",
                tmp_path / "o.mcap",
                *RANDOM_TINY,
                *extra,
            ]
        )
        assert rc == 2 and message in err, err
