"""rosbag2 reading and writing without a ROS install (the pure-Python ``rosbags`` library).

:class:`BagReader` opens a rosbag2 folder (``metadata.yaml`` + ``.mcap`` / ``.db3``) or a
bare ``.mcap`` / ``.db3`` file. Bags whose recording did not finish are read as far as
they go: a folder without ``metadata.yaml`` is read from its storage file, and a storage
file that ends mid-write (truncated ``.mcap`` without footer, ``.db3`` cut short) is
scanned record by record (:mod:`.recovery`); iterating such a bag yields every complete
message and then raises :class:`TruncatedBagError`, so callers can keep what was processed.

:class:`BagWriter` writes rosbag2 version 9 bags (Kilted) in mcap or sqlite3 storage.
Message objects are the ``rosbags`` typestore classes (``typestore().types[...]``); their
fields are those of the ROS 2 messages, so :mod:`seg_perception.core.image_msgs` builds and
decodes them like rclpy messages.
"""
from __future__ import annotations

import functools
import logging
import os
import pathlib
from collections.abc import Collection, Iterator
from typing import Any

import numpy as np

from seg_perception.bag.errors import BagError, TruncatedBagError, one_line
from seg_perception.bag.recovery import McapScan, Sqlite3Scan, recover
from seg_perception.bag.topics import (
    CAMERA_INFO,
    COMPRESSED,
    IMAGE,
    IMAGE_TYPES,
    STORAGES,
    TopicInfo,
)
from seg_perception.core.image_msgs import fill_image_msg

LOG = logging.getLogger(__name__)




@functools.lru_cache(maxsize=1)
def typestore() -> Any:
    """The ROS 2 Kilted message typestore (the latest one this rosbags knows otherwise)."""
    from rosbags.typesys import Stores, get_typestore
    store = getattr(Stores, 'ROS2_KILTED', None) or Stores.LATEST
    return get_typestore(store)


def occupancy_grid_msg(values: np.ndarray, resolution: float, origin: tuple[float, float],
                       hdr: Any) -> Any:
    """``nav_msgs/OccupancyGrid`` of (height, width) int8 ``values`` (row-major, rows along +y
    of ``hdr.frame_id``), ``resolution`` m/cell, cell (0, 0) corner at ``origin`` (x, y) m.
    """
    types = typestore().types
    point = types['geometry_msgs/msg/Point'](x=float(origin[0]), y=float(origin[1]), z=0.0)
    quat = types['geometry_msgs/msg/Quaternion'](x=0.0, y=0.0, z=0.0, w=1.0)
    info = types['nav_msgs/msg/MapMetaData'](
        map_load_time=hdr.stamp, resolution=float(resolution), width=int(values.shape[1]),
        height=int(values.shape[0]), origin=types['geometry_msgs/msg/Pose'](
            position=point, orientation=quat))
    return types['nav_msgs/msg/OccupancyGrid'](
        header=hdr, info=info, data=np.ascontiguousarray(values, np.int8).reshape(-1))


