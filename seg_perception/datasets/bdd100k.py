"""BDD100K drivable-area masks (``bdd100k``)::

    images/100k/<split>/<name>.jpg
    labels/drivable/masks/<split>/<name>.png     0 direct, 1 alternative, 2 background

Road target: *direct* (the ego vehicle's drivable area) = road; *alternative* (other lanes
one could drive in) = road by default, as KITTI Road's road task counts every lane as road,
or ignored with ``alternative='ignore'`` (road = the ego area only, other lanes neither road
nor not road); background = not road. Any other mask value is unknown: ignored, counted
and reported (``report()``, warnings). The shipped model was not trained on BDD100K.

Splits: the folder names under ``images/100k`` (train, val, test); ``test`` has no public
labels and opens without ground truth (prediction only).
"""
from __future__ import annotations

import functools
import pathlib

import numpy as np

from seg_perception.datasets.base import (
    DatasetError,
    Item,
    RoadDataset,
    by_stem,
    list_images,
    pair_masks,
    require_dir,
)
from seg_perception.datasets.labels import (
    LabelReport,
    UnknownValues,
    apply_table,
    read_id_mask,
    value_table,
)

DIRECT, ALTERNATIVE, BACKGROUND = 0, 1, 2
ALTERNATIVES = ('road', 'ignore')
NO_GT_SPLITS = ('test',)


@functools.lru_cache(maxsize=2)
def _table(alternative: str) -> np.ndarray:
    road = (DIRECT, ALTERNATIVE) if alternative == 'road' else (DIRECT,)
    ignore = (ALTERNATIVE,) if alternative == 'ignore' else ()
    return value_table(road, ignore, (BACKGROUND,))


def drivable_to_target(mask: np.ndarray, alternative: str = 'road',
                       ) -> tuple[np.ndarray, UnknownValues]:
    """Drivable mask (H, W) uint8 (0 direct, 1 alternative, 2 background) -> (target (H, W)
    uint8: 1 road, 0 not road, 255 ignore; unknown values -> pixel count, those ignored).

    Args:
        mask: (H, W) uint8 drivable-area values.
        alternative: ``'road'`` (default) or ``'ignore'``: what alternative lanes become.
    """
    check_alternative(alternative)
    return apply_table(mask, _table(alternative))


def check_alternative(alternative: str) -> None:
    """Raise :class:`DatasetError` unless ``alternative`` is one of :data:`ALTERNATIVES`."""
    if alternative not in ALTERNATIVES:
        raise DatasetError(f"alternative must be 'road' or 'ignore', got {alternative!r}")


class Bdd100k(RoadDataset):
    """BDD100K split ``split`` under ``data_dir`` (holding images/ and labels/).

    Args:
        data_dir: the BDD100K folder.
        split: ``train``, ``val``, ``test`` (a folder name under ``images/100k``).
        alternative: ``'road'`` (default) or ``'ignore'`` for alternative drivable lanes.
        require_gt: without the split's mask folder, raise (True) or open the split
            without ground truth (False). ``test`` has none.
    """

    name = 'bdd100k'

    def __init__(self, data_dir: str | pathlib.Path, split: str = 'train',
                 alternative: str = 'road', require_gt: bool = True) -> None:
        """Index the split; raises :class:`DatasetError` on missing/mismatched files."""
        check_alternative(alternative)
        self.alternative = alternative
        root = require_dir(pathlib.Path(data_dir), 'BDD100K data')
        image_dir = require_dir(root / 'images' / '100k' / split, f'BDD100K split {split!r}')
        frames = by_stem(list_images(image_dir), 'image')
        names = sorted(frames)
        mask_dir = root / 'labels' / 'drivable' / 'masks' / split
        orphans = 0
        if split not in NO_GT_SPLITS and (mask_dir.is_dir() or require_gt):
            require_dir(mask_dir, 'BDD100K drivable mask')
            items, orphans = pair_masks(frames, names, mask_dir)
        else:
            items = [Item(n, frames[n], None) for n in names]
        self.label_report = LabelReport(f'bdd100k {root}', len(items), orphans)
        super().__init__(items, split)

    def read_target(self, item: Item) -> np.ndarray:
        """Drivable mask -> (H, W) uint8 target (see :func:`drivable_to_target`)."""
        mask = read_id_mask(item.gt, 'drivable mask (0, 1, 2; the colormaps/ files are not '
                                     'masks)')
        target, unknown = drivable_to_target(mask, self.alternative)
        self.label_report.add(item.name, target, unknown)
        return target
