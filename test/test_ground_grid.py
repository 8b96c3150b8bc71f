"""Ground-grid projection on synthetic scenes with exact geometry (no data files, no ROS)."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from seg_perception.geometry.camera import (
    LINK_FROM_OPTICAL,
    CameraModel,
    CameraModelError,
    invert_pose,
    optical_pose,
    pose_matrix,
    transform_points,
)
from seg_perception.geometry.ground_grid import (
    GridProjector,
    GridSpec,
    build_tables,
    cells_to_pixels,
    fuse_probabilities,
    occupancy_values,
    project_probability,
    sample_nearest,
)

W, H = 640, 480
K = np.array([[500.0, 0.0, 319.5], [0.0, 500.0, 239.5], [0.0, 0.0, 1.0]])
K_FISHEYE = np.array([[280.0, 0.0, 319.5], [0.0, 280.0, 239.5], [0.0, 0.0, 1.0]])
PLUMB_BOB = [-0.28, 0.07, 1e-3, -5e-4, 0.0]
STRIP_HALF_WIDTH = 1.75        # m, road strip |y| <= 1.75 on z = 0 of base_link
STRIP_X = (3.0, 40.0)          # m, road strip x range
FRONT_LINK = pose_matrix(1.5, 0.0, 1.6, 0.0, 0.05, 0.0)
CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-14)


def camera_case(name: str) -> tuple[CameraModel, np.ndarray]:
    """(camera, T_base_from_optical) of the named synthetic set-up."""
    if name == 'pinhole':
        return CameraModel(W, H, K, [], 'none'), optical_pose(FRONT_LINK)
    if name == 'plumb_bob':
        return CameraModel(W, H, K, PLUMB_BOB, 'plumb_bob'), optical_pose(FRONT_LINK)
    if name == 'pitched_rolled':
        link = pose_matrix(1.5, 0.2, 1.6, 0.05, 0.12, 0.0)
        return CameraModel(W, H, K, PLUMB_BOB, 'plumb_bob'), optical_pose(link)
    if name == 'equidistant':
        cam = CameraModel(W, H, K_FISHEYE, [0.02, -0.005, 0.001, 0.0], 'equidistant')
        return cam, optical_pose(FRONT_LINK)
    raise KeyError(name)


def pixel_rays(camera: CameraModel, uv: np.ndarray) -> np.ndarray:
    """(N, 2) pixels -> (N, 3) ray directions (x/z, y/z, 1) in the optical frame."""
    pix = np.ascontiguousarray(uv, dtype=np.float64).reshape(-1, 1, 2)
    if camera.model == 'none':
        n = (pix.reshape(-1, 2) - camera.k[:2, 2]) / np.diag(camera.k)[:2]
    elif camera.model == 'equidistant':
        n = cv2.fisheye.undistortPoints(pix, camera.k, camera.d, criteria=CRITERIA)
    else:
        # OpenCV 4 has the iterative variant separately, OpenCV 5 takes criteria directly.
        undistort_iter = getattr(cv2, 'undistortPointsIter', None)
        if undistort_iter is not None:
            n = undistort_iter(pix, camera.k, camera.d, None, None, CRITERIA)
        else:
            n = cv2.undistortPoints(pix, camera.k, camera.d, criteria=CRITERIA)
    n = n.reshape(-1, 2)
    return np.column_stack([n, np.ones(len(n))])


def ground_hits(camera: CameraModel, pose: np.ndarray, uv: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Ray-plane intersection of pixel rays with z = 0: ((N, 2) x, y in metres, (N,) hit)."""
    d = pixel_rays(camera, uv) @ pose[:3, :3].T
    o = pose[:3, 3]
    with np.errstate(divide='ignore', invalid='ignore'):
        s = -o[2] / d[:, 2]
    hit = s > 0
    return o[:2] + s[:, None] * d[:, :2], hit


