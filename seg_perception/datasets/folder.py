"""Your own labels: an image folder and a mask folder matched by file stem (``folder``).

Layout (folder names can be changed in the YAML)::

    DATA/images/<name>.png|jpg     frames
    DATA/masks/<name>.png|jpg      masks: class ids (single channel) or colours (RGB)
    DATA/classes.yaml              which ids / colours are road, not road, ignore

``classes.yaml`` is described in :mod:`seg_perception.datasets.folder_mapping`; its keys can
also be given (or overridden) as keyword arguments. Masks are converted by
:meth:`ClassMapping.convert`; values that match no rule are ignored and counted in
:attr:`FolderDataset.label_report` (``report()``), with warnings logged.

Splits: the names of ``splits: {train: train.txt, ...}`` in the YAML (list files of frame
names, relative to the YAML), else ``train`` / ``val`` (fixed: by sorted name, every 8th
frame is ``val``); always ``all`` or the path of a list file.

Checks when indexing: an image without a mask is an error (how many, and the first); masks
without an image are counted and logged. When reading: a mask of another size than its image
is an error naming the file; an all-ignore mask is reported.
"""
from __future__ import annotations

import pathlib
from typing import Any

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
from seg_perception.datasets.folder_mapping import ClassMapping, load_yaml
from seg_perception.datasets.labels import LabelReport, read_mask

VAL_EVERY = 8
MAPPING_FILE = 'classes.yaml'


class FolderDataset(RoadDataset):
    """Frames of ``data_dir``/images with masks of ``data_dir``/masks (see the module doc).

    Args:
        data_dir: the data folder.
        split: a name of the YAML's ``splits``, else ``train`` / ``val``; ``all``; or a list
            file of frame names.
        mapping: class mapping YAML (default ``data_dir/classes.yaml``); a relative path is
            taken from the current folder, else from ``data_dir``.
        images, masks: folder names under ``data_dir`` (override the YAML).
        road, not_road, ignore, tolerance: class mapping keys (override the YAML).
        require_gt: without a mask folder, raise (True) or list frames without ground
            truth (False: prediction only).
    """

    name = 'folder'

    def __init__(self, data_dir: str | pathlib.Path, split: str = 'train',
                 mapping: str | pathlib.Path | None = None, images: str | None = None,
                 masks: str | None = None, road: Any = None, not_road: Any = None,
                 ignore: Any = None, tolerance: float | None = None,
                 require_gt: bool = True) -> None:
        """Index the split; raises :class:`DatasetError` on missing/mismatched files."""
        root = require_dir(pathlib.Path(data_dir), 'folder dataset')
        yaml_path = _mapping_path(root, mapping)
        config = load_yaml(yaml_path) if yaml_path.is_file() else {}
        overrides = {'road': road, 'not_road': not_road, 'ignore': ignore,
                     'tolerance': tolerance, 'images': images, 'masks': masks}
        config.update({k: v for k, v in overrides.items() if v is not None})
        if 'road' not in config:
            raise DatasetError(f'{yaml_path}: class mapping not found (put {MAPPING_FILE} in '
                               'the data folder, or pass mapping=FILE)')
        self.mapping = ClassMapping.from_dict(config, str(yaml_path))
        image_dir = require_dir(root / str(config.get('images', 'images')), 'image')
        mask_dir = root / str(config.get('masks', 'masks'))
        frames = by_stem(list_images(image_dir), 'image')
        names = select_split(split, sorted(frames), config.get('splits'), yaml_path)
        orphans = 0
        if mask_dir.is_dir():
            items, orphans = pair_masks(frames, names, mask_dir)
        elif require_gt:
            raise DatasetError(f'{mask_dir}: mask folder not found')
        else:
            items = [Item(n, frames[n], None) for n in names]
        self.label_report = LabelReport(f'folder {root}', len(items), orphans)
        super().__init__(items, split)

    def read_target(self, item: Item) -> np.ndarray:
        """Mask -> (H, W) uint8 target (1 road, 0 not road, 255 ignore and unknown values);
        unknown values and all-ignore masks are recorded in :attr:`label_report`.
        """
        target, unknown = self.mapping.convert(read_mask(item.gt), item.gt)
        self.label_report.add(item.name, target, unknown)
        return target


def _mapping_path(root: pathlib.Path, mapping: str | pathlib.Path | None) -> pathlib.Path:
    """The class mapping YAML: ``mapping`` (from the current folder, else under ``root``)."""
    if mapping is None:
        return root / MAPPING_FILE
    path = pathlib.Path(mapping).expanduser()
    if not path.is_absolute() and not path.is_file() and (root / path).is_file():
        path = root / path
    if not path.is_file():
        raise DatasetError(f'{mapping}: class mapping file not found')
    return path


def select_split(split: str, names: list[str], splits: Any, yaml_path: pathlib.Path,
                 ) -> list[str]:
    """Frame names of ``split`` among the sorted ``names`` (see the module docstring)."""
    if splits is not None and not (isinstance(splits, dict)
                                   and all(isinstance(v, str) for v in splits.values())):
        raise DatasetError(f'{yaml_path}: splits must map split names to list files')
    if split == 'all':
        return names
    if splits and split in splits:
        list_file = yaml_path.parent / splits[split]
        if not list_file.is_file():
            raise DatasetError(f'{list_file}: list file of split {split!r} not found')
    elif not splits and split in ('train', 'val'):
        val = set(names[::VAL_EVERY])
        chosen = [n for n in names if (n in val) == (split == 'val')]
        if not chosen:
            raise DatasetError(f'split {split!r} is empty ({len(names)} frame(s))')
        return chosen
    elif pathlib.Path(split).is_file():
        list_file = pathlib.Path(split)
    else:
        known = ', '.join([*(splits or ('train', 'val')), 'all'])
        raise DatasetError(f'unknown split {split!r} ({known} or a list file)')
    known_names = set(names)
    chosen = []
    for line in list_file.read_text().splitlines():
        n = line.strip()
        if not n:
            continue
        n = n if n in known_names else pathlib.Path(n).stem
        if n not in known_names:
            raise DatasetError(f'{list_file}: frame {line.strip()!r} not among the images')
        chosen.append(n)
    if not chosen:
        raise DatasetError(f'{list_file}: split {split!r} is empty')
    return chosen
