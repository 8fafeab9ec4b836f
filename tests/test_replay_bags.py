"""The replay's output bags as Humble's and Jazzy's rosbag2 read them; damaged and unsupported input bags.

Without ROS here, the output is read the way each distribution's rosbag2 parses it (the rules
below are rosbag2_storage's yaml.hpp / qos.cpp, rosbag2_transport's qos.cpp and
rosbag2_storage_mcap's mcap_storage.cpp on the humble and jazzy branches), and every message is
decoded with ``mcap`` + ``mcap-ros2-support``, an implementation independent of rosbags, which
wrote the bags: the mcap file through its embedded schemas, the sqlite3 database (read with
Python's sqlite3) through the standard message definitions.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from mcap_ros2._dynamic import generate_dynamic
from mcap_ros2.decoder import DecoderFactory
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer

from sam2_ros.cli import main
from sam2_ros.ros.interfaces.typesys import interface_definitions, typestore
from sam2_ros.ros.interfaces.vision_msgs_defs import VISION_MSGS

RANDOM_TINY = ["--random-weights", "--model", "sam2.1_hiera_t", "--image-size", "128"]
STORE = typestore()
TYPES = STORE.types
WIDTH, HEIGHT, FRAMES = 64, 48, 3
STAMPS = [1_700_000_000_000_000_000 + i * 100_000_000 for i in range(FRAMES)]
RECORDS = [s + 5_000_000 for s in STAMPS]
OUTPUTS = {
    "label_info": "vision_msgs/msg/LabelInfo",
    "label_image": "sensor_msgs/msg/Image",
    "detections": "vision_msgs/msg/Detection2DArray",
    "tracked_objects": "sam2_ros_interfaces/msg/TrackedObjectArray",
    "overlay": "sensor_msgs/msg/Image",
}
ONE_PER_IMAGE = ("label_image", "detections", "tracked_objects", "overlay")

# Humble's BagMetadata::version is 5; its reader has no upper bound: it reads the fields it knows
# (offered_qos_profiles as a string from version 4, files from version 5) and ignores the others.
# Jazzy writes 9 and reads every version up to 9.
JAZZY_VERSION = 9


def run_cli(argv: list) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def camera_bag(
    path: Path,
    storage: StoragePlugin,
    frames: int = FRAMES,
    topic: str = "/cam/image_raw",
    msgtype: str = "sensor_msgs/msg/Image",
    serialization: str = "cdr",
) -> Path:
    """A camera bag as Jazzy records it (rosbags' default, version 9) with a second, non-image topic."""
    rng = np.random.default_rng(0)
    with Writer(path, version=9, storage_plugin=storage) as writer:
        images = writer.add_connection(topic, msgtype, typestore=STORE, serialization_format=serialization)
        text = writer.add_connection("/status", "std_msgs/msg/String", typestore=STORE)
        for stamp, record in list(zip(STAMPS, RECORDS))[:frames]:
            header = TYPES["std_msgs/msg/Header"](
                stamp=TYPES["builtin_interfaces/msg/Time"](sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id="cam"
            )
            image = TYPES["sensor_msgs/msg/Image"](
                header=header,
                height=HEIGHT,
                width=WIDTH,
                encoding="rgb8",
                is_bigendian=0,
                step=WIDTH * 3,
                data=rng.integers(0, 256, HEIGHT * WIDTH * 3, dtype=np.uint8),
            )
            writer.write(images, record, bytes(STORE.serialize_cdr(image, "sensor_msgs/msg/Image")))
            writer.write(
                text, record, bytes(STORE.serialize_cdr(TYPES["std_msgs/msg/String"](data="ok"), "std_msgs/msg/String"))
            )
    return path


@pytest.fixture(scope="module")
def out_bags(tmp_path_factory) -> dict[str, Path]:
    """The replay of one camera bag into each storage: an .mcap file and a sqlite3 folder."""
    folder = tmp_path_factory.mktemp("bags")
    camera_bag(folder / "in", StoragePlugin.MCAP)
    bags = {"mcap": folder / "out.mcap", "sqlite3": folder / "out"}
    for out in bags.values():
        rc, _, err = run_cli(
            [
                "track",
                "--bag",
                folder / "in",
                "--out-bag",
                out,
                *RANDOM_TINY,
                "--object-masks",
                "--box",
                "1:5,5,40,30",
                "--point",
                "2:50,40@1",
            ]
        )
        assert rc == 0, err
    return bags


# --- rosbag2's parsing rules, distribution by distribution --------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_profile(profile: dict, policy_ok) -> None:
    for policy in ("history", "reliability", "durability", "liveliness"):
        assert policy_ok(policy, profile[policy]), (policy, profile[policy])
    assert _is_int(profile["depth"])
    for duration in ("deadline", "lifespan", "liveliness_lease_duration"):
        assert _is_int(profile[duration]["sec"]) and _is_int(profile[duration]["nsec"])
    assert isinstance(profile["avoid_ros_namespace_conventions"], bool)


def humble_qos(serialized: object) -> list[dict]:
    """A topic's offered QoS as Humble's player decodes it: a YAML string, every policy ``.as<int>()``."""
    assert isinstance(serialized, str), f"Humble reads offered_qos_profiles as a string, got {serialized!r}"
    profiles = yaml.safe_load(serialized) if serialized else []
    assert isinstance(profiles, list)
    for profile in profiles:
        _check_profile(profile, lambda _, value: _is_int(value))
    return profiles


def jazzy_qos(serialized: object, version: int) -> list[dict]:
    """As Jazzy decodes it: up to version 8 a string with integer policies (history may be either);
    from 9 a YAML list (in metadata.yaml) or string (mcap) with policy names."""
    if version <= 8:
        assert isinstance(serialized, str)
    profiles = yaml.safe_load(serialized) if isinstance(serialized, str) else serialized
    profiles = profiles or []
    names = {
        "history": {"system_default", "keep_last", "keep_all", "unknown"},
        "reliability": {"system_default", "reliable", "best_effort", "unknown", "best_available"},
        "durability": {"system_default", "transient_local", "volatile", "unknown", "best_available"},
        "liveliness": {"system_default", "automatic", "manual_by_topic", "unknown", "best_available"},
    }
    for profile in profiles:
        _check_profile(
            profile,
            lambda policy, value: (
                _is_int(value) if version <= 8 and policy != "history" else _is_int(value) or value in names[policy]
            ),
        )
    return profiles


def read_metadata(text: str, distro: str) -> tuple[int, dict[str, list[dict]]]:
    """metadata.yaml as ``convert<BagMetadata>::decode`` of ``distro`` reads it: (version, QoS by topic)."""
    info = yaml.safe_load(text)["rosbag2_bagfile_information"]
    version = info["version"]
    assert _is_int(version) and 4 <= version <= JAZZY_VERSION
    assert isinstance(info["storage_identifier"], str)
    assert all(isinstance(p, str) for p in info["relative_file_paths"])
    assert _is_int(info["duration"]["nanoseconds"]) and _is_int(info["starting_time"]["nanoseconds_since_epoch"])
    assert _is_int(info["message_count"])
    assert isinstance(info["compression_format"], str) and isinstance(info["compression_mode"], str)
    if version >= 5:
        assert all(isinstance(f["path"], str) and _is_int(f["message_count"]) for f in info["files"])
    if distro == "jazzy":
        if version >= 6:
            assert info["custom_data"] is None or isinstance(info["custom_data"], dict)
        if version >= 8:
            assert isinstance(info["ros_distro"], str)
    qos = {}
    for entry in info["topics_with_message_count"]:
        topic = entry["topic_metadata"]
        assert all(isinstance(topic[k], str) for k in ("name", "type", "serialization_format"))
        assert _is_int(entry["message_count"])
        if distro == "jazzy" and version >= 7:
            assert isinstance(topic["type_description_hash"], str)
        offered = topic["offered_qos_profiles"]
        qos[topic["name"]] = humble_qos(offered) if distro == "humble" else jazzy_qos(offered, version)
    return version, qos


def mcap_qos(path: Path, distro: str) -> dict[str, list[dict]]:
    """The channels' QoS as each distribution's mcap plugin reads them (Jazzy: at the version of the
    file's ``rosbag2`` metadata record, 8 without one; Humble: the string goes to its player)."""
    with path.open("rb") as f:
        reader = make_reader(f)
        records = [m.metadata["serialized_metadata"] for m in reader.iter_metadata() if m.name == "rosbag2"]
        version = yaml.safe_load(records[0])["version"] if records else 8
        channels = reader.get_summary().channels.values()
        return {
            c.topic: humble_qos(c.metadata["offered_qos_profiles"])
            if distro == "humble"
            else jazzy_qos(c.metadata["offered_qos_profiles"], version)
            for c in channels
        }


# --- the standard message definitions, decoded with mcap_ros2 ------------------------------------

STANDARD = {
    "std_msgs/msg/Header": "builtin_interfaces/Time stamp\nstring frame_id",
    "sensor_msgs/msg/Image": "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\n"
    "uint8 is_bigendian\nuint32 step\nuint8[] data",
    "geometry_msgs/msg/Point": "float64 x\nfloat64 y\nfloat64 z",
    "geometry_msgs/msg/Vector3": "float64 x\nfloat64 y\nfloat64 z",
    "geometry_msgs/msg/Quaternion": "float64 x 0\nfloat64 y 0\nfloat64 z 0\nfloat64 w 1",
    "geometry_msgs/msg/Pose": "Point position\nQuaternion orientation",
    "geometry_msgs/msg/PoseWithCovariance": "Pose pose\nfloat64[36] covariance",
    **VISION_MSGS,
    **{name: text for name, text in interface_definitions().items() if "/msg/" in name},
}


def standard_decoder(msgtype: str):
    """A CDR decoder for ``msgtype`` from the standard definitions, as one concatenated ros2msg schema."""
    separator = "=" * 80
    text = STANDARD[msgtype] + "".join(
        f"\n{separator}\nMSG: {name}\n{definition}" for name, definition in STANDARD.items() if name != msgtype
    )
    return generate_dynamic(msgtype, text)[msgtype]


def decoded_mcap(path: Path) -> dict[str, list[tuple[int, object]]]:
    topics: dict[str, list[tuple[int, object]]] = {}
    with path.open("rb") as f:
        for _, channel, message, decoded in make_reader(
            f, decoder_factories=[DecoderFactory()]
        ).iter_decoded_messages():
            topics.setdefault(channel.topic, []).append((message.log_time, decoded))
    return topics


def decoded_sqlite3(folder: Path) -> dict[str, list[tuple[int, object]]]:
    (db,) = folder.glob("*.db3")
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT topics.name, topics.type, messages.timestamp, messages.data FROM messages "
            "JOIN topics ON topics.id = messages.topic_id ORDER BY messages.timestamp, messages.id"
        )
        topics: dict[str, list[tuple[int, object]]] = {}
        for name, msgtype, timestamp, data in rows.fetchall():
            topics.setdefault(name, []).append((timestamp, standard_decoder(msgtype)(bytes(data))))
    return topics


def stamp_of(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


# --- output bags --------------------------------------------------------------------------------


@pytest.mark.parametrize("distro", ["humble", "jazzy"])
def test_sqlite3_metadata_reads_on(distro, out_bags):
    version, qos = read_metadata((out_bags["sqlite3"] / "metadata.yaml").read_text(), distro)
    assert version == 8
    assert sorted(qos) == sorted(f"/tracker/{t}" for t in OUTPUTS)
    for topic, profiles in qos.items():
        (profile,) = profiles
        latched = topic.endswith("label_info")
        assert (profile["history"], profile["depth"], profile["reliability"], profile["durability"]) == (
            1,
            1 if latched else 5,
            1,
            1 if latched else 2,
        )  # keep_last, reliable, transient_local/volatile
    (db,) = out_bags["sqlite3"].glob("*.db3")  # the players take a sqlite3 bag's topics from its database
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT name, offered_qos_profiles FROM topics").fetchall()
    assert {name: (humble_qos if distro == "humble" else lambda q: jazzy_qos(q, version))(q) for name, q in rows} == qos


@pytest.mark.parametrize("distro", ["humble", "jazzy"])
def test_mcap_channels_read_on(distro, out_bags):
    qos = mcap_qos(out_bags["mcap"], distro)
    assert sorted(qos) == sorted(f"/tracker/{t}" for t in OUTPUTS)
    assert qos["/tracker/label_info"][0]["durability"] == 1 and qos["/tracker/label_image"][0]["depth"] == 5


def test_the_checks_reject_jazzys_own_form(tmp_path):
    """What Jazzy writes (version 9, QoS by name, a list in metadata.yaml) fails the Humble checks, as on Humble."""
    latched = Qos(
        QosHistory.KEEP_LAST,
        1,
        QosReliability.RELIABLE,
        QosDurability.TRANSIENT_LOCAL,
        QosTime(0, 0),
        QosTime(0, 0),
        QosLiveliness.AUTOMATIC,
        QosTime(0, 0),
        False,
    )
    for storage in (StoragePlugin.SQLITE3, StoragePlugin.MCAP):
        bag = tmp_path / storage.name.lower()
        with Writer(bag, version=9, storage_plugin=storage) as writer:
            writer.add_connection("/t", "std_msgs/msg/String", typestore=STORE, offered_qos_profiles=[latched])
        text = (bag / "metadata.yaml").read_text()
        assert read_metadata(text, "jazzy")[1]["/t"][0]["history"] == "keep_last"
        with pytest.raises(AssertionError, match="as a string"):
            read_metadata(text, "humble")
        if storage == StoragePlugin.MCAP:
            assert mcap_qos(bag / "mcap.mcap", "jazzy")["/t"][0]["durability"] == "transient_local"
            with pytest.raises(AssertionError, match="history"):
                mcap_qos(bag / "mcap.mcap", "humble")


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_every_message_decodes_independently(storage, out_bags):
    topics = decoded_mcap(out_bags["mcap"]) if storage == "mcap" else decoded_sqlite3(out_bags["sqlite3"])
    assert {t: len(v) for t, v in topics.items()} == {
        "/tracker/label_info": 2,
        **{f"/tracker/{t}": FRAMES for t in ONE_PER_IMAGE},
    }
    for topic in ONE_PER_IMAGE:  # the input images' headers, at their record times
        assert [(stamp_of(msg), record) for record, msg in topics[f"/tracker/{topic}"]] == list(zip(STAMPS, RECORDS))
        assert {msg.header.frame_id for _, msg in topics[f"/tracker/{topic}"]} == {"cam"}
    for _, labels in topics["/tracker/label_image"]:
        assert (labels.encoding, labels.width, labels.height, len(labels.data)) == (
            "mono8",
            WIDTH,
            HEIGHT,
            WIDTH * HEIGHT,
        )
        assert set(np.frombuffer(bytes(labels.data), np.uint8).tolist()) <= {0, 1, 2}
    assert [[o.object_id for o in msg.objects] for _, msg in topics["/tracker/tracked_objects"]] == [
        [1],
        [1, 2],
        [1, 2],
    ]
    last = topics["/tracker/tracked_objects"][-1][1]
    assert all(len(o.mask) == 1 and (o.mask[0].width, o.mask[0].height) == (WIDTH, HEIGHT) for o in last.objects)
    info = topics["/tracker/label_info"][-1][1]
    assert [(c.class_id, c.class_name) for c in info.class_map] == [(0, "background"), (1, "1"), (2, "2")]
    for _, overlay in topics["/tracker/overlay"]:
        assert (overlay.width, overlay.height, len(overlay.data)) == (WIDTH, HEIGHT, overlay.step * HEIGHT)


def test_embedded_schemas_decode_as_the_standard_definitions(out_bags):
    """The mcap file's schemas (which players use) give the same messages as the standard definitions."""
    with out_bags["mcap"].open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for schema, _, message, decoded in reader.iter_decoded_messages():
            again = standard_decoder(schema.name)(message.data)
            assert repr(again) == repr(decoded), schema.name


# --- damaged and unsupported input bags ---------------------------------------------------------


def assert_one_line_error(argv: list, *fragments: str) -> str:
    rc, _, err = run_cli(["track", *argv, *RANDOM_TINY])
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sam2-ros track: error: "), err
    assert all(f in lines[0] for f in fragments), (fragments, err)
    return lines[0]


def test_damaged_and_unsupported_bags(tmp_path):
    good_mcap = camera_bag(tmp_path / "good_mcap", StoragePlugin.MCAP, frames=2)
    good_sqlite = camera_bag(tmp_path / "good_sqlite", StoragePlugin.SQLITE3, frames=2)
    data = (good_mcap / "good_mcap.mcap").read_bytes()
    (tmp_path / "truncated.mcap").write_bytes(data[: len(data) // 2])

    def sqlite_copy(name: str, metadata: bytes | None = None, db: bytes | None = None) -> Path:
        copy = tmp_path / name
        shutil.copytree(good_sqlite, copy)
        if metadata is not None:
            (copy / "metadata.yaml").write_bytes(metadata)
        if db is not None:
            (copy / "good_sqlite.db3").write_bytes(db)
        return copy

    out = tmp_path / "out.mcap"
    cases = [
        (tmp_path / "truncated.mcap", [], ["truncated.mcap: cannot read this bag", "File end magic is invalid"]),
        (
            sqlite_copy("garbled", b"rosbag2_bagfile_information: [\n  : bad"),
            [],
            ["garbled: cannot read this bag", "Could not load YAML"],
        ),
        (
            sqlite_copy("incomplete", b"rosbag2_bagfile_information:\n  version: 8\n"),
            [],
            ["incomplete: cannot read this bag", "relative_file_paths"],
        ),
        (sqlite_copy("binary", b"\xff\xfe\x00\x81 not yaml"), [], ["binary: cannot read this bag", "utf-8"]),
        (sqlite_copy("notadb", db=b"x" * 5000), [], ["notadb: cannot read this bag", "not a database"]),
        (
            camera_bag(tmp_path / "json", StoragePlugin.MCAP, serialization="json"),
            [],
            ["json: cannot read this bag", "Serialization format {'json'} is not supported"],
        ),
        (tmp_path / "missing", [], ["missing: no such bag"]),
        (
            good_mcap,
            ["--image-topic", "/nope"],
            ["no sensor_msgs Image or CompressedImage topic '/nope' (image topics: /cam/image_raw)"],
        ),
        (
            good_mcap,
            ["--image-topic", "/status"],
            ["topic /status is std_msgs/msg/String, not a sensor_msgs Image or CompressedImage"],
        ),
        (
            camera_bag(tmp_path / "points", StoragePlugin.MCAP, msgtype="std_msgs/msg/String", topic="/points"),
            [],
            ["no sensor_msgs Image or CompressedImage topic in the bag (topics: /points (std_msgs/msg/String)"],
        ),
        (
            camera_bag(tmp_path / "empty_topic", StoragePlugin.SQLITE3, frames=0),
            [],
            ["topic /cam/image_raw has no messages"],
        ),
    ]
    with Writer(tmp_path / "no_topics", version=9, storage_plugin=StoragePlugin.MCAP):
        pass
    cases.append((tmp_path / "no_topics", [], ["the bag has no topics"]))
    (tmp_path / "blocker").write_text("a file where the output bag's folder would go")
    blocked = tmp_path / "blocker" / "out.mcap"
    cases.append((good_mcap, ["--out-bag", blocked], [f"{blocked}: cannot write the output bag there: "]))
    for bag, extra, fragments in cases:
        named = [] if "--out-bag" in extra else [str(bag)]  # the error names the bag at fault
        assert_one_line_error(["--bag", bag, "--out-bag", out, *extra], *named, *fragments)
    assert sorted(p.name for p in tmp_path.iterdir() if "out" in p.name) == []  # nothing written


def test_damage_halfway_keeps_the_images_before_it(tmp_path):
    bag = camera_bag(tmp_path / "in", StoragePlugin.SQLITE3)
    (db,) = bag.glob("*.db3")
    with contextlib.closing(sqlite3.connect(db)) as conn:  # the second image's CDR is cut short
        topic_id = conn.execute("SELECT id FROM topics WHERE name = '/cam/image_raw'").fetchone()[0]
        second = conn.execute(
            "SELECT id FROM messages WHERE topic_id = ? ORDER BY timestamp LIMIT 1 OFFSET 1", (topic_id,)
        ).fetchone()[0]
        conn.execute("UPDATE messages SET data = ? WHERE id = ?", (b"\x00\x01\x00\x00\x05", second))
        conn.commit()
    rc, out, err = run_cli(["track", "--bag", bag, "--out-bag", tmp_path / "out.mcap", *RANDOM_TINY])
    assert rc == 2 and "Traceback" not in err
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(f"sam2-ros track: error: {bag}: message 1 of /cam/image_raw is damaged: ")
    )
    assert "the 1 images before it were replayed into" in err and "(damaged bag," in out
    assert len(decoded_mcap(tmp_path / "out.mcap")["/tracker/label_image"]) == 1


def test_cli_errors_are_one_line_in_a_real_process(tmp_path):
    """Through the console entry point: exit code 2, one stderr line, no traceback."""
    truncated = tmp_path / "cut.mcap"
    data = (camera_bag(tmp_path / "in", StoragePlugin.MCAP, frames=1) / "in.mcap").read_bytes()
    truncated.write_bytes(data[:-40])
    for argv in (
        ["track", "--bag", str(truncated), "--out-bag", str(tmp_path / "o.mcap"), *RANDOM_TINY],
        ["download", "sam2.1_hiera_t", "--out", str(tmp_path / "ck"), "--url", "http://127.0.0.1:9/x.pt", "--quiet"],
    ):
        done = subprocess.run([sys.executable, "-m", "sam2_ros", *argv], capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