# -- reading -----------------------------------------------------------------------------
class BagReader:
    """Read-only access to the messages of a bag.

    Args:
        path: rosbag2 folder, or a bare ``.mcap`` / ``.db3`` file.

    Attributes:
        topics: ``{topic: TopicInfo}`` of the readable part.
        storage: ``'mcap'`` or ``'sqlite3'``.
        damage: why the bag is incomplete (iteration will raise
            :class:`TruncatedBagError` after the readable messages), else ``None``.

    Raises:
        BagError: not found, not a bag, or not readable at all.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        """Open the bag (recovering what is readable from an unfinished recording)."""
        self.path = pathlib.Path(path)
        self.damage: str | None = None
        self._reader: Any = None
        self._recovery: McapScan | Sqlite3Scan | None = None
        target = self._storage_target()
        self.storage = 'sqlite3' if self._storage_file(target).suffix == '.db3' else 'mcap'
        from rosbags.rosbag2 import Reader
        try:
            reader = Reader(target)
            reader.open()
        except Exception as exc:  # noqa: BLE001 - rosbags raises several types here
            reason = one_line(exc)
            self._recovery = recover(self.path, self._storage_file(target), reason)
            self.damage = self._recovery.damage or reason
            LOG.info('%s: %s; reading what is there', self.path, self.damage)
            self.topics = self._recovery.topics
            return
        self._reader = reader
        self.topics = {}
        for c in reader.connections:
            info = self.topics.get(c.topic)
            if info is None:
                self.topics[c.topic] = TopicInfo(c.topic, c.msgtype, int(c.msgcount),
                                                 c.msgdef.data or None, c.digest or None)
            else:
                info.count += int(c.msgcount)

    def _storage_target(self) -> pathlib.Path:
        p = self.path
        if not p.exists():
            raise BagError(f'{p}: bag not found')
        if p.is_dir():
            if (p / 'metadata.yaml').is_file():
                return p
            files = sorted([*p.glob('*.mcap'), *p.glob('*.db3')])
            if len(files) == 1:
                # rosbag2 writes metadata.yaml when a recording ends: the storage file may
                # still be complete (checked when it is opened) or cut short (recovered)
                LOG.info('%s: no metadata.yaml (the recording did not finish cleanly?); '
                         'reading %s directly', p, files[0].name)
                return files[0]
            if files:
                raise BagError(f'{p}: {len(files)} storage files but no metadata.yaml '
                               '(reindex the bag with "ros2 bag reindex" first)')
            raise BagError(f'{p}: not a rosbag2 folder (no metadata.yaml, .mcap or .db3 file)')
        if p.suffix not in ('.mcap', '.db3'):
            raise BagError(f'{p}: not a bag (expected a rosbag2 folder, .mcap or .db3 file)')
        return p

    def _storage_file(self, target: pathlib.Path) -> pathlib.Path:
        if target.is_file():
            return target
        files = sorted([*target.glob('*.mcap'), *target.glob('*.db3')])
        return files[0] if files else target / 'missing.mcap'

    def image_topics(self) -> list[str]:
        """Topics of type Image or CompressedImage, sorted by name."""
        return sorted(t for t, i in self.topics.items() if i.msgtype in IMAGE_TYPES)

    def messages(self, topics: Collection[str] | None = None,
                 ) -> Iterator[tuple[str, str, int, bytes]]:
        """Yield ``(topic, msgtype, bag time ns, CDR bytes)`` in bag order.

        Raises:
            TruncatedBagError: after the last readable message of an incomplete bag.
        """
        wanted = set(self.topics if topics is None else topics)
        if self._recovery is not None:
            yield from self._recovery.messages(wanted)
            return
        conns = [c for c in self._reader.connections if c.topic in wanted]
        if not conns:
            return
        n = 0
        try:
            for conn, t, raw in self._reader.messages(connections=conns):
                yield conn.topic, conn.msgtype, int(t), bytes(raw)
                n += 1
        except (GeneratorExit, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - damaged storage surfaces in many types
            raise TruncatedBagError(f'{self.path}: bag is damaged after {n} message(s): '
                                    f'{one_line(exc)}') from None

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        """CDR bytes -> message object; raises :class:`BagError` on unknown/corrupt data."""
        try:
            return typestore().deserialize_cdr(raw, msgtype)
        except KeyError:
            raise BagError(f'{self.path}: unknown message type {msgtype}') from None
        except Exception as exc:  # noqa: BLE001 - corrupt payloads raise many types
            raise BagError(f'{self.path}: corrupt {msgtype} message: {one_line(exc)}') \
                from None

    def close(self) -> None:
        """Release the files."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._recovery is not None:
            self._recovery.close()
            self._recovery = None

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- writing -----------------------------------------------------------------------------
class BagWriter:
    """Writes a rosbag2 (version 9) folder; use as a context manager or call :meth:`close`.

    Args:
        path: the bag folder to create (must not exist).
        storage: ``'mcap'`` or ``'sqlite3'``.

    Raises:
        BagError: the folder exists, or the storage is unknown.
    """

    def __init__(self, path: str | os.PathLike, storage: str = 'mcap') -> None:
        """Create the bag folder and open its storage."""
        from rosbags.rosbag2 import StoragePlugin, Writer
        self.path = pathlib.Path(path)
        if storage not in STORAGES:
            raise BagError(f'storage must be one of {STORAGES}, got {storage!r}')
        if self.path.exists():
            raise BagError(f'{self.path}: exists already (remove it or choose another path)')
        if not self.path.parent.is_dir():
            raise BagError(f'{self.path.parent}: folder not found')
        plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=9, storage_plugin=plugin)
        self._writer.open()
        self._conns: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def add_topic(self, topic: str, msgtype: str, msgdef: str | None = None,
                  rihs01: str | None = None) -> None:
        """Register ``topic``; the definition comes from the typestore unless both given.

        Raises:
            BagError: the type is unknown to the typestore and no definition was given.
        """
        if topic in self._conns:
            return
        if msgdef and rihs01:
            conn = self._writer.add_connection(topic, msgtype, msgdef=msgdef, rihs01=rihs01)
        else:
            if msgtype not in typestore().types:
                raise BagError(f'no message definition for {msgtype} (topic {topic})')
            conn = self._writer.add_connection(topic, msgtype, typestore=typestore())
        self._conns[topic] = conn
        self.counts[topic] = 0

    def write(self, topic: str, time_ns: int, message: Any) -> None:
        """Write a message object (serialised here) or CDR bytes at bag time ``time_ns``."""
        conn = self._conns[topic]
        raw = message if isinstance(message, (bytes, bytearray, memoryview)) else \
            typestore().serialize_cdr(message, conn.msgtype)
        self._writer.write(conn, int(time_ns), raw)
        self.counts[topic] += 1

    def close(self) -> None:
        """Finish the bag (index, footer, metadata.yaml)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- message building (rosbags message objects) ----------------------------------------
def header(time_ns: int, frame_id: str) -> Any:
    """``std_msgs/Header`` with stamp ``time_ns`` (nanoseconds) and ``frame_id``."""
    types = typestore().types
    sec, nsec = divmod(int(time_ns), 1_000_000_000)
    return types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nsec), frame_id=frame_id)


def image_msg(array: np.ndarray, encoding: str, hdr: Any) -> Any:
    """``sensor_msgs/Image`` of uint8 pixels already in ``encoding``, filled by
    :func:`seg_perception.core.image_msgs.fill_image_msg` (its encodings and shape checks).
    """
    empty = typestore().types[IMAGE](header=hdr, height=0, width=0, encoding='',
                                     is_bigendian=0, step=0, data=np.empty(0, np.uint8))
    return fill_image_msg(empty, array, encoding)


def compressed_msg(image_rgb: np.ndarray, fmt: str, hdr: Any, quality: int = 95) -> Any:
    """``sensor_msgs/CompressedImage`` (``png`` or ``jpeg``) of an (H, W, 3) RGB frame."""
    import cv2
    ext = {'png': '.png', 'jpeg': '.jpg'}[fmt]
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == 'jpeg' else []
    ok, buf = cv2.imencode(ext, cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise BagError(f'could not encode a frame as {fmt}')
    # image_transport's format string: OpenCV encodes BGR
    return typestore().types[COMPRESSED](header=hdr, format=f'bgr8; {fmt} compressed bgr8',
                                         data=np.asarray(buf, np.uint8).reshape(-1))


def camera_info_msg(width: int, height: int, hdr: Any, k: np.ndarray | None = None) -> Any:
    """``sensor_msgs/CameraInfo`` of a ``width`` x ``height`` camera: uncalibrated (K = 0), or
    with the (3, 3) camera matrix ``k`` (pixels; no distortion, P = [K | 0]).
    """
    types = typestore().types
    zeros = functools.partial(np.zeros, dtype=np.float64)
    kk = zeros(9) if k is None else np.asarray(k, np.float64).reshape(-1)
    p = zeros(12) if k is None else np.hstack([kk.reshape(3, 3), zeros((3, 1))]).reshape(-1)
    return types[CAMERA_INFO](
        header=hdr, height=int(height), width=int(width), distortion_model='plumb_bob',
        d=zeros(5), k=kk, r=np.eye(3).reshape(-1), p=p, binning_x=0,
        binning_y=0,
        roi=types['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0,
                                                      width=0, do_rectify=False))
