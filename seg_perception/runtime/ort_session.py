"""ONNX Runtime inference of an exported model (``seg_export --format onnx``).

onnxruntime is optional: it is imported only when this backend is chosen, and a missing
install is one clear error. Execution providers are tried in the requested order
(``tensorrt`` -> ``cuda`` -> ``cpu`` by default); those the installed onnxruntime lacks are
skipped, and the resulting order is logged.
"""
from __future__ import annotations

import logging
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from seg_perception.core.choices import PROVIDERS
from seg_perception.core.formats import CARD_KEY, PRECISION_KEY
from seg_perception.core.hardware import ORT_INSTALL_HINT, onnxruntime_installed

LOG = logging.getLogger(__name__)
#: short name (the ``providers`` parameter's choices, in default order) -> ONNX Runtime name
PROVIDERS = dict(zip(PROVIDERS, ('TensorrtExecutionProvider', 'CUDAExecutionProvider',
                                        'CPUExecutionProvider')))


class OrtError(RuntimeError):
    """onnxruntime missing, no usable provider, or a file that is not an exported model."""


def require_onnxruntime() -> None:
    """Raise :class:`OrtError` (one line, with the install command) unless onnxruntime is
    installed; does not import it.
    """
    if not onnxruntime_installed():
        raise OrtError(ORT_INSTALL_HINT)


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise OrtError(ORT_INSTALL_HINT) from None
    return onnxruntime


def provider_order(requested: Sequence[str], available: Sequence[str]) -> list[str]:
    """ONNX Runtime provider names to try: ``requested`` short names that are available.

    Raises:
        OrtError: an unknown name, or none of the requested providers is available.
    """
    unknown = [p for p in requested if p not in PROVIDERS]
    if unknown:
        raise OrtError(f'unknown execution provider {unknown[0]!r} (choose from '
                       f'{", ".join(PROVIDERS)})')
    order = [PROVIDERS[p] for p in requested if PROVIDERS[p] in available]
    if not order:
        raise OrtError(f'none of the execution providers {list(requested)} is available in '
                       f'this onnxruntime (it has {list(available)})')
    return order


class OrtForward:
    """``f(uint8 batch (N, H, W, 3), want_all) -> (road prob (N, H, W), [probs (N, H, W, C)])``.

    Args:
        path: an ``.onnx`` file written by :func:`seg_perception.export.onnx_export.export_onnx`.
        providers: short provider names in order of preference.
        road_class: the road channel.
        threads: intra-op threads for the CPU provider (``None`` = onnxruntime's default).

    Attributes:
        card_json: the model card stored in the file (JSON text).
        providers: the providers the session uses, in order.
    """

    def __init__(self, path: str | os.PathLike, providers: Sequence[str] = PROVIDERS,
                 road_class: int | None = None, threads: int | None = None) -> None:
        """Create the inference session (falling back along ``providers``)."""
        ort = _import_ort()
        p = pathlib.Path(path)
        if not p.is_file():
            raise OrtError(f'{p}: ONNX file not found')
        order = provider_order(providers, ort.get_available_providers())
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = int(threads)
        # No busy-waiting between runs: the node decodes, renders and publishes on the same
        # cores between forward passes, and spinning pool threads would take that time.
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        configured: list[Any] = []
        for name in order:
            if name == PROVIDERS['tensorrt']:
                cache = p.with_suffix('.trt_cache')
                configured.append((name, {'trt_engine_cache_enable': True,
                                          'trt_engine_cache_path': str(cache),
                                          'trt_fp16_enable': True}))
            else:
                configured.append(name)
        try:
            self.session = ort.InferenceSession(str(p), options, providers=configured)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise OrtError(f'{p}: onnxruntime cannot load it ({exc})') from None
        self.providers = list(self.session.get_providers())
        LOG.info('onnxruntime %s: requested %s, using %s', ort.__version__, list(providers),
                 self.providers)
        meta = self.session.get_modelmeta().custom_metadata_map
        if CARD_KEY not in meta:
            raise OrtError(f'{p}: no seg_perception model card inside (export it with '
                           'seg_export)')
        self.card_json = meta[CARD_KEY]
        self.precision = meta.get(PRECISION_KEY, 'float32')  # 'int8' for a quantized export
        self.road_class = road_class
        self.input_name = self.session.get_inputs()[0].name

    @property
    def device(self) -> str:
        """``'gpu'`` when a GPU provider leads, else ``'cpu'``."""
        return 'cpu' if self.providers[0] == PROVIDERS['cpu'] else 'gpu'

    def __call__(self, batch: np.ndarray, want_all: bool) -> tuple[np.ndarray, ...]:
        """Run one batch; one host transfer of the probabilities."""
        probs = self.session.run(None, {self.input_name: batch})[0]
        road = probs[..., self.road_class]
        return (road, probs) if want_all else (road,)
