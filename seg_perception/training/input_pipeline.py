"""Training input pipeline: mixed sources, joint random scale/crop/flip, road-scene photometric
augmentation (albumentations), batch.

Frames of several datasets are drawn with per-source sampling weights (:class:`FrameStore`).
One augmentation implementation (:func:`augment`) feeds two pipelines:
  * ``tf.data`` (TensorFlow backend): parallel map through ``tf.numpy_function``, prefetch.
  * ``keras.utils.PyDataset`` (any backend, no TensorFlow needed: the JAX GPU route).

Batches are ``(images uint8 (B, H, W, 3), labels uint8 (B, H, W), weights float32 (B, H, W))``;
ignored pixels (255) get label 0 and weight 0.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import cv2
import keras
import numpy as np

from seg_perception.core import preprocess
from seg_perception.core.image_io import IGNORE
from seg_perception.datasets import RoadDataset


class FrameStore:
    """Decoded (image, target) pairs of one or several datasets, from memory when cached.

    Args:
        datasets: a dataset, or a list of them (the training mix).
        cache: decode everything up front (raises the datasets' clear errors early).
        weights: per-dataset sampling weights (normalised); ``None`` = every frame equally
            likely. :attr:`probabilities` gives each frame ``weight / len(its dataset)``.
    """

    def __init__(self, datasets: RoadDataset | Sequence[RoadDataset], cache: bool,
                 weights: Sequence[float] | None = None) -> None:
        """Index the frames of all datasets (and decode them when ``cache``)."""
        self.datasets = [datasets] if isinstance(datasets, RoadDataset) else list(datasets)
        self.index = [(d, i) for d, ds in enumerate(self.datasets) for i in range(len(ds))]
        self.probabilities: np.ndarray | None = None
        if weights is not None:
            if len(weights) != len(self.datasets) or min(weights) <= 0:
                raise ValueError('need one positive sampling weight per dataset')
            w = np.asarray(weights, np.float64) / np.sum(weights)
            self.probabilities = np.array([w[d] / len(self.datasets[d]) for d, _ in self.index])
            self.probabilities /= self.probabilities.sum()
        self._cache = [self._load(i) for i in range(len(self.index))] if cache else None

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        d, i = self.index[index]
        s = self.datasets[d][i]
        if s.target is None:
            raise ValueError(f'{s.name}: training needs ground truth')
        return s.image, s.target

    def __len__(self) -> int:
        """Number of frames over all datasets."""
        return len(self.index)

    def get(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(image (H, W, 3) uint8 RGB, target (H, W) uint8)."""
        return self._cache[index] if self._cache is not None else self._load(index)


def should_cache(datasets: RoadDataset | Sequence[RoadDataset], setting: str,
                 budget_bytes: int = 4 << 30) -> bool:
    """Decide whether decoded frames fit in memory (``setting``: auto | yes | no)."""
    if setting != 'auto':
        return setting == 'yes'
    datasets = [datasets] if isinstance(datasets, RoadDataset) else list(datasets)
    total = 0
    for ds in datasets:
        if not len(ds):
            continue
        first = ds[0]
        total += (first.image.nbytes + first.image.shape[0] * first.image.shape[1]) * len(ds)
    return 0 < total <= budget_bytes


def augment(image: np.ndarray, target: np.ndarray, size: Sequence[int],
            rng: np.random.Generator, scale_range: tuple[float, float] = (1.0, 1.0),
            flip: bool = True, jitter: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Joint random scale, crop and flip (+ photometric jitter on the image only).

    The frame is scaled so its height fits ``size[0]``, times a random factor from
    ``scale_range``, then a random ``size`` crop is taken; where the crop leaves the frame,
    the image is zero and the target is IGNORE.

    Args:
        image: (H, W, 3) uint8 RGB.
        target: (H, W) uint8 (1 road, 0 other, 255 ignore).
        size: crop (height, width).
        rng: random generator.
        scale_range: (min, max) scale factor relative to fitting the height.
        flip: random horizontal flip.
        jitter: strength of the photometric augmentation (0 = none, see :func:`photometric`).

    Returns:
        (image (h, w, 3) uint8, target (h, w) uint8) with (h, w) = size.
    """
    ch, cw = int(size[0]), int(size[1])
    h, w = image.shape[:2]
    s = ch / h * rng.uniform(*scale_range)
    nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
    img = preprocess.scale_image(image, nw, nh)  # the serving path's filter
    tgt = cv2.resize(target, (nw, nh), interpolation=cv2.INTER_NEAREST)
    out_img = np.zeros((ch, cw, 3), np.uint8)
    out_tgt = np.full((ch, cw), IGNORE, np.uint8)
    y0 = int(rng.integers(0, nh - ch + 1)) if nh >= ch else -int(rng.integers(0, ch - nh + 1))
    x0 = int(rng.integers(0, nw - cw + 1)) if nw >= cw else -int(rng.integers(0, cw - nw + 1))
    sy, sx = max(y0, 0), max(x0, 0)            # source origin
    dy, dx = max(-y0, 0), max(-x0, 0)          # destination origin
    hh, ww = min(nh - sy, ch - dy), min(nw - sx, cw - dx)
    out_img[dy:dy + hh, dx:dx + ww] = img[sy:sy + hh, sx:sx + ww]
    out_tgt[dy:dy + hh, dx:dx + ww] = tgt[sy:sy + hh, sx:sx + ww]
    if flip and rng.random() < 0.5:
        out_img, out_tgt = out_img[:, ::-1], out_tgt[:, ::-1]
    out_img = np.ascontiguousarray(out_img)
    if jitter > 0:
        out_img = photometric(out_img, rng, jitter)
    return out_img, np.ascontiguousarray(out_tgt)


@functools.lru_cache(maxsize=8)
def _photometric_transform(strength: float) -> Any:
    """Road-scene photometric augmentation (albumentations) scaled by ``strength``."""
    import os
    os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')   # no version check over the network
    import albumentations as A
    s = float(strength)
    return A.Compose([
        A.ColorJitter(brightness=s, contrast=s, saturation=s, hue=0.1 * s, p=0.8),
        A.RandomGamma(gamma_limit=(int(100 - 80 * s), int(100 + 80 * s)), p=0.3),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.MotionBlur(blur_limit=(3, 7))], p=0.2),
        A.GaussNoise(std_range=(0.01, 0.05 + 0.1 * s), p=0.2),
        A.RandomShadow(shadow_roi=(0, 0.4, 1, 1), num_shadows_limit=(1, 2),
                       shadow_intensity_range=(0.3, 0.7), p=0.3),
    ])


def photometric(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Random colour/brightness/contrast/saturation/hue, gamma, blur, noise and shadows.

    Args:
        image: (H, W, 3) uint8 RGB (the augmented crop; targets are unaffected).
        rng: source of the transform's seed, so batches stay deterministic.
        strength: 0..1 scale of the colour changes (0.25 = +-25% brightness/contrast/...).

    Returns:
        (H, W, 3) uint8 RGB.
    """
    transform = _photometric_transform(round(float(strength), 4))
    transform.set_random_seed(int(rng.integers(0, 2**31 - 1)))
    return transform(image=image)['image']


def to_training_arrays(target: np.ndarray, class_weights: Sequence[float] | None,
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Target with IGNORE -> (labels uint8 with ignore as 0, per-pixel float32 weights)."""
    valid = target != IGNORE
    labels = np.where(valid, target, 0).astype(np.uint8)
    if class_weights is None:
        weights = valid.astype(np.float32)
    else:
        weights = np.asarray(class_weights, np.float32)[labels] * valid
    return labels, weights


class TrainSequence(keras.utils.PyDataset):
    """Backend-neutral training batches over a :class:`FrameStore` (no TensorFlow needed)."""

    def __init__(self, store: FrameStore, size: Sequence[int], batch_size: int,
                 scale_range: tuple[float, float], flip: bool, jitter: float,
                 class_weights: Sequence[float] | None, seed: int, steps: int = 0,
                 workers: int = 1, shuffle: bool = True) -> None:
        """See :func:`augment`; ``steps`` = 0 means one pass over the frames per epoch."""
        super().__init__(workers=workers, use_multiprocessing=False)
        self.store, self.size, self.batch_size = store, tuple(size), batch_size
        self.scale_range, self.flip, self.jitter = scale_range, flip, jitter
        self.class_weights, self.seed, self.shuffle = class_weights, seed, shuffle
        self.steps = steps or math.ceil(len(store) / batch_size)
        self.epoch = 0
        self._order = self._make_order()

    def _make_order(self) -> np.ndarray:
        n = self.steps * self.batch_size
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.shuffle and self.store.probabilities is not None:
            return rng.choice(len(self.store), n, p=self.store.probabilities)
        reps = math.ceil(n / len(self.store))
        order = np.concatenate([rng.permutation(len(self.store)) if self.shuffle
                                else np.arange(len(self.store)) for _ in range(reps)])
        return order[:n]

    def __len__(self) -> int:
        """Batches per epoch."""
        return self.steps

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Batch ``index`` of the current epoch (deterministic per seed/epoch/index)."""
        idx = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        images, labels, weights = [], [], []
        for j, frame in enumerate(idx):
            rng = np.random.default_rng([self.seed, self.epoch, index, j])
            img, tgt = augment(*self.store.get(int(frame)), self.size, rng, self.scale_range,
                               self.flip, self.jitter)
            lab, wt = to_training_arrays(tgt, self.class_weights)
            images.append(img)
            labels.append(lab)
            weights.append(wt)
        return np.stack(images), np.stack(labels), np.stack(weights)

    def set_epoch(self, epoch: int) -> None:
        """Position the sequence at ``epoch`` (batch order and augmentation depend on it)."""
        self.epoch = epoch
        self._order = self._make_order()

    def on_epoch_end(self) -> None:
        """Reshuffle for the next epoch."""
        self.set_epoch(self.epoch + 1)


def make_tf_dataset(sequence: TrainSequence, initial_epoch: int = 0) -> object:
    """tf.data pipeline over the same batches as ``sequence`` (map + prefetch).

    Returns a ``tf.data.Dataset`` that repeats forever, starting at ``initial_epoch`` (so a
    resumed run sees the same batches as an uninterrupted one); pass
    ``steps_per_epoch=len(sequence)`` to ``fit``.
    """
    import tensorflow as tf

    h, w = sequence.size
    b = sequence.batch_size
    def load(index: np.int64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        step = int(index)
        epoch, batch_index = divmod(step, len(sequence))
        if epoch != sequence.epoch:
            sequence.set_epoch(epoch)
        return sequence[batch_index]

    ds = tf.data.Dataset.counter(start=initial_epoch * len(sequence))
    ds = ds.map(lambda i: tf.numpy_function(load, [i], (tf.uint8, tf.uint8, tf.float32)),
                num_parallel_calls=1, deterministic=True)
    ds = ds.map(lambda x, y, wt: (tf.ensure_shape(x, (b, h, w, 3)),
                                  tf.ensure_shape(y, (b, h, w)),
                                  tf.ensure_shape(wt, (b, h, w))))
    return ds.prefetch(tf.data.AUTOTUNE)
