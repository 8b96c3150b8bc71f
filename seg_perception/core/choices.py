"""The choice lists of the node's parameters and the tools' flags: the one place each is
written (the parameter schema, the Segmenter, the CRF, the CLIs and the launch files import
them from here).
"""
from __future__ import annotations

BACKENDS = ('keras', 'onnxruntime')          # the runtimes
BACKEND_CHOICES = ('auto', *BACKENDS)         # the backend parameter and CLI flags
DEVICES = ('auto', 'cpu', 'gpu')
PRECISIONS = ('auto', 'float32', 'bfloat16', 'float16')
INPUT_MODES = ('fit', 'pad', 'resize')
OVERLAY_ENCODINGS = ('rgb8', 'bgr8')
TRANSPORTS = ('raw', 'compressed')
RELIABILITIES = ('best_effort', 'reliable')
TTA_MODES = ('none', 'flip')  # test-time augmentation
PROVIDERS = ('tensorrt', 'cuda', 'cpu')  # ONNX Runtime execution providers, short names
