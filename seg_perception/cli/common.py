"""Shared plumbing of the command-line tools: logging setup, one-line error exits, and the
checks every tool makes before importing TensorFlow (a bad flag, model file or output path
fails in well under a second, not after the 4-8 s TensorFlow import, and creates nothing).
"""
from __future__ import annotations

import json
import logging
import os
import pathlib
import sys
import zipfile
import zlib
from collections.abc import Callable

from seg_perception.backend_choice import backend_of_file

# The model card inside a .segmodel zip: seg_perception.model_io.CARD_NAME (that module
# imports Keras, so it is not imported here; test_cli_fail_fast.py checks they agree).
CARD_NAME = 'card.json'


class CliError(Exception):
    """A bad argument found before any work started: printed as one line, exit 1."""


def check_model_file(path: str | os.PathLike, flag: str = '--model') -> pathlib.Path:
    """A readable seg_perception model file (a zip with a JSON model card), checked without
    importing Keras/TensorFlow.

    Raises:
        CliError: missing, not a file, not a zip (truncated/corrupt) or no valid card.
    """
    p = pathlib.Path(path).expanduser()
    if not p.exists():
        raise CliError(f'{flag} {path}: model file not found')
    if not p.is_file():
        raise CliError(f'{flag} {path}: not a file')
    try:
        with zipfile.ZipFile(p) as zf:
            if CARD_NAME not in zf.namelist():
                raise CliError(f'{flag} {path}: no {CARD_NAME} inside (not a seg_perception '
                               'model file)')
            json.loads(zf.read(CARD_NAME).decode('utf-8'))
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as exc:
        raise CliError(f'{flag} {path}: not a seg_perception model file (truncated or '
                       f'corrupt: {exc})') from None
    return p


ONNX_TAIL_BYTES = 4 << 20  # the model card (ONNX metadata) is written after the graph


def check_onnx_file(path: str | os.PathLike, flag: str = '--model') -> pathlib.Path:
    """An ``.onnx`` file from ``seg_export`` (its model card inside), checked without
    importing onnx, onnxruntime or TensorFlow: the file starts like an ONNX ModelProto and
    its tail holds the seg_perception card (metadata follows the graph in the file).

    Raises:
        CliError: missing, not a file, not ``.onnx``, not ONNX, or no card inside.
    """
    from seg_perception.onnx_export import CARD_KEY  # stdlib-only module
    p = pathlib.Path(path).expanduser()
    if not p.exists():
        raise CliError(f'{flag} {path}: ONNX file not found')
    if not p.is_file():
        raise CliError(f'{flag} {path}: not a file')
    if p.suffix.lower() != '.onnx':
        raise CliError(f'{flag} {path}: backend onnxruntime needs an .onnx file from '
                       'seg_export')
    try:
        size = p.stat().st_size
        with p.open('rb') as f:
            head = f.read(1)
            f.seek(max(0, size - ONNX_TAIL_BYTES))
            tail = f.read()
    except OSError as exc:
        raise CliError(f'{flag} {path}: cannot read it ({exc.strerror})') from None
    if head != b'\x08':  # field 1 (ir_version, varint) comes first in every ONNX model
        raise CliError(f'{flag} {path}: not an ONNX model file')
    if CARD_KEY.encode() not in tail:
        raise CliError(f'{flag} {path}: no seg_perception model card inside (export it '
                       'with seg_export)')
    return p


def check_model_for_backend(path: str | os.PathLike, backend: str,
                            flag: str = '--model') -> pathlib.Path:
    """:func:`check_model_file` for ``backend`` keras, :func:`check_onnx_file` (and an
    installed onnxruntime) for ``onnxruntime``; an ``.onnx`` file with keras is refused
    with a hint.

    Raises:
        CliError: see the two checks; onnxruntime not installed.
    """
    if backend == 'onnxruntime':
        from seg_perception.ort_backend import OrtError, require_onnxruntime
        try:
            require_onnxruntime()
        except OrtError as exc:
            raise CliError(str(exc)) from None
        return check_onnx_file(path, flag)
    if backend_of_file(path) == 'onnxruntime':
        raise CliError(f'{flag} {path} is an ONNX file: use --backend onnxruntime')
    return check_model_file(path, flag)


def check_out_dir(path: str | os.PathLike, flag: str = '--out') -> pathlib.Path:
    """An output folder that exists or can be created (nothing is created here).

    Raises:
        CliError: ``path`` is an existing file, or its nearest existing ancestor is not a
            writable folder.
    """
    p = pathlib.Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise CliError(f'{flag} {path} exists and is not a folder')
    parent = p
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise CliError(f'{flag} {path}: {parent} is not a folder')
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CliError(f'{flag} {path}: {parent} is not writable')
    return p


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr as ``LEVEL message``; quiet TensorFlow's C++ logs."""
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format='%(levelname)s %(name)s: %(message)s', stream=sys.stderr)


def run_cli(prog: str, main: Callable[[], int], expected: tuple[type[BaseException], ...],
            ) -> int:
    """Run ``main``; expected errors (and :class:`CliError`) and Ctrl-C become one readable
    line and exit 1/130.
    """
    try:
        return main()
    except (*expected, CliError) as exc:
        print(f'{prog}: error: {exc}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f'{prog}: interrupted', file=sys.stderr)
        return 130
