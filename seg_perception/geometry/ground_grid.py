"""Project a road-probability image onto a metric ground grid (nav_msgs/OccupancyGrid layout).

Grid frame: right-handed, z up, ground plane z = 0 (e.g. ``base_link``: x forward, y left),
metres. Cell (row j, column i) has its centre at
``(origin_x + (i + 0.5) * resolution, origin_y + (j + 0.5) * resolution, 0)``: the column
index grows with +x, the row index with +y, and row-major data starts at cell (0, 0), as in
nav_msgs/OccupancyGrid (``info.origin`` = the (0, 0) corner).

Unknown cells: a cell is *known* iff its ground point
(1) lies in front of the camera (z_optical > :data:`camera.MIN_DEPTH`; this also rules out
    everything at or above the horizon),
(2) is inside the distortion model's monotonic range (no wrap-around, see
    :meth:`CameraModel.project`),
(3) projects inside the image: 0 <= u <= width - 1 and 0 <= v <= height - 1 (pixel centres at
    integers, so every known sample lies within the hull of pixel centres), and
(4) lies within ``max_range`` metres (horizontal distance in the grid's xy plane from the point
    below/above the camera's projection centre); ``max_range`` 0 or inf means no limit.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from seg_perception.geometry.camera import CameraModel, transform_points

GRID_EPS = 1e-6  # size / resolution must be within this of an integer number of cells
TIE_EPS = 1e-6   # fusion: confidences this close count as a tie


@dataclass(frozen=True, kw_only=True)
class GridSpec:
    """A metric grid on the ground plane z = 0 of ``frame``.

    Attributes:
        frame: grid frame id (right-handed, z up).
        resolution: cell edge, metres (> 0).
        size: (forward_m, lateral_m): extent along +x and along +y, metres.
        origin: (x, y) of the outer corner of cell (0, 0) in the grid frame, metres.
    """

    frame: str = 'base_link'
    resolution: float
    size: tuple[float, float]
    origin: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        """Normalise to float tuples and validate; raises ValueError."""
        size = tuple(float(s) for s in self.size)
        origin = tuple(float(o) for o in self.origin)
        res = float(self.resolution)
        if len(size) != 2 or len(origin) != 2:
            raise ValueError(f'size and origin need 2 values, got {self.size}, {self.origin}')
        if not (math.isfinite(res) and res > 0):
            raise ValueError(f'grid resolution must be > 0 m, got {self.resolution}')
        if not all(math.isfinite(v) for v in size + origin) or min(size) <= 0:
            raise ValueError(f'grid size must be > 0 m and origin finite, got {size}, {origin}')
        for name, extent in zip(('forward', 'lateral'), size):
            cells = extent / res
            if round(cells) < 1 or abs(cells - round(cells)) > GRID_EPS:
                raise ValueError(
                    f'grid {name} size {extent} m is not a whole number of {res} m cells')
        object.__setattr__(self, 'resolution', res)
        object.__setattr__(self, 'size', size)
        object.__setattr__(self, 'origin', origin)

    @classmethod
    def centred(cls, resolution: float, forward: float, lateral: float, x0: float = 0.0,
                frame: str = 'base_link') -> GridSpec:
        """Grid from x0 to x0 + forward ahead of the frame origin, centred on y = 0 (metres)."""
        return cls(frame=frame, resolution=resolution, size=(forward, lateral),
                   origin=(x0, -lateral / 2.0))

    @property
    def width(self) -> int:
        """Number of columns (cells along +x, forward)."""
        return int(round(self.size[0] / self.resolution))

    @property
    def height(self) -> int:
        """Number of rows (cells along +y, lateral)."""
        return int(round(self.size[1] / self.resolution))

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) = (rows, columns) of the grid arrays."""
        return self.height, self.width

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Cell centres in the grid frame: x (height, width) and y (height, width), float64 m."""
        xs = self.origin[0] + (np.arange(self.width) + 0.5) * self.resolution
        ys = self.origin[1] + (np.arange(self.height) + 0.5) * self.resolution
        x, y = np.meshgrid(xs, ys)
        return x, y


@dataclass(frozen=True, eq=False)
class GridTables:
    """Per-cell lookup into the image for one camera, pose and grid.

    Attributes:
        spec: the grid.
        map_x, map_y: (height, width) float32 pixel u / v of each cell centre (cv2.remap maps);
            -1 for unknown cells.
        known: (height, width) bool, see the module docstring for the rule.
        image_size: (width, height) of the camera image, pixels.
        camera_xy: (2,) float64, camera projection centre's x, y in the grid frame, metres.
        max_range: range limit used, metres (0 = none).
    """

    spec: GridSpec
    map_x: np.ndarray
    map_y: np.ndarray
    known: np.ndarray
    image_size: tuple[int, int]
    camera_xy: np.ndarray
    max_range: float


def _check_pose(pose: np.ndarray) -> np.ndarray:
    p = np.asarray(pose, dtype=np.float64)
    if p.shape != (4, 4) or not np.isfinite(p).all():
        raise ValueError(f'pose must be a finite 4x4 matrix, got shape {p.shape}')
    return p


def _check_range(max_range: float) -> float:
    r = float(max_range)
    if math.isnan(r) or r < 0:
        raise ValueError(f'max_range must be >= 0 m (0 or inf: no limit), got {max_range}')
    return 0.0 if math.isinf(r) else r


def build_tables(camera: CameraModel, T_grid_from_optical: np.ndarray, spec: GridSpec,
                 max_range: float = 0.0) -> GridTables:
    """Where each cell centre (on z = 0 of the grid frame) appears in the image.

    Args:
        camera: intrinsics of the segmented image.
        T_grid_from_optical: (4, 4) pose of the camera's optical (or model reference) frame in
            the grid frame. A general invertible matrix is accepted (it is inverted with
            ``np.linalg.inv``), so nearly-orthonormal calibrations are reproduced exactly.
        spec: the grid.
        max_range: metres; 0 or inf = no limit (see the module docstring).

    Returns:
        GridTables with remap maps, known mask and the camera's ground position.
    """
    pose = _check_pose(T_grid_from_optical)
    limit = _check_range(max_range)
    x, y = spec.cell_centres()
    ground = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], axis=1)
    uv, known = camera.project(transform_points(np.linalg.inv(pose), ground))
    with np.errstate(invalid='ignore'):
        known &= (uv[:, 0] >= 0) & (uv[:, 0] <= camera.width - 1)
        known &= (uv[:, 1] >= 0) & (uv[:, 1] <= camera.height - 1)
    camera_xy = transform_points(pose, camera.centre[None])[0, :2]
    if limit > 0:
        known &= np.hypot(ground[:, 0] - camera_xy[0], ground[:, 1] - camera_xy[1]) <= limit
    map_x = np.where(known, uv[:, 0], -1.0).astype(np.float32).reshape(spec.shape)
    map_y = np.where(known, uv[:, 1], -1.0).astype(np.float32).reshape(spec.shape)
    return GridTables(spec=spec, map_x=map_x, map_y=map_y, known=known.reshape(spec.shape),
                      image_size=(camera.width, camera.height), camera_xy=camera_xy,
                      max_range=limit)


def _check_image(tables: GridTables, image: np.ndarray) -> None:
    width, height = tables.image_size
    if image.shape[:2] != (height, width):
        raise ValueError(f'image is {image.shape[1]}x{image.shape[0]} but the tables were '
                         f'built for a {width}x{height} camera')


def project_probability(tables: GridTables, probability: np.ndarray) -> np.ndarray:
    """Bilinearly sample a road probability image at every cell centre.

    Args:
        tables: from :func:`build_tables`.
        probability: (H, W) float32 in [0, 1], road probability at the camera's resolution.

    Returns:
        (height, width) float32 grid of road probability, NaN for unknown cells.

    BORDER_REPLICATE (not a NaN border) is used because a known cell may sample exactly the
    last row/column, where OpenCV still reads the zero-weight neighbour outside the image
    (0 * NaN = NaN); unknown cells are set to NaN afterwards.
    """
    prob = np.asarray(probability, dtype=np.float32)
    if prob.ndim != 2:
        raise ValueError(f'probability must be (H, W), got {prob.shape}')
    _check_image(tables, prob)
    out = cv2.remap(prob, tables.map_x, tables.map_y, cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    out[~tables.known] = np.nan
    return out


def sample_nearest(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, known: np.ndarray,
                   fill: float = 0) -> np.ndarray:
    """Nearest-pixel lookup (labels): out[known] = image[floor(v + 0.5), floor(u + 0.5)].

    Args:
        image: (H, W) or (H, W, C) array of any dtype.
        map_x: (h, w) pixel u of each output cell (within [0, W-1] where known).
        map_y: (h, w) pixel v (within [0, H-1] where known).
        known: (h, w) bool.
        fill: value of unknown cells.

    Returns:
        (h, w) or (h, w, C) array of ``image.dtype``.
    """
    img = np.asarray(image)
    out = np.full(known.shape + img.shape[2:], fill, dtype=img.dtype)
    cols = np.floor(map_x[known].astype(np.float64) + 0.5).astype(np.intp)
    rows = np.floor(map_y[known].astype(np.float64) + 0.5).astype(np.intp)
    out[known] = img[rows, cols]
    return out


def cells_to_pixels(tables: GridTables) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The image position of every known cell centre.

    Returns:
        rows: (M,) int64 grid row (y index) of each known cell.
        cols: (M,) int64 grid column (x index).
        uv: (M, 2) float64 pixel (u, v) of the cell centre (pixel centres at integers).
    """
    rows, cols = np.nonzero(tables.known)
    uv = np.stack([tables.map_x[rows, cols], tables.map_y[rows, cols]], axis=1)
    return rows.astype(np.int64), cols.astype(np.int64), uv.astype(np.float64)


