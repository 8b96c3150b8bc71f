"""Post-training int8 quantization of an exported ONNX model (ONNX Runtime, static QDQ).

The float32 export (:func:`seg_perception.export.onnx_export.export_onnx`) is quantized with
``onnxruntime.quantization.quantize_static``: the VGG16 and fc6/fc7 convolution weights per
output channel to int8, their activations to uint8 with ranges calibrated on real frames
(99.999th percentile: plain min/max let a few extreme activations widen the ranges; the
comparison is in docs/DEPLOYMENT.md). The class
score layers and their upsampling stay float32 (:data:`FLOAT_LAYERS`). The frames go
through the Segmenter's own preprocessing at the model card's geometry, so the calibration
sees exactly what inference will. The calibration streams: frames are read, prepared and run
one at a time, and each frame's activations are folded into the running histograms before
the next (ONNX Runtime's strided collection, a stride of one frame), so memory does not grow
with the number of calibration frames. Input (uint8 image), output (float32 softmax) and the
model card in the metadata stay as in the float32 export, so the ``onnxruntime`` backend
runs it unchanged; the metadata also says ``int8``. ONNX Runtime's CPU kernels then use
integer matrix instructions (AVX512-VNNI / AVX-VNNI / AMX where present; AVX2 u8s8 without
VNNI can saturate, see :mod:`seg_perception.core.backend_choice`).
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from seg_perception.core import preprocess
from seg_perception.core.formats import INT8, INT8_7BIT, PRECISION_KEY

#: operators whose weights and inputs are quantized (the compute of FCN-8s)
QUANTIZED_OPS = ('Conv', 'ConvTranspose', 'MatMul')
#: layers kept in float32: the class scores and their upsampling (a few output channels,
#: little compute, and where rounding moves the road probability at the threshold)
FLOAT_LAYERS = ('score_', 'upscore')


class QuantizeError(RuntimeError):
    """onnxruntime's quantization tools are missing, or there is nothing to calibrate on."""


def quantize_int8(src: str | os.PathLike, dst: str | os.PathLike,
                  frames: Sequence[np.ndarray], card: Any,
                  reduce_range: bool = False) -> dict[str, Any]:
    """Write the int8 (QDQ) version of the float32 ONNX model ``src`` to ``dst``.

    Args:
        src: float32 export from ``seg_export``.
        dst: output .onnx file.
        frames: calibration frames, each (H, W, 3) uint8 RGB, from the deployment's cameras
            (any sequence; a lazy one such as ``export.frames.FrameFiles`` keeps memory flat).
        card: the model card (its ``input_mode`` and ``input_size`` give the geometry).
        reduce_range: 7-bit weights, for x86 CPUs without VNNI: their uint8 x int8 kernels
            add products in pairs into 16 bits, which 8-bit weights can saturate.

    Returns:
        What was done: method, calibration frame count, file sizes in bytes.

    Raises:
        QuantizeError: onnxruntime.quantization is not importable, or no frames.
    """
    try:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:
        raise QuantizeError(f'int8 quantization needs onnxruntime ({exc}): pip install '
                            'onnxruntime==1.31.1') from None
    if not frames:
        raise QuantizeError('no calibration frames')

    mode, size = card.input_mode, tuple(card.input_size)

    class Frames(CalibrationDataReader):
        """Calibration inputs, one frame each, prepared when asked for (strided reading)."""

        def __init__(self) -> None:
            self.set_range(0, len(frames))

        def __len__(self) -> int:
            return len(frames)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._it = iter(range(start_index, end_index))

        def get_next(self) -> dict[str, np.ndarray] | None:
            i = next(self._it, None)
            if i is None:
                return None
            return {'image': preprocess.prepare_batch([frames[i]], mode, size)[0]}

    # Recorded in the metadata: the Segmenter reports it, and backend auto knows which CPUs
    # the export suits.
    precision = INT8_7BIT if reduce_range else INT8
    src, dst = pathlib.Path(src), pathlib.Path(dst)
    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
        prepared = pathlib.Path(tmp) / 'prepared.onnx'
        # Shape inference and graph clean-up first (onnxruntime's recommended pre-pass).
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        import onnx

        proto = onnx.load(str(prepared))
        keep = [n.name for n in proto.graph.node
                if any(f'/{layer}' in n.name for layer in FLOAT_LAYERS)]
        # The precision goes into the metadata here; quantize_static keeps it, as the card.
        entry = proto.metadata_props.add()
        entry.key, entry.value = PRECISION_KEY, precision
        with contextlib.redirect_stdout(sys.stderr):  # its progress lines: not results
            quantize_static(proto, str(dst), Frames(), quant_format=QuantFormat.QDQ,
                            nodes_to_exclude=keep,
                            per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8,
                            op_types_to_quantize=list(QUANTIZED_OPS),
                            calibrate_method=CalibrationMethod.Percentile,
                            reduce_range=reduce_range,
                            extra_options={'CalibStridedMinMax': 1})  # streamed, frame by frame
    return {'method': 'onnxruntime quantize_static, QDQ, per-channel int8 weights, uint8 '
                      'activations, percentile calibration, score layers float32'
                      + (', 7-bit weights (reduce_range)' if reduce_range else ''),
            'precision': precision,
            'calibration_frames': len(frames), 'float32_bytes': src.stat().st_size,
            'int8_bytes': dst.stat().st_size}

