"""The one implementation of the KITTI Road devkit pixel metrics (and road IoU).

Semantics follow the devkit exactly: ground-truth valid area = red channel > 0, road =
blue channel > 0 (see :func:`image_io.kitti_gt_to_target`; datasets with an ignore label
map it to 255). Probabilities are quantised to uint8 and evaluated at the 256 thresholds
k/255 (a pixel is road at threshold k/255 when its uint8 value >= k). FN and FP counts are
accumulated over all images of a set before anything is computed. All results are
fractions in [0, 1].
"""
from __future__ import annotations

from typing import Any

import numpy as np

from seg_perception.core.image_io import IGNORE

N_THRESHOLDS = 256


def quantize_probability(prob: np.ndarray) -> np.ndarray:
    """Float probability in [0, 1] (H, W) -> uint8 0..255 (rounded to nearest)."""
    return np.clip(np.rint(np.asarray(prob, np.float32) * 255.0), 0, 255).astype(np.uint8)


class RoadEvaluator:
    """Accumulates per-threshold FN/FP counts over a set of images (KITTI devkit style)."""

    def __init__(self) -> None:
        """Start with empty counts."""
        self.road_hist = np.zeros(N_THRESHOLDS, np.int64)     # road pixels per uint8 value
        self.nonroad_hist = np.zeros(N_THRESHOLDS, np.int64)  # valid non-road pixels
        self.n_images = 0

    def update(self, probability: np.ndarray, target: np.ndarray) -> None:
        """Add one image.

        Args:
            probability: (H, W) road probability, float in [0, 1] or uint8 0..255.
            target: (H, W) uint8, 1 road, 0 not road, 255 ignore.

        Raises:
            ValueError: shapes differ.
        """
        if probability.shape != target.shape:
            raise ValueError(f'probability {probability.shape} and ground truth '
                             f'{target.shape} differ in size')
        q = probability if probability.dtype == np.uint8 else quantize_probability(probability)
        self.road_hist += np.bincount(q[target == 1], minlength=N_THRESHOLDS)
        self.nonroad_hist += np.bincount(q[target == 0], minlength=N_THRESHOLDS)
        self.n_images += 1

    def add(self, other: RoadEvaluator) -> None:
        """Add ``other``'s counts: the metrics of the union of both image sets, exactly."""
        self.road_hist += other.road_hist
        self.nonroad_hist += other.nonroad_hist
        self.n_images += other.n_images

    def state(self) -> dict[str, Any]:
        """The counts as JSON-able lists (for results combined later, e.g. per bag)."""
        return {'road_hist': self.road_hist.tolist(), 'nonroad_hist': self.nonroad_hist.tolist(),
                'n_images': int(self.n_images)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RoadEvaluator:
        """The evaluator of :meth:`state`'s counts.

        Raises:
            ValueError: not a state of 256-value histograms.
        """
        ev = cls()
        road = np.asarray(state['road_hist'], np.int64)
        nonroad = np.asarray(state['nonroad_hist'], np.int64)
        if road.shape != (N_THRESHOLDS,) or nonroad.shape != (N_THRESHOLDS,):
            raise ValueError(f'metric counts need {N_THRESHOLDS} values per histogram')
        ev.road_hist, ev.nonroad_hist, ev.n_images = road, nonroad, int(state['n_images'])
        return ev

    def result_or_error(self, threshold: float) -> dict[str, Any]:
        """:meth:`result` at ``threshold``, or ``{'error': ..., 'n_images': n}`` where the
        metrics are undefined (no image with ground truth, no road pixels).
        """
        if self.n_images == 0:
            return {'error': 'no frame had ground truth', 'n_images': 0}
        try:
            return self.result(threshold=threshold)
        except ValueError as exc:
            return {'error': str(exc), 'n_images': int(self.n_images)}

    def curves(self) -> dict[str, np.ndarray]:
        """Per-threshold counts and rates (arrays of 256, index k = threshold k/255)."""
        pos = int(self.road_hist.sum())
        neg = int(self.nonroad_hist.sum())
        fn = np.concatenate(([0], np.cumsum(self.road_hist)[:-1]))       # road with v < k
        fp = np.cumsum(self.nonroad_hist[::-1])[::-1]                    # non-road, v >= k
        tp = pos - fn
        tn = neg - fp
        recall = tp / max(pos, 1)
        precision = tp / (tp + fp + 1e-10)
        f = 2 * precision * recall / (precision + recall + 1e-10)
        return {'thresholds': np.arange(N_THRESHOLDS) / 255.0, 'TP': tp, 'FP': fp, 'FN': fn,
                'TN': tn, 'precision': precision, 'recall': recall, 'F': f,
                'P': np.int64(pos), 'N': np.int64(neg)}

    def result(self, threshold: float | None = None) -> dict[str, Any]:
        """KITTI metrics: MaxF, AvgPrec, PRE, REC, FPR, FNR, IoU, accuracy, threshold.

        PRE/REC/FPR/FNR/IoU/accuracy are at the MaxF threshold. If ``threshold`` is given,
        ``*_at_threshold`` entries (F, PRE, REC, IoU) are added for that fixed threshold.

        Raises:
            ValueError: nothing was accumulated, or the set has no road or no non-road.
        """
        c = self.curves()
        pos, neg = int(c['P']), int(c['N'])
        if self.n_images == 0:
            raise ValueError('no images were evaluated')
        if pos == 0:
            raise ValueError('ground truth has no road pixels: metrics are undefined')
        k = int(np.argmax(c['F']))
        out = {'MaxF': float(c['F'][k]), 'AvgPrec': average_precision(c['precision'],
                                                                      c['recall'])}
        out.update(_at(c, k, pos, neg))
        out['threshold'] = float(c['thresholds'][k])
        out['n_images'] = int(self.n_images)
        out['n_pixels'] = pos + neg
        if threshold is not None:
            kt = int(np.clip(np.ceil(float(threshold) * 255.0 - 1e-9), 0, 255))
            at = _at(c, kt, pos, neg)
            out['threshold_fixed'] = float(threshold)
            for key in ('F', 'PRE', 'REC', 'IoU'):
                out[f'{key}_at_threshold'] = at[key]
        return out


def _at(c: dict[str, np.ndarray], k: int, pos: int, neg: int) -> dict[str, float]:
    tp, fp, fn, tn = (int(c[n][k]) for n in ('TP', 'FP', 'FN', 'TN'))
    return {'F': float(c['F'][k]), 'PRE': float(c['precision'][k]),
            'REC': float(c['recall'][k]),
            'FPR': fp / neg if neg else 0.0, 'FNR': fn / pos if pos else 0.0,
            'IoU': tp / (tp + fp + fn) if (tp + fp + fn) else 0.0,
            'accuracy': (tp + tn) / (pos + neg) if (pos + neg) else 0.0}


def average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """11-point interpolated PASCAL VOC AP, as in the KITTI Road devkit."""
    total, count = 0.0, 0
    for r in np.arange(0, 1.1, 0.1):
        sel = recall >= r
        total += float(precision[sel].max()) if sel.any() else 0.0
        count += 1
    return total / count


def road_iou(labels: np.ndarray, target: np.ndarray, road_class: int = 1) -> float:
    """Road IoU of one label image against a target with ignore (255) pixels."""
    valid = target != IGNORE
    pred = (labels == road_class) & valid
    gt = (target == 1) & valid
    union = int((pred | gt).sum())
    return float((pred & gt).sum() / union) if union else 1.0
