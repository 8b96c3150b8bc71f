"""Cityscapes in the pix2pix layout: ``train/<n>.jpg`` = frame | colour label, side by side.

Each 512x256 JPEG holds two 256x256 halves: left the camera frame (the 2048x1024 original
squashed 2:1), right its Cityscapes colour label map (JPEG-compressed, so colours are only
approximate). :class:`CityscapesPix2Pix` splits the halves, restores the 2:1 geometry
(512x256) and turns the colours into a road target:

* every label pixel takes the nearest Cityscapes colour; farther than ``tolerance``
  (Euclidean RGB distance) from all of them it is ignored (JPEG mixtures);
* road = (128, 64, 128); void (black: unlabelled, ego vehicle, out of ROI) is ignored;
* a band of ``band`` pixels on each side of every road boundary is ignored, where JPEG
  blur mixes road with its neighbours.

Splits (fixed, by sorted file name): ``val`` = every 8th frame (150 of the 1200 here),
``train`` = the rest, ``all``, or a text file of frame names.
"""
from __future__ import annotations

import pathlib

import cv2
import numpy as np

from seg_perception.core.image_io import IGNORE, read_rgb
from seg_perception.datasets.base import DatasetError, Item, RoadDataset, list_images, require_dir

ROAD_RGB = (128, 64, 128)
VOID_RGB = (0, 0, 0)
# Cityscapes label colours (labels.py of cityscapesScripts), void black first.
PALETTE = np.array([
    VOID_RGB, (111, 74, 0), (81, 0, 81), ROAD_RGB, (244, 35, 232), (250, 170, 160),
    (230, 150, 140), (70, 70, 70), (102, 102, 156), (190, 153, 153), (180, 165, 180),
    (150, 100, 100), (150, 120, 90), (153, 153, 153), (250, 170, 30), (220, 220, 0),
    (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60), (255, 0, 0),
    (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 0, 90), (0, 0, 110), (0, 80, 100),
    (0, 0, 230), (119, 11, 32)], np.float32)
ROAD_INDEX, VOID_INDEX = 3, 0
VAL_EVERY = 8
FRAME_SIZE = (256, 512)   # restored (height, width)


def label_to_target(label_rgb: np.ndarray, tolerance: float = 60.0, band: int = 2,
                    ) -> np.ndarray:
    """Cityscapes colour label (H, W, 3) uint8 RGB -> target (H, W) uint8.

    Target: 1 road, 0 not road, 255 (IGNORE) for void, colours farther than ``tolerance``
    from every Cityscapes colour, and ``band`` pixels either side of road boundaries.
    """
    x = label_rgb.reshape(-1, 1, 3).astype(np.float32)
    d2 = ((x - PALETTE[None]) ** 2).sum(axis=2)               # (H*W, K)
    nearest = d2.argmin(axis=1)
    far = d2[np.arange(len(nearest)), nearest] > tolerance ** 2
    nearest = nearest.reshape(label_rgb.shape[:2])
    road = (nearest == ROAD_INDEX).astype(np.uint8)
    target = road.copy()
    if band > 0:
        kernel = np.ones((2 * band + 1, 2 * band + 1), np.uint8)
        edge = cv2.dilate(road, kernel) != cv2.erode(road, kernel)
        target[edge] = IGNORE
    target[far.reshape(label_rgb.shape[:2]) | (nearest == VOID_INDEX)] = IGNORE
    return target


def split_pair(pair_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pix2pix pair (256, 512, 3) -> (frame, label) halves, each (256, 256, 3)."""
    h, w = pair_rgb.shape[:2]
    if w != 2 * h:
        raise DatasetError(f'expected a frame|label pair twice as wide as high, got {w}x{h}')
    return pair_rgb[:, :w // 2], pair_rgb[:, w // 2:]


class CityscapesPix2Pix(RoadDataset):
    """Cityscapes frames of the pix2pix copy under ``data_dir`` (holding ``train/``).

    Samples are 512x256 RGB frames (2:1 restored) with their road target at that size.

    Args:
        data_dir: folder with ``train/*.jpg``.
        split: ``train``, ``val``, ``all`` or a list file of frame names.
        tolerance, band: see :func:`label_to_target`.
    """

    name = 'cityscapes'

    def __init__(self, data_dir: str | pathlib.Path, split: str = 'train',
                 tolerance: float = 60.0, band: int = 2) -> None:
        """Index the split; raises :class:`DatasetError` on missing files."""
        root = require_dir(pathlib.Path(data_dir), 'Cityscapes (pix2pix) data')
        files = list_images(require_dir(root / 'train', 'Cityscapes train/'))
        by_name = {p.stem: p for p in files}
        names = sorted(by_name)
        if split in ('train', 'val'):
            val = set(names[::VAL_EVERY])
            names = [n for n in names if (n in val) == (split == 'val')]
        elif split != 'all':
            list_file = pathlib.Path(split)
            if not list_file.is_file():
                raise DatasetError(f'unknown Cityscapes split {split!r} (train, val, all or a '
                                   'list file)')
            names = [n.strip() for n in list_file.read_text().splitlines() if n.strip()]
            unknown = [n for n in names if n not in by_name]
            if unknown:
                raise DatasetError(f'{list_file}: frame {unknown[0]!r} not in {root / "train"}')
        if not names:
            raise DatasetError(f'{root}: split {split!r} is empty')
        self.tolerance, self.band = tolerance, band
        super().__init__([Item(n, by_name[n], by_name[n]) for n in names], split)

    def read_pair(self, item: Item) -> tuple[np.ndarray, np.ndarray]:
        """Frame (256, 512, 3) uint8 RGB, geometry restored, and its (256, 512) uint8 road
        target (classified at 256x256, widened by nearest), from one decode of the pair.
        """
        frame, label = split_pair(read_rgb(item.image))
        image = cv2.resize(frame, FRAME_SIZE[::-1], interpolation=cv2.INTER_LINEAR)
        target = label_to_target(label, self.tolerance, self.band)
        return image, cv2.resize(target, FRAME_SIZE[::-1], interpolation=cv2.INTER_NEAREST)

    def read_image(self, item: Item) -> np.ndarray:
        """(256, 512, 3) uint8 RGB frame, geometry restored."""
        frame, _ = split_pair(read_rgb(item.image))
        return cv2.resize(frame, FRAME_SIZE[::-1], interpolation=cv2.INTER_LINEAR)

    def read_target(self, item: Item) -> np.ndarray:
        """(256, 512) uint8 road target."""
        return self.read_pair(item)[1]
