"""The one geometric preprocessing path: frames of any size -> model batch -> input size.

Three modes:
  * ``'fit'``: scale each frame to the model input height keeping its aspect ratio,
    reflect-pad the width to a multiple of 32, and map probabilities back (a 1242x375
    KITTI frame runs at 640x192, a 2048x1024 one at 384x192, a 480x360 one at 256x192).
  * ``'pad'``: reflect-pad each frame to a multiple of 32 (full resolution), crop back.
  * ``'resize'``: resize each frame to the model resolution, resize probabilities back
    (fixed cost per frame; squashes frames whose aspect differs from the model's).

Normalisation is not done here: it lives inside the model (``model.Normalize``).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import cv2
import numpy as np

from seg_perception.core.choices import INPUT_MODES

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
        mode: one of :data:`INPUT_MODES`.
        inner_height, inner_width: size of the frame content inside the batch slot
            (original size for pad, model size for resize, scaled size for fit).
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


def bgr_flags(bgr: bool | Sequence[bool], n: int) -> list[bool]:
    """One BGR flag per frame from one flag for all ``n`` frames or one each.

    Raises:
        InputError: a list of flags whose length is not ``n``.
    """
    flags = [bool(bgr)] * n if isinstance(bgr, (bool, np.bool_)) else [bool(f) for f in bgr]
    if len(flags) != n:
        raise InputError(f'bgr: {len(flags)} flags for {n} frames')
    return flags


def prepare_batch(images: Sequence[np.ndarray], mode: str = 'pad',
                  size: tuple[int, int] | None = None,
                  bgr: bool | Sequence[bool] = False, check: bool = True,
                  ) -> tuple[np.ndarray, list[FrameGeometry]]:
    """Place frames of any sizes into one uint8 batch the model accepts.

    Args:
        images: frames, each (H_i, W_i, 3) uint8 RGB (or BGR, see ``bgr``).
        mode: one of :data:`INPUT_MODES`.
        size: (height, width) of the model input for ``'resize'`` (multiples of 32); for
            ``'fit'`` only the height is used.
        bgr: the frames (one flag for all, or one per frame) are BGR (a bgr8 camera or a
            decoded JPEG/PNG); they are converted to the model's RGB inside the batch, after
            scaling (so a frame is never converted at full resolution in fit/resize mode).
        check: run :func:`check_frame` on every frame (off when the caller already did).

    Returns:
        ``(batch, geometries)``: batch is (N, Hb, Wb, 3) uint8 with Hb, Wb multiples of 32
        (pad: the largest frame rounded up; resize: ``size``; fit: ``size[0]`` by the
        widest scaled frame rounded up), plus one
        :class:`FrameGeometry` per frame.

    Raises:
        InputError: a frame is not usable, or the mode/size is invalid.
    """
    if mode not in INPUT_MODES:
        raise InputError(f'mode must be one of {INPUT_MODES}, got {mode!r}')
    if not images:
        raise InputError('empty batch')
    if check:
        for image in images:
            check_frame(image)
    if mode in ('resize', 'fit'):
        if size is None or size[0] % STRIDE or size[1] % STRIDE or min(size) < STRIDE:
            raise InputError(f'{mode} mode needs a size that is a multiple of {STRIDE}, '
                             f'got {size}')
        hb, wb = int(size[0]), int(size[1])
    if mode == 'fit':
        inner = [(hb, max(1, int(round(im.shape[1] * hb / im.shape[0])))) for im in images]
        wb = round_up(max(w for _, w in inner))
    elif mode == 'pad':
        hb = round_up(max(im.shape[0] for im in images))
        wb = round_up(max(im.shape[1] for im in images))
    flags = bgr_flags(bgr, len(images))
    batch = np.empty((len(images), hb, wb, 3), np.uint8)
    geometries = []
    for i, image in enumerate(images):
        h, w = image.shape[:2]
        slot = batch[i]  # (Hb, Wb, 3), C-contiguous: OpenCV writes into it directly
        if mode == 'resize':
            scale_image(image, wb, hb, dst=slot)
            geometries.append(FrameGeometry(h, w, mode, hb, wb))
        elif mode == 'fit':
            ih, iw = inner[i]
            scale_image(image, iw, ih, dst=slot[:, :iw])  # straight into the slot
            _pad_in_place(slot, ih, iw)
            geometries.append(FrameGeometry(h, w, mode, ih, iw))
        else:
            slot[:h, :w] = image
            _pad_in_place(slot, h, w)
            geometries.append(FrameGeometry(h, w, mode, h, w))
        if flags[i]:
            cv2.cvtColor(slot, cv2.COLOR_BGR2RGB, dst=slot)  # in place, at the model size
    return batch, geometries


def scale_image(image: np.ndarray, width: int, height: int,
                dst: np.ndarray | None = None) -> np.ndarray:
    """Resize ``image`` to ``(height, width)``: the one resampling filter of serving and
    training.

    * Enlarging, or shrinking by at most 2x per side (fit mode on KITTI, Cityscapes and
      CamVid frames: 1.95x, 1.33x, 1.88x): bilinear. Its two-pixel footprint still reaches
      every source pixel, and it is much faster than OpenCV's ``INTER_AREA``, which takes a
      slow general path at a fractional factor (docs/PERFORMANCE.md).
    * Shrinking by more: a pixel-area average like ``INTER_AREA``, in two vectorised steps
      (bilinear to ``k`` times the target, ``k = ceil(factor / 2)``, then OpenCV's exact
      ``k x k`` area average); within half a grey level of ``INTER_AREA`` on average.

    How the shipped model scores with it against ``INTER_AREA``: docs/MODEL.md.

    Args:
        image: (H, W) or (H, W, C) uint8 (any channel order).
        width: target width in pixels.
        height: target height in pixels.
        dst: optional output (height, width[, C]) of the image's dtype; rows may be
            strided (e.g. a column range of a batch slot).

    Returns:
        The resized image (``dst`` when given).
    """
    h, w = image.shape[:2]
    factor = max(w / width, h / height)
    if factor <= 2.0:
        return cv2.resize(image, (width, height), dst=dst, interpolation=cv2.INTER_LINEAR)
    k = math.ceil(factor / 2)
    fine = cv2.resize(image, (width * k, height * k), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(fine, (width, height), dst=dst, interpolation=cv2.INTER_AREA)


def _pad_in_place(slot: np.ndarray, height: int, width: int) -> None:
    """Pad ``slot`` (Hb, Wb, 3) around its content ``slot[:height, :width]``, in place.

    Reflect padding (``BORDER_REFLECT_101``) keeps image statistics at the border (zeros
    would look like a black frame edge the model never saw in training); where the content
    is too small to reflect into the pad, its last row and column are repeated instead.
    """
    pad_h, pad_w = slot.shape[0] - height, slot.shape[1] - width
    reflect = pad_h < height and pad_w < width
    if pad_w:
        cols = width - 2 - np.arange(pad_w) if reflect else np.full(pad_w, width - 1)
        slot[:height, width:] = slot[:height, cols]
    if pad_h:
        rows = height - 2 - np.arange(pad_h) if reflect else np.full(pad_h, height - 1)
        slot[height:] = slot[rows]


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
