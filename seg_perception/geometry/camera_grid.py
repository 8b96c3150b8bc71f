"""The node's road grid without ROS: the grid settings, one camera's grid (camera model from
its CameraInfo fields, pose, cached remap tables) and the fused grid of several cameras.

Frames: the grid frame is ``grid.frame`` (z up, ground plane z = 0, e.g. ``base_link``);
``grid.camera_pose`` gives each camera's *link* (x forward, y left, z up) in it, as
``static_transform_publisher`` and URDF write it, and the optical frame (z forward, x right,
y down) follows by REP-103. With TF the pose of the image's own frame (the optical frame,
``header.frame_id``) comes from tf2 at the image stamp instead.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from seg_perception.geometry.camera import (
    CameraModel,
    CameraModelError,
    frozen_array,
    optical_pose,
    pose_matrix,
)
from seg_perception.geometry.ground_grid import (
    GridProjector,
    GridSpec,
    occupancy_values,
)

POSE_VALUES = 6  # x, y, z (m), roll, pitch, yaw (rad)


class NoGrid(Exception):
    """Why a camera has no grid now (one line): no or a degenerate CameraInfo, no pose."""


@dataclasses.dataclass(frozen=True)
class CameraInfoFields:
    """The fields of a sensor_msgs/CameraInfo the grid needs (pixels; K row-major)."""

    width: int
    height: int
    k: tuple[float, ...]
    d: tuple[float, ...]
    distortion_model: str

    @classmethod
    def from_msg(cls, msg: Any) -> CameraInfoFields:
        """From a sensor_msgs/CameraInfo (an rclpy message or a rosbags one)."""
        return cls(int(msg.width), int(msg.height), tuple(float(v) for v in msg.k),
                   tuple(float(v) for v in msg.d), str(msg.distortion_model))


@dataclasses.dataclass(frozen=True)
class GridConfig:
    """Validated grid settings.

    Attributes:
        spec: the grid (frame, resolution m, size m, origin m).
        max_range: metres from the camera's ground point; 0 = no limit.
        free_threshold, occupied_threshold: trinary output thresholds (occupancy percent), or
            ``None`` for 0..100 values.
        optical_poses: per camera, T_grid_from_optical (4x4), from ``grid.camera_pose``;
            empty with ``use_tf`` or without a pose (then no grid).
        use_tf: poses from tf2 at each image stamp.
    """

    spec: GridSpec
    max_range: float
    free_threshold: float | None
    occupied_threshold: float | None
    optical_poses: tuple[np.ndarray, ...]
    use_tf: bool

    @classmethod
    def from_values(cls, frame: str, resolution: float, size: Sequence[float],
                    origin: Sequence[float], max_range: float, free: float | None,
                    occupied: float | None, camera_pose: Sequence[float] | None,
                    use_tf: bool, n_cameras: int) -> GridConfig:
        """The grid settings from the node's ``grid.*`` parameter values.

        ``camera_pose`` holds 6 values per camera ([x, y, z, roll, pitch, yaw] of the camera
        link in ``frame``, metres and radians), in the order of ``cameras``.

        Raises:
            ValueError: one line naming the parameter.
        """
        if not frame or frame.startswith('/'):
            raise ValueError(f"parameter 'grid.frame' must be a frame id like 'base_link', "
                             f'got {frame!r}')
        if len(size) != 2 or len(origin) != 2:
            raise ValueError("parameters 'grid.size' and 'grid.origin' take 2 values each "
                             f'([forward, lateral] and [x, y] in metres), got {list(size)}, '
                             f'{list(origin)}')
        try:
            spec = GridSpec(frame=frame, resolution=resolution, size=tuple(size),
                            origin=tuple(origin))
        except ValueError as exc:
            raise ValueError(f"parameters 'grid.*': {exc}") from None
        if (free is None) != (occupied is None) or (
                free is not None and occupied is not None and not free < occupied):
            raise ValueError("parameters 'grid.free_threshold' and 'grid.occupied_threshold' "
                             f'go together, free < occupied; got {free}, {occupied}')
        poses: tuple[np.ndarray, ...] = ()
        if not use_tf and camera_pose is not None:  # unset: no pose, no grid (warned)
            values = list(camera_pose)
            if len(values) != POSE_VALUES * n_cameras or not all(map(math.isfinite, values)):
                raise ValueError(f"parameter 'grid.camera_pose' needs {POSE_VALUES} finite "
                                 f'values per camera ([x, y, z, roll, pitch, yaw], {n_cameras} '
                                 f'camera(s)), got {values}')
            poses = tuple(frozen_array(optical_pose(pose_matrix(*values[i:i + POSE_VALUES])))
                          for i in range(0, len(values), POSE_VALUES))
        return cls(spec, float(max_range), free, occupied, poses, bool(use_tf))

    @classmethod
    def from_settings(cls, grid: dict[str, Any], n_cameras: int) -> GridConfig:
        """From ``Settings.grid`` (the ``grid.*`` parameter values without the prefix).

        Raises:
            ValueError: one line naming the parameter.
        """
        return cls.from_values(grid['frame'], grid['resolution'], grid['size'],
                               grid['origin'], grid['max_range'], grid['free_threshold'],
                               grid['occupied_threshold'], grid['camera_pose'],
                               grid['use_tf'], n_cameras)

    def occupancy(self, prob_grid: np.ndarray) -> np.ndarray:
        """(h, w) road probability (NaN unknown) -> (h, w) int8 OccupancyGrid values."""
        return occupancy_values(prob_grid, self.free_threshold, self.occupied_threshold)


class CameraGrid:
    """One camera's grid: camera model cached per CameraInfo, tables per model and pose."""

    def __init__(self, config: GridConfig) -> None:
        self.config = config
        self.projector = GridProjector(config.spec, config.max_range, capacity=2)
        self._info: CameraInfoFields | None = None
        self._model: CameraModel | None = None

    def model_for(self, info: CameraInfoFields | None, width: int, height: int) -> CameraModel:
        """The camera model of ``info`` for a ``width`` x ``height`` frame.

        Raises:
            NoGrid: no CameraInfo yet, a degenerate one, or one of another size.
        """
        if info is None:
            raise NoGrid('no camera_info received')
        if info != self._info:
            self._info, self._model = info, None
            try:
                self._model = CameraModel.from_camera_info(
                    info.width, info.height, info.k, info.d, info.distortion_model)
            except CameraModelError as exc:
                raise NoGrid(f'degenerate camera_info: {exc}') from None
        if self._model is None:
            raise NoGrid('degenerate camera_info (see the earlier warning)')
        if not self._model.matches_frame(width, height):
            raise NoGrid(f'camera_info is {info.width}x{info.height} but the frames are '
                         f'{width}x{height}')
        return self._model

    def project(self, probability: np.ndarray, info: CameraInfoFields | None,
                T_grid_from_optical: np.ndarray | None) -> np.ndarray:
        """(H, W) float32 road probability at input resolution -> (h, w) float32 grid,
        NaN unknown.

        Raises:
            NoGrid: see :meth:`model_for`; no pose.
        """
        h, w = probability.shape
        model = self.model_for(info, w, h)
        if T_grid_from_optical is None:
            raise NoGrid('no camera pose (set grid.camera_pose, or grid.use_tf with tf2)')
        return self.projector.project(model, T_grid_from_optical, probability)

