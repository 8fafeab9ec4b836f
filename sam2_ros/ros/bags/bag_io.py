"""Camera bags in, output bags out: what the replay reads and writes, with errors a user can act on.

Why a module of its own: rosbag2's on-disk format differs between distributions, and a bag is
only useful if the user's ROS 2 plays it.

* Writing: Humble's rosbag2 (BagMetadata version 5) reads a topic's ``offered_qos_profiles`` as
  a YAML string (``node["offered_qos_profiles"].as<std::string>()`` in rosbag2_storage's
  yaml.hpp) and its player decodes each policy with ``.as<int>()`` (rosbag2_transport qos.cpp);
  the mcap plugin hands the channel's ``offered_qos_profiles`` metadata to the same player. Jazzy
  writes version 9 (a YAML list with names such as ``keep_last``) and still reads version <= 8 in
  the older form (rosbag2_storage qos.cpp: integers when ``version <= 8``; the mcap plugin takes
  the version from the file's ``rosbag2`` metadata record). Neither checks an upper version;
  each reads the fields it knows. So bags are written as version 8 through rosbags'
  ``Writer(version=8)``: QoS as integers inside a YAML string, in ``metadata.yaml``, the sqlite3
  ``topics`` table and the mcap channels alike. Every topic carries an explicit profile (the
  node's publisher QoS), so no player has to interpret an empty one.
* Reading: a damaged or unsupported bag (truncated mcap, garbled ``metadata.yaml``, a corrupt
  database, a serialization other than CDR, no image topic, an empty topic) is a ``BagError``
  naming the bag and what is wrong, which ``sam2-ros`` prints as one line.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sam2_ros.errors import UserError

if TYPE_CHECKING:
    from rosbags.interfaces import Connection, Qos
    from rosbags.rosbag2 import Reader, Writer
    from rosbags.typesys.store import Typestore

#: rosbag2 metadata version written: the newest whose QoS encoding Humble's rosbag2 reads (see above).
BAG_VERSION = 8
#: History depth of the node's output publishers (``create_publisher(..., 5)`` in node.py).
PUBLISHER_DEPTH = 5


class BagError(UserError):
    """A bag that cannot be read, or holds nothing the command can use."""


def _detail(exc: BaseException) -> str:
    """A library's message on one line (rosbags' YAML errors span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


@contextlib.contextmanager
def open_bag(path: Path) -> Iterator[Reader]:
    """The opened rosbags ``Reader`` of ``path``; anything that stops it from opening is a ``BagError``."""
    from rosbags.rosbag2 import Reader  # noqa: PLC0415 - rosbags loads only when a bag is read or written

    if not path.exists():
        raise BagError(f"{path}: no such bag (give a rosbag2 folder or an .mcap file)")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # noqa: BLE001 (any failure to parse a user's file is about that file)
        raise BagError(f"{path}: cannot read this bag: {_detail(exc)}") from exc
    try:
        yield reader
    finally:
        reader.close()


def image_connections(reader: Reader, topic: str | None, image_types: Sequence[str]) -> list[Connection]:
    """The connections of the image topic to replay (``topic``, or the bag's only image topic).

    ``image_types`` are the message types accepted (sensor_msgs Image and CompressedImage).
    """
    wanted = "sensor_msgs Image or CompressedImage"
    images = [c for c in reader.connections if c.msgtype in image_types]
    names = ", ".join(sorted({c.topic for c in images})) or "none"
    if topic is None:
        topics = sorted({c.topic for c in images})
        if not reader.connections:
            raise BagError(f"{reader.path}: the bag has no topics")
        if not topics:
            everything = ", ".join(f"{c.topic} ({c.msgtype})" for c in reader.connections)
            raise BagError(f"{reader.path}: no {wanted} topic in the bag (topics: {everything})")
        if len(topics) != 1:
            raise BagError(f"{reader.path}: pick the images with --image-topic (image topics: {names})")
        topic = topics[0]
    named = [c for c in reader.connections if c.topic == topic]
    if not named:
        raise BagError(f"{reader.path}: no {wanted} topic {topic!r} (image topics: {names})")
    chosen = [c for c in named if c.msgtype in image_types]
    if not chosen:
        raise BagError(f"{reader.path}: topic {topic} is {named[0].msgtype}, not a {wanted} (image topics: {names})")
    if len({c.msgtype for c in chosen}) > 1:
        raise BagError(f"{reader.path}: topic {topic} mixes {' and '.join(sorted({c.msgtype for c in chosen}))}")
    if sum(c.msgcount for c in chosen) == 0:
        raise BagError(f"{reader.path}: topic {topic} has no messages")
    return chosen


def read_messages(reader: Reader, connections: list[Connection], store: Typestore) -> Iterator[tuple[int, Any]]:
    """(record time, message) of ``connections`` in time order; a damaged record or CDR is a ``BagError``."""
    messages = reader.messages(connections=connections)
    index = 0
    while True:
        try:
            item = next(messages, None)
            if item is None:
                return
            connection, record_time, raw = item
            msg = store.deserialize_cdr(raw, connection.msgtype)
        except Exception as exc:  # noqa: BLE001 (a damaged chunk, database page or message)
            raise BagError(
                f"{reader.path}: message {index} of {connections[0].topic} is damaged: {_detail(exc)}"
            ) from exc
        yield record_time, msg
        index += 1


def node_qos(latched: bool = False) -> Qos:
    """The QoS the node offers on an output topic: reliable, depth 5; or latched (transient local, depth 1)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime  # noqa: PLC0415 - rosbags loads only when a bag is read or written

    durability = QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE
    return Qos(
        QosHistory.KEEP_LAST,
        1 if latched else PUBLISHER_DEPTH,
        QosReliability.RELIABLE,
        durability,
        QosTime(0, 0),
        QosTime(0, 0),
        QosLiveliness.AUTOMATIC,
        QosTime(0, 0),
        False,
    )


@contextlib.contextmanager
def bag_writer(path: Path) -> Iterator[Writer]:
    """A rosbag2 writer for ``path`` (version ``BAG_VERSION``): one .mcap file, or a sqlite3 bag folder.

    Written in a temporary folder beside ``path`` and moved into place when complete, so a failed
    run leaves nothing. rosbags always writes a folder; for an .mcap name only its mcap file
    (which carries every schema and QoS profile itself) is kept.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: PLC0415 - rosbags loads only when a bag is read or written

    mcap = path.suffix == ".mcap"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:  # name the bag, not the temporary folder
        raise BagError(
            f"{path}: cannot write the output bag there: {path.parent} is not a writable folder ({exc.strerror or exc})"
        ) from exc
    with staging as tmp:
        folder = Path(tmp) / ("bag" if mcap else path.name)  # the sqlite3 file is named after its folder
        with Writer(
            folder, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP if mcap else StoragePlugin.SQLITE3
        ) as writer:
            yield writer
        os.replace(folder / "bag.mcap" if mcap else folder, path)
