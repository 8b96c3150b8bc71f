"""KITTI Road devkit bird's-eye view, and its equivalence with the general ground grid."""
from __future__ import annotations

import pathlib

import cv2
import numpy as np
import pytest

from seg_perception.geometry.camera import pose_matrix
from seg_perception.geometry.ground_grid import build_tables, sample_nearest
from seg_perception.geometry.kitti_bev import (
    BevSpec,
    KittiCalib,
    bev_tables,
    bev_to_grid,
    devkit_bev,
    grid_to_bev,
    kitti_camera_and_pose,
    read_kitti_calib,
    to_bev,
)

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / 'shared' / 'data'
KITTI_TRAINING = SHARED_DATA / 'kitti_road' / 'training'
CALIB_FILE = KITTI_TRAINING / 'calib' / 'um_000000.txt'
GT_FILE = KITTI_TRAINING / 'gt_image_2' / 'um_road_000000.png'
KITTI_W, KITTI_H = 1242, 375


def kitti_files() -> tuple[pathlib.Path, pathlib.Path]:
    for path in (CALIB_FILE, GT_FILE):
        if not path.exists():
            pytest.skip(f'real KITTI Road data not available: {path} is missing')
    return CALIB_FILE, GT_FILE


def synthetic_calib() -> KittiCalib:
    """A KITTI-like calibration: camera 1.6 m above a slightly tilted road plane."""
    k = np.array([[720.0, 0.0, 610.0], [0.0, 720.0, 173.0], [0.0, 0.0, 1.0]])
    p2 = k @ np.hstack([np.eye(3), [[0.06], [-3e-4], [2.7e-3]]])
    r0 = pose_matrix(0, 0, 0, 0.004, -0.007, 0.01)[:3, :3]
    road_from_cam = pose_matrix(0.01, -1.6, 0.28, 0.011, 0.0075, -0.0055)
    return KittiCalib(p2=p2, r0_rect=r0, tr_cam_to_road=road_from_cam[:3, :])


