"""The dataset interface shared by every layout (KITTI Road, CamVid, Cityscapes, ...)."""
from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from seg_perception.core.image_io import read_rgb
from seg_perception.datasets.labels import LOG, LabelReport


class DatasetError(ValueError):
    """A dataset folder that cannot be used (missing files, mismatched ground truth...)."""


@dataclasses.dataclass
class Sample:
    """One frame.

    Attributes:
        name: frame name without extension (e.g. ``um_000000``), unique in the split.
        image: (H, W, 3) uint8 RGB.
        target: (H, W) uint8: 1 road, 0 not road, 255 ignore; ``None`` without ground truth.
    """

    name: str
    image: np.ndarray
    target: np.ndarray | None


@dataclasses.dataclass(frozen=True)
class Item:
    """A frame on disk: name, image path and (optional) ground-truth path."""

    name: str
    image: pathlib.Path
    gt: pathlib.Path | None


class RoadDataset(Sequence):
    """A list of frames of one split; ``ds[i]`` decodes frame i into a :class:`Sample`."""

    name = 'base'
    #: the mask-based layouts' record of unknown label values and empty masks
    label_report: LabelReport | None = None

    def __init__(self, items: list[Item], split: str) -> None:
        """Wrap ``items`` (already checked for existence)."""
        self.items = items
        self.split = split

    def report(self) -> dict[str, Any]:
        """What reading the labels met so far (:meth:`LabelReport.as_dict`): unknown label
        values per frame, all-ignore masks...; ``{}`` for layouts that raise instead.
        """
        return self.label_report.as_dict() if self.label_report is not None else {}

    def __len__(self) -> int:
        """Number of frames."""
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        """Decode frame ``index``."""
        item = self.items[index]
        image, target = self.read_pair(item)
        if target is not None and target.shape != image.shape[:2]:
            raise DatasetError(f'{item.gt}: ground truth {target.shape[::-1]} does not match '
                               f'image {image.shape[1::-1]} ({item.image})')
        return Sample(item.name, image, target)

    def __iter__(self) -> Iterator[Sample]:
        """Iterate over decoded samples."""
        for i in range(len(self)):
            yield self[i]

    @property
    def has_ground_truth(self) -> bool:
        """True if every frame has ground truth."""
        return all(it.gt is not None for it in self.items)

    def read_pair(self, item: Item) -> tuple[np.ndarray, np.ndarray | None]:
        """(image, target or ``None`` without ground truth) of ``item``; datasets whose
        frame and label share one file override this to decode it once.
        """
        return self.read_image(item), (self.read_target(item) if item.gt is not None
                                       else None)

    def read_image(self, item: Item) -> np.ndarray:
        """(H, W, 3) uint8 RGB of ``item``."""
        return read_rgb(item.image)

    def read_target(self, item: Item) -> np.ndarray:
        """(H, W) uint8 target of ``item`` (1 road, 0 not road, 255 ignore)."""
        raise NotImplementedError


def require_dir(path: pathlib.Path, what: str) -> pathlib.Path:
    """Return ``path`` if it is a folder, else raise :class:`DatasetError`."""
    if not path.is_dir():
        raise DatasetError(f'{path}: {what} folder not found')
    return path


def list_images(folder: pathlib.Path) -> list[pathlib.Path]:
    """Image files (png/jpg) of ``folder`` sorted by name; empty folder is an error."""
    files = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in ('.png', '.jpg', '.jpeg') and p.is_file())
    if not files:
        raise DatasetError(f'{folder}: no images found')
    return files


def by_stem(files: list[pathlib.Path], what: str) -> dict[str, pathlib.Path]:
    """``{file stem: path}``; two files with one stem (``a.png``, ``a.jpg``) are an error."""
    out: dict[str, pathlib.Path] = {}
    for p in files:
        if p.stem in out:
            raise DatasetError(f'{p}: two {what} files named {p.stem!r} ({out[p.stem].name}, '
                               f'{p.name}); keep one')
        out[p.stem] = p
    return out


def pair_masks(images: dict[str, pathlib.Path], names: list[str], mask_dir: pathlib.Path,
               what: str = 'mask') -> tuple[list[Item], int]:
    """Items of frames ``names`` (image stems) with their masks: the image files of
    ``mask_dir`` with the same stem. Masks matching no image are counted and logged.

    Returns:
        (items, number of masks matching no image at all).

    Raises:
        DatasetError: images without a mask (how many, and the first), an empty or
            ambiguous mask folder (:func:`list_images`, :func:`by_stem`).
    """
    masks = by_stem(list_images(mask_dir), what)
    missing = [n for n in names if n not in masks]
    if missing:
        raise DatasetError(f'{mask_dir}: no {what} for {len(missing)} of {len(names)} '
                           f'image(s), e.g. {images[missing[0]].name}')
    orphans = len(set(masks) - set(images))
    if orphans:
        LOG.warning('%s: %d %s(s) without an image (not used)', mask_dir, orphans, what)
    return [Item(n, images[n], masks[n]) for n in names], orphans
