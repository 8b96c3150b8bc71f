"""Camera model with sensor_msgs/CameraInfo semantics, and rigid poses.

Conventions used throughout :mod:`seg_perception.geometry`:

* Optical frame (REP 103 ``*_optical_frame``): x right, y down, z forward; metres.
* Camera link frame (REP 103 body axes): x forward, y left, z up; metres.
* A pose is a 4x4 float64 homogeneous matrix ``T_a_from_b`` mapping a point given in frame b
  into frame a (``p_a = T_a_from_b @ p_b``); a sensor pose in the grid frame is
  ``T_grid_from_sensor``, i.e. what tf2 returns for ``lookup_transform(grid, sensor)``.
* Pixels: float64 (u, v), u right (column), v down (row), pixel centres at integer
  coordinates, (0, 0) = centre of the top-left pixel (OpenCV convention).

The camera is the one that took the *segmented* (raw, unrectified) image, so projection
applies K and the distortion D exactly as ``image_geometry`` does for a CameraInfo.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

# Number of distortion coefficients per CameraInfo distortion model ('none': no distortion).
DISTORTION_COEFFS: dict[str, int] = {
    'plumb_bob': 5, 'rational_polynomial': 8, 'equidistant': 4, 'none': 0}
MIN_DEPTH = 1e-6  # m: a point with z_optical <= MIN_DEPTH is behind the camera (never projected)
# Pinhole models: normalised radius (tan of ~87 deg) up to which the distortion fold is searched.
RADIAL_SCAN_MAX = 20.0
_SCAN_SAMPLES = 20001


class CameraModelError(ValueError):
    """Degenerate or inconsistent camera parameters."""


def frozen_array(a: np.ndarray | Sequence) -> np.ndarray:
    """A read-only float64 copy of ``a``."""
    out = np.array(a, dtype=np.float64, copy=True)
    out.setflags(write=False)
    return out


def _monotonic_limit(model: str, d: np.ndarray) -> float:
    """Where the radial distortion stops being strictly increasing (first fold).

    Beyond the fold, points far outside the field of view would project back *into* the image
    (wrap-around); such points are not projectable.

    Returns:
        pinhole models: the normalised radius r = hypot(x/z, y/z) of the fold, at most
        :data:`RADIAL_SCAN_MAX`; 'equidistant': the ray angle theta (rad) of the fold, at most
        pi/2; 'none': inf.
    """
    if model == 'none':
        return math.inf
    if model == 'equidistant':
        s = np.linspace(0.0, math.pi / 2.0, _SCAN_SAMPLES)
        t2 = s * s
        k1, k2, k3, k4 = d
        f = s * (1.0 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
        den = np.ones_like(s)
    else:
        s = np.linspace(0.0, RADIAL_SCAN_MAX, _SCAN_SAMPLES)
        r2 = s * s
        k1, k2, _, _, k3 = d[:5]
        k4, k5, k6 = d[5:8] if model == 'rational_polynomial' else (0.0, 0.0, 0.0)
        den = 1.0 + r2 * (k4 + r2 * (k5 + r2 * k6))
        with np.errstate(divide='ignore', invalid='ignore'):
            f = s * (1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))) / den
    step = np.diff(f)
    bad = ~(step > 0) | ~(den[1:] > 0)
    if not bad.any():
        return float(s[-1])
    return float(s[int(np.argmax(bad))])


@dataclass(frozen=True, eq=False)
class CameraModel:
    """Intrinsics of the camera that produced the segmented image.

    Attributes:
        width, height: image size in pixels.
        k: (3, 3) float64 camera matrix K (fx, skew, cx / 0, fy, cy / 0, 0, 1), pixels.
        d: (n,) float64 distortion coefficients in OpenCV order for ``model``.
        model: 'plumb_bob' (k1 k2 p1 p2 k3), 'rational_polynomial' (k1 k2 p1 p2 k3 k4 k5 k6),
            'equidistant' (k1 k2 k3 k4, OpenCV fisheye) or 'none'.
        offset: (3,) float64 metres; a point p given in this model's reference frame is
            projected as K * distort(p + offset). Zero for a CameraInfo; for a KITTI
            rectified camera it is P2's translation (see :meth:`from_kitti_p`), so the
            reference frame is the rectified cam0 frame.
    """

    width: int
    height: int
    k: np.ndarray
    d: np.ndarray
    model: str = 'none'
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))
    # Radial fold limit (see _monotonic_limit); derived, not a parameter.
    fold_limit: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        """Validate and freeze the arrays; raises :class:`CameraModelError`."""
        if self.model not in DISTORTION_COEFFS:
            raise CameraModelError(
                f'unknown distortion model {self.model!r}; expected one of '
                f'{sorted(DISTORTION_COEFFS)}.')
        if int(self.width) != self.width or int(self.height) != self.height \
                or self.width <= 0 or self.height <= 0:
            raise CameraModelError(
                f'image size must be positive integers, got {self.width}x{self.height}.')
        k = np.asarray(self.k, dtype=np.float64)
        d = np.asarray(self.d, dtype=np.float64).ravel()
        offset = np.asarray(self.offset, dtype=np.float64).ravel()
        if k.shape != (3, 3) or offset.shape != (3,):
            raise CameraModelError(
                f'K must be 3x3 and offset 3 values, got {k.shape} and {offset.shape}.')
        if not (np.isfinite(k).all() and np.isfinite(d).all() and np.isfinite(offset).all()):
            raise CameraModelError('K, D and offset must be finite numbers.')
        if not (k[0, 0] > 0 and k[1, 1] > 0):
            raise CameraModelError(
                f'focal lengths must be positive, got fx={k[0, 0]} fy={k[1, 1]} '
                '(an all-zero K means an uncalibrated camera).')
        if k[1, 0] != 0 or k[2, 0] != 0 or k[2, 1] != 0 or k[2, 2] != 1:
            raise CameraModelError('K must be upper triangular with last row (0, 0, 1).')
        expected = DISTORTION_COEFFS[self.model]
        if self.model == 'none':
            if np.any(d != 0):
                raise CameraModelError("distortion model 'none' takes no non-zero coefficients.")
            d = np.zeros(0)
        elif d.size != expected:
            raise CameraModelError(
                f'distortion model {self.model!r} takes {expected} coefficients, '
                f'got {d.size}.')
        object.__setattr__(self, 'width', int(self.width))
        object.__setattr__(self, 'height', int(self.height))
        object.__setattr__(self, 'k', frozen_array(k))
        object.__setattr__(self, 'd', frozen_array(d))
        object.__setattr__(self, 'offset', frozen_array(offset))
        object.__setattr__(self, 'fold_limit', _monotonic_limit(self.model, d))

    @classmethod
    def from_camera_info(cls, width: int, height: int, k: Sequence[float], d: Sequence[float],
                         distortion_model: str) -> CameraModel:
        """Build from the fields of a sensor_msgs/CameraInfo.

        Args:
            width: image width, pixels.
            height: image height, pixels.
            k: 9 values, K row-major.
            d: distortion coefficients; empty means no distortion (whatever the model name).
            distortion_model: 'plumb_bob', 'rational_polynomial', 'equidistant' or 'none'
                ('' is accepted with an empty ``d``).

        Raises:
            CameraModelError: degenerate K (zero, negative or non-finite focal length), zero
                size, unknown model or wrong number of coefficients.
        """
        try:
            k_arr = np.asarray(list(k), dtype=np.float64)
            d_arr = np.asarray(list(d), dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise CameraModelError(f'K and D must be sequences of numbers ({exc}).') from exc
        if k_arr.size != 9:
            raise CameraModelError(f'K must have 9 values (row-major 3x3), got {k_arr.size}.')
        model = distortion_model.strip()
        if d_arr.size == 0 and (model in DISTORTION_COEFFS or model == ''):
            model = 'none'
        return cls(width=width, height=height, k=k_arr.reshape(3, 3), d=d_arr, model=model)

    @classmethod
    def from_kitti_p(cls, p2: np.ndarray, width: int, height: int) -> CameraModel:
        """A KITTI rectified camera from its 3x4 projection matrix (no distortion).

        KITTI gives P2 = K [I | t] for the rectified reference camera frame (rectified cam0,
        x right, y down, z forward, metres); t (metres) is camera 2's offset from cam0. The
        model keeps ``offset = t = K^-1 P2[:, 3]``, so :meth:`project` takes points in the
        rectified cam0 frame and reproduces ``P2 @ [p; 1]`` exactly; the projection centre is
        at ``-t`` in that frame.
        """
        p = np.asarray(p2, dtype=np.float64)
        if p.shape != (3, 4):
            raise CameraModelError(f'KITTI P must be 3x4, got {p.shape}.')
        k = p[:, :3]
        try:
            t = np.linalg.solve(k, p[:, 3])
        except np.linalg.LinAlgError as exc:
            raise CameraModelError('KITTI P has a singular 3x3 part.') from exc
        return cls(width=width, height=height, k=k, d=np.zeros(0), model='none', offset=t)

    @property
    def centre(self) -> np.ndarray:
        """(3,) float64: projection centre in the model's reference frame, metres."""
        return -self.offset

    def matches_frame(self, width: int, height: int) -> bool:
        """True when this calibration's image size equals the frame size (pixels)."""
        return self.width == int(width) and self.height == int(height)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project 3-D points into the (distorted) image.

        Args:
            points: (N, 3) float64, metres, in the optical frame (x right, y down, z forward;
                for a KITTI model the rectified cam0 frame, see :meth:`from_kitti_p`).

        Returns:
            uv: (N, 2) float64 pixel coordinates (u right, v down, pixel centres at integers);
            NaN where not projectable.
            projectable: (N,) bool; False for non-finite points, points with
            z <= :data:`MIN_DEPTH` (behind the camera) and points beyond the first fold of the
            radial distortion (they would wrap back into the image). No image-bounds test.
        """
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise ValueError(f'points must be (N, 3), got {pts.shape}')
        cam = pts + self.offset
        uv = np.full((len(cam), 2), np.nan)
        with np.errstate(invalid='ignore'):
            ok = np.isfinite(cam).all(axis=1) & (cam[:, 2] > MIN_DEPTH)
        idx = np.flatnonzero(ok)
        c = cam[idx]
        radius = np.hypot(c[:, 0], c[:, 1]) / c[:, 2]
        angle = np.arctan(radius) if self.model == 'equidistant' else radius
        idx = idx[angle < self.fold_limit]
        ok[:] = False
        ok[idx] = True
        if idx.size:
            uv[idx] = self._project_in_front(cam[idx])
        return uv, ok

    def _project_in_front(self, cam: np.ndarray) -> np.ndarray:
        """(M, 3) points with z > 0 (camera frame, offset applied) -> (M, 2) pixels."""
        zero = np.zeros(3)
        if self.model == 'none':
            xn = cam[:, 0] / cam[:, 2]
            yn = cam[:, 1] / cam[:, 2]
            k = self.k
            return np.stack([k[0, 0] * xn + k[0, 1] * yn + k[0, 2], k[1, 1] * yn + k[1, 2]], 1)
        obj = np.ascontiguousarray(cam.reshape(-1, 1, 3))
        if self.model == 'equidistant':
            uv, _ = cv2.fisheye.projectPoints(
                obj, zero, zero, self.k, self.d, alpha=float(self.k[0, 1] / self.k[0, 0]))
        else:
            uv, _ = cv2.projectPoints(obj, zero, zero, self.k, self.d)
        return uv.reshape(-1, 2).astype(np.float64)

    def _key(self) -> tuple:
        return (self.width, self.height, self.model, self.k.tobytes(), self.d.tobytes(),
                self.offset.tobytes())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CameraModel):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def pose_matrix(x: float, y: float, z: float, roll: float, pitch: float,
                yaw: float) -> np.ndarray:
    """4x4 float64 pose from a translation (metres) and roll/pitch/yaw (radians).

    R = Rz(yaw) Ry(pitch) Rx(roll) (fixed axes x, y, z: the ROS / URDF / tf2
    static_transform_publisher convention); positive pitch turns +x towards -z (nose down).
    The result is ``T_parent_from_child`` for a child frame placed at this pose.
    """
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    t = np.eye(4)
    t[:3, :3] = rz @ ry @ rx
    t[:3, 3] = (x, y, z)
    return t


# T_link_from_optical: optical axes in the link frame (x_opt = -y_link, y_opt = -z_link,
# z_opt = +x_link); equal to pose_matrix(0, 0, 0, -pi/2, 0, -pi/2). Read-only.
LINK_FROM_OPTICAL = frozen_array(np.array([[0.0, 0.0, 1.0, 0.0],
                                      [-1.0, 0.0, 0.0, 0.0],
                                      [0.0, -1.0, 0.0, 0.0],
                                      [0.0, 0.0, 0.0, 1.0]]))


def optical_pose(link_pose: np.ndarray) -> np.ndarray:
    """Pose of the REP-103 optical frame from the pose of the camera link frame.

    Args:
        link_pose: (4, 4) ``T_grid_from_link`` (link: x forward, y left, z up).

    Returns:
        (4, 4) float64 ``T_grid_from_optical`` (optical: x right, y down, z forward).
    """
    return np.asarray(link_pose, dtype=np.float64) @ LINK_FROM_OPTICAL


def invert_pose(pose: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform (``T_b_from_a`` from ``T_a_from_b``), float64."""
    p = np.asarray(pose, dtype=np.float64)
    out = np.eye(4)
    out[:3, :3] = p[:3, :3].T
    out[:3, 3] = -p[:3, :3].T @ p[:3, 3]
    return out


def transform_points(pose: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to (N, 3) points; returns (N, 3) float64 (same units)."""
    p = np.asarray(pose, dtype=np.float64)
    return np.asarray(points, dtype=np.float64) @ p[:3, :3].T + p[:3, 3]
