"""The class mapping of a ``folder`` dataset (``classes.yaml``): mask values -> road target.

Single-channel masks list class ids, colour masks list RGB colours (nested lists)::

    road: [[128, 64, 128]]            # or ids: road: [1]
    not_road: [[244, 35, 232], ...]   # or rest (default): every value not road, not ignore
    ignore: [[0, 0, 0]]               # optional
    tolerance: 12                     # colour masks: nearest-colour radius, RGB distance
    images: images                    # optional folder names (relative to the data folder)
    masks: masks
    splits: {train: train.txt, val: val.txt}   # optional list files (relative to the YAML)

Class ids must match exactly (indexed-colour PNGs decode to their colours: list colours).
A colour takes the class of the nearest listed colour when it lies within ``tolerance``
(Euclidean RGB distance, e.g. for JPEG-compressed masks). Values that match nothing are
*unknown*: ignored in the target and reported (never mapped) -- unless ``not_road: rest``,
which by definition makes every unlisted value not road.
"""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import numpy as np
import yaml

from seg_perception.core.image_io import IGNORE
from seg_perception.datasets.base import DatasetError
from seg_perception.datasets.labels import (
    NOT_ROAD,
    ROAD,
    UNKNOWN,
    UnknownValues,
    apply_table,
    value_table,
)

CLASS_KEYS = ('road', 'not_road', 'ignore')
KEYS = (*CLASS_KEYS, 'tolerance', 'images', 'masks', 'splits')
DEFAULT_TOLERANCE = 12.0
REST = 'rest'

Value = Any  # int (class id) or (R, G, B) tuple


@dataclasses.dataclass(frozen=True)
class ClassMapping:
    """Mask values -> 1 road, 0 not road, 255 ignore.

    Attributes:
        road, ignore: listed values: class ids (ints) or (R, G, B) colours, 0..255.
        not_road: listed values, or ``None`` for 'rest' (every value not road, not ignore).
        tolerance: colour masks: nearest-colour radius (Euclidean RGB distance).
    """

    road: tuple[Value, ...]
    ignore: tuple[Value, ...] = ()
    not_road: tuple[Value, ...] | None = None
    tolerance: float = DEFAULT_TOLERANCE

    @property
    def colour(self) -> bool:
        """True when the mapping lists RGB colours (colour masks)."""
        return isinstance(self.road[0], tuple)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = 'mapping') -> 'ClassMapping':
        """Build from the class keys of a ``classes.yaml`` (see the module docstring)."""
        lists = {}
        for key in CLASS_KEYS:
            raw = data.get(key)
            if key == 'not_road' and (raw is None or raw == REST):
                lists[key] = None
                continue
            lists[key] = _values(raw, f'{source}: {key}')
        if not lists['road']:
            raise DatasetError(f'{source}: road lists no value')
        listed = [v for k in CLASS_KEYS for v in lists[k] or ()]
        kinds = {isinstance(v, tuple) for v in listed}
        if len(kinds) > 1:
            raise DatasetError(f'{source}: mixes class ids and [R, G, B] colours')
        seen: dict[Value, str] = {}
        for key in CLASS_KEYS:
            for v in lists[key] or ():
                if seen.get(v, key) != key:
                    raise DatasetError(f'{source}: {v} is listed as {seen[v]} and as {key}')
                seen[v] = key
        tolerance = data.get('tolerance', DEFAULT_TOLERANCE)
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) \
                or tolerance < 0:
            raise DatasetError(f'{source}: tolerance must be a number >= 0, got {tolerance!r}')
        return cls(lists['road'], lists['ignore'], lists['not_road'], float(tolerance))

    def convert(self, mask: np.ndarray, path: object = 'mask') -> tuple[np.ndarray,
                                                                        UnknownValues]:
        """Mask -> (target (H, W) uint8, unknown values -> pixel count).

        Args:
            mask: (H, W) uint8/uint16 class ids, or (H, W, 3) uint8 RGB for a colour mapping
                (a grey image stored as RGB is accepted for class ids).
            path: the mask file, named in errors.
        """
        if not self.colour:
            if mask.ndim == 3:
                if not (np.array_equal(mask[:, :, 0], mask[:, :, 1])
                        and np.array_equal(mask[:, :, 0], mask[:, :, 2])):
                    raise DatasetError(f'{path}: colour mask, but the mapping lists class ids '
                                       '(write colours as [[R, G, B], ...])')
                mask = mask[:, :, 0]
            return apply_table(mask, value_table(self.road, self.ignore, self.not_road))
        if mask.ndim != 3:
            raise DatasetError(f'{path}: single-channel mask, but the mapping lists [R, G, B] '
                               'colours (write class ids as plain numbers)')
        return self._convert_colours(mask)

    def _convert_colours(self, rgb: np.ndarray) -> tuple[np.ndarray, UnknownValues]:
        """(H, W, 3) uint8 RGB -> (target, unknown colours); classified per distinct colour."""
        palette = [(v, c) for vals, c in ((self.road, ROAD), (self.ignore, IGNORE),
                                          (self.not_road or (), NOT_ROAD)) for v in vals]
        colours = np.array([v for v, _ in palette], np.float32)               # (K, 3)
        classes = np.array([c for _, c in palette], np.uint8)
        flat = rgb.reshape(-1, 3).astype(np.uint32)
        codes = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
        uniq, inverse = np.unique(codes, return_inverse=True)
        ucol = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], 1)
        d2 = ((ucol[:, None, :].astype(np.float32) - colours[None]) ** 2).sum(axis=2)  # (U, K)
        nearest = d2.argmin(axis=1)
        cls = classes[nearest]
        far = d2[np.arange(len(uniq)), nearest] > self.tolerance ** 2
        cls[far] = NOT_ROAD if self.not_road is None else UNKNOWN
        target = cls[inverse.ravel()].reshape(rgb.shape[:2])
        unknown: UnknownValues = {}
        if self.not_road is not None and far.any():
            counts = np.bincount(inverse.ravel(), minlength=len(uniq))
            unknown = {tuple(int(x) for x in ucol[i]): int(counts[i])
                       for i in np.flatnonzero(far)}
            target[target == UNKNOWN] = IGNORE
        return target, unknown


