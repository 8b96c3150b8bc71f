"""KITTI Road (``data_road``) layout.

``training/image_2/{um,umm,uu}_NNNNNN.png`` with ``training/gt_image_2/{cat}_road_NNNNNN.png``
(or ``{cat}_lane_NNNNNN.png`` on request); ``testing/image_2`` has no ground truth.
Splits: ``train`` / ``val`` (deterministic, stratified by category, seedable; KittiSeg used
241 / 48 of 289), ``training`` (all), ``testing``, or a list file of frame names.
"""
from __future__ import annotations

import pathlib
import random

import numpy as np

from seg_perception.core.image_io import kitti_gt_to_target, read_rgb
from seg_perception.datasets.base import DatasetError, Item, RoadDataset, list_images, require_dir

CATEGORIES = ('um', 'umm', 'uu')
VAL_FRACTION = 48 / 289


def split_names(names: list[str], seed: int = 0, val_fraction: float = VAL_FRACTION,
                ) -> tuple[list[str], list[str]]:
    """Stratified deterministic train/val split of frame names by category prefix."""
    train, val = [], []
    for cat in sorted({n.rsplit('_', 1)[0] for n in names}):
        group = sorted(n for n in names if n.rsplit('_', 1)[0] == cat)
        random.Random(f'{seed}-{cat}').shuffle(group)
        n_val = int(round(len(group) * val_fraction)) if len(group) > 1 else 0
        val += group[:n_val]
        train += group[n_val:]
    return sorted(train), sorted(val)


class KittiRoad(RoadDataset):
    """KITTI Road split under ``data_dir`` (the folder holding training/ and testing/).

    Args:
        data_dir: data_road folder.
        split: ``train``, ``val``, ``training`` (all 289), ``testing``, or a path to a text
            file with one frame name per line (e.g. ``um_000000``).
        task: ``road`` (default) or ``lane`` ground truth.
        seed: seed of the train/val split.
    """

    name = 'kitti'

    def __init__(self, data_dir: str | pathlib.Path, split: str = 'train', task: str = 'road',
                 seed: int = 0) -> None:
        """Index the split; raises :class:`DatasetError` on missing/mismatched files."""
        if task not in ('road', 'lane'):
            raise DatasetError(f"task must be 'road' or 'lane', got {task!r}")
        root = require_dir(pathlib.Path(data_dir), 'KITTI Road data')
        if split == 'testing':
            images = list_images(require_dir(root / 'testing' / 'image_2', 'testing/image_2'))
            super().__init__([Item(p.stem, p, None) for p in images], split)
            return
        image_dir = require_dir(root / 'training' / 'image_2', 'training/image_2')
        gt_dir = require_dir(root / 'training' / 'gt_image_2', 'training/gt_image_2')
        by_name = {p.stem: p for p in list_images(image_dir)}
        if split in ('train', 'val', 'training'):
            names = sorted(by_name)
            if split != 'training':
                names = split_names(names, seed)[0 if split == 'train' else 1]
        else:
            list_file = pathlib.Path(split)
            if not list_file.is_file():
                raise DatasetError(f'unknown KITTI split {split!r} (train, val, training, '
                                   'testing or a list file)')
            names = [n.strip() for n in list_file.read_text().splitlines() if n.strip()]
            unknown = [n for n in names if n not in by_name]
            if unknown:
                raise DatasetError(f'{list_file}: frame {unknown[0]!r} not in {image_dir}')
        if not names:
            raise DatasetError(f'{root}: split {split!r} is empty')
        items = []
        for n in names:
            cat, idx = n.rsplit('_', 1)
            gt = gt_dir / f'{cat}_{task}_{idx}.png'
            if not gt.is_file():
                raise DatasetError(f'{gt}: ground truth for {n} not found')
            items.append(Item(n, by_name[n], gt))
        super().__init__(items, split)

    def read_target(self, item: Item) -> np.ndarray:
        """Ground-truth PNG -> target (devkit semantics: valid = red > 0, road = blue > 0)."""
        return kitti_gt_to_target(read_rgb(item.gt))
