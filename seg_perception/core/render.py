"""Images for people and for publishing: label images, colour overlays, probability images.

All functions are vectorised (lookup tables and OpenCV blends, no per-pixel Python) and
allocate only their output (plus at most one temporary of the output's size).
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import cv2
import numpy as np

from seg_perception.core.metrics import quantize_probability

N_IDS = 256  # uint8 class ids


def _check_labels(labels: np.ndarray) -> None:
    if not isinstance(labels, np.ndarray):
        raise TypeError(f'labels must be a numpy array, got {type(labels).__name__}')
    if labels.ndim != 2:
        raise ValueError(f'labels must be HxW, got shape {labels.shape}')
    if labels.dtype != np.uint8:
        raise TypeError(f'labels must be uint8 class ids, got {labels.dtype}')


def _check_rgb(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray):
        raise TypeError(f'image must be a numpy array, got {type(image).__name__}')
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'image must be HxWx3 RGB, got shape {image.shape}')
    if image.dtype != np.uint8:
        raise TypeError(f'image must be uint8, got {image.dtype}')


def palette_lut(palette: Sequence[Sequence[int]]) -> np.ndarray:
    """Colour lookup table (256, 3) uint8 from a palette of RGB colours (0..255).

    Entry i is ``palette[i]``; ids beyond the palette map to black.

    Raises:
        ValueError: empty palette, more than 256 colours, or a colour that is not 3 values
            in 0..255.
    """
    colours = np.asarray(palette)
    if colours.ndim != 2 or colours.shape[1] != 3 or not 1 <= len(colours) <= N_IDS:
        raise ValueError(f'palette must be 1..{N_IDS} RGB triples, got shape {colours.shape}')
    if not np.issubdtype(colours.dtype, np.number) or colours.min() < 0 or colours.max() > 255:
        raise ValueError('palette colours must be numbers in 0..255')
    lut = np.zeros((N_IDS, 3), np.uint8)
    lut[:len(colours)] = colours.astype(np.uint8)
    return lut


def overlay(image: np.ndarray, labels: np.ndarray, palette: Sequence[Sequence[int]],
            alpha: float = 0.5, classes: Sequence[int] | None = None,
            out: np.ndarray | None = None) -> np.ndarray:
    """Blend class colours into a frame.

    Pixels whose label is in ``classes`` become ``(1 - alpha) * image + alpha * colour``
    (rounded); all other pixels keep the frame's values exactly.

    Args:
        image: (H, W, 3) uint8 frame. The palette must be in the frame's channel order (for
            a BGR frame pass the colours reversed, see :func:`reverse_channels`); the
            result is in that order too.
        labels: (H, W) uint8 class ids for the frame.
        palette: one colour (0..255) per class id.
        alpha: colour weight in [0, 1] (0 = frame only, 1 = colour only).
        classes: class ids to colour; ``None`` = every class except 0 (background).
        out: optional (H, W, 3) uint8 C-contiguous array to write into (e.g. an outgoing
            message's buffer); must not overlap ``image``.

    Returns:
        The overlay, (H, W, 3) uint8: ``out`` when given, else a new array; the inputs are
        not modified.

    Raises:
        ValueError / TypeError: bad shapes, dtypes, ``alpha``, class ids or ``out``.
    """
    _check_rgb(image)
    _check_labels(labels)
    if labels.shape != image.shape[:2]:
        raise ValueError(f'labels {labels.shape} and image {image.shape[:2]} differ in size')
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:  # also rejects NaN
        raise ValueError(f'alpha must be in [0, 1], got {alpha}')
    selected = np.zeros(N_IDS, bool)
    if classes is None:
        selected[1:] = True
    else:
        ids = np.asarray(classes, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= N_IDS):
            raise ValueError(f'class ids must be in 0..{N_IDS - 1}, got {list(classes)}')
        selected[ids] = True
    lut = palette_lut(palette)
    if out is None:
        out = np.empty(image.shape, np.uint8)
    elif (not isinstance(out, np.ndarray) or out.shape != image.shape or out.dtype != np.uint8
          or not out.flags.c_contiguous or not out.flags.writeable):
        raise ValueError(f'out must be a writeable C-contiguous uint8 array of shape '
                         f'{image.shape}')
    if not image.flags.c_contiguous:  # e.g. a channel-flipped view; OpenCV needs a plain one
        image = np.ascontiguousarray(image)
    labels = np.ascontiguousarray(labels)
    # OpenCV SIMD passes (numpy fancy indexing and masked copies cost about 4x more at
    # 1242x375): blend the whole frame with the colour image straight into ``out``, then
    # copy the frame's own pixels back where the class is not selected.
    only = np.flatnonzero(selected)
    if only.size == 1:  # the binary road model: one colour, no per-pixel lookup
        colour = _solid(image.shape[0], image.shape[1], tuple(int(v) for v in lut[only[0]]))
        keep = cv2.compare(labels, int(only[0]), cv2.CMP_NE)
    else:
        colour = cv2.LUT(cv2.merge((labels, labels, labels)), lut.reshape(N_IDS, 1, 3))
        keep = cv2.LUT(labels, (~selected).astype(np.uint8) * np.uint8(255))
    cv2.addWeighted(image, 1.0 - alpha, colour, alpha, 0.0, dst=out)
    cv2.copyTo(image, keep, out)
    return out


@functools.lru_cache(maxsize=8)
def _solid(height: int, width: int, colour: tuple[int, int, int]) -> np.ndarray:
    """A read-only (height, width, 3) uint8 image of one colour (cached per camera size)."""
    image = np.empty((height, width, 3), np.uint8)
    image[:] = colour
    image.flags.writeable = False
    return image


def reverse_channels(palette: Sequence[Sequence[int]]) -> list[list[int]]:
    """The palette with each colour's channels reversed (RGB <-> BGR)."""
    return [list(c)[::-1] for c in palette]


def probability_mono8(prob: np.ndarray) -> np.ndarray:
    """Probability image for publishing (``mono8``).

    Args:
        prob: (H, W) float probability in [0, 1] (values outside are clipped).

    Returns:
        (H, W) uint8, ``round(255 * prob)`` (the metrics' quantisation), C-contiguous.
    """
    prob = np.asarray(prob)
    if prob.ndim != 2:
        raise ValueError(f'probability must be HxW, got shape {prob.shape}')
    if not np.issubdtype(prob.dtype, np.floating):
        raise TypeError(f'probability must be a float array, got {prob.dtype}')
    return quantize_probability(prob)


def label_image(labels: np.ndarray) -> np.ndarray:
    """Label image for publishing (``mono8`` class ids).

    Args:
        labels: (H, W) uint8 class ids.

    Returns:
        (H, W) uint8 C-contiguous array: ``labels`` itself when already contiguous (no copy).
    """
    _check_labels(labels)
    return np.ascontiguousarray(labels)
