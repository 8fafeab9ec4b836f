"""Make a small ROS 2 sample bag from a folder of frames, for trying ``sam2-ros track --bag``.

    python scripts/make_sample_bag.py ../shared/data/videos/bedroom runs/bedroom.mcap --frames 30

writes ``runs/bedroom.mcap`` (MCAP rosbag2; a name without ``.mcap`` makes a sqlite3 bag folder):
sensor_msgs/Image ``rgb8`` on ``/camera/image_raw``, stamped at ``--fps`` from a fixed start time,
frames scaled to ``--width`` (default 480) as a robot's camera would record them. Then:

    python -m sam2_ros track --bag runs/bedroom.mcap --out-bag runs/bedroom_tracked.mcap \\
        --point 1:200,110 --random-weights --image-size 256

No ROS installation is needed (rosbags writes the bag). The bag is written whole or not at all.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2

from sam2_ros.io.sources import ImageFolderSource
from sam2_ros.ros.bags.bag_io import bag_writer
from sam2_ros.ros.interfaces.messages import header_msg
from sam2_ros.ros.interfaces.typesys import typestore

IMAGE_TYPE = "sensor_msgs/msg/Image"
T0_NS = 1_700_000_000_000_000_000


def make_bag(
    frames_dir: Path, out: Path, frames: int = 30, fps: float = 30.0, width: int = 480, topic: str = "/camera/image_raw"
) -> int:
    """Write ``frames`` frames of ``frames_dir`` into the bag ``out``; returns how many were written."""
    store = typestore()
    image_t = store.types[IMAGE_TYPE]
    written = 0
    with ImageFolderSource(frames_dir) as source, bag_writer(out) as writer:
        conn = writer.add_connection(topic, IMAGE_TYPE, typestore=store)
        for index, rgb in enumerate(source):
            if index >= frames:
                break
            h, w = rgb.shape[:2]
            if width and width != w:
                rgb = cv2.resize(rgb, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
            stamp = T0_NS + round(index * 1e9 / fps)
            msg = image_t(
                header=header_msg(stamp, "camera"),
                height=rgb.shape[0],
                width=rgb.shape[1],
                encoding="rgb8",
                is_bigendian=0,
                step=rgb.shape[1] * 3,
                data=rgb.reshape(-1),
            )
            writer.write(conn, stamp, bytes(store.serialize_cdr(msg, IMAGE_TYPE)))
            written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("frames_dir", type=Path, help="folder of jpg/png frames (natural order)")
    p.add_argument("out", type=Path, help="output bag: NAME.mcap (MCAP) or a folder name (sqlite3)")
    p.add_argument("--frames", type=int, default=30, help="frames to write (default 30)")
    p.add_argument("--fps", type=float, default=30.0, help="stamp rate (default 30)")
    p.add_argument("--width", type=int, default=480, help="scale frames to this width, 0 keeps them (default 480)")
    p.add_argument("--topic", default="/camera/image_raw", help="image topic (default /camera/image_raw)")
    args = p.parse_args(argv)
    if args.out.exists():
        print(f"error: {args.out} exists; choose a new name", file=sys.stderr)
        return 2
    n = make_bag(args.frames_dir, args.out, args.frames, args.fps, args.width, args.topic)
    print(f"wrote {n} images on {args.topic} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
