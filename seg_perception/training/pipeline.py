"""Training input pipeline: decode, joint random scale/crop/flip, photometric jitter, batch.

One augmentation implementation (numpy/OpenCV, :func:`augment`) feeds two pipelines:
  * ``tf.data`` (TensorFlow backend): parallel map through ``tf.numpy_function``, prefetch.
  * ``keras.utils.PyDataset`` (any backend, no TensorFlow needed: the JAX GPU route).

Batches are ``(images uint8 (B, H, W, 3), labels uint8 (B, H, W), weights float32 (B, H, W))``;
ignored pixels (255) get label 0 and weight 0.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import keras
import numpy as np

from seg_perception.datasets import RoadDataset
from seg_perception.image_io import IGNORE


class FrameStore:
    """Decoded (image, target) pairs of a dataset, from memory when cached."""

    def __init__(self, dataset: RoadDataset, cache: bool) -> None:
        """Optionally decode everything up front (raises the dataset's clear errors early)."""
        self.dataset = dataset
        self._cache = [self._load(i) for i in range(len(dataset))] if cache else None

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.dataset[index]
        if s.target is None:
            raise ValueError(f'{s.name}: training needs ground truth')
        return s.image, s.target

    def __len__(self) -> int:
        """Number of frames."""
        return len(self.dataset)

    def get(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(image (H, W, 3) uint8 RGB, target (H, W) uint8)."""
        return self._cache[index] if self._cache is not None else self._load(index)


def should_cache(dataset: RoadDataset, setting: str, budget_bytes: int = 4 << 30) -> bool:
    """Decide whether decoded frames fit in memory (``setting``: auto | yes | no)."""
    if setting != 'auto':
        return setting == 'yes'
    if not len(dataset):
        return False
    first = dataset[0]
    per_frame = first.image.nbytes + first.image.shape[0] * first.image.shape[1]
    return per_frame * len(dataset) <= budget_bytes


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
        jitter: strength of brightness/contrast/saturation jitter (0 = none).

    Returns:
        (image (h, w, 3) uint8, target (h, w) uint8) with (h, w) = size.
    """
    ch, cw = int(size[0]), int(size[1])
    h, w = image.shape[:2]
    s = ch / h * rng.uniform(*scale_range)
    nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
    img = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
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
    if jitter > 0:
        out_img = photometric_jitter(out_img, rng, jitter)
    return np.ascontiguousarray(out_img), np.ascontiguousarray(out_tgt)


def photometric_jitter(image: np.ndarray, rng: np.random.Generator, strength: float,
                       ) -> np.ndarray:
    """Random brightness, contrast and saturation change of a uint8 RGB image."""
    x = image.astype(np.float32)
    gray = x.mean(axis=2, keepdims=True)
    x = gray + (x - gray) * rng.uniform(1 - strength, 1 + strength)         # saturation
    x = (x - x.mean()) * rng.uniform(1 - strength, 1 + strength) + x.mean()  # contrast
    x = x * rng.uniform(1 - strength, 1 + strength)                          # brightness
    return np.clip(x, 0, 255).astype(np.uint8)


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
