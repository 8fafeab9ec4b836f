"""``sam2-ros track --bag IN --image-topic T --out-bag OUT``: the node's output topics for a recorded bag.

Why: the node cannot run without ROS, but a bag can. Replay feeds the bag's images and the
command-line prompts through the same ``TrackerCore`` the node runs (prompts become
sam2_ros_interfaces/ObjectPrompt messages stamped with the image they name, ``@N`` = the N-th
image), and writes every message the node would publish into a new bag, at the input images'
record times, with the input headers. Without a ROS installation it is how the node's behaviour
is checked on real data; with one, the output bag plays back next to the input bag.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from sam2_ros.errors import InputError, UsageError
from sam2_ros.io.prompts import build_schedule
from sam2_ros.ros.node.params import NODE_NAME, TrackerParams
from sam2_ros.settings import from_args

if TYPE_CHECKING:
    from sam2_ros.io.prompts import ObjectPrompt as CliPrompt

# numpy, rosbags, torch and the core are imported where used, so that building the ``sam2-ros``
# argument parser (which registers the options below) stays instant.


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The replay options of ``sam2-ros track`` (used instead of INPUT and --out)."""
    group = parser.add_argument_group(
        "ROS 2 bag replay",
        "track the images of a rosbag2 with the ROS node's code and write its output topics "
        "into a new bag; use instead of INPUT and --out. --point/--box @N name the N-th image",
    )
    group.add_argument(
        "--bag", type=Path, metavar="IN", help="bag to read: a rosbag2 folder (sqlite3 or mcap) or an .mcap file"
    )
    group.add_argument(
        "--image-topic",
        metavar="TOPIC",
        help="sensor_msgs/Image or CompressedImage topic in --bag (default: the bag's only image topic)",
    )
    group.add_argument(
        "--out-bag",
        type=Path,
        metavar="OUT",
        help="bag to write: a name ending in .mcap gives one mcap file, any other a sqlite3 bag folder",
    )
    group.add_argument(
        "--topic-prefix",
        default=f"/{NODE_NAME}",
        metavar="NS",
        help=f"namespace of the output topics (default /{NODE_NAME}, as the node's)",
    )
    group.add_argument(
        "--object-masks",
        action="store_true",
        help="include each object's mask in tracked_objects (the node's publish_masks)",
    )


def run_replay(args: argparse.Namespace) -> int:
    """Replay ``args.bag`` into ``args.out_bag``; returns the exit code (1 if prompts were refused, 130 on Ctrl+C).

    A bag that cannot be read raises ``BagError`` before the model is built; damage found halfway
    raises it after the images before the damage were written.
    """
    if args.input is not None or args.out is not None:
        raise UsageError("--bag writes --out-bag; INPUT and --out are for videos, image folders and cameras")
    if args.bag is None or args.out_bag is None:
        raise UsageError("--bag and --out-bag go together")
    if args.save_logits:
        raise UsageError("--save-logits is not available with --bag")
    if args.out_bag.exists():
        raise UsageError(f"{args.out_bag} exists; choose a new --out-bag")
    schedule = build_schedule(args.point, args.box)
    obj_ids = {p.obj_id for prompts in schedule.values() for p in prompts}
    if len(obj_ids) > args.max_objects:
        raise UsageError(f"{len(obj_ids)} objects prompted but --max-objects is {args.max_objects}")
    from sam2_ros.ros.bags.bag_io import BagError, bag_writer, image_connections, node_qos, open_bag, read_messages  # noqa: PLC0415 - the replay loads the node core only when it runs
    from sam2_ros.ros.interfaces.messages import stamp_ns  # noqa: PLC0415 - the replay loads the node core only when it runs
    from sam2_ros.ros.interfaces.typesys import typestore  # noqa: PLC0415 - the replay loads the node core only when it runs
    from sam2_ros.ros.node.core import IMAGE_TYPES, LABEL_INFO, OUTPUT_TYPES, OVERLAY, TrackerCore, build_tracker  # noqa: PLC0415 - the replay loads the node core only when it runs

    log = _StderrLogger()
    store = typestore()
    damage: BagError | None = None
    with open_bag(args.bag) as reader:  # a bad bag or topic fails before the model is built
        connections = image_connections(reader, args.image_topic, list(IMAGE_TYPES.values()))
        image_topic, image_type = connections[0].topic, connections[0].msgtype
        depth_feed = _depth_feed(reader, args)
        params = TrackerParams.from_dict(
            {  # the node's settings: the tracker settings from the command line, then the replay's own
                **from_args(args, node=True),
                "publish_masks": args.object_masks,
                "image_transport": next(k for k, v in IMAGE_TYPES.items() if v == image_type),
                **_depth_params(args, depth_feed),
            }
        )
        output_types = {**OUTPUT_TYPES, **(_depth_output_types() if depth_feed is not None else {})}
        topics = [t for t in output_types if t != OVERLAY or not args.no_overlay]
        counts: Counter[str] = Counter()
        with bag_writer(args.out_bag) as writer:  # an unwritable OUT fails before the model is built, too
            core = TrackerCore(build_tracker(params), params, log)
            if depth_feed is not None:
                core.depth.wait_s = 0.0  # the feed delivers depth before each image is tracked
            done, previous_stamp, stopped_by, t_start = 0, None, "end of bag", time.perf_counter()
            out = {
                topic: writer.add_connection(
                    f"{args.topic_prefix.rstrip('/')}/{topic}",
                    output_types[topic],
                    typestore=store,
                    offered_qos_profiles=[node_qos(latched=topic == LABEL_INFO)],
                )
                for topic in topics
            }
            total = sum(getattr(c, "msgcount", 0) for c in connections) or None
            if total is not None and args.max_frames is not None:
                total = min(total, args.max_frames)
            bar = tqdm(total=total, unit="image", desc="replay", dynamic_ncols=True)  # the same bar as `track`
            try:
                for index, (record_time, image) in enumerate(read_messages(reader, connections, store)):
                    if args.max_frames is not None and index >= args.max_frames:
                        stopped_by = "max frames"
                        break
                    stamp = stamp_ns(image.header)
                    unordered = stamp is None or (previous_stamp is not None and stamp <= previous_stamp)
                    if index in schedule and unordered:
                        raise InputError(
                            f"image {index} on {image_topic} has stamp {stamp or 0}, not after the "
                            f"previous image's: prompts @{index} name their image by its stamp"
                        )
                    previous_stamp = stamp
                    core.on_image(image)
                    for prompt in schedule.get(index, []):
                        core.on_prompt(prompt_msg(prompt, image.header))
                    if depth_feed is not None:
                        depth_feed.feed(core, record_time)
                    outputs = core.step(overlay=OVERLAY in out, cloud="object_points" in out)
                    done = index + 1
                    bar.update(1)
                    for topic, msg in outputs.messages() if outputs is not None else []:
                        writer.write(out[topic], record_time, bytes(store.serialize_cdr(msg, msg.__msgtype__)))
                        counts[topic] += 1
            except KeyboardInterrupt:
                stopped_by = "interrupted"
            except BagError as exc:  # keep what was tracked before the damage, then report it
                stopped_by, damage = "damaged bag", exc
            finally:
                bar.close()
    late = sorted(f for f in schedule if f >= done)
    if late:
        print(
            f"warning: prompts for images {late} were never applied: the replay stopped after {done} images",
            file=sys.stderr,
        )
    written = ", ".join(f"{args.topic_prefix.rstrip('/')}/{t} {counts[t]}" for t in topics)
    print(
        f"replayed {done} images of {image_topic} ({stopped_by}, {time.perf_counter() - t_start:.1f} s) "
        f"into {args.out_bag}: {written}"
    )
    if stopped_by == "interrupted":
        return 130
    if damage is not None:
        raise BagError(f"{damage}; the {done} images before it were replayed into {args.out_bag}") from damage
    if core.stats.refused_prompts:
        print(
            f"error: {core.stats.refused_prompts} prompts were refused (see above); the bag was written",
            file=sys.stderr,
        )
        return 1
    return 0


