"""Datasets behind one interface: :func:`open_dataset` returns a :class:`RoadDataset`."""
from __future__ import annotations

import inspect
import pathlib
from typing import Any

import yaml

from seg_perception.datasets.base import DatasetError, Item, RoadDataset, Sample
from seg_perception.datasets.bdd100k import Bdd100k
from seg_perception.datasets.camvid import CamVid
from seg_perception.datasets.cityscapes import CityscapesPix2Pix
from seg_perception.datasets.cityscapes_fine import CityscapesFine
from seg_perception.datasets.folder import FolderDataset
from seg_perception.datasets.kitti import KittiRoad
from seg_perception.datasets.mapillary import MapillaryVistas

NAMES = ('kitti', 'camvid', 'cityscapes', 'cityscapes_fine', 'bdd100k', 'mapillary', 'folder')
CLASSES: dict[str, type[RoadDataset]] = {
    'kitti': KittiRoad, 'camvid': CamVid, 'cityscapes': CityscapesPix2Pix,
    'cityscapes_fine': CityscapesFine, 'bdd100k': Bdd100k, 'mapillary': MapillaryVistas,
    'folder': FolderDataset}

__all__ = ['Bdd100k', 'CamVid', 'CityscapesFine', 'CityscapesPix2Pix', 'DatasetError',
           'FolderDataset', 'Item', 'KittiRoad', 'MapillaryVistas', 'NAMES', 'RoadDataset',
           'Sample', 'dataset_option', 'open_dataset', 'options_of']


def open_dataset(name: str, data_dir: str | pathlib.Path, split: str, **kwargs: object,
                 ) -> RoadDataset:
    """Open split ``split`` of dataset ``name`` (one of :data:`NAMES`) under ``data_dir``;
    ``kwargs`` are the dataset's options (:func:`options_of`; others are an error).
    """
    if name not in CLASSES:
        raise DatasetError(f'unknown dataset {name!r} (choose from {", ".join(NAMES)})')
    known = options_of(name)
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise DatasetError(f'dataset {name!r} has no option {", ".join(unknown)} (options: '
                           f'{", ".join(known) or "none"})')
    return CLASSES[name](data_dir, split, **kwargs)  # type: ignore[arg-type]


def options_of(name: str) -> tuple[str, ...]:
    """Keyword options of dataset ``name`` (its constructor's arguments after the split)."""
    params = inspect.signature(CLASSES[name].__init__).parameters
    return tuple(p for p in params if p not in ('self', 'data_dir', 'split'))


def dataset_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> (key, value), the value read as YAML (``12`` -> 12, ``false`` ->
    False, ``[1, 2]`` -> a list, anything else a string); raises ``ValueError``.
    """
    key, sep, value = text.partition('=')
    if not sep or not key.strip().isidentifier():
        raise ValueError(f'expected KEY=VALUE, got {text!r}')
    try:
        parsed = yaml.safe_load(value) if value.strip() else ''
    except yaml.YAMLError:
        parsed = value
    return key.strip(), value if parsed is None else parsed
