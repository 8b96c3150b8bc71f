"""Tiny synthetic datasets in the real KITTI Road and CamVid folder layouts (for tests).

Frames show a grey road trapezoid at the bottom, green verge, blue sky; ground truth matches.
"""
from __future__ import annotations

import pathlib

import cv2
import numpy as np

KITTI_ROAD = (255, 0, 255)
KITTI_NONROAD = (255, 0, 0)


def scene(height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(image (H, W, 3) uint8 RGB, road mask (H, W) bool) of a simple road scene."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.uint8)
    horizon = int(height * rng.uniform(0.35, 0.5))
    image[:horizon] = (90, 140, 230)
    image[horizon:] = (60, 150, 60)
    cx = width * rng.uniform(0.35, 0.65)
    top = width * 0.08
    poly = np.array([[cx - top, horizon], [cx + top, horizon], [width - 1, height - 1],
                     [0, height - 1]], np.int32)
    road = np.zeros((height, width), np.uint8)
    cv2.fillPoly(road, [poly], 1)
    image[road == 1] = (110, 110, 110)
    noise = rng.normal(0, 8, image.shape)
    image = np.clip(image + noise, 0, 255).astype(np.uint8)
    return image, road.astype(bool)


def _write(path: pathlib.Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb)


def make_kitti(root: pathlib.Path, per_category: int = 3, size: tuple[int, int] = (80, 240),
               testing: int = 2) -> pathlib.Path:
    """Write a data_road-layout folder; returns ``root``."""
    seed = 0
    for cat in ('um', 'umm', 'uu'):
        for i in range(per_category):
            image, road = scene(*size, seed)
            seed += 1
            gt = np.zeros(size + (3,), np.uint8)
            gt[:] = KITTI_NONROAD
            gt[road] = KITTI_ROAD
            gt[:3] = 0  # a don't-care band, as the real ground truth has
            _write(root / 'training' / 'image_2' / f'{cat}_{i:06d}.png', image)
            _write(root / 'training' / 'gt_image_2' / f'{cat}_road_{i:06d}.png', gt)
    for i in range(testing):
        _write(root / 'testing' / 'image_2' / f'um_{i:06d}.png', scene(*size, 100 + i)[0])
    return root


def make_camvid(root: pathlib.Path, n_train: int = 6, n_val: int = 3,
                size: tuple[int, int] = (90, 120)) -> pathlib.Path:
    """Write a CamVid-layout folder (train/, trainannot/, val/, valannot/); returns ``root``."""
    seed = 0
    for split, n in (('train', n_train), ('val', n_val)):
        for i in range(n):
            image, road = scene(*size, seed)
            seed += 1
            labels = np.full(size, 5, np.uint8)      # tree/verge
            labels[: size[0] // 3] = 0               # sky
            labels[road] = 3                         # road
            labels[-2:, :] = 11                      # unlabelled strip
            _write(root / split / f'0001TP_{i:06d}.png', image)
            _write(root / f'{split}annot' / f'0001TP_{i:06d}.png', labels)
    return root
