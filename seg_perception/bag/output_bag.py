"""The ``seg_bag eval --write-bag`` output: every input message plus the node's outputs per
camera namespace: ``<ns>/road/label`` (mono8), ``<ns>/road/overlay`` (rgb8, drawn by the
node's pipeline) and, when the params file enables the grid, ``<ns>/road/grid``
(nav_msgs/OccupancyGrid, projected with the bag's ``<ns>/camera_info`` and
``grid.camera_pose``, as the node does).
"""
from __future__ import annotations

import logging
import pathlib
from typing import Any

import numpy as np

from seg_perception.bag import bagfile
from seg_perception.bag import topics as bag_topics
from seg_perception.core import render
from seg_perception.core.params import Settings
from seg_perception.geometry.camera_grid import CameraGrid, CameraInfoFields, GridConfig, NoGrid

LOG = logging.getLogger(__name__)


def grid_config(settings: Settings, topics: list[str]) -> GridConfig | None:
    """The grid of ``settings`` for the bag's image ``topics`` (one camera each, in order,
    for ``grid.camera_pose``), or ``None`` when the grid is off.

    Raises:
        bagfile.BagError: grid values the node would refuse, or ``grid.use_tf`` (the bag
            replay takes poses from ``grid.camera_pose`` only).
    """
    if settings.grid is None:
        return None
    if settings.grid['use_tf']:
        raise bagfile.BagError('grid.use_tf is not supported by seg_bag eval: set '
                               'grid.camera_pose in the params file')
    try:
        return GridConfig.from_settings(settings.grid, len(topics))
    except ValueError as exc:
        raise bagfile.BagError(str(exc)) from None


class OutputBag:
    """Writes the output bag.

    Args:
        path: the bag folder to create.
        bag: the input bag (its storage and topics are copied).
        namespaces: image topic -> output namespace (``<ns>/road/...``).
        pipeline: the node's pipeline (overlays).
        grid: the grid settings, or ``None`` for no ``road/grid``.
    """

    def __init__(self, path: pathlib.Path, bag: bagfile.BagReader,
                 namespaces: dict[str, str], pipeline: Any, grid: GridConfig | None) -> None:
        self.path = path
        self.pipeline = pipeline
        self.writer = bagfile.BagWriter(path, bag.storage)
        self.bag = bag
        self.copied: set[str] = set()
        for name, info in bag.topics.items():
            try:
                self.writer.add_topic(name, info.msgtype, info.msgdef, info.rihs01)
                self.copied.add(name)
            except bagfile.BagError as exc:
                LOG.warning('not copying %s to the output bag: %s', name, exc)
        self.ns = namespaces
        self.grid = grid
        self.grids: dict[str, CameraGrid] = {}
        self.poses: dict[str, np.ndarray] = {}
        self.infos: dict[str, CameraInfoFields] = {}
        self.no_grid: dict[str, str] = {}  # namespace -> why a frame had no grid (last)
        for i, t in enumerate(namespaces):
            ns = namespaces[t]
            self.writer.add_topic(f'{ns}/road/label', bagfile.IMAGE)
            self.writer.add_topic(f'{ns}/road/overlay', bagfile.IMAGE)
            if grid is not None:
                self.writer.add_topic(f'{ns}/road/grid', 'nav_msgs/msg/OccupancyGrid')
                self.grids[ns] = CameraGrid(grid)
                if grid.optical_poses:
                    self.poses[ns] = grid.optical_poses[i]
        self.counts = self.writer.counts

    def copy(self, topic: str, msgtype: str, t: int, raw: bytes) -> None:
        """Copy an input message; a ``<ns>/camera_info`` also calibrates that grid."""
        if topic in self.copied:
            self.writer.write(topic, t, raw)
        if self.grid is not None and msgtype == bagfile.CAMERA_INFO:
            ns = topic.rsplit('/', 1)[0]
            if ns in self.grids:
                self.infos[ns] = CameraInfoFields.from_msg(self.bag.deserialize(raw, msgtype))

    def outputs(self, res: Any, t: int, hdr: Any) -> None:
        """Write one frame's outputs (``res``: an evaluation FrameResult) at time ``t``."""
        ns = self.ns[res.frame.group]
        self.writer.write(f'{ns}/road/label', t,
                          bagfile.image_msg(render.label_image(res.labels), 'mono8', hdr))
        self.writer.write(f'{ns}/road/overlay', t, bagfile.image_msg(
            self.pipeline.overlay(res.frame.image, res.labels), 'rgb8', hdr))
        if self.grid is None:
            return
        try:
            grid = self.grids[ns].project(res.probability, self.infos.get(ns),
                                          self.poses.get(ns))
        except NoGrid as exc:
            self.no_grid[ns] = str(exc)
            return
        spec = self.grid.spec
        grid_hdr = bagfile.header(bag_topics.stamp_ns(hdr), spec.frame)  # the image stamp
        self.writer.write(f'{ns}/road/grid', t, bagfile.occupancy_grid_msg(
            self.grid.occupancy(grid), spec.resolution, spec.origin, grid_hdr))

    def summary(self) -> dict[str, Any]:
        """metrics.json's ``output_bag``: path, message counts, why grids are missing."""
        out: dict[str, Any] = {'path': str(self.path), 'topics': self.counts}
        if self.no_grid:
            out['no_grid'] = self.no_grid
        return out

    def close(self) -> None:
        """Finish the bag (metadata written)."""
        self.writer.close()
