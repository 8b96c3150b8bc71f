"""Segmenter: load a model once, run compiled batched inference on frames of any size.

Frames in, probabilities out: :meth:`Segmenter.segment` = :meth:`~Segmenter.prepare`
(:mod:`seg_perception.core.preprocess`) -> :meth:`~Segmenter.forward` (the compiled model, one
host transfer) -> :meth:`~Segmenter.postprocess` (back to each frame's resolution). Labels,
the CRF and overlays are :mod:`seg_perception.runtime.pipeline`'s, which the node, the
evaluator and bag replay share.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from seg_perception.core import preprocess
from seg_perception.core.choices import (
    BACKENDS,
    DEVICES,
    INPUT_MODES,
    PRECISIONS,
    PROVIDERS,
    TTA_MODES,
)
from seg_perception.core.hardware import cpu_has_bf16
from seg_perception.model.fcn8s import fold_batch_norm
from seg_perception.model.model_file import ModelCard, load_model
from seg_perception.runtime.ort_session import PROVIDERS as ORT_PROVIDER_NAMES
from seg_perception.runtime.ort_session import OrtForward

LOG = logging.getLogger(__name__)
DTYPE_POLICY = {'bfloat16': 'mixed_bfloat16', 'float16': 'mixed_float16'}  # else float32


@dataclasses.dataclass
class Probabilities:
    """Result for one frame, at the frame's own resolution.

    Attributes:
        probability: (H, W) float32 road probability in [0, 1].
        class_probabilities: (H, W, C) float32 softmax (multi-class models always; binary
            ones when requested).
    """

    probability: np.ndarray
    class_probabilities: np.ndarray | None = None


def gpu_available() -> bool:
    """True if the Keras backend sees a GPU."""
    backend = keras.backend.backend()
    try:
        if backend == 'tensorflow':
            import tensorflow as tf
            return bool(tf.config.list_physical_devices('GPU'))
        if backend == 'jax':
            import jax
            return any(d.platform == 'gpu' for d in jax.devices())
        if backend == 'torch':
            import torch
            return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - any backend probing failure means "no GPU"
        return False
    return False


def resolve_device(device: str) -> str:
    """Map ``'auto'``/``'cpu'``/``'gpu'`` to the device used; ``'gpu'`` without one raises."""
    if device not in DEVICES:
        raise ValueError(f'device must be one of {DEVICES}, got {device!r}')
    has_gpu = gpu_available()
    if device == 'gpu' and not has_gpu:
        raise RuntimeError(f'device "gpu" requested but the {keras.backend.backend()} backend '
                           'sees no GPU (install tensorflow[and-cuda] or use device "cpu")')
    return 'gpu' if device == 'gpu' or (device == 'auto' and has_gpu) else 'cpu'


def resolve_precision(precision: str, device: str) -> str:
    """Map ``'auto'`` to bfloat16 on bf16-capable CPUs and float32 elsewhere."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {list(PRECISIONS)}, got {precision!r}')
    if precision == 'auto':
        return 'bfloat16' if device == 'cpu' and cpu_has_bf16() else 'float32'
    return precision