def occupancy_values(prob_grid: np.ndarray, free_threshold: float | None = None,
                     occupied_threshold: float | None = None) -> np.ndarray:
    """Road probability grid -> nav_msgs/OccupancyGrid data values.

    Args:
        prob_grid: (h, w) float road probability, NaN = unknown (clipped to [0, 1]).
        free_threshold: optional, occupancy percent 0..100 (give both thresholds or neither).
        occupied_threshold: optional, percent; 0 <= free_threshold < occupied_threshold <= 100.

    Returns:
        (h, w) int8. Without thresholds: cost = round-half-up(100 * (1 - p_road)) (0 = free
        road, 100 = occupied / not road), -1 unknown. With thresholds (trinary, like Nav2
        map_server's free_thresh / occupied_thresh but applied to the 0..100 cost):
        cost <= free -> 0, cost >= occupied -> 100, otherwise -1.
    """
    if (free_threshold is None) != (occupied_threshold is None):
        raise ValueError('give both free_threshold and occupied_threshold, or neither')
    if free_threshold is not None and occupied_threshold is not None \
            and not 0 <= free_threshold < occupied_threshold <= 100:
        raise ValueError(f'need 0 <= free_threshold < occupied_threshold <= 100, got '
                         f'{free_threshold}, {occupied_threshold}')
    p = np.asarray(prob_grid, dtype=np.float32)
    unknown = np.isnan(p)
    # round half up of 100 * (1 - p), in float32 (a per-frame cost of the node's grid)
    cost = np.floor(np.float32(100.5) - np.float32(100.0) * np.clip(p, 0.0, 1.0))
    if free_threshold is not None and occupied_threshold is not None:
        cost = np.where(cost <= free_threshold, np.float32(0.0),
                        np.where(cost >= occupied_threshold, np.float32(100.0),
                                 np.float32(-1.0)))
    cost[unknown] = -1
    return cost.astype(np.int8)