def strip_truth(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (np.abs(y) <= STRIP_HALF_WIDTH) & (x >= STRIP_X[0]) & (x <= STRIP_X[1])


def render_strip(camera: CameraModel, pose: np.ndarray, road: float = 1.0,
                 other: float = 0.0) -> np.ndarray:
    """(H, W) float32 probability image of the road strip (value at each pixel centre)."""
    u, v = np.meshgrid(np.arange(camera.width), np.arange(camera.height))
    xy, hit = ground_hits(camera, pose, np.column_stack([u.ravel(), v.ravel()]))
    is_road = hit & strip_truth(xy[:, 0], xy[:, 1])
    return np.where(is_road, road, other).astype(np.float32).reshape(camera.height, -1)


def near_boundary(x: np.ndarray, y: np.ndarray, tol: float) -> np.ndarray:
    return ((np.abs(np.abs(y) - STRIP_HALF_WIDTH) <= tol) | (np.abs(x - STRIP_X[0]) <= tol)
            | (np.abs(x - STRIP_X[1]) <= tol))


@pytest.mark.parametrize('case', ['pinhole', 'plumb_bob', 'pitched_rolled', 'equidistant'])
def test_strip_projects_onto_grid(case: str) -> None:
    camera, pose = camera_case(case)
    spec = GridSpec.centred(0.1, 40.0, 20.0)
    tables = build_tables(camera, pose, spec, max_range=30.0)
    image = render_strip(camera, pose)
    grid = project_probability(tables, image)
    x, y = spec.cell_centres()
    truth = strip_truth(x, y)
    check = tables.known & ~near_boundary(x, y, spec.resolution)
    assert np.isnan(grid[~tables.known]).all() and not np.isnan(grid[tables.known]).any()
    assert (check & truth).sum() > 2000 and (check & ~truth).sum() > 2000
    assert np.array_equal((grid >= 0.5)[check], truth[check])
    # Exact geometry: casting each known cell's pixel back onto the ground gives its centre.
    rows, cols, uv = cells_to_pixels(tables)
    back, hit = ground_hits(camera, pose, uv)
    assert hit.all()
    err = np.hypot(back[:, 0] - x[rows, cols], back[:, 1] - y[rows, cols])
    assert err.max() < 5e-3
    # The label image read back at each known cell's nearest pixel agrees with the strip.
    labels = sample_nearest(image >= 0.5, tables.map_x, tables.map_y, tables.known, False)
    assert np.array_equal(labels[check], truth[check])


def brute_force_known(camera: CameraModel, pose: np.ndarray, spec: GridSpec,
                      max_range: float) -> np.ndarray:
    """Per cell, in plain Python: in front, inside the image, within range (plumb_bob)."""
    fx, fy, cx, cy = camera.k[0, 0], camera.k[1, 1], camera.k[0, 2], camera.k[1, 2]
    k1, k2, p1, p2, k3 = camera.d
    r, t = pose[:3, :3], pose[:3, 3]
    known = np.zeros(spec.shape, bool)
    for j in range(spec.height):
        for i in range(spec.width):
            gx = spec.origin[0] + (i + 0.5) * spec.resolution
            gy = spec.origin[1] + (j + 0.5) * spec.resolution
            if math.hypot(gx - t[0], gy - t[1]) > max_range:
                continue
            d = (gx - t[0], gy - t[1], -t[2])
            xo, yo, zo = (sum(r[a, b] * d[a] for a in range(3)) for b in range(3))
            if zo <= 1e-6:
                continue
            xn, yn = xo / zo, yo / zo
            r2 = xn * xn + yn * yn
            radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 ** 3
            xd = xn * radial + 2 * p1 * xn * yn + p2 * (r2 + 2 * xn * xn)
            yd = yn * radial + p1 * (r2 + 2 * yn * yn) + 2 * p2 * xn * yn
            u, v = fx * xd + cx, fy * yd + cy
            known[j, i] = 0 <= u <= camera.width - 1 and 0 <= v <= camera.height - 1
    return known


def test_unknown_cells_match_brute_force() -> None:
    camera = CameraModel(W, H, K, PLUMB_BOB, 'plumb_bob')
    pose = optical_pose(pose_matrix(1.5, 0.3, 1.6, 0.02, 0.1, 0.3))
    spec = GridSpec(resolution=0.5, size=(60.0, 40.0), origin=(-10.0, -20.0))
    tables = build_tables(camera, pose, spec, max_range=25.0)
    expected = brute_force_known(camera, pose, spec, 25.0)
    assert np.array_equal(tables.known, expected)
    x, y = spec.cell_centres()
    optical = transform_points(invert_pose(pose), np.stack([x, y, 0 * x], -1).reshape(-1, 3))
    behind = (optical[:, 2] <= 0).reshape(spec.shape)
    far = np.hypot(x - 1.5, y - 0.3) > 25.0
    # All three reasons occur, and the inside-the-image test is what remains.
    assert behind.sum() > 100 and far.sum() > 100
    assert ((~behind) & (~far) & ~expected).sum() > 100 and expected.sum() > 100
    assert np.all(tables.map_x[~tables.known] == -1) and np.all(tables.map_y[~tables.known] == -1)
    # No range limit (0 or inf): only the image and the camera's half-space matter.
    for limit in (0.0, math.inf):
        assert build_tables(camera, pose, spec, limit).known.sum() > tables.known.sum()


def test_distortion_fold_does_not_wrap_into_image() -> None:
    camera = CameraModel(W, H, K, [-0.3, 0.0, 0.0, 0.0, 0.0], 'plumb_bob')  # folds at r ~1.05
    far_out = np.array([[2.0, 0.0, 1.0]])            # 63 deg off axis: r_d = 2 * (1 - 1.2) < 0
    wrapped, _ = cv2.projectPoints(far_out, np.zeros(3), np.zeros(3), camera.k, camera.d)
    assert 0 <= wrapped[0, 0, 0] <= W - 1            # plain OpenCV puts it inside the image
    uv, ok = camera.project(np.array([[2.0, 0.0, 1.0], [0.4, 0.1, 1.0], [0.0, 0.0, -1.0]]))
    assert ok.tolist() == [False, True, False] and np.isnan(uv[[0, 2]]).all()
    direct, _ = cv2.projectPoints(np.array([[0.4, 0.1, 1.0]]), np.zeros(3), np.zeros(3),
                                  camera.k, camera.d)
    np.testing.assert_allclose(uv[1], direct.reshape(2), atol=1e-9)
    assert 1.0 < camera.fold_limit < 1.1


def test_two_cameras_fused() -> None:
    spec = GridSpec.centred(0.2, 40.0, 30.0)
    front, front_pose = CameraModel(W, H, K, [], 'none'), optical_pose(FRONT_LINK)
    side_pose = optical_pose(pose_matrix(1.5, 0.0, 1.6, 0.0, 0.05, math.radians(30.0)))
    # Front: confident about non-road, side: confident about road.
    grid_a = project_probability(build_tables(front, front_pose, spec, 30.0),
                                 render_strip(front, front_pose, road=0.8, other=0.1))
    grid_b = project_probability(build_tables(front, side_pose, spec, 30.0),
                                 render_strip(front, side_pose, road=0.95, other=0.35))
    fused = fuse_probabilities([grid_a, grid_b])
    ka, kb = ~np.isnan(grid_a), ~np.isnan(grid_b)
    both, only_a, only_b = ka & kb, ka & ~kb, kb & ~ka
    assert both.sum() > 1000 and only_a.sum() > 1000 and only_b.sum() > 1000
    np.testing.assert_array_equal(fused[only_a], grid_a[only_a])
    np.testing.assert_array_equal(fused[only_b], grid_b[only_b])
    assert np.isnan(fused[~ka & ~kb]).all()
    ca, cb = np.abs(grid_a - 0.5), np.abs(grid_b - 0.5)
    expected = np.where(ca > cb + 1e-6, grid_a,
                        np.where(cb > ca + 1e-6, grid_b, (grid_a + grid_b) / 2))
    np.testing.assert_allclose(fused[both], expected[both], atol=1e-6)
    x, y = spec.cell_centres()
    inner = both & ~near_boundary(x, y, 0.4)
    truth = strip_truth(x, y)
    np.testing.assert_allclose(fused[inner & truth], 0.95, atol=1e-5)
    np.testing.assert_allclose(fused[inner & ~truth], 0.1, atol=1e-5)


def test_fuse_rule_on_small_arrays() -> None:
    nan = np.nan
    a = np.array([[0.9, nan, 0.2, nan, 0.3]], np.float32)
    b = np.array([[0.6, 0.4, 0.8, nan, 0.7]], np.float32)
    out = fuse_probabilities([a, b])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, [0, 1, 2, 4]], [0.9, 0.4, 0.5, 0.5], atol=1e-6)
    assert np.isnan(out[0, 3])
    np.testing.assert_array_equal(fuse_probabilities([a]), a)
    with pytest.raises(ValueError):
        fuse_probabilities([])