class Segmenter:
    """Compiled batched FCN-8s inference.

    Args:
        model: a model file path, or a ``(keras.Model, ModelCard)`` pair.
        device: ``'auto'``, ``'cpu'`` or ``'gpu'``.
        input_mode: ``'fit'``, ``'pad'`` or ``'resize'``; ``None`` = the card's.
        input_size: (height, width) for resize mode; ``None`` = the card's ``input_size``.
        precision: ``'float32'``, ``'bfloat16'``, ``'float16'`` or ``'auto'`` (bfloat16 on
            AMX/AVX512-BF16 CPUs). Only applies when loading from a path.
        jit: XLA-compile the forward pass; ``None`` = on GPU only (TensorFlow's CPU XLA
            does not use oneDNN and is slower there). JAX always compiles.
        backend: ``'keras'`` (the Keras backend in use: TensorFlow or JAX) or
            ``'onnxruntime'`` (``model`` is an ``.onnx`` file from ``seg_export``; its card
            is read from the file; ``device`` and ``precision`` do not apply: the
            execution providers decide).
        providers: ONNX Runtime execution providers in order of preference
            (``tensorrt``, ``cuda``, ``cpu``); unavailable ones are skipped (logged).
        tta: ``'flip'``: every frame also runs mirrored (in the same batch) and the two
            probabilities are averaged; ``'none'``: as is.
    """

    def __init__(self, model: str | os.PathLike | tuple[keras.Model, ModelCard],
                 device: str = 'auto', input_mode: str | None = None,
                 input_size: Sequence[int] | None = None, precision: str = 'auto',
                 jit: bool | None = None, backend: str = 'keras',
                 providers: Sequence[str] = PROVIDERS, tta: str = 'none',
                 ) -> None:
        """Load the model and build the compiled forward function."""
        if backend not in BACKENDS:
            raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
        self.backend = backend
        self._ort = None
        self.providers: list[str] = []  # onnxruntime: the providers in use, short names
        if backend == 'onnxruntime':
            if not isinstance(model, (str, os.PathLike)) or \
                    pathlib.Path(model).suffix.lower() != '.onnx':
                raise ValueError('backend onnxruntime needs an .onnx file from seg_export '
                                 f'(got {model!r})')
            self._ort = OrtForward(model, providers)
            self.card = ModelCard.from_json(self._ort.card_json)
            self._ort.road_class = int(self.card.road_class)
            self.model, self.model_path = None, str(model)
            self.device, self.precision = self._ort.device, self._ort.precision
            short = {v: k for k, v in ORT_PROVIDER_NAMES.items()}
            self.providers = [short.get(name, name) for name in self._ort.providers]
        elif isinstance(model, (str, os.PathLike)):
            self.device = resolve_device(device)
            self.precision = resolve_precision(precision, self.device)
            self.model, self.card = load_model(model, dtype=DTYPE_POLICY.get(self.precision))
            # Inference only: fold batch norm into the convolutions (fewer passes over
            # large activations). Not done for a (model, card) pair, whose weights may still
            # be training.
            self.model = fold_batch_norm(self.model, self.card.model_spec,
                                         dtype=DTYPE_POLICY.get(self.precision))
            self.model_path = str(model)
        else:
            self.device = resolve_device(device)
            self.model, self.card = model
            self.precision = 'float32' if precision == 'auto' else precision
            self.model_path = None
        self.input_mode = input_mode or self.card.input_mode
        if self.input_mode not in INPUT_MODES:
            raise ValueError(f'input_mode must be one of {INPUT_MODES}, '
                             f'got {self.input_mode!r}')
        self.input_size = tuple(int(s) for s in (input_size or self.card.input_size))
        self.road_class = int(self.card.road_class)
        self.num_classes = int(self.card.num_classes)
        self.jit = (self.device == 'gpu') if jit is None else bool(jit)
        # Keras: the forward pass in stages (put, compute, to_host); ONNX Runtime: its session
        self.stages = None if self._ort is not None else self._device_stages()
        self.forward = self._ort if self._ort is not None else self._staged_forward()
        if tta not in TTA_MODES:
            raise ValueError(f'tta must be one of {TTA_MODES}, got {tta!r}')
        self.tta = tta
        if tta == 'flip':
            self.forward = _with_flip(self.forward)
        self.last_forward_ms = 0.0

    # -- compiled forward pass -------------------------------------------------------
    def _staged_forward(self) -> Callable[[np.ndarray, bool], tuple[np.ndarray, ...]]:
        """The compiled forward pass :attr:`forward` from :attr:`stages`: f(uint8 (N, H, W,
        3) RGB batch, sides multiples of 32; want_all) -> (road probability (N, H, W)
        float32, [class probabilities (N, H, W, C) float32 when want_all]), one host
        transfer.
        """
        put, compute, to_host = self.stages
        road = self.road_class

        def forward(batch: np.ndarray, want_all: bool) -> tuple[np.ndarray, ...]:
            # One host transfer per pass: the road channel alone, or everything once (the
            # road channel is then a view of it).
            road_p, p = compute(put(batch))
            if want_all:
                probs = to_host(p)
                return probs[..., road], probs
            return (to_host(road_p),)
        return forward

    def _device_stages(self) -> tuple[Callable[[np.ndarray], Any], Callable[[Any], Any],
                                      Callable[[Any], np.ndarray]]:
        """The Keras forward pass in stages, kept as :attr:`stages` (benchmarks time them
        apart): ``put`` (uint8 batch -> the device's input), ``compute`` (compiled: input
        -> (road probability, class probabilities) on the device, the road slice inside
        the graph), ``to_host`` (a device array -> numpy).
        """
        backend = keras.backend.backend()
        model, road = self.model, self.road_class
        if backend == 'tensorflow':
            import tensorflow as tf
            device = '/GPU:0' if self.device == 'gpu' else '/CPU:0'

            @tf.function(jit_compile=self.jit, reduce_retracing=True)
            def probs_fn(x: Any) -> Any:
                p = tf.nn.softmax(model(x, training=False), axis=-1)
                return p[..., road], p  # the slice in the graph: no extra eager op

            def put(batch: np.ndarray) -> Any:
                with tf.device(device):
                    return tf.constant(batch)

            def compute(x: Any) -> Any:
                with tf.device(device):
                    return probs_fn(x)
            return put, compute, lambda t: t.numpy()
        if backend == 'jax':
            import jax
            dev = jax.devices('gpu' if self.device == 'gpu' else 'cpu')[0]
            tv = [jax.device_put(v.value, dev) for v in model.trainable_variables]
            ntv = [jax.device_put(v.value, dev) for v in model.non_trainable_variables]

            @jax.jit
            def jax_probs(tv: Any, ntv: Any, x: Any) -> Any:
                logits, _ = model.stateless_call(tv, ntv, x, training=False)
                p = jax.nn.softmax(logits.astype('float32'), axis=-1)
                return p[..., road], p
            return ((lambda batch: jax.device_put(batch, dev)),
                    (lambda x: jax_probs(tv, ntv, x)), np.asarray)

        def compute_other(x: Any) -> Any:
            p = keras.ops.softmax(model(x, training=False), axis=-1)
            return p[..., road], p
        return (lambda batch: batch), compute_other, keras.ops.convert_to_numpy

    def warmup(self, shapes: Sequence[tuple[int, int]] = ()) -> None:
        """Compile for the given (height, width) frame sizes (default: the model size)."""
        for h, w in (shapes or [tuple(self.input_size)]):
            self.segment([np.zeros((int(h), int(w), 3), np.uint8)])

    # -- public API ------------------------------------------------------------------
    def segment(self, images: Sequence[np.ndarray], class_probabilities: bool = False,
                bgr: bool | Sequence[bool] = False,
                validated: bool = False) -> list[Probabilities]:
        """Segment a batch of frames (sizes may differ) in one forward pass.

        Args:
            images: frames, each (H_i, W_i, 3) uint8 RGB (BGR where ``bgr`` says so).
            class_probabilities: also return the (H, W, C) softmax per frame (for the CRF).
            bgr: the frames are BGR (one flag for all or one per frame); converted to the
                model's RGB after scaling, inside the batch.
            validated: the frames already passed :func:`preprocess.check_frame` (the node
                checks each frame once, on arrival).

        Returns:
            One :class:`Probabilities` per frame at that frame's resolution.

        Raises:
            preprocess.InputError: a frame is not a usable uint8 image.
        """
        want_all = class_probabilities or self.num_classes > 2
        batch, geoms = self.prepare(images, bgr, validated)
        t0 = time.perf_counter()
        outputs = self.forward(batch, want_all)
        self.last_forward_ms = (time.perf_counter() - t0) * 1e3
        return self.postprocess(outputs, geoms, class_probabilities)

    def prepare(self, images: Sequence[np.ndarray], bgr: bool | Sequence[bool] = False,
                validated: bool = False) -> tuple[np.ndarray, list[preprocess.FrameGeometry]]:
        """The model batch for ``images`` (uint8 (N, Hb, Wb, 3) RGB) and their geometries:
        :func:`preprocess.prepare_batch` with this Segmenter's mode and size.
        """
        return preprocess.prepare_batch(images, self.input_mode, self.input_size, bgr,
                                        check=not validated)

    def postprocess(self, outputs: tuple[np.ndarray, ...],
                    geometries: Sequence[preprocess.FrameGeometry],
                    class_probabilities: bool = False) -> list[Probabilities]:
        """Forward outputs (road (N, Hb, Wb) float32 [, all (N, Hb, Wb, C)]) back to each
        frame's resolution.
        """
        want_all = len(outputs) > 1
        results = []
        for i, geom in enumerate(geometries):
            prob = preprocess.restore(outputs[0][i], geom)
            all_probs = preprocess.restore(outputs[1][i], geom) if want_all else None
            keep = class_probabilities or self.num_classes > 2
            results.append(Probabilities(prob, all_probs if keep else None))
        return results


def _with_flip(forward: Callable[[np.ndarray, bool], tuple[np.ndarray, ...]],
               ) -> Callable[[np.ndarray, bool], tuple[np.ndarray, ...]]:
    """``forward`` on the batch and its left-right mirror in one pass, outputs averaged
    (the mirror's flipped back): the flip test-time augmentation.
    """
    def flipped(batch: np.ndarray, want_all: bool) -> tuple[np.ndarray, ...]:
        n = len(batch)
        out = forward(np.concatenate([batch, batch[:, :, ::-1]]), want_all)
        return tuple(np.ascontiguousarray((o[:n] + o[n:][:, :, ::-1]) * np.float32(0.5))
                     for o in out)
    return flipped
