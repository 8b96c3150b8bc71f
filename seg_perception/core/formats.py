"""Names and file formats the whole package shares, and the cheap checks of model files.

A leaf module (standard library and :mod:`.hardware` only): the CLIs, the backend choice,
the pipeline and the writers of these formats import their constants from here, so each is
written once. The checks read a file's head and tail only; they import neither Keras,
TensorFlow, onnx nor ONNX Runtime, so a bad ``--model`` fails in well under a second.
"""
from __future__ import annotations

import json
import os
import pathlib
import zipfile
import zlib

from seg_perception.core.hardware import ORT_INSTALL_HINT, onnxruntime_installed

PACKAGE = 'seg_perception'
NODE_NAME = 'road_segmentation'
#: prefix of the node's one-line reason when it cannot start (launch files look for it)
START_FAILURE = 'cannot start: '

# -- the model file (.segmodel): a zip of a JSON model card and the weights ----------------
MODEL_EXTENSION = '.segmodel'
MODEL_FORMAT = 'seg_perception.fcn8s'
MODEL_FORMAT_VERSION = 1
CARD_NAME = 'card.json'
WEIGHTS_NAME = 'weights.npz'
DEFAULT_MODEL_NAME = 'road_fcn8s_vgg16.segmodel'

# -- ONNX exports: the model card and the precision in the ONNX metadata --------------------
ONNX_EXTENSION = '.onnx'
CARD_KEY = 'seg_perception.card'
PRECISION_KEY = 'seg_perception.precision'  # absent = float32
INT8, INT8_7BIT = 'int8', 'int8-7bit'       # 8-bit weights (VNNI/AMX), 7-bit (any x86)
INT8_SUFFIX = '.int8.onnx'                  # <stem>.int8.onnx beside the .segmodel
ONNX_TAIL_BYTES = 4 << 20                   # the metadata is written after the graph


class UsageError(Exception):
    """A bad input (flag, file, path) found before any work started: one line, exit 1."""


def backend_of_file(path: str | os.PathLike) -> str:
    """The runtime that can run the model file ``path``: onnxruntime for ``.onnx``, else keras."""
    return 'onnxruntime' if pathlib.Path(path).suffix.lower() == ONNX_EXTENSION else 'keras'


def check_model_file(path: str | os.PathLike, flag: str = '--model') -> pathlib.Path:
    """A readable ``.segmodel`` (a zip with a JSON model card).

    Raises:
        UsageError: missing, not a file, not a zip (truncated/corrupt) or no valid card.
    """
    p = _existing_file(path, flag, 'model file')
    try:
        with zipfile.ZipFile(p) as zf:
            if CARD_NAME not in zf.namelist():
                raise UsageError(f'{flag} {path}: no {CARD_NAME} inside (not a seg_perception '
                                 'model file)')
            json.loads(zf.read(CARD_NAME).decode('utf-8'))
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as exc:
        raise UsageError(f'{flag} {path}: not a seg_perception model file (truncated or '
                         f'corrupt: {exc})') from None
    return p


def check_onnx_file(path: str | os.PathLike, flag: str = '--model') -> pathlib.Path:
    """An ``.onnx`` file from ``seg_export``: it starts like an ONNX ModelProto and its tail
    holds the seg_perception card (metadata follows the graph in the file).

    Raises:
        UsageError: missing, not a file, not ``.onnx``, not ONNX, or no card inside.
    """
    p = _existing_file(path, flag, 'ONNX file')
    if p.suffix.lower() != ONNX_EXTENSION:
        raise UsageError(f'{flag} {path}: backend onnxruntime needs an .onnx file from '
                         'seg_export')
    try:
        size = p.stat().st_size
        with p.open('rb') as f:
            head = f.read(1)
            f.seek(max(0, size - ONNX_TAIL_BYTES))
            tail = f.read()
    except OSError as exc:
        raise UsageError(f'{flag} {path}: cannot read it ({exc.strerror})') from None
    if head != b'\x08':  # field 1 (ir_version, varint) comes first in every ONNX model
        raise UsageError(f'{flag} {path}: not an ONNX model file')
    if CARD_KEY.encode() not in tail:
        raise UsageError(f'{flag} {path}: no seg_perception model card inside (export it '
                         'with seg_export)')
    return p


def check_model_for_backend(path: str | os.PathLike, backend: str,
                            flag: str = '--model') -> pathlib.Path:
    """:func:`check_model_file` for ``backend`` keras, :func:`check_onnx_file` (and an
    installed onnxruntime) for ``onnxruntime``; an ``.onnx`` file with keras is refused
    with a hint.

    Raises:
        UsageError: see the two checks; onnxruntime not installed.
    """
    if backend == 'onnxruntime':
        if not onnxruntime_installed():
            raise UsageError(ORT_INSTALL_HINT)
        return check_onnx_file(path, flag)
    if backend_of_file(path) == 'onnxruntime':
        raise UsageError(f'{flag} {path} is an ONNX file: use --backend onnxruntime')
    return check_model_file(path, flag)


def _existing_file(path: str | os.PathLike, flag: str, what: str) -> pathlib.Path:
    p = pathlib.Path(path).expanduser()
    if not p.exists():
        raise UsageError(f'{flag} {path}: {what} not found')
    if not p.is_file():
        raise UsageError(f'{flag} {path}: not a file')
    return p
