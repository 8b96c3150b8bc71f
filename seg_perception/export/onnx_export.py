"""ONNX export of a model file, with its model card inside the ONNX file.

The exported graph takes ``image``: uint8 RGB (N, H, W, 3), H and W dynamic (multiples of
32), normalises inside (the model's ``Normalize`` layer is part of the graph) and returns
``probabilities``: float32 (N, H, W, C) softmax, NHWC. The model card (classes, palette,
geometry, threshold, training, metrics) is stored as ONNX metadata under
:data:`CARD_KEY`, so an ONNX Runtime deployment needs the ``.onnx`` file alone.

The export goes through tf2onnx, the converter Keras 3's own ``model.export(format='onnx')``
calls, from the same traced TensorFlow function, in tf2onnx's large-model mode (weights kept
out of the protobuf during the conversion, which lowers its peak memory); no hand-written
graph conversion can drift from the Keras model.
"""
from __future__ import annotations

import os
import pathlib
import tempfile
import zipfile
from typing import Any

from seg_perception.core.formats import CARD_KEY

INPUT_NAME = 'image'
OUTPUT_NAME = 'probabilities'


class ExportError(RuntimeError):
    """An export that cannot be done (missing exporter, backend, bad file); one line."""


def export_onnx(model: Any, card: Any, path: str | os.PathLike,
                opset: int | None = None) -> pathlib.Path:
    """Write ``model`` (+ softmax) as ONNX with ``card`` in its metadata.

    Args:
        model: a Keras FCN-8s (uint8 RGB in, logits out), float32 weights.
        card: its :class:`seg_perception.model.model_file.ModelCard`.
        path: the ``.onnx`` file to write (replaced atomically).
        opset: ONNX opset (``None`` = the exporter's default).

    Returns:
        The written path.

    Raises:
        ExportError: not the TensorFlow backend, or tf2onnx/onnx missing.
    """
    import keras
    if keras.backend.backend() != 'tensorflow':
        raise ExportError('ONNX export runs on the TensorFlow backend (KERAS_BACKEND='
                          f'tensorflow), not {keras.backend.backend()!r}')
    try:
        import onnx
        import tf2onnx
    except ImportError as exc:
        raise ExportError(f'ONNX export needs onnx and tf2onnx ({exc.name} missing): pip '
                          'install onnx==1.23.2 tf2onnx==1.17.0') from None
    import tensorflow as tf
    from keras.src.export.tf2onnx_lib import patch_tf2onnx

    inputs = keras.Input(shape=(None, None, 3), dtype='uint8', name=INPUT_NAME)
    probs = keras.layers.Softmax(axis=-1, dtype='float32', name=OUTPUT_NAME)(model(inputs))
    wrapped = keras.Model(inputs, probs, name='fcn8s_probabilities')
    spec = [tf.TensorSpec((None, None, None, 3), tf.uint8, name=INPUT_NAME)]
    function = tf.function(lambda image: wrapped(image, training=False), input_signature=spec)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        # tf2onnx (what Keras' own ONNX export calls) in its large-model mode: the weights go
        # to external files instead of being copied through the protobuf graph, which keeps
        # the conversion's peak memory at about 60 % (measured in docs/MODEL.md); the model
        # is then read back whole and written as one file.
        patch_tf2onnx()  # numpy 2 compatibility, as keras.export does
        large = pathlib.Path(tmp) / 'model.zip'
        tf2onnx.convert.from_function(function, spec, opset=opset, output_path=str(large),
                                      large_model=True)
        with zipfile.ZipFile(large) as zf:
            zf.extractall(pathlib.Path(tmp) / 'large')
        raw = pathlib.Path(tmp) / 'large' / '__MODEL_PROTO.onnx'
        proto = onnx.load(str(raw))
        proto.graph.output[0].name = _rename_output(proto, OUTPUT_NAME)
        del proto.metadata_props[:]
        entry = proto.metadata_props.add()
        entry.key, entry.value = CARD_KEY, card.to_json()
        proto.doc_string = ('seg_perception FCN-8s road segmentation: uint8 RGB NHWC in (H, W '
                            'multiples of 32), softmax probabilities NHWC float32 out')
        onnx.checker.check_model(proto)
        tmp_out = pathlib.Path(tmp) / path.name
        onnx.save(proto, str(tmp_out))
        os.replace(tmp_out, path)
    return path


def _rename_output(proto: Any, name: str) -> str:
    """Give the graph's single output a readable name (rewiring the producing node)."""
    old = proto.graph.output[0].name
    for node in proto.graph.node:
        node.output[:] = [name if o == old else o for o in node.output]
        node.input[:] = [name if i == old else i for i in node.input]
    return name


def read_onnx_card(path: str | os.PathLike) -> Any:
    """The :class:`ModelCard` stored in an exported ``.onnx`` file (onnx package needed).

    Raises:
        ExportError: no such file, not ONNX, or no seg_perception card inside.
    """
    from seg_perception.model.model_file import ModelCard
    p = pathlib.Path(path)
    if not p.is_file():
        raise ExportError(f'{p}: ONNX file not found')
    try:
        import onnx
        proto = onnx.load(str(p), load_external_data=False)
    except ImportError:
        raise ExportError('reading an ONNX model card needs the onnx package (pip install '
                          'onnx==1.23.2)') from None
    except Exception as exc:  # noqa: BLE001 - protobuf decode errors of many kinds
        raise ExportError(f'{p}: not a readable ONNX file ({exc})') from None
    meta = {e.key: e.value for e in proto.metadata_props}
    if CARD_KEY not in meta:
        raise ExportError(f'{p}: no seg_perception model card inside (export it with '
                          'seg_export)')
    try:
        return ModelCard.from_json(meta[CARD_KEY])
    except (ValueError, TypeError) as exc:
        raise ExportError(f'{p}: invalid model card: {exc}') from None
