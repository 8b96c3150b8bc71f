"""Mapillary Vistas in its published layout (``mapillary``)::

    config_v2.0.json, config_v1.2.json           the 2.0 release (config.json: 1.x releases)
    <split>/images/<name>.jpg                     split: training, validation, testing
    <split>/v2.0/labels/<name>.png                8-bit palette PNG: pixel = label index
    <split>/v1.2/labels/<name>.png                (1.x releases: <split>/labels/<name>.png)

The label index is the position in the config's ``labels`` list; the road target is
decided by the label *names*, so v1.2 (66 classes) and v2.0 (124) work from the user's own
config file, with no colour or index table copied here:

* road: ``construction--flat--road``, ``construction--flat--service-lane``,
  ``construction--flat--crosswalk-plain`` and every ``marking*`` class (lane and crosswalk
  paint lie on the road surface; KITTI Road counts them as road);
* ignore: ``void--*`` (unlabeled, ego vehicle, car mount), and the drivable-looking
  surfaces that are neither clearly road nor clearly not road: parking, parking aisle,
  rail track, bike lane, road shoulder, driveway, and the road-surface objects manhole,
  catch basin, pothole, water valve (on the road or on the pavement alike) -- as
  ``cityscapes_fine`` leaves parking and rail track out;
* not road: every other class of the config (sidewalk, curb, traffic island, terrain,
  vehicles, humans, sky, ...);
* indices past the end of the config's list: unknown, ignored and reported.

Splits: ``train`` / ``val`` / ``test`` name ``training`` / ``validation`` / ``testing``
(the folder names work too). ``testing`` has no labels (prediction only).
"""
from __future__ import annotations

import functools
import json
import pathlib

import numpy as np
from PIL import Image

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
    value_table,
)

VERSIONS = ('auto', 'v2.0', 'v1.2', 'v1')
SPLITS = {'train': 'training', 'val': 'validation', 'test': 'testing'}
NO_GT_SPLITS = ('testing',)
ROAD_NAMES = frozenset({'construction--flat--road', 'construction--flat--service-lane',
                        'construction--flat--crosswalk-plain'})
ROAD_PREFIXES = ('marking',)
IGNORE_NAMES = frozenset({
    'construction--flat--parking', 'construction--flat--parking-aisle',
    'construction--flat--rail-track', 'construction--flat--bike-lane',
    'construction--flat--road-shoulder', 'construction--flat--driveway',
    'object--manhole', 'object--catch-basin', 'object--pothole', 'object--water-valve'})
IGNORE_PREFIXES = ('void--',)


def target_class(name: str) -> str:
    """A Mapillary label name -> ``'road'``, ``'ignore'`` or ``'not_road'``."""
    if name in ROAD_NAMES or name.startswith(ROAD_PREFIXES):
        return 'road'
    if name in IGNORE_NAMES or name.startswith(IGNORE_PREFIXES):
        return 'ignore'
    return 'not_road'


def read_label_names(config: pathlib.Path) -> tuple[str, ...]:
    """The ``labels[i].name`` list of a Mapillary ``config*.json`` (index = label value).

    Raises:
        DatasetError: unreadable, not a Mapillary config, or no ``construction--flat--road``.
    """
    try:
        labels = json.loads(config.read_text())['labels']
        names = tuple(str(label['name']) for label in labels)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f'{config}: not a Mapillary Vistas config (a "labels" list of '
                           f'{{"name": ...}}): {exc}') from None
    if 'construction--flat--road' not in names:
        raise DatasetError(f'{config}: no label construction--flat--road among {len(names)}')
    if len(names) > 256:
        raise DatasetError(f'{config}: {len(names)} labels do not fit 8-bit label images')
    return names


@functools.lru_cache(maxsize=4)
def _table(names: tuple[str, ...]) -> np.ndarray:
    classes = [target_class(n) for n in names]
    return value_table([i for i, c in enumerate(classes) if c == 'road'],
                       [i for i, c in enumerate(classes) if c == 'ignore'],
                       [i for i, c in enumerate(classes) if c == 'not_road'])


def labels_to_target(labels: np.ndarray, names: tuple[str, ...],
                     ) -> tuple[np.ndarray, UnknownValues]:
    """Label indices (H, W) uint8 -> (target (H, W) uint8: 1 road, 0 not road, 255 ignore;
    unknown indices -> pixel count, those pixels ignored), by the config's label ``names``.
    """
    return apply_table(labels, _table(names))