def _values(raw: Any, what: str) -> tuple[Value, ...]:
    """YAML list of ids or of [R, G, B] -> tuple of ints / colour tuples."""
    if raw is None:
        return ()
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = [raw]
    if not isinstance(raw, list):
        raise DatasetError(f'{what}: expected a list of class ids or of [R, G, B] colours, '
                           f'got {raw!r}')
    out: list[Value] = []
    for v in raw:
        if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 16:
            out.append(int(v))
        elif (isinstance(v, list) and len(v) == 3
              and all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= 255
                      for x in v)):
            out.append(tuple(v))
        else:
            raise DatasetError(f'{what}: {v!r} is neither a class id (0..65535) nor an '
                               '[R, G, B] colour (0..255 each)')
    return tuple(out)


def load_yaml(path: pathlib.Path) -> dict[str, Any]:
    """Read a ``classes.yaml``: a mapping with keys from :data:`KEYS` (others are an error)."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise DatasetError(f'{path}: not valid YAML ({" ".join(str(exc).split())})') from None
    if not isinstance(data, dict):
        raise DatasetError(f'{path}: expected a mapping (road, not_road, ignore, ...)')
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise DatasetError(f'{path}: unknown key(s) {", ".join(unknown)} (known: '
                           f'{", ".join(KEYS)})')
    return data


def load_mapping(path: str | pathlib.Path) -> ClassMapping:
    """The class mapping of a ``classes.yaml`` file (its folder and split keys unused)."""
    p = pathlib.Path(path).expanduser()
    if not p.is_file():
        raise DatasetError(f'{p}: class mapping file not found')
    return ClassMapping.from_dict(load_yaml(p), str(p))
