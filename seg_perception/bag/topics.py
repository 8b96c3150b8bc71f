"""Topics of a bag: the image message types, :class:`TopicInfo`, stamps and namespaces."""
from __future__ import annotations

import dataclasses
from typing import Any

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED = 'sensor_msgs/msg/CompressedImage'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
IMAGE_TYPES = (IMAGE, COMPRESSED)
STORAGES = ('mcap', 'sqlite3')


@dataclasses.dataclass
class TopicInfo:
    """A topic of a bag: name, ROS 2 type (e.g. ``sensor_msgs/msg/Image``), count,
    and the message definition / type hash when the bag stores them (for copying).
    """

    name: str
    msgtype: str
    count: int
    msgdef: str | None = None
    rihs01: str | None = None


def stamp_ns(header: Any) -> int:
    """Header stamp (``builtin_interfaces/Time``) in nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def parent_namespace(topic: str) -> str:
    """Namespace of an image topic: ``/cam/image`` and ``/cam/image/compressed`` -> ``/cam``."""
    parts = [p for p in topic.split('/') if p]
    if parts and parts[-1] in ('compressed', 'compressedDepth', 'theora') and len(parts) > 1:
        parts = parts[:-1]
    return '/' + '/'.join(parts[:-1]) if len(parts) > 1 else ''