def _depth_feed(reader: Any, args: argparse.Namespace) -> Any:
    """Depth and camera info for --depth-topic (sam2_ros.ros.bags.depth_replay), or None."""
    if getattr(args, "depth", None) is not None:
        raise UsageError("--depth DIR is for videos and image folders; with --bag use --depth-topic")
    if getattr(args, "depth_topic", None) is None:
        if getattr(args, "camera_info_topic", None) is not None:
            raise UsageError("--camera-info-topic goes with --depth-topic")
        return None
    from sam2_ros.ros.bags.depth_replay import DepthFeed  # noqa: PLC0415 - the replay loads the node core only when it runs

    return DepthFeed(reader, args.depth_topic, args.camera_info_topic, TrackerParams().depth_tolerance)


def _depth_params(args: argparse.Namespace, depth_feed: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"lost_after_frames": getattr(args, "lost_after", 15)}
    if depth_feed is not None:
        params["use_depth"] = True
        if args.depth_scale is not None:
            params["depth_scale"] = args.depth_scale
    return params


def _depth_output_types() -> dict[str, str]:
    from sam2_ros.ros.interfaces.messages3d import DEPTH_OUTPUT_TYPES  # noqa: PLC0415 - the replay loads the node core only when it runs

    return DEPTH_OUTPUT_TYPES


class _StderrLogger:
    """The core's log lines on stderr, as the command's other messages (a logging setup could swallow them)."""

    def info(self, message: str) -> None:
        print(f"info: {message}", file=sys.stderr)

    def warning(self, message: str) -> None:
        print(f"warning: {message}", file=sys.stderr)

    def error(self, message: str) -> None:
        print(f"error: {message}", file=sys.stderr)


def prompt_msg(prompt: CliPrompt, header: Any) -> Any:
    """The sam2_ros_interfaces/ObjectPrompt of one command-line object prompt, stamped with ``header``."""

    from sam2_ros.ros.interfaces.messages import bbox2d  # noqa: PLC0415 - the replay loads the node core only when it runs
    from sam2_ros.ros.interfaces.typesys import OBJECT_PROMPT, typestore  # noqa: PLC0415 - the replay loads the node core only when it runs

    types = typestore().types
    return types[OBJECT_PROMPT](
        header=header,
        object_id=prompt.obj_id,
        points=[types["vision_msgs/msg/Point2D"](x=float(x), y=float(y)) for x, y in prompt.points],
        labels=np.array(prompt.labels, dtype=np.int32),
        box=[] if prompt.box is None else [bbox2d(prompt.box)],
    )