def test_occupancy_values() -> None:
    p = np.array([[1.0, 0.0, 0.5, np.nan], [0.994, 0.996, 0.125, 1.2]], np.float32)
    cost = occupancy_values(p)
    assert cost.dtype == np.int8
    assert cost.tolist() == [[0, 100, 50, -1], [1, 0, 88, 0]]
    tri = occupancy_values(p, free_threshold=25, occupied_threshold=65)
    assert tri.dtype == np.int8
    assert tri.tolist() == [[0, 100, -1, -1], [0, 0, 100, 0]]
    for free, occupied in ((65, 25), (-1, 50), (10, 101), (40, 40), (10, None), (None, 80)):
        with pytest.raises(ValueError):
            occupancy_values(p, free, occupied)


def test_camera_model_validation() -> None:
    k = K.ravel().tolist()
    with pytest.raises(CameraModelError, match='focal'):
        CameraModel.from_camera_info(W, H, [0.0] * 9, [], 'plumb_bob')
    with pytest.raises(CameraModelError, match='focal'):
        CameraModel.from_camera_info(W, H, [-500.0] + k[1:], [], 'plumb_bob')
    with pytest.raises(CameraModelError, match='finite'):
        CameraModel.from_camera_info(W, H, [math.nan] + k[1:], [], 'plumb_bob')
    with pytest.raises(CameraModelError, match='unknown distortion model'):
        CameraModel.from_camera_info(W, H, k, [0.1, 0.0, 0.0, 0.0, 0.0], 'kannala')
    with pytest.raises(CameraModelError, match='takes 5 coefficients, got 4'):
        CameraModel.from_camera_info(W, H, k, [0.1, 0.0, 0.0, 0.0], 'plumb_bob')
    with pytest.raises(CameraModelError, match='takes 4 coefficients'):
        CameraModel.from_camera_info(W, H, k, [0.0] * 5, 'equidistant')
    with pytest.raises(CameraModelError, match='size'):
        CameraModel.from_camera_info(0, H, k, [], 'plumb_bob')
    with pytest.raises(CameraModelError, match='9 values'):
        CameraModel.from_camera_info(W, H, k[:6], [], 'plumb_bob')
    assert issubclass(CameraModelError, ValueError)
    assert CameraModel.from_camera_info(W, H, k, [], 'plumb_bob').model == 'none'
    rational = CameraModel.from_camera_info(W, H, k, [0.01] * 8, 'rational_polynomial')
    assert rational.matches_frame(W, H) and not rational.matches_frame(H, W)
    assert CameraModel.from_camera_info(W, H, k, PLUMB_BOB, 'plumb_bob') == \
        CameraModel(W, H, K, PLUMB_BOB, 'plumb_bob')