def fuse_probabilities(grids: Sequence[np.ndarray]) -> np.ndarray:
    """Fuse the grids of several cameras (same spec) cell by cell.

    Rule: each cell takes the value of its most confident view, i.e. the largest |p - 0.5|
    among the views that know it; views whose confidences tie (within 1e-6) are averaged;
    NaN (unknown) only where every view is unknown. Overlapping cameras look at the same road
    with the same network, so their errors are strongly correlated: a log-odds sum (which
    assumes independent evidence) would be over-confident, while the most confident view is
    typically the one that sees the cell closest and largest.

    Args:
        grids: n >= 1 arrays (h, w) float, road probability, NaN unknown.

    Returns:
        (h, w) float32.
    """
    if len(grids) == 0:
        raise ValueError('fuse_probabilities needs at least one grid')
    stack = np.stack([np.asarray(g, dtype=np.float32) for g in grids])
    conf = np.where(np.isnan(stack), -np.inf, np.abs(stack - 0.5))
    best = conf.max(axis=0)
    tied = np.isfinite(conf) & (conf >= best - TIE_EPS)
    count = tied.sum(axis=0)
    total = np.where(tied, stack, 0.0).sum(axis=0)
    with np.errstate(invalid='ignore', divide='ignore'):
        fused = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return fused.astype(np.float32)


@dataclass
class _Entry:
    camera: CameraModel
    pose: np.ndarray
    spec: GridSpec
    max_range: float
    tables: GridTables
    given: object = None  # the pose array as passed (an identity hit skips the comparison)


@dataclass
class GridProjector:
    """Caches :class:`GridTables` per (camera model, pose, spec, max_range).

    Tables are rebuilt only when the camera model, the pose (``np.allclose``, atol 1e-9,
    rtol 0), ``spec`` or ``max_range`` change; ``builds`` counts the rebuilds. Up to
    ``capacity`` entries (one per camera) are kept, least recently used dropped first.
    """

    spec: GridSpec
    max_range: float = 0.0
    capacity: int = 8
    builds: int = 0
    _cache: list[_Entry] = field(default_factory=list, repr=False)

    def tables_for(self, camera: CameraModel, T_grid_from_optical: np.ndarray) -> GridTables:
        """Cached or freshly built tables for this camera and pose (see :func:`build_tables`)."""
        pose = _check_pose(T_grid_from_optical)
        limit = _check_range(self.max_range)
        for i, e in enumerate(self._cache):
            if (e.spec == self.spec and e.max_range == limit
                    and (e.camera is camera or e.camera == camera)
                    and (e.given is T_grid_from_optical
                         or np.allclose(e.pose, pose, rtol=0.0, atol=1e-9))):
                self._cache.append(self._cache.pop(i))
                return e.tables
        tables = build_tables(camera, pose, self.spec, limit)
        self.builds += 1
        self._cache.append(_Entry(camera, pose.copy(), self.spec, limit, tables,
                                  T_grid_from_optical))
        del self._cache[:-max(1, self.capacity)]
        return tables

    def project(self, camera: CameraModel, T_grid_from_optical: np.ndarray,
                probability: np.ndarray) -> np.ndarray:
        """(H, W) road probability -> (height, width) float32 grid, NaN unknown."""
        return project_probability(self.tables_for(camera, T_grid_from_optical), probability)
