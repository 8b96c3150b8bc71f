"""TensorFlow SavedModel export of a model file (TensorFlow Serving, TF-TRT)."""
from __future__ import annotations

import os
import pathlib
from typing import Any

import keras

from seg_perception.core.formats import CARD_NAME
from seg_perception.model.model_file import ModelCard


def export_saved_model(model: keras.Model, card: ModelCard, directory: str | os.PathLike,
                       ) -> pathlib.Path:
    """Export a TF SavedModel with a uint8 serving signature (TensorFlow backend only).

    The ``serve`` signature takes ``image``: uint8 (N, H, W, 3) RGB with H, W multiples of
    32 and returns ``probabilities``: float32 (N, H, W, C) softmax. The model card is
    written beside it as ``card.json``.
    """
    import tensorflow as tf  # deployment export needs TensorFlow itself

    directory = pathlib.Path(directory)
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(image: Any) -> Any:
        return {'probabilities': tf.nn.softmax(model(image, training=False), axis=-1)}

    archive.add_endpoint(
        name='serve', fn=serve,
        input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8, name='image')])
    archive.write_out(str(directory), verbose=False)
    (directory / CARD_NAME).write_text(card.to_json())
    return directory
