"""CamVid (11-class SegNet version): ``<split>/`` frames with ``<split>annot/`` labels.

Road = class 3, ignore = class 11 (Unlabelled); every other class is not-road.
"""
from __future__ import annotations

import pathlib

import numpy as np

from seg_perception.core.image_io import camvid_to_target, read_gray
from seg_perception.datasets.base import DatasetError, Item, RoadDataset, list_images, require_dir

ROAD_CLASS = 3
IGNORE_CLASS = 11


class CamVid(RoadDataset):
    """CamVid split ``split`` (train, val, test, ...) under ``data_dir``."""

    name = 'camvid'

    def __init__(self, data_dir: str | pathlib.Path, split: str = 'train',
                 require_gt: bool = True) -> None:
        """Index the split; raises :class:`DatasetError` on missing/mismatched files."""
        root = require_dir(pathlib.Path(data_dir), 'CamVid data')
        images = list_images(require_dir(root / split, f'CamVid split {split!r}'))
        annot = root / f'{split}annot'
        items = []
        if annot.is_dir():
            missing = [p.name for p in images
                       if not (annot / p.with_suffix('.png').name).is_file()]
            if missing:
                raise DatasetError(f'{annot}: no label for {len(missing)} frame(s), e.g. '
                                   f'{missing[0]}')
            items = [Item(p.stem, p, annot / p.with_suffix('.png').name) for p in images]
        elif require_gt:
            raise DatasetError(f'{annot}: CamVid label folder not found')
        else:
            items = [Item(p.stem, p, None) for p in images]
        super().__init__(items, split)

    def read_target(self, item: Item) -> np.ndarray:
        """Label PNG -> target (1 road, 0 other, 255 unlabelled)."""
        labels = read_gray(item.gt)
        if labels.max() > IGNORE_CLASS:
            raise DatasetError(f'{item.gt}: class id {int(labels.max())} outside 0..11 '
                               '(not a CamVid label image)')
        return camvid_to_target(labels, ROAD_CLASS, IGNORE_CLASS)
