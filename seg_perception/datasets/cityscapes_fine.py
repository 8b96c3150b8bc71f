"""Cityscapes in the official layout with fine labels (``cityscapes_fine``)::

    leftImg8bit/<split>/<city>/<x>_leftImg8bit.png
    gtFine/<split>/<city>/<x>_gtFine_labelIds.png

The road target comes from the labelIds (ids of cityscapesScripts' ``labels.py``):

* road = 7;
* ignore = the void category, ids 0-6 (unlabeled, ego vehicle, rectification border,
  out of roi, static, dynamic, ground), plus parking (9) and rail track (10): both are
  ``ignoreInEval`` in labels.py, drivable-looking surfaces that are neither road nor clearly
  not road, so they are left out as the benchmark leaves them out;
* not road = every other id (8 sidewalk, 11-33: construction, objects, nature, sky, humans,
  vehicles, including the other ``ignoreInEval`` classes guard rail, bridge, tunnel,
  polegroup, caravan, trailer, which are certainly not road);
* ids above 33 do not exist: unknown, ignored and reported (``report()``, warnings).

Splits: the folder names under ``leftImg8bit`` (train, val, test, ...). The public gtFine
test labels are placeholders, so ``test`` opens without ground truth (prediction only, as
KITTI's testing split). Frame names are ``<x>`` (e.g. ``aachen_000000_000019``).
"""
from __future__ import annotations

import functools
import pathlib

import numpy as np

from seg_perception.datasets.base import DatasetError, Item, RoadDataset, require_dir
from seg_perception.datasets.labels import (
    LOG,
    LabelReport,
    UnknownValues,
    apply_table,
    read_id_mask,
    value_table,
)

ROAD_ID = 7
IGNORE_IDS = (0, 1, 2, 3, 4, 5, 6, 9, 10)
NOT_ROAD_IDS = (8, *range(11, 34))
IMAGE_SUFFIX = '_leftImg8bit'
LABEL_SUFFIX = '_gtFine_labelIds.png'
NO_GT_SPLITS = ('test',)


@functools.lru_cache(maxsize=1)
def _table() -> np.ndarray:
    return value_table((ROAD_ID,), IGNORE_IDS, NOT_ROAD_IDS)


def label_ids_to_target(ids: np.ndarray) -> tuple[np.ndarray, UnknownValues]:
    """Cityscapes labelIds (H, W) uint8 -> (target (H, W) uint8: 1 road, 0 not road, 255
    ignore; unknown ids -> pixel count, those pixels ignored).
    """
    return apply_table(ids, _table())


def label_path(image: pathlib.Path, label_dir: pathlib.Path) -> pathlib.Path:
    """``<x>_leftImg8bit.png`` -> ``label_dir/<x>_gtFine_labelIds.png``."""
    return label_dir / f'{frame_name(image)}{LABEL_SUFFIX}'


def frame_name(image: pathlib.Path) -> str:
    """``aachen_000000_000019_leftImg8bit.png`` -> ``aachen_000000_000019``."""
    stem = image.stem
    return stem[:-len(IMAGE_SUFFIX)] if stem.endswith(IMAGE_SUFFIX) else stem


class CityscapesFine(RoadDataset):
    """Cityscapes split ``split`` under ``data_dir`` (holding leftImg8bit/ and gtFine/).

    Args:
        data_dir: the Cityscapes folder.
        split: a folder name under ``leftImg8bit`` (train, val, test ...).
        require_gt: without ``gtFine/<split>``, raise (True) or open the split without
            ground truth (False). ``test`` never has usable ground truth.
    """

    name = 'cityscapes_fine'

    def __init__(self, data_dir: str | pathlib.Path, split: str = 'train',
                 require_gt: bool = True) -> None:
        """Index the split; raises :class:`DatasetError` on missing/mismatched files."""
        root = require_dir(pathlib.Path(data_dir), 'Cityscapes data')
        image_root = require_dir(root / 'leftImg8bit', 'Cityscapes leftImg8bit')
        split_dir = image_root / split
        if not split_dir.is_dir():
            known = sorted(p.name for p in image_root.iterdir() if p.is_dir())
            raise DatasetError(f'{split_dir}: no Cityscapes split {split!r} (found: '
                               f'{", ".join(known) or "none"})')
        images = sorted(p for p in split_dir.glob(f'*/*{IMAGE_SUFFIX}.*')
                        if p.suffix.lower() in ('.png', '.jpg', '.jpeg'))
        if not images:
            raise DatasetError(f'{split_dir}: no <city>/*{IMAGE_SUFFIX}.png frames found')
        gt_root = root / 'gtFine' / split
        orphans = 0
        if split not in NO_GT_SPLITS and (gt_root.is_dir() or require_gt):
            require_dir(gt_root, 'Cityscapes gtFine split')
            items = [Item(frame_name(p), p, label_path(p, gt_root / p.parent.name))
                     for p in images]
            missing = [it for it in items if not it.gt.is_file()]
            if missing:
                raise DatasetError(f'{gt_root}: no labelIds for {len(missing)} of {len(items)} '
                                   f'frame(s), e.g. {missing[0].gt.relative_to(root)}')
            names = {it.name for it in items}
            orphans = sum(p.name[:-len(LABEL_SUFFIX)] not in names
                          for p in gt_root.glob(f'*/*{LABEL_SUFFIX}'))
            if orphans:
                LOG.warning('%s: %d labelIds file(s) without a frame (not used)', gt_root,
                            orphans)
        else:
            items = [Item(frame_name(p), p, None) for p in images]
        self.label_report = LabelReport(f'cityscapes_fine {root}', len(items), orphans)
        super().__init__(items, split)

    def read_target(self, item: Item) -> np.ndarray:
        """The labelIds PNG -> (H, W) uint8 target (see the module docstring)."""
        ids = read_id_mask(item.gt, 'labelIds image (the *_color.png files are not labelIds)')
        target, unknown = label_ids_to_target(ids)
        self.label_report.add(item.name, target, unknown)
        return target
