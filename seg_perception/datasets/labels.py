"""Label bookkeeping shared by the mask-based datasets (folder, Cityscapes fine, BDD100K).

* :func:`read_mask` decodes a mask file as stored (class ids or RGB colours);
* :func:`value_table` / :func:`apply_table` turn integer class ids into a road target,
  with the ids no rule covers reported as *unknown* (ignored, never silently mapped);
* :class:`LabelReport` keeps what the conversion met per frame (unknown pixels, masks that
  are all ignore) and logs it as warnings.

Targets are (H, W) uint8: 1 road, 0 not road, 255 (:data:`IGNORE`) ignore.
"""
from __future__ import annotations

import collections
import logging
import os
import pathlib
import threading
from collections.abc import Iterable
from typing import Any

import cv2
import numpy as np

from seg_perception.core.image_io import IGNORE, ImageReadError, decode_file

LOG = logging.getLogger('seg_perception.datasets')
ROAD, NOT_ROAD = 1, 0
UNKNOWN = 2          # marker in lookup tables: an id no rule covers (becomes IGNORE)
TABLE_SIZE = 1 << 16  # covers 8- and 16-bit masks
EXAMPLES = 10        # unknown values kept in a report (those with most pixels)

#: label value -> pixel count; a value is an int (class-id masks) or an (R, G, B) tuple
UnknownValues = dict[Any, int]


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask file as stored: (H, W) uint8/uint16 class ids, or (H, W, 3) uint8 RGB for
    colour masks (an alpha channel is dropped). Raises :class:`ImageReadError`.
    """
    p = pathlib.Path(path)
    mask = decode_file(p, cv2.IMREAD_UNCHANGED)
    if mask.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(f'{p}: unsupported mask type {mask.dtype} (need 8 or 16 bit)')
    if mask.ndim == 3:
        if mask.shape[2] == 1:
            return mask[:, :, 0]
        if mask.dtype != np.uint8:
            raise ImageReadError(f'{p}: 16-bit colour masks are not supported')
        return cv2.cvtColor(mask[:, :, :3], cv2.COLOR_BGR2RGB)
    return mask


def read_id_mask(path: str | os.PathLike, what: str) -> np.ndarray:
    """A single-channel class-id mask (H, W) uint8/uint16 (``what`` names the expected kind
    in the error). Raises :class:`ImageReadError`: unreadable, or a colour image.
    """
    mask = read_mask(path)
    if mask.ndim != 2:
        raise ImageReadError(f'{path}: expected a single-channel {what}, got {mask.shape}')
    return mask


def value_table(road: Iterable[int], ignore: Iterable[int],
                not_road: Iterable[int] | None) -> np.ndarray:
    """Lookup table (TABLE_SIZE,) uint8 from a class id to 1 road, 0 not road, 255 ignore
    or :data:`UNKNOWN`; ``not_road=None`` ('rest') makes every other id not road.
    """
    table = np.full(TABLE_SIZE, NOT_ROAD if not_road is None else UNKNOWN, np.uint8)
    for values, cls in ((not_road or (), NOT_ROAD), (ignore, IGNORE), (road, ROAD)):
        for v in values:
            table[int(v)] = cls
    return table


def apply_table(ids: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, UnknownValues]:
    """(H, W) uint8/uint16 class ids -> (target (H, W) uint8, unknown ids -> pixel count);
    unknown pixels are IGNORE in the target.
    """
    if ids.ndim != 2 or ids.dtype not in (np.uint8, np.uint16):
        raise ValueError(f'expected (H, W) uint8/uint16 class ids, got {ids.shape} {ids.dtype}')
    target = table[ids]
    unknown = target == UNKNOWN
    if not unknown.any():
        return target, {}
    target[unknown] = IGNORE
    values, counts = np.unique(ids[unknown], return_counts=True)
    return target, {int(v): int(c) for v, c in zip(values, counts)}


def _milestone(n: int) -> bool:
    """Log at the first 3 occurrences, then at 4, 8, 16 ..."""
    return n <= 3 or (n & (n - 1)) == 0


class LabelReport:
    """What converting a dataset's masks met: unknown label values and empty masks.

    Counted per frame name (a frame read twice counts once). Warnings go to the
    ``seg_perception.datasets`` logger for the first 3 frames with unknown values (or with
    an all-ignore mask), then at 4, 8, 16 ... such frames, and once as a summary when every
    frame of the split has been read (:meth:`summary`).

    Args:
        source: what to name in messages (dataset and folder).
        n_frames: frames in the split.
        masks_without_image: mask files no image matched (found when indexing).
    """

    def __init__(self, source: str, n_frames: int, masks_without_image: int = 0) -> None:
        self.source = source
        self.n_frames = n_frames
        self.masks_without_image = masks_without_image
        self.unknown_per_frame: dict[str, int] = {}
        self.unknown_values: collections.Counter = collections.Counter()
        self.empty_frames: list[str] = []
        self._read: set[str] = set()
        self._summarised = False
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """Picklable state (datasets may be sent to worker processes): without the lock."""
        return {k: v for k, v in self.__dict__.items() if k != '_lock'}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore the state and a fresh lock."""
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def add(self, name: str, target: np.ndarray, unknown: UnknownValues) -> None:
        """Record frame ``name``: its (H, W) uint8 target and unknown values -> pixels."""
        with self._lock:
            if name in self._read:
                return
            self._read.add(name)
            pixels = sum(unknown.values())
            if pixels:
                self.unknown_per_frame[name] = pixels
                top = sorted(unknown.items(), key=lambda kv: -kv[1])[:EXAMPLES]
                self.unknown_values.update(dict(top))
                n = len(self.unknown_per_frame)
                if _milestone(n):
                    LOG.warning('%s: %s: %d pixel(s) of unknown label values (%s) ignored; '
                                '%d frame(s) with unknown values so far', self.source, name,
                                pixels, _examples(top[:3]), n)
            if target.size and bool((target == IGNORE).all()):
                self.empty_frames.append(name)
                if _milestone(len(self.empty_frames)):
                    LOG.warning('%s: %s: mask is all ignore (no road, no not-road); %d such '
                                'frame(s) so far', self.source, name, len(self.empty_frames))
            done = len(self._read) >= self.n_frames and not self._summarised
            if done:
                self._summarised = True
        if done:
            line = self.summary()
            if line:
                LOG.warning('%s', line)

    def as_dict(self) -> dict[str, Any]:
        """Counts so far: frames read, unknown pixels (total, per frame), the most frequent
        unknown values, empty (all-ignore) frames and masks without an image.
        """
        with self._lock:
            return {
                'source': self.source,
                'frames': self.n_frames,
                'frames_read': len(self._read),
                'frames_with_unknown': len(self.unknown_per_frame),
                'unknown_pixels': int(sum(self.unknown_per_frame.values())),
                'unknown_per_frame': dict(self.unknown_per_frame),
                'unknown_values': [{'value': list(v) if isinstance(v, tuple) else v,
                                    'pixels': int(c)}
                                   for v, c in self.unknown_values.most_common(EXAMPLES)],
                'empty_frames': list(self.empty_frames),
                'masks_without_image': self.masks_without_image,
            }

    def summary(self) -> str | None:
        """One warning line about the problems met so far, ``None`` if there were none."""
        d = self.as_dict()
        parts = []
        if d['frames_with_unknown']:
            top = [(v['value'], v['pixels']) for v in d['unknown_values'][:3]]
            parts.append(f'{d["frames_with_unknown"]} frame(s) with {d["unknown_pixels"]} '
                         f'pixel(s) of unknown label values (ignored; most: {_examples(top)})')
        if d['empty_frames']:
            parts.append(f'{len(d["empty_frames"])} frame(s) whose mask is all ignore (e.g. '
                         f'{d["empty_frames"][0]})')
        if d['masks_without_image']:
            parts.append(f'{d["masks_without_image"]} mask(s) without an image (unused)')
        if not parts:
            return None
        return (f'{self.source}: {"; ".join(parts)} in {d["frames_read"]} of {d["frames"]} '
                'frame(s) read')


def _examples(items: Iterable[tuple[Any, int]]) -> str:
    return ', '.join(f'{tuple(v) if isinstance(v, list) else v}: {c} px' for v, c in items)
