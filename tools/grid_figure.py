"""The README's road/grid picture: a KITTI frame, its overlay and its grid, side by side.

The frame goes through the node's pipeline (the shipped model, its card geometry) and the
node's grid code (:class:`seg_perception.ros.grid_output.GridOutputs` is the same
projection): camera matrix from the KITTI calibration's P2, camera pose from its
``Tr_cam_to_road`` (printed as the ``grid.camera_pose`` a KITTI user would set), a 0.1 m grid
40 m ahead and 10 m to each side. The grid is drawn as RViz's Map display draws it with its
``map`` colour scheme (free white, occupied black, unknown grey), forward up.

    python tools/grid_figure.py --out docs/grid_kitti.png [--frame um_000000]
"""
from __future__ import annotations

import argparse
import math
import pathlib
import sys

import cv2
import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
KITTI = REPO.parent / 'shared' / 'data' / 'kitti_road'


def camera_pose_from_calib(calib: object) -> list[float]:
    """[x, y, z, roll, pitch, yaw] of camera 2's link in a z-up frame on the road below the
    cameras (the KITTI road frame re-axed: x forward, y left), from P2, R0_rect and
    Tr_cam_to_road.
    """
    from seg_perception.geometry.camera import LINK_FROM_OPTICAL, CameraModel
    from seg_perception.geometry.kitti_bev import GRID_FROM_ROAD
    r0, tr = calib.homogeneous()
    grid_from_cam0 = GRID_FROM_ROAD @ tr @ np.linalg.inv(r0)      # rectified cam0, optical
    centre = CameraModel.from_kitti_p(calib.p2, 1242, 375).centre  # cam2 in cam0 coordinates
    grid_from_cam2 = grid_from_cam0.copy()
    grid_from_cam2[:3, 3] = grid_from_cam0[:3, :3] @ centre + grid_from_cam0[:3, 3]
    link = grid_from_cam2 @ np.linalg.inv(LINK_FROM_OPTICAL)
    r = link[:3, :3]
    roll, pitch = math.atan2(r[2, 1], r[2, 2]), math.asin(-r[2, 0])
    yaw = math.atan2(r[1, 0], r[0, 0])
    return [round(float(v), 4) for v in (*link[:3, 3], roll, pitch, yaw)]


def draw_grid(values: np.ndarray, cell_px: int = 2) -> np.ndarray:
    """(rows = +y, cols = +x) int8 grid -> RGB picture, forward up, left on the left."""
    img = np.where(values < 0, 128, 255 - (values.astype(np.int32) * 255) // 100)
    img = np.ascontiguousarray(np.rot90(img.astype(np.uint8), 1)[:, ::-1])  # +x up, +y left
    img = cv2.resize(img, None, fx=cell_px, fy=cell_px, interpolation=cv2.INTER_NEAREST)
    rgb = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    h, w = rgb.shape[:2]
    for m in range(10, 41, 10):  # range rings every 10 m
        y = h - int(m / 0.1 * cell_px)
        cv2.line(rgb, (0, y), (w - 1, y), (60, 130, 230), 1)
        cv2.putText(rgb, f'{m} m', (4, y - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (60, 130, 230), 1)
    return rgb


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', default=str(REPO / 'docs' / 'grid_kitti.png'))
    p.add_argument('--frame', default='um_000000')
    p.add_argument('--model', default=str(REPO / 'models' / 'road_fcn8s_vgg16.segmodel'))
    args = p.parse_args(argv)

    from seg_perception.core.image_io import read_rgb, write_rgb
    from seg_perception.geometry.camera_grid import CameraGrid, CameraInfoFields, GridConfig
    from seg_perception.geometry.kitti_bev import read_kitti_calib
    from seg_perception.runtime.pipeline import Pipeline
    from seg_perception.runtime.segmenter import Segmenter

    image = read_rgb(next((KITTI / 'training' / 'image_2').glob(f'{args.frame}.*')))
    calib = read_kitti_calib(KITTI / 'training' / 'calib' / 'um_000000.txt')
    pose = camera_pose_from_calib(calib)
    print(f'grid.camera_pose for this KITTI camera: {pose}')
    h, w = image.shape[:2]
    k = tuple(float(v) for v in calib.p2[:, :3].ravel())
    config = GridConfig.from_values('base_link', 0.1, [40.0, 20.0], [0.0, -10.0], 40.0, None,
                                    None, pose, False, 1)
    pipe = Pipeline(Segmenter(args.model))
    out = pipe.run([image])[0]
    grid = CameraGrid(config).project(out.probability, CameraInfoFields(w, h, k, (), ''),
                                      config.optical_poses[0])
    values = config.occupancy(grid)
    overlay = pipe.overlay(image, out.labels)
    picture = draw_grid(values)
    scale = picture.shape[0] / h / 2
    left = np.vstack([image, overlay])
    left = cv2.resize(left, (int(w * scale), picture.shape[0]), interpolation=cv2.INTER_AREA)
    sheet = np.hstack([left, np.full((picture.shape[0], 8, 3), 255, np.uint8), picture])
    write_rgb(args.out, sheet)
    print(f'wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