def test_pose_conventions() -> None:
    np.testing.assert_allclose(LINK_FROM_OPTICAL,
                               pose_matrix(0, 0, 0, -math.pi / 2, 0, -math.pi / 2), atol=1e-12)
    nose_down = pose_matrix(0, 0, 0, 0, 0.3, 0)
    assert nose_down[2, 0] < 0                                # +x tilts towards -z
    left = pose_matrix(1, 2, 3, 0, 0, math.pi / 2)
    np.testing.assert_allclose(transform_points(left, [[1.0, 0.0, 0.0]]), [[1, 3, 3]],
                               atol=1e-12)
    opt = optical_pose(FRONT_LINK)
    # The optical axis (z) points forward (and a bit down), image x to the right (-y).
    assert opt[0, 2] > 0.99 and opt[2, 2] < 0 and opt[1, 0] < -0.99
    np.testing.assert_allclose(invert_pose(opt) @ opt, np.eye(4), atol=1e-12)


def test_grid_spec() -> None:
    spec = GridSpec.centred(0.1, 40.0, 20.0, x0=2.0)
    assert (spec.width, spec.height, spec.shape) == (400, 200, (200, 400))
    assert spec.origin == (2.0, -10.0) and spec.frame == 'base_link'
    x, y = spec.cell_centres()
    assert x[0, 0] == pytest.approx(2.05) and y[0, 0] == pytest.approx(-9.95)
    assert x[0, 1] > x[0, 0] and y[1, 0] > y[0, 0]            # columns +x, rows +y
    for bad in (dict(resolution=0.0, size=(1.0, 1.0)), dict(resolution=0.1, size=(0.0, 1.0)),
                dict(resolution=0.3, size=(1.0, 0.9))):
        with pytest.raises(ValueError):
            GridSpec(**bad)


def test_projector_reuses_tables() -> None:
    camera, pose = camera_case('plumb_bob')
    projector = GridProjector(GridSpec.centred(1.0, 30.0, 20.0), max_range=30.0)
    first = projector.tables_for(camera, pose)
    same = CameraModel.from_camera_info(W, H, K.ravel(), PLUMB_BOB, 'plumb_bob')
    assert projector.tables_for(same, pose + 1e-12) is first and projector.builds == 1
    moved = pose.copy()
    moved[2, 3] += 1e-3
    assert projector.tables_for(camera, moved) is not first and projector.builds == 2
    other = CameraModel(W, H, K * [[1.01], [1.0], [1.0]], PLUMB_BOB, 'plumb_bob')
    projector.tables_for(other, pose)
    assert projector.builds == 3
    assert projector.tables_for(camera, pose) is first and projector.builds == 3
    projector.spec = GridSpec.centred(0.5, 30.0, 20.0)
    assert projector.tables_for(camera, pose).spec == projector.spec and projector.builds == 4
    grid = projector.project(camera, pose, np.full((H, W), 0.25, np.float32))
    assert projector.builds == 4 and np.nanmax(np.abs(grid - 0.25)) < 1e-6
