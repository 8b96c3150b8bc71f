"""The real frames an export is checked and calibrated on (PNG/JPEG folders)."""
from __future__ import annotations

import pathlib
from collections.abc import Sequence

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


class FrameFiles(Sequence):
    """Frames read from files when indexed: ``frames[i]`` is (H, W, 3) uint8 RGB. Holds
    only the paths, so any number of frames costs no memory until used, one at a time.
    """

    def __init__(self, files: Sequence[pathlib.Path]) -> None:
        self.files = list(files)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]
        return read_rgb(self.files[index])


def calibration_frames(folder: str | pathlib.Path, limit: int) -> FrameFiles:
    """Up to ``limit`` frames of :func:`image_files` of ``folder``, spread evenly over it
    (empty when there are none), read when used.
    """
    files = image_files(folder)
    n = min(limit, len(files))
    return FrameFiles([files[int(i)] for i in np.linspace(0, len(files) - 1, n).round()])
