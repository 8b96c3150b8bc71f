"""The node's ``road/grid`` outputs (nav_msgs/OccupancyGrid): one grid per camera from its
road probability, its CameraInfo and its pose, and with several cameras the fused grid.

Topics: one camera: ``road/grid``. Several (``cameras``): ``<camera>/road/grid`` each and
``road/grid``, the fusion (per cell the most confident view) of every camera's latest grid
within :data:`FUSE_WINDOW_S` of the newest one, published with each batch. Header: the image
stamp (fused: the newest stamp), ``frame_id`` = ``grid.frame``. Values: 0 free
(road) .. 100 occupied (not road), -1 unknown, or the trinary grid with
``grid.free_threshold``/``grid.occupied_threshold``.
"""
from __future__ import annotations

import array
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from nav_msgs.msg import OccupancyGrid
from rclpy.time import Time

from seg_perception.core.params import ConfigError
from seg_perception.geometry.camera_grid import CameraGrid, CameraInfoFields, GridConfig, NoGrid
from seg_perception.geometry.ground_grid import fuse_probabilities
from seg_perception.ros.worker import Camera

GRID_TOPIC = 'road/grid'
FUSE_WINDOW_S = 1.0  # a camera's grid joins the fused one while at most this much older


def info_fields(msg: Any) -> CameraInfoFields | None:
    """The grid's view of a sensor_msgs/CameraInfo (``None`` stays ``None``)."""
    return None if msg is None else CameraInfoFields.from_msg(msg)


def transform_matrix(transform: Any) -> np.ndarray:
    """geometry_msgs/Transform (translation m, unit quaternion) -> 4x4 float64."""
    q, t = transform.rotation, transform.translation
    x, y, z, w = float(q.x), float(q.y), float(q.z), float(q.w)
    n = x * x + y * y + z * z + w * w
    if n < 1e-12:
        raise NoGrid('the transform has a zero quaternion')
    s = 2.0 / n
    m = np.eye(4)
    m[:3, :3] = [[1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w)],
                 [s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w)],
                 [s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)]]
    m[:3, 3] = [float(t.x), float(t.y), float(t.z)]
    return m


def tf_lookup_for(node: Any) -> tuple[Callable[[str, str, Any], Any], Any]:
    """A tf2 lookup for ``grid.use_tf``: ``(target, source, stamp_msg) -> Transform`` at the
    image stamp (no waiting: a transform not there yet means no grid for that frame), and the
    TransformListener, which must stay referenced while the lookup is used.

    Raises:
        ConfigError: tf2_ros is not installed (it comes with a ROS 2 install, not as a wheel).
    """
    try:
        import tf2_ros
    except ImportError:
        raise ConfigError("grid.use_tf needs tf2_ros (a ROS 2 install: apt install "
                          "ros-$ROS_DISTRO-tf2-ros); or set grid.camera_pose") from None
    buffer = tf2_ros.Buffer(node=node)
    listener = tf2_ros.TransformListener(buffer, node)

    def lookup(target: str, source: str, stamp: Any) -> Any:
        return buffer.lookup_transform(target, source, Time.from_msg(stamp)).transform
    return lookup, listener


def grid_outputs(node: Any, grid: dict[str, Any] | None, cameras: Sequence[Camera],
                 create: Callable[[Any, str], Any]) -> GridOutputs | None:
    """The node's grid outputs for its ``grid.*`` values (``None`` when the grid is off).

    Raises:
        ConfigError: a ``grid.*`` value the grid cannot use; tf2_ros missing with use_tf.
    """
    if grid is None:
        return None
    try:
        config = GridConfig.from_settings(grid, len(cameras))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    lookup, listener = tf_lookup_for(node) if config.use_tf else (None, None)
    outputs = GridOutputs(config, cameras, create, lookup)
    outputs.listener = listener
    return outputs


