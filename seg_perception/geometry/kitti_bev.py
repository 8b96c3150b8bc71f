"""The KITTI Road benchmark's bird's-eye view (BEV), and the same grid via the general code.

What the devkit does (read: ``devkit_road/python/BirdsEyeView.py`` and
``devkit_road/python/transform2BEV.py`` of the KITTI road devkit, in the copy stored in the
GitHub repository JackSparrow3/My_kittiseg); this module re-implements it, no code copied:

* Road frame (``Tr_cam_to_road`` maps non-rectified cam0 points into it): camera-like axes,
  x right, y down, z forward, metres; the road surface is y = 0.
* Grid: x (lateral) -10..10 m, z (forward) 6..46 m, 0.05 m cells -> 800 rows x 400 columns.
  Cell centres: x = -10 + (col + 0.5) * res, z = 46 - (row + 0.5) * res: row 0 is the FAR
  edge, column 0 the left edge (a top-down image, forward up, right to the right).
* Homography: Tr = P2 * R0_rect(4x4) * inv(Tr_cam_to_road(4x4)), Tr33 = Tr[:, [0, 2, 3]]
  applied to (x, z, 1); (u, v) = dehomogenised result. No test of the sign of w.
* Sampling: it treats (u, v) as MATLAB-style 1-based: a cell is valid iff 1 <= u <= W and
  1 <= v <= H, and takes ``image[int(v) - 1, int(u) - 1]`` (truncation, i.e. a floor, no
  interpolation), zeros elsewhere, input dtype, per channel. transform2BEV.py applies it to
  the 3-channel ground-truth PNGs.

This module: :func:`bev_tables` / :func:`to_bev` use the devkit's cells, homography and row
order with the package's OpenCV pixel convention (P2 output taken as 0-based, pixel centres at
integers, as the 0-based 2-D boxes of KITTI's object devkit): a cell is known iff w > 0 and
0 <= u <= W-1 and 0 <= v <= H-1; 'nearest' rounds to the closest pixel centre, 'linear' is
bilinear. That shifts the devkit's index by 1 to 1.5 px; :func:`devkit_bev` reproduces the
devkit's lookup exactly (for benchmark-compatible BEV ground truth).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from seg_perception.geometry.camera import MIN_DEPTH, CameraModel, frozen_array
from seg_perception.geometry.ground_grid import GridSpec, sample_nearest

# Calibration keys used and their value counts.
_CALIB_KEYS = {'P2': 12, 'R0_rect': 9, 'Tr_cam_to_road': 12}
# T_grid_from_road: grid x = road z (forward), grid y = -road x (left), grid z = -road y (up).
GRID_FROM_ROAD = frozen_array([[0.0, 0.0, 1.0, 0.0],
                               [-1.0, 0.0, 0.0, 0.0],
                               [0.0, -1.0, 0.0, 0.0],
                               [0.0, 0.0, 0.0, 1.0]])


@dataclass(frozen=True, eq=False)
class KittiCalib:
    """The calibration entries of a KITTI Road ``calib/*.txt`` file (float64).

    Attributes:
        p2: (3, 4) projection of the rectified cam0 frame into image_2, pixels.
        r0_rect: (3, 3) rectifying rotation (cam0 -> rectified cam0).
        tr_cam_to_road: (3, 4) rigid transform cam0 (non-rectified) -> road frame, metres.
    """

    p2: np.ndarray
    r0_rect: np.ndarray
    tr_cam_to_road: np.ndarray

    def homogeneous(self) -> tuple[np.ndarray, np.ndarray]:
        """(R0_rect, Tr_cam_to_road) extended to 4x4 float64 matrices."""
        r0 = np.eye(4)
        r0[:3, :3] = self.r0_rect
        tr = np.eye(4)
        tr[:3, :] = self.tr_cam_to_road
        return r0, tr

    def homography(self) -> np.ndarray:
        """(3, 3) float64 Tr33: road-plane (x, z, 1) -> homogeneous image_2 pixel."""
        r0, tr = self.homogeneous()
        return (self.p2 @ r0 @ np.linalg.inv(tr))[:, [0, 2, 3]]


def read_kitti_calib(path: str | os.PathLike[str]) -> KittiCalib:
    """Parse a KITTI ``key: v1 v2 ...`` calibration file (row-major values).

    Raises:
        ValueError: a required key (P2, R0_rect, Tr_cam_to_road) is missing, has the wrong
            number of values or a value that is not a number.
    """
    values: dict[str, list[str]] = {}
    with open(path, encoding='ascii') as f:
        for line in f:
            key, sep, rest = line.partition(':')
            if sep and not key.strip().startswith('#'):
                values[key.strip()] = rest.split()
    out = {}
    for key, count in _CALIB_KEYS.items():
        if key not in values:
            raise ValueError(f'{path}: calibration key {key!r} is missing')
        if len(values[key]) != count:
            raise ValueError(
                f'{path}: {key} needs {count} values, found {len(values[key])}')
        try:
            out[key] = np.array([float(v) for v in values[key]], dtype=np.float64)
        except ValueError as exc:
            raise ValueError(f'{path}: {key} has a value that is not a number') from exc
    return KittiCalib(p2=out['P2'].reshape(3, 4), r0_rect=out['R0_rect'].reshape(3, 3),
                      tr_cam_to_road=out['Tr_cam_to_road'].reshape(3, 4))


@dataclass(frozen=True)
class BevSpec:
    """The devkit's BEV grid (defaults = devkit defaults); metres in the road frame.

    Attributes:
        resolution: cell edge, m.
        x_limits: (min, max) lateral road x (right), m.
        z_limits: (min, max) forward road z, m.
    """

    resolution: float = 0.05
    x_limits: tuple[float, float] = (-10.0, 10.0)
    z_limits: tuple[float, float] = (6.0, 46.0)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) = (forward cells, lateral cells), as the devkit's bev_size."""
        return (int(round((self.z_limits[1] - self.z_limits[0]) / self.resolution)),
                int(round((self.x_limits[1] - self.x_limits[0]) / self.resolution)))

    def cell_centres(self, dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray]:
        """Road x and z of every cell centre, each (rows, columns); row 0 = far edge."""
        rows, cols = self.shape
        x = self.x_limits[0] + (np.arange(cols) + 0.5) * self.resolution
        z = self.z_limits[1] - (np.arange(rows) + 0.5) * self.resolution
        xx, zz = np.meshgrid(x, z)
        return xx.astype(dtype), zz.astype(dtype)


class BevTables(NamedTuple):
    """BEV lookup: (rows, columns) float32 pixel u / v (-1 unknown) and bool known."""

    map_x: np.ndarray
    map_y: np.ndarray
    known: np.ndarray


def _project_plane(calib: KittiCalib, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, ...]:
    """Road-plane points -> (u, v, w) with the devkit homography (float64)."""
    h = calib.homography()
    pts = np.stack([x.ravel(), z.ravel(), np.ones(x.size)]).astype(np.float64)
    uvw = h @ pts
    w = uvw[2]
    with np.errstate(divide='ignore', invalid='ignore'):
        return (uvw[0] / w).reshape(x.shape), (uvw[1] / w).reshape(x.shape), w.reshape(x.shape)


def bev_tables(calib: KittiCalib, spec: BevSpec, image_size: tuple[int, int]) -> BevTables:
    """Sampling positions of the BEV cells in image_2.

    Args:
        calib: the frame's calibration.
        spec: the BEV grid.
        image_size: (height, width) of image_2 in pixels (the devkit's ``imSize``, a shape).

    Returns:
        BevTables of shape ``spec.shape``; known iff w > 0 and the position lies within
        [0, W-1] x [0, H-1] (pixel centres at integers).
    """
    height, width = image_size
    x, z = spec.cell_centres()
    u, v, w = _project_plane(calib, x, z)
    with np.errstate(invalid='ignore'):
        known = (w > MIN_DEPTH) & (u >= 0) & (u <= width - 1) & (v >= 0) & (v <= height - 1)
    return BevTables(map_x=np.where(known, u, -1.0).astype(np.float32),
                     map_y=np.where(known, v, -1.0).astype(np.float32), known=known)


def to_bev(image_or_prob: np.ndarray, tables: BevTables, interpolation: str = 'nearest',
           fill: float | None = None) -> np.ndarray:
    """Sample an image-2 array into the BEV.

    Args:
        image_or_prob: (H, W) or (H, W, C) array: labels (use 'nearest') or probabilities
            (use 'linear').
        tables: from :func:`bev_tables`.
        interpolation: 'nearest' (closest pixel centre, input dtype) or 'linear' (bilinear,
            float32).
        fill: value of unknown cells; default 0 for integer output, NaN for float output.

    Returns:
        (rows, columns[, C]) BEV, row 0 = far edge, column 0 = left edge.
    """
    img = np.asarray(image_or_prob)
    if img.ndim not in (2, 3):
        raise ValueError(f'expected an (H, W) or (H, W, C) array, got {img.shape}')
    if tables.known.any() and (tables.map_x.max() > img.shape[1] - 1
                               or tables.map_y.max() > img.shape[0] - 1):
        raise ValueError(f'image {img.shape[:2]} is smaller than the tables were built for')
    if interpolation == 'nearest':
        if fill is None:
            fill = np.nan if np.issubdtype(img.dtype, np.floating) else 0
        return sample_nearest(img, tables.map_x, tables.map_y, tables.known, fill)
    if interpolation == 'linear':
        out = cv2.remap(img.astype(np.float32), tables.map_x, tables.map_y, cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
        out[~tables.known] = np.nan if fill is None else fill
        return out
    raise ValueError(f"interpolation must be 'nearest' or 'linear', got {interpolation!r}")


def devkit_bev(image: np.ndarray, calib: KittiCalib, spec: BevSpec | None = None) -> np.ndarray:
    """The devkit's own BEV lookup, reproduced exactly (see the module docstring).

    Float32 cell centres, (u, v) read as 1-based, valid iff 1 <= u <= W and 1 <= v <= H,
    value ``image[int(v) - 1, int(u) - 1]``, zeros elsewhere. Adds only a w > 0 test, which
    changes nothing for cells in front of the camera.

    Args:
        image: (H, W) or (H, W, C) array.
        calib: the frame's calibration.
        spec: the BEV grid (devkit defaults when None).

    Returns:
        (rows, columns[, C]) array of ``image.dtype``.
    """
    spec = spec or BevSpec()
    img = np.asarray(image)
    height, width = img.shape[:2]
    x, z = spec.cell_centres(np.float32)
    u, v, w = _project_plane(calib, x, z)
    with np.errstate(invalid='ignore'):
        valid = (w > MIN_DEPTH) & (u >= 1) & (u <= width) & (v >= 1) & (v <= height)
    out = np.zeros(spec.shape + img.shape[2:], dtype=img.dtype)
    out[valid] = img[v[valid].astype(np.intp) - 1, u[valid].astype(np.intp) - 1]
    return out


def kitti_camera_and_pose(calib: KittiCalib, width: int, height: int,
                          spec: BevSpec | None = None
                          ) -> tuple[CameraModel, np.ndarray, GridSpec]:
    """Express the devkit BEV through the general ground-grid code.

    Grid frame 'kitti_road_grid' = the road frame re-axed to right-handed z-up
    (:data:`GRID_FROM_ROAD`): grid x = road z (forward), grid y = -road x (left),
    grid z = -road y (up); the road plane y = 0 is the grid plane z = 0.
    The camera is :meth:`CameraModel.from_kitti_p` (reference frame: rectified cam0), so
    T_grid_from_optical = GRID_FROM_ROAD * Tr_cam_to_road * inv(R0_rect).
    ``build_tables`` on the result samples the same positions as :func:`bev_tables`;
    :func:`grid_to_bev` maps the grid arrays onto the devkit's row order.

    Returns:
        (camera model, (4, 4) float64 T_grid_from_optical, grid spec).
    """
    spec = spec or BevSpec()
    camera = CameraModel.from_kitti_p(calib.p2, width, height)
    r0, tr = calib.homogeneous()
    pose = GRID_FROM_ROAD @ tr @ np.linalg.inv(r0)
    (x0, x1), (z0, z1) = spec.x_limits, spec.z_limits
    grid = GridSpec(frame='kitti_road_grid', resolution=spec.resolution,
                    size=(z1 - z0, x1 - x0), origin=(z0, -x1))
    if grid.shape != spec.shape[::-1]:
        raise ValueError(f'BEV spec {spec} is not a whole number of cells')
    return camera, pose, grid


def grid_to_bev(grid: np.ndarray) -> np.ndarray:
    """Grid arrays (rows = +y, columns = +x) -> devkit BEV layout (row 0 far, column 0 left).

    bev[r, c] = grid[rows_g - 1 - c, cols_g - 1 - r]; any trailing channel axis is kept.
    The mapping is its own inverse, so it also turns a BEV array into grid layout.
    """
    return np.ascontiguousarray(np.swapaxes(np.asarray(grid)[::-1, ::-1], 0, 1))


def bev_to_grid(bev: np.ndarray) -> np.ndarray:
    """Inverse of :func:`grid_to_bev` (the same index mapping)."""
    return grid_to_bev(bev)