def gt_labels(path: pathlib.Path) -> np.ndarray:
    """Devkit rule: valid = red > 0, road = blue > 0 -> uint8 1 road, 0 not road, 2 invalid."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return np.where(bgr[..., 2] > 0, (bgr[..., 0] > 0).astype(np.uint8), 2).astype(np.uint8)


def assert_same_sampling(calib: KittiCalib, width: int, height: int) -> tuple:
    tables = bev_tables(calib, BevSpec(), (height, width))
    camera, pose, spec = kitti_camera_and_pose(calib, width, height)
    grid = build_tables(camera, pose, spec, max_range=0.0)
    assert tables.map_x.shape == BevSpec().shape == (800, 400) and spec.shape == (400, 800)
    np.testing.assert_array_equal(grid_to_bev(grid.known), tables.known)
    np.testing.assert_allclose(grid_to_bev(grid.map_x), tables.map_x, atol=1e-3, rtol=0)
    np.testing.assert_allclose(grid_to_bev(grid.map_y), tables.map_y, atol=1e-3, rtol=0)
    return tables, grid


def test_synthetic_calibration_same_sampling_as_grid() -> None:
    calib = synthetic_calib()
    tables, _ = assert_same_sampling(calib, KITTI_W, KITTI_H)
    assert 0.5 < tables.known.mean() < 1.0
    # Devkit row order: row 0 is the far edge (higher in the image), column 0 the left edge.
    col = tables.known[:, 200]
    assert tables.map_y[col, 200][0] < tables.map_y[col, 200][-1]
    row = tables.known[-100]
    assert tables.map_x[-100, row][0] < tables.map_x[-100, row][-1]
    # The camera model reproduces P2 on rectified cam0 points.
    camera, _, _ = kitti_camera_and_pose(calib, KITTI_W, KITTI_H)
    pts = np.array([[1.0, 1.5, 10.0], [-4.0, 1.6, 30.0]])
    hom = (calib.p2 @ np.hstack([pts, np.ones((2, 1))]).T).T
    uv, ok = camera.project(pts)
    assert ok.all()
    np.testing.assert_allclose(uv, hom[:, :2] / hom[:, 2:], atol=1e-9)


def test_grid_bev_layout_round_trip() -> None:
    grid = np.arange(400 * 800 * 3).reshape(400, 800, 3)
    bev = grid_to_bev(grid)
    assert bev.shape == (800, 400, 3)
    assert bev[0, 0, 1] == grid[399, 799, 1]      # far-left BEV cell = max x, max y (left)
    assert bev[799, 399, 2] == grid[0, 0, 2]      # near-right BEV cell = min x, min y (right)
    np.testing.assert_array_equal(bev_to_grid(bev), grid)


def test_read_kitti_calib_real_file() -> None:
    calib_file, _ = kitti_files()
    calib = read_kitti_calib(calib_file)
    assert calib.p2.shape == (3, 4) and calib.r0_rect.shape == (3, 3)
    assert calib.tr_cam_to_road.shape == (3, 4)
    assert calib.p2[0, 0] == pytest.approx(721.5377)
    assert calib.tr_cam_to_road[1, 3] == pytest.approx(-1.59713440191)   # camera height
    np.testing.assert_allclose(calib.r0_rect @ calib.r0_rect.T, np.eye(3), atol=1e-5)


def test_read_kitti_calib_errors(tmp_path: pathlib.Path) -> None:
    good = {'P2': ' '.join(['1'] * 12), 'R0_rect': ' '.join(['1'] * 9),
            'Tr_cam_to_road': ' '.join(['1'] * 12)}
    cases = {'missing': ({k: v for k, v in good.items() if k != 'R0_rect'}, "'R0_rect'"),
             'count': ({**good, 'P2': '1 2 3'}, 'P2 needs 12 values, found 3'),
             'nan': ({**good, 'Tr_cam_to_road': 'x ' * 12}, 'not a number')}
    for name, (entries, message) in cases.items():
        path = tmp_path / f'{name}.txt'
        path.write_text(''.join(f'{k}: {v}\n' for k, v in entries.items()))
        with pytest.raises(ValueError, match=message):
            read_kitti_calib(path)


def test_real_ground_truth_bev_matches_grid() -> None:
    calib_file, gt_file = kitti_files()
    calib = read_kitti_calib(calib_file)
    labels = gt_labels(gt_file)
    height, width = labels.shape
    tables, grid = assert_same_sampling(calib, width, height)
    bev = to_bev(labels, tables, 'nearest', fill=255)
    via_grid = sample_nearest(labels, grid.map_x, grid.map_y, grid.known, fill=255)
    np.testing.assert_array_equal(grid_to_bev(via_grid), bev)
    # Plausible road: a 4-7 m wide band, road under the near centre, little road at the sides.
    x, z = BevSpec().cell_centres()
    road = bev == 1
    assert 0.1 < road.mean() < 0.5 and (bev == 255).mean() < 0.1
    assert road[(z > 6.5) & (z < 12) & (np.abs(x + 1.0) < 1.5)].mean() > 0.95
    assert road[np.abs(x) > 8].mean() < 0.1
    width_m = road.sum(axis=1)[(z[:, 0] > 7) & (z[:, 0] < 44)] * BevSpec().resolution
    assert width_m.min() > 4.0 and width_m.max() < 7.0
    # Probabilities: linear sampling of a 0/1 map agrees with the labels away from edges.
    prob = to_bev((labels == 1).astype(np.float32), tables, 'linear')
    assert np.isnan(prob[~tables.known]).all()
    assert ((prob >= 0.5) == road)[tables.known].mean() > 0.99


def test_devkit_lookup_is_reproduced() -> None:
    calib_file, gt_file = kitti_files()
    calib = read_kitti_calib(calib_file)
    labels = gt_labels(gt_file)
    height, width = labels.shape
    tables = bev_tables(calib, BevSpec(), (height, width))
    # Devkit: 1-based reading + truncation = index floor(u) - 1 of our 0-based position.
    index = np.arange(height * width, dtype=np.int32).reshape(height, width)
    picked = devkit_bev(index + 1, calib) - 1
    sel = tables.known & (tables.map_x >= 1) & (tables.map_y >= 1) & (picked >= 0)
    rows, cols = np.divmod(picked[sel], width)
    assert (cols == np.floor(tables.map_x[sel]) - 1).mean() > 0.999
    assert (rows == np.floor(tables.map_y[sel]) - 1).mean() > 0.999
    dev = devkit_bev(np.dstack([labels] * 3), calib)
    assert dev.shape == (800, 400, 3) and dev.dtype == np.uint8
    ours = to_bev(labels, tables, 'nearest')
    assert (dev[..., 0][tables.known] == ours[tables.known]).mean() > 0.97
