"""Image files <-> numpy arrays (RGB order everywhere inside seg_perception)."""
from __future__ import annotations

import os
import pathlib

import cv2
import numpy as np

IGNORE = 255  # target value for "don't care" pixels


class ImageReadError(OSError):
    """An image file that is missing or cannot be decoded."""


def decode_file(path: str | os.PathLike, flags: int) -> np.ndarray:
    """An image file decoded by OpenCV with ``flags`` (``cv2.IMREAD_*``), channels as
    stored (BGR for colour). Raises :class:`ImageReadError`: missing, empty or unreadable.
    """
    p = pathlib.Path(path)
    if not p.is_file():
        raise ImageReadError(f'{p}: file not found')
    data = np.fromfile(str(p), np.uint8)
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise ImageReadError(f'{p}: not a readable image (empty, truncated or unknown format)')
    return image


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB; raises :class:`ImageReadError`."""
    return cv2.cvtColor(decode_file(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def read_gray(path: str | os.PathLike) -> np.ndarray:
    """Read a single-channel image file (e.g. a label PNG) as (H, W) uint8."""
    p = pathlib.Path(path)
    image = decode_file(p, cv2.IMREAD_UNCHANGED)
    if image.ndim == 3:
        raise ImageReadError(f'{p}: expected a single-channel label image, got {image.shape}')
    return image.astype(np.uint8, copy=False)


def write_rgb(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write (H, W, 3) uint8 RGB or (H, W) uint8 gray to a PNG/JPEG file."""
    p = pathlib.Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    out = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    if not cv2.imwrite(str(p), out):
        raise OSError(f'{p}: could not write image')


def kitti_gt_to_target(gt_rgb: np.ndarray) -> np.ndarray:
    """KITTI Road ground truth (H, W, 3) RGB -> target (H, W) uint8.

    As in the devkit: valid = red > 0, road = blue > 0. Target: 1 road, 0 not road,
    255 (IGNORE) where not valid (black pixels).
    """
    valid = gt_rgb[:, :, 0] > 0
    road = gt_rgb[:, :, 2] > 0
    return np.where(valid, road.astype(np.uint8), np.uint8(IGNORE)).astype(np.uint8)


def camvid_to_target(labels: np.ndarray, road_class: int = 3,
                     ignore_class: int = 11) -> np.ndarray:
    """CamVid class ids (H, W) uint8 -> target (H, W) uint8: 1 road, 0 other, 255 ignore."""
    target = (labels == road_class).astype(np.uint8)
    target[labels == ignore_class] = IGNORE
    return target
