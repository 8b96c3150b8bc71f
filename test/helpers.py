"""Helpers only the tests use (kept out of the product package)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seg_perception.core import render


def colorize(labels: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """Colour image of a label image.

    Args:
        labels: (H, W) uint8 class ids.
        palette: one RGB colour (0..255) per class id; ids beyond it are drawn black.

    Returns:
        (H, W, 3) uint8 RGB, ``palette[labels]``.
    """
    render._check_labels(labels)
    return render.palette_lut(palette)[labels]
