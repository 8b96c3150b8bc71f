"""Bird's-eye-view (BEV) scoring as the KITTI Road benchmark scores: the road probability and
the ground truth mapped onto the devkit's road-plane grid (lateral -10..10 m, forward
6..46 m, 0.05 m cells: 800 x 400) with the devkit's own lookup
(:func:`seg_perception.geometry.kitti_bev.devkit_bev`), then the same metric code as in
perspective (:class:`seg_perception.core.metrics.RoadEvaluator`).

The probability goes through the lookup as the uint8 image the metrics quantise it to (as a
submitted result PNG would); grid cells outside the camera image are don't-care, like the
black (don't-care) border the devkit's transform gives the ground truth.
"""
from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from seg_perception.core import image_io
from seg_perception.core.image_io import IGNORE
from seg_perception.core.metrics import RoadEvaluator, quantize_probability
from seg_perception.geometry.kitti_bev import BevSpec, KittiCalib, devkit_bev

GT_COLOUR = (0, 255, 0)        # ground-truth road outline in the BEV pictures
UNKNOWN_COLOUR = (40, 40, 40)  # cells outside the camera image


def target_bev(target: np.ndarray, calib: KittiCalib, spec: BevSpec) -> np.ndarray:
    """(H, W) uint8 target (1 road, 0 not road, 255 ignore) -> (800, 400) uint8 BEV target,
    255 outside the image (the devkit's zero border = don't care).
    """
    shifted = devkit_bev(target.astype(np.uint16) + 1, calib, spec)
    return np.where(shifted == 0, IGNORE, shifted - 1).astype(np.uint8)


def probability_bev(prob: np.ndarray, calib: KittiCalib, spec: BevSpec,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) float32 road probability -> ((800, 400) uint8 0..255 BEV probability, bool known)."""
    h, w = prob.shape
    known = devkit_bev(np.ones((h, w), np.uint8), calib, spec).astype(bool)
    return devkit_bev(quantize_probability(prob), calib, spec), known


def bev_picture(prob_q: np.ndarray, known: np.ndarray, target: np.ndarray | None,
                ) -> np.ndarray:
    """(rows, cols, 3) uint8 RGB: road probability (magenta, bright = road) on the grid, far
    at the top; grey outside the image; ground-truth road outline in green.
    """
    p = prob_q.astype(np.float32) / 255.0
    rgb = np.stack([255 * p, 40 * (1 - p), 255 * p], axis=-1).astype(np.uint8)
    rgb[~known] = UNKNOWN_COLOUR
    if target is not None:
        road = (target == 1).astype(np.uint8)
        contours, _ = cv2.findContours(road, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(rgb, contours, -1, GT_COLOUR, 2)
    return rgb


class BevScorer:
    """Accumulates BEV metrics of an evaluation run and writes its BEV outputs.

    Args:
        calib_for: frame name -> its calibration (a KITTI Road ``calib/<frame>.txt``, or one
            file for all frames).
        out_dir: where ``bev/<frame>.png`` (picture) and, with ``save_probabilities``,
            ``prob_bev/<frame>.png`` (uint8 BEV probability) go; ``None`` = nothing written.
        note: how the calibration was chosen (recorded in metrics.json).
        spec: the BEV grid (the devkit's by default).
    """

    def __init__(self, calib_for: Callable[[str], KittiCalib],
                 out_dir: str | pathlib.Path | None = None, save_probabilities: bool = False,
                 note: str = '', spec: BevSpec | None = None) -> None:
        self.calib_for = calib_for
        self.out_dir = pathlib.Path(out_dir) if out_dir is not None else None
        self.save_probabilities = save_probabilities and self.out_dir is not None
        self.note = note
        self.spec = spec or BevSpec()
        self.evaluator = RoadEvaluator()
        self.pictures: list[pathlib.Path] = []

    def update(self, name: str, file_name: str, prob: np.ndarray,
               target: np.ndarray | None) -> None:
        """Score one frame: (H, W) float32 probability and (H, W) uint8 target (or None)."""
        calib = self.calib_for(name)
        prob_q, known = probability_bev(prob, calib, self.spec)
        gt = target_bev(target, calib, self.spec) if target is not None else None
        if gt is not None:
            self.evaluator.update(prob_q, gt)
        if self.out_dir is None:
            return
        if self.save_probabilities:
            image_io.write_rgb(self.out_dir / 'prob_bev' / f'{file_name}.png', prob_q)
        path = self.out_dir / 'bev' / f'{file_name}.png'
        image_io.write_rgb(path, bev_picture(prob_q, known, gt))
        self.pictures.append(path)

    def metrics(self, threshold: float) -> dict[str, Any]:
        """The BEV metrics (same keys as the perspective ones) and the calibration note, or
        ``{'error': ...}`` when undefined.
        """
        if self.evaluator.n_images == 0:
            return {'error': 'no frame had ground truth', 'n_images': 0, 'calibration': self.note}
        try:
            result = self.evaluator.result(threshold=threshold)
        except ValueError as exc:
            result = {'error': str(exc), 'n_images': int(self.evaluator.n_images)}
        return {**result, 'grid': {'x_m': list(self.spec.x_limits),
                                   'z_m': list(self.spec.z_limits),
                                   'resolution_m': self.spec.resolution,
                                   'shape': list(self.spec.shape)},
                'calibration': self.note}
