"""The node's outgoing messages: one camera's outputs and the diagnostics array.

Images are built in reused buffers (:class:`seg_perception.core.image_msgs.OutgoingImage`): labels
are copied into the label message, the overlay is rendered straight into its message, the
probability only while subscribed (subscriber counts are re-read at most every
``SUBSCRIBER_CHECK_S``). The received CameraInfo is copied with the frame's header, never
modified.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import CameraInfo, Image

from seg_perception.core.image_msgs import OutgoingImage
from seg_perception.core.render import probability_mono8
from seg_perception.ros.camera_status import CameraReport

SUBSCRIBER_CHECK_S = 0.2  # how often an optional output's subscriber count is re-read


class CameraOutputs:
    """Lifecycle publishers and reused messages of one camera's ``road/*`` topics.

    Args:
        create: ``(msg_type, topic) -> publisher`` (the node's lifecycle publishers).
        prefix: ``<camera>/`` or ''.
        overlay_encoding: 'rgb8' or 'bgr8'.
        probability: also publish ``road/probability``.
    """

    def __init__(self, create: Any, prefix: str, overlay_encoding: str,
                 probability: bool) -> None:
        self.label = create(Image, prefix + 'road/label')
        self.overlay = create(Image, prefix + 'road/overlay')
        self.probability = create(Image, prefix + 'road/probability') if probability else None
        self.info = create(CameraInfo, prefix + 'road/camera_info')
        self.out_bgr = overlay_encoding == 'bgr8'
        self._label_msg = OutgoingImage(Image(), 'mono8')
        self._overlay_msg = OutgoingImage(Image(), overlay_encoding)
        self._prob_msg = OutgoingImage(Image(), 'mono8')
        self._subscribed: dict[int, tuple[float, bool]] = {}

    def subscribed(self, pub: Any, now: float) -> bool:
        """Whether ``pub`` has subscribers, re-read at most every ``SUBSCRIBER_CHECK_S``
        (the graph query costs about as much as rendering a small overlay).
        """
        checked, has = self._subscribed.get(id(pub), (-math.inf, False))
        if now - checked >= SUBSCRIBER_CHECK_S:
            has = pub.get_subscription_count() > 0
            self._subscribed[id(pub)] = (now, has)
        return has

    def publish(self, header: Any, image: np.ndarray, bgr: bool, labels: np.ndarray,
                probability: np.ndarray, pipeline: Any, alpha: float,
                camera_info: Any) -> None:
        """Publish one frame's outputs: ``image`` (H, W, 3) uint8 (BGR when ``bgr``),
        ``labels`` (H, W) uint8, ``probability`` (H, W) float32, all with ``header``.
        """
        h, w = labels.shape
        np.copyto(self._label_msg.array(h, w), labels)
        self.label.publish(self._label_msg.message(header))
        now = time.monotonic()
        if self.subscribed(self.overlay, now):
            pipeline.overlay(image, labels, alpha, bgr=bgr, out_bgr=self.out_bgr,
                             out=self._overlay_msg.array(h, w))
            self.overlay.publish(self._overlay_msg.message(header))
        if self.probability is not None and self.subscribed(self.probability, now):
            np.copyto(self._prob_msg.array(h, w), probability_mono8(probability))
            self.probability.publish(self._prob_msg.message(header))
        if camera_info is not None:
            info = CameraInfo(**{f: getattr(camera_info, f)
                                 for f in camera_info.get_fields_and_field_types()})
            info.header = header
            self.info.publish(info)


def diagnostic_array(reports: Sequence[tuple[str, str, CameraReport]],
                     stamp: Any) -> DiagnosticArray:
    """A DiagnosticArray of ``(name, hardware_id, report)`` statuses stamped ``stamp``."""
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    for name, hardware_id, r in reports:
        msg.status.append(DiagnosticStatus(
            level=DiagnosticStatus.WARN if r.level else DiagnosticStatus.OK, name=name,
            message=r.message, hardware_id=hardware_id,
            values=[KeyValue(key=k, value=v) for k, v in r.values.items()]))
    return msg
