"""The one geometric preprocessing path: frames of any size -> model batch -> input size.

Two modes:
  * ``'pad'``: reflect-pad each frame to a multiple of 32 (full resolution), crop back.
  * ``'resize'``: resize each frame to the model resolution, resize probabilities back
    (fixed cost per frame).

Normalisation is not done here: it lives inside the model (``model.Normalize``).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import cv2
import numpy as np

MODES = ('pad', 'resize')
STRIDE = 32              # model input sides must be multiples of this (FCN-8s output stride)
MIN_SIDE = 8            # smaller frames are rejected: nothing meaningful to segment
MAX_PIXELS = 40_000_000  # bigger frames are rejected (about 8k x 5k)


class InputError(ValueError):
    """A frame that cannot be segmented (wrong shape, dtype or size)."""


@dataclasses.dataclass(frozen=True)
class FrameGeometry:
    """How one frame was placed into the batch, to undo it.

    Attributes:
        height, width: original frame size in pixels.
        mode: ``'pad'`` or ``'resize'``.
        inner_height, inner_width: size of the frame content inside the batch slot
            (original size for pad, model size for resize).
    """

    height: int
    width: int
    mode: str
    inner_height: int
    inner_width: int


def round_up(value: int, multiple: int = STRIDE) -> int:
    """Smallest multiple of ``multiple`` that is >= ``value``."""
    return -(-int(value) // multiple) * multiple


def check_frame(image: np.ndarray) -> None:
    """Raise :class:`InputError` unless ``image`` is a usable (H, W, 3) uint8 RGB frame."""
    if not isinstance(image, np.ndarray):
        raise InputError(f'frame must be a numpy array, got {type(image).__name__}')
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f'frame must be HxWx3 RGB, got shape {image.shape}')
    if image.dtype != np.uint8:
        raise InputError(f'frame must be uint8, got {image.dtype}')
    h, w = image.shape[:2]
    if h < MIN_SIDE or w < MIN_SIDE:
        raise InputError(f'frame {w}x{h} is too small (minimum {MIN_SIDE}x{MIN_SIDE})')
    if h * w > MAX_PIXELS:
        raise InputError(f'frame {w}x{h} is too large (maximum {MAX_PIXELS} pixels)')


def prepare_batch(images: Sequence[np.ndarray], mode: str = 'pad',
                  size: tuple[int, int] | None = None,
                  ) -> tuple[np.ndarray, list[FrameGeometry]]:
    """Place frames of any sizes into one uint8 batch the model accepts.

    Args:
        images: frames, each (H_i, W_i, 3) uint8 RGB.
        mode: ``'pad'`` or ``'resize'``.
        size: (height, width) of the model input for ``'resize'`` (multiples of 32).

    Returns:
        ``(batch, geometries)``: batch is (N, Hb, Wb, 3) uint8 with Hb, Wb multiples of 32
        (pad: the largest frame rounded up; resize: ``size``), plus one
        :class:`FrameGeometry` per frame.

    Raises:
        InputError: a frame is not usable, or the mode/size is invalid.
    """
    if mode not in MODES:
        raise InputError(f'mode must be one of {MODES}, got {mode!r}')
    if not images:
        raise InputError('empty batch')
    for image in images:
        check_frame(image)
    if mode == 'resize':
        if size is None or size[0] % STRIDE or size[1] % STRIDE or min(size) < STRIDE:
            raise InputError(f'resize mode needs a size that is a multiple of {STRIDE}, '
                             f'got {size}')
        hb, wb = int(size[0]), int(size[1])
    else:
        hb = round_up(max(im.shape[0] for im in images))
        wb = round_up(max(im.shape[1] for im in images))
    batch = np.empty((len(images), hb, wb, 3), np.uint8)
    geometries = []
    for i, image in enumerate(images):
        h, w = image.shape[:2]
        if mode == 'resize':
            interp = cv2.INTER_AREA if (h > hb or w > wb) else cv2.INTER_LINEAR
            batch[i] = cv2.resize(image, (wb, hb), interpolation=interp)
            geometries.append(FrameGeometry(h, w, mode, hb, wb))
        else:
            # Reflect padding keeps image statistics at the border (zeros would look like
            # a black frame edge the model never saw in training).
            if hb - h < h and wb - w < w:
                batch[i] = cv2.copyMakeBorder(image, 0, hb - h, 0, wb - w,
                                              cv2.BORDER_REFLECT_101)
            else:
                batch[i] = np.pad(image, ((0, hb - h), (0, wb - w), (0, 0)), mode='edge')
            geometries.append(FrameGeometry(h, w, mode, h, w))
    return batch, geometries


def restore(prob: np.ndarray, geometry: FrameGeometry) -> np.ndarray:
    """Map a per-pixel model output back to the original frame.

    Args:
        prob: (Hb, Wb) or (Hb, Wb, C) float32 output for one batch slot.
        geometry: how the frame was placed (from :func:`prepare_batch`).

    Returns:
        float32 array (H, W) or (H, W, C) at the original frame size.
    """
    inner = prob[:geometry.inner_height, :geometry.inner_width]
    if geometry.mode == 'pad':
        return np.ascontiguousarray(inner, dtype=np.float32)
    out = cv2.resize(np.asarray(inner, np.float32), (geometry.width, geometry.height),
                     interpolation=cv2.INTER_LINEAR)
    if prob.ndim == 3 and out.ndim == 2:  # cv2 drops a single channel axis
        out = out[:, :, None]
    return out
