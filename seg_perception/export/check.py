"""The export check: an export against Keras on real frames at the card geometry."""
from __future__ import annotations

import pathlib

import numpy as np

from seg_perception.core.formats import UsageError, backend_of_file
from seg_perception.core.image_io import read_rgb
from seg_perception.export.frames import image_files
from seg_perception.runtime.segmenter import Segmenter


def compare(model_path: pathlib.Path, exported: pathlib.Path, fmt: str, frames_dir: str,
            limit: int) -> dict[str, object]:
    """The source model (Keras float32, or a float32 ONNX export on ONNX Runtime) vs the
    export on real frames at the card geometry: max |dp| and label agreement.
    """
    files = image_files(frames_dir)[:limit]
    if not files:
        raise UsageError(f'--check-frames {frames_dir}: no images found')
    reference = backend_of_file(model_path)
    keras_seg = (Segmenter(model_path, backend='onnxruntime', providers=('cpu',))
                 if reference == 'onnxruntime' else Segmenter(model_path, precision='float32'))
    if fmt == 'onnx':
        other = Segmenter(exported, backend='onnxruntime', providers=('cpu',))

        def run_export(batch: np.ndarray) -> np.ndarray:
            return other.forward(batch, False)[0]
    else:
        import tensorflow as tf
        serve = tf.saved_model.load(str(exported)).signatures['serve']

        def run_export(batch: np.ndarray) -> np.ndarray:
            probs = serve(image=tf.constant(batch))['probabilities'].numpy()
            return probs[..., keras_seg.road_class]
    max_diff, agree, pixels = 0.0, 0, 0
    thr = keras_seg.card.threshold
    for f in files:
        batch, _ = keras_seg.prepare([read_rgb(f)])
        a = keras_seg.forward(batch, False)[0]
        b = run_export(batch)
        max_diff = max(max_diff, float(np.abs(a - b).max()))
        agree += int(((a >= thr) == (b >= thr)).sum())
        pixels += a.size
    return {'frames': len(files), 'frames_dir': str(frames_dir),
            'reference': 'keras' if reference == 'keras' else 'onnx_float32',
            'geometry': f'{keras_seg.input_mode} {list(keras_seg.input_size)}',
            'max_abs_prob_diff': max_diff, 'label_agreement': agree / pixels}