def read_labels(path: pathlib.Path) -> np.ndarray:
    """A Mapillary label PNG -> (H, W) uint8 label indices (the palette indices, not the
    colours). Raises :class:`DatasetError` for other kinds of image.
    """
    try:
        with Image.open(path) as image:
            mode = image.mode
            labels = np.asarray(image) if mode in ('P', 'L') else None
    except OSError as exc:
        raise DatasetError(f'{path}: cannot read the label image: {exc}') from None
    if labels is None:
        raise DatasetError(f'{path}: {mode} image; expected an 8-bit palette label PNG '
                           '(<split>/<version>/labels/, not instances/ or panoptic/)')
    return labels.astype(np.uint8, copy=False)


def find_config(labels_dir: pathlib.Path) -> pathlib.Path:
    """The config of a label folder: ``<root>/<split>/<version>/labels`` ->
    ``<root>/config_<version>.json``; ``<root>/<split>/labels`` -> ``<root>/config.json``.
    """
    labels_dir = labels_dir.absolute()
    version = labels_dir.parent.name
    parents = labels_dir.parents
    root = parents[min(2, len(parents) - 1)] if parents else labels_dir
    if version.startswith('v') and (root / f'config_{version}.json').is_file():
        return root / f'config_{version}.json'
    for parent in labels_dir.parents[:3]:
        if (parent / 'config.json').is_file():
            return parent / 'config.json'
    raise DatasetError(f'{labels_dir}: no Mapillary config (config_<version>.json or '
                       'config.json) two or three folders up')


def _label_dir(split_dir: pathlib.Path, version: str) -> pathlib.Path:
    if version == 'auto':
        for v in ('v2.0', 'v1.2'):
            if (split_dir / v / 'labels').is_dir():
                return split_dir / v / 'labels'
        return split_dir / 'labels'
    return split_dir / 'labels' if version == 'v1' else split_dir / version / 'labels'


class MapillaryVistas(RoadDataset):
    """Mapillary Vistas split ``split`` under ``data_dir`` (the extracted release).

    Args:
        data_dir: the folder holding ``training/``, ``validation/`` and the config files.
        split: ``train``/``training``, ``val``/``validation``, ``test``/``testing``.
        version: label version: ``'auto'`` (v2.0, else v1.2, else a 1.x release's
            ``<split>/labels``), ``'v2.0'``, ``'v1.2'`` or ``'v1'`` (1.x releases).
        require_gt: without the split's label folder, raise (True) or open the split
            without ground truth (False).
    """

    name = 'mapillary'

    def __init__(self, data_dir: str | pathlib.Path, split: str = 'train',
                 version: str = 'auto', require_gt: bool = True) -> None:
        """Index the split; raises :class:`DatasetError` on missing/mismatched files."""
        if version not in VERSIONS:
            raise DatasetError(f'version must be one of {", ".join(VERSIONS)}, got {version!r}')
        root = require_dir(pathlib.Path(data_dir), 'Mapillary Vistas data')
        folder = SPLITS.get(split, split)
        split_dir = require_dir(root / folder, f'Mapillary Vistas split {split!r}')
        frames = by_stem(list_images(require_dir(split_dir / 'images', 'Mapillary images')),
                         'image')
        names = sorted(frames)
        label_dir = _label_dir(split_dir, version)
        orphans = 0
        self.label_names: tuple[str, ...] = ()
        if folder not in NO_GT_SPLITS and (label_dir.is_dir() or require_gt):
            require_dir(label_dir, 'Mapillary labels')
            self.label_names = read_label_names(find_config(label_dir))
            items, orphans = pair_masks(frames, names, label_dir, 'label image')
        else:
            items = [Item(n, frames[n], None) for n in names]
        self.label_report = LabelReport(f'mapillary {root}', len(items), orphans)
        super().__init__(items, split)

    def read_target(self, item: Item) -> np.ndarray:
        """The label PNG -> (H, W) uint8 target (see the module docstring)."""
        target, unknown = labels_to_target(read_labels(item.gt), self.label_names)
        self.label_report.add(item.name, target, unknown)
        return target
