"""The real frames an export is checked and calibrated on (PNG/JPEG folders)."""
from __future__ import annotations

import pathlib

import numpy as np

from seg_perception.core.image_io import read_rgb


def image_files(folder: str | pathlib.Path) -> list[pathlib.Path]:
    """Camera frames (PNG/JPEG) under ``folder`` (recursively), sorted; label images in
    ground-truth folders (CamVid ``*annot``, KITTI ``gt_*``) are not frames and are skipped.
    """
    root = pathlib.Path(folder)
    return sorted(p for p in root.rglob('*') if p.suffix.lower() in ('.png', '.jpg', '.jpeg')
                  and not any(d.endswith('annot') or d.startswith('gt_')
                              for d in p.relative_to(root).parts[:-1]))


def calibration_frames(folder: str | pathlib.Path, limit: int) -> list[object]:
    """Up to ``limit`` frames of :func:`image_files` of ``folder``, spread evenly over it,
    as (H, W, 3) uint8 RGB arrays ([] when there are none).
    """
    files = image_files(folder)
    n = min(limit, len(files))
    return [read_rgb(files[int(i)]) for i in np.linspace(0, len(files) - 1, n).round()]