class GridOutputs:
    """Publishers, per-camera grid state and reused messages of the node's grids.

    Args:
        config: the validated grid settings.
        cameras: the node's cameras (order = ``grid.camera_pose`` order).
        create: ``(msg_type, topic) -> publisher`` (the node's lifecycle publishers).
        tf_lookup: ``(target_frame, source_frame, stamp_msg) -> geometry_msgs/Transform``
            with ``grid.use_tf`` (raises when there is none), else ``None``.
    """

    def __init__(self, config: GridConfig, cameras: Sequence[Camera],
                 create: Callable[[Any, str], Any],
                 tf_lookup: Callable[[str, str, Any], Any] | None = None) -> None:
        self.config = config
        self.tf_lookup = tf_lookup
        self.listener: Any = None  # the tf2 TransformListener behind tf_lookup (kept alive)
        self.grids = {cam.name: CameraGrid(config) for cam in cameras}
        several = len(cameras) > 1
        self.pubs = {cam.name: create(OccupancyGrid, cam.prefix + GRID_TOPIC)
                     for cam in cameras} if several else {}
        self.fused_pub = create(OccupancyGrid, GRID_TOPIC)
        self.poses = dict(zip((c.name for c in cameras), config.optical_poses))
        self.latest: dict[str, tuple[int, np.ndarray]] = {}  # camera -> (stamp ns, grid)
        self._msg = OccupancyGrid()
        spec = config.spec
        info = self._msg.info
        info.resolution = float(spec.resolution)
        info.width, info.height = spec.width, spec.height
        info.origin.position.x, info.origin.position.y = spec.origin
        info.origin.orientation.w = 1.0
        self._msg.header.frame_id = spec.frame

    def pose(self, cam: Camera, header: Any) -> np.ndarray | None:
        """T_grid_from_optical of ``cam`` for a frame with ``header`` (``None``: no pose).

        Raises:
            NoGrid: no transform from tf2 at the image stamp.
        """
        if self.tf_lookup is None:
            return self.poses.get(cam.name)
        try:
            tf = self.tf_lookup(self.config.spec.frame, header.frame_id, header.stamp)
        except Exception as exc:  # noqa: BLE001 - tf2's Lookup/Extrapolation/Connectivity
            raise NoGrid(f'no transform {header.frame_id} -> {self.config.spec.frame} at the '
                         f'image stamp: {" ".join(str(exc).split())}') from None
        return transform_matrix(tf)

    def publish(self, frames: Sequence[tuple[Camera, Any, np.ndarray]],
                ) -> list[tuple[Camera, str, float]]:
        """Project and publish the grids of one batch.

        Args:
            frames: ``(camera, header, probability)``: the image header and (H, W) float32
                road probability at input resolution.

        Returns:
            ``(camera, state, ms)`` per frame: state ``'ok'`` or why there is no grid.
        """
        out, newest = [], None
        for cam, header, prob in frames:
            t0 = time.perf_counter()
            try:
                grid = self.grids[cam.name].project(prob, info_fields(cam.camera_info),
                                                    self.pose(cam, header))
            except NoGrid as exc:
                self.latest.pop(cam.name, None)
                out.append((cam, str(exc), (time.perf_counter() - t0) * 1e3))
                continue
            if cam.name in self.pubs:
                self._send(self.pubs[cam.name], header.stamp, grid)
            ns = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
            self.latest[cam.name] = (ns, grid)
            if newest is None or ns > newest[0]:
                newest = (ns, header.stamp)
            out.append((cam, 'ok', (time.perf_counter() - t0) * 1e3))
        if newest is not None:
            recent = [g for ns, g in self.latest.values() if newest[0] - ns <= FUSE_WINDOW_S * 1e9]
            self._send(self.fused_pub, newest[1],
                       recent[0] if len(recent) == 1 else fuse_probabilities(recent))
        return out

    def _send(self, pub: Any, stamp: Any, grid: np.ndarray) -> None:
        msg = self._msg
        msg.header.stamp = stamp
        msg.info.map_load_time = stamp
        msg.data = array.array('b', self.config.occupancy(grid).tobytes())
        pub.publish(msg)
