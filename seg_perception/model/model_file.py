"""Model files: a zip holding ``card.json`` (the model card) and ``weights.npz``.

The card carries everything needed to rebuild and use the model (architecture spec,
classes and colours, input resolution and mode, normalisation, training data, metrics,
recommended threshold, format version). Weights are stored by variable path, optionally
as float16 to halve the file. Loading rebuilds the model with the one builder
(:func:`seg_perception.model.fcn8s.build_fcn8s`), so any dtype policy can be chosen at load time.
Writes are atomic (temporary file in the same folder, then rename).
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import pathlib
import tempfile
import zipfile
import zlib
from typing import Any

import keras
import numpy as np

from seg_perception.core.choices import INPUT_MODES
from seg_perception.core.formats import (
    CARD_NAME,
    MODEL_FORMAT,
    MODEL_FORMAT_VERSION,
    WEIGHTS_NAME,
)
from seg_perception.core.preprocess import STRIDE
from seg_perception.model.fcn8s import CAFFE_MEAN_BGR, ModelSpec, build_fcn8s


class ModelFileError(Exception):
    """A model file that cannot be used; the message names the file and the problem."""


@dataclasses.dataclass
class ModelCard:
    """Everything a user of a model file needs to know about it.

    Attributes:
        spec: architecture (``ModelSpec.to_dict()``).
        class_names: one name per class id.
        palette: one RGB colour (0..255) per class id, for overlays.
        road_class: class id of the drivable road.
        input_size: (height, width) the model was trained at; the resize-mode target.
        input_mode: recommended mode, ``'fit'``, ``'pad'`` or ``'resize'`` (see preprocess).
        threshold: recommended road-probability threshold (from validation MaxF).
        normalization: what the in-model normalisation does (informational).
        training: data, split, command, epochs ... (free-form dict).
        metrics: evaluation results (fractions in [0, 1]).
        format_version: file format version.
    """

    spec: dict[str, Any] = dataclasses.field(default_factory=lambda: ModelSpec().to_dict())
    class_names: list[str] = dataclasses.field(default_factory=lambda: ['not_road', 'road'])
    palette: list[list[int]] = dataclasses.field(
        default_factory=lambda: [[0, 0, 0], [255, 0, 255]])
    road_class: int = 1
    input_size: list[int] = dataclasses.field(default_factory=lambda: [384, 1248])
    input_mode: str = 'pad'
    threshold: float = 0.5
    normalization: str = ('uint8 RGB in; inside the model: RGB->BGR, minus ImageNet means '
                          f'{list(CAFFE_MEAN_BGR)}')
    training: dict[str, Any] = dataclasses.field(default_factory=dict)
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    format_version: int = MODEL_FORMAT_VERSION

    @property
    def model_spec(self) -> ModelSpec:
        """The architecture as a :class:`ModelSpec`."""
        return ModelSpec.from_dict(self.spec)

    @property
    def num_classes(self) -> int:
        """Number of classes (the spec's default when the card leaves it out)."""
        return self.model_spec.num_classes

    def validate(self) -> None:
        """Raise ``ValueError`` if the card is inconsistent."""
        spec = self.model_spec
        n = spec.num_classes
        if len(self.class_names) != n:
            raise ValueError(f'{len(self.class_names)} class names for {n} classes')
        if len(self.palette) != n or any(
                len(c) != 3 or not all(0 <= int(v) <= 255 for v in c) for c in self.palette):
            raise ValueError(f'palette must hold {n} RGB colours in 0..255')
        if not 0 <= self.road_class < n:
            raise ValueError(f'road_class {self.road_class} outside 0..{n - 1}')
        if (len(self.input_size) != 2 or any(int(s) % STRIDE or int(s) < STRIDE
                                              for s in self.input_size)):
            raise ValueError(f'input_size must be 2 multiples of {STRIDE}, got {self.input_size}')
        if self.input_mode not in INPUT_MODES:
            raise ValueError(f"input_mode must be one of {INPUT_MODES}, got "
                             f"{self.input_mode!r}")
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise ValueError(f'threshold must be in [0, 1], got {self.threshold}')

    def to_json(self) -> str:
        """Serialise the card (with the file format tag)."""
        return json.dumps({'format': MODEL_FORMAT, **dataclasses.asdict(self)}, indent=2,
                          sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> 'ModelCard':
        """Parse and validate a card; raises ``ValueError`` on any problem."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.pop('format', None) != MODEL_FORMAT:
            raise ValueError(f'not a {MODEL_FORMAT} model card')
        version = data.get('format_version')
        if version != MODEL_FORMAT_VERSION:
            raise ValueError(f'unsupported format version {version!r} '
                             f'(this build reads version {MODEL_FORMAT_VERSION})')
        names = {f.name for f in dataclasses.fields(cls)}
        card = cls(**{k: v for k, v in data.items() if k in names})
        card.validate()
        return card


def _weight_key(variable: Any) -> str:
    return variable.path


def _weights_of(model: keras.Model) -> dict[str, Any]:
    """Model variables by path, without RNG state (dropout seed generators)."""
    return {_weight_key(v): v for v in model.variables if 'seed_generator' not in v.path}


def save_model(model: keras.Model, card: ModelCard, path: str | os.PathLike,
               weights_dtype: str = 'float32') -> pathlib.Path:
    """Write ``model`` and ``card`` to ``path`` atomically.

    Args:
        model: a model built by :func:`build_fcn8s` with ``card.spec``.
        card: its model card (validated before writing).
        path: destination file (conventionally ``*.segmodel``).
        weights_dtype: ``'float32'`` (exact) or ``'float16'`` (half the size; batch-norm
            statistics and other non-kernel variables stay float32).

    Returns:
        The written path.
    """
    if weights_dtype not in ('float32', 'float16'):
        raise ValueError(f"weights_dtype must be 'float32' or 'float16', got {weights_dtype!r}")
    card.validate()
    out_channels = model.output_shape[-1]
    if out_channels != card.num_classes:
        raise ValueError(f'model has {out_channels} outputs but the card says {card.num_classes}')
    arrays = {}
    for v in _weights_of(model).values():
        value = np.asarray(keras.ops.convert_to_numpy(v))
        if weights_dtype == 'float16' and v.path.endswith('kernel'):
            value = value.astype(np.float16)
        arrays[_weight_key(v)] = value
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + path.name + '.', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb') as f, zipfile.ZipFile(f, 'w', zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(CARD_NAME, card.to_json())
            zf.writestr(WEIGHTS_NAME, buf.getvalue(), compress_type=zipfile.ZIP_STORED)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_card(path: str | os.PathLike) -> ModelCard:
    """Read only the model card of a model file (fast; no weights)."""
    with _open_zip(path) as zf:
        return _card_from_zip(zf, path)


def _open_zip(path: str | os.PathLike) -> zipfile.ZipFile:
    p = pathlib.Path(path)
    if not p.is_file():
        raise ModelFileError(f'{p}: model file not found')
    try:
        return zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(f'{p}: not a seg_perception model file (truncated or corrupt: '
                             f'{exc})') from None


def _card_from_zip(zf: zipfile.ZipFile, path: Any) -> ModelCard:
    try:
        text = zf.read(CARD_NAME).decode('utf-8')
    except KeyError:
        raise ModelFileError(f'{path}: no {CARD_NAME} inside (not a seg_perception model)') \
            from None
    except (zipfile.BadZipFile, zlib.error, OSError, UnicodeDecodeError, EOFError) as exc:
        raise ModelFileError(f'{path}: corrupt model card ({exc})') from None
    try:
        return ModelCard.from_json(text)
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f'{path}: invalid model card: {exc}') from None


def load_model(path: str | os.PathLike, dtype: Any = None,
               expect_classes: int | None = None) -> tuple[keras.Model, ModelCard]:
    """Load a model file written by :func:`save_model`.

    Args:
        path: the model file.
        dtype: dtype policy to rebuild with (``None`` = global policy, e.g.
            ``'mixed_bfloat16'``).
        expect_classes: if given, refuse a model with another number of classes.

    Returns:
        ``(model, card)``; the model is built by :func:`build_fcn8s` (uint8 RGB in,
        float32 logits out).

    Raises:
        ModelFileError: missing, truncated or corrupt file, unknown version, or weights that
            do not fit the architecture; the message names the file and the problem.
    """
    with _open_zip(path) as zf:
        card = _card_from_zip(zf, path)
        if expect_classes is not None and card.num_classes != expect_classes:
            raise ModelFileError(f'{path}: model has {card.num_classes} classes, '
                                 f'expected {expect_classes}')
        try:
            raw = zf.read(WEIGHTS_NAME)
            with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
                weights = {k: npz[k] for k in npz.files}
        except KeyError:
            raise ModelFileError(f'{path}: no {WEIGHTS_NAME} inside') from None
        except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError) as exc:
            raise ModelFileError(f'{path}: corrupt weights ({exc})') from None
    model = build_fcn8s(card.model_spec, dtype=dtype)
    expected = _weights_of(model)
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        raise ModelFileError(f'{path}: weights do not fit the architecture '
                             f'(missing {missing[:3]}, unexpected {extra[:3]})')
    for key, var in expected.items():
        value = weights[key]
        if tuple(value.shape) != tuple(var.shape):
            raise ModelFileError(f'{path}: weight {key} has shape {value.shape}, '
                                 f'expected {tuple(var.shape)}')
        try:
            var.assign(value.astype(var.dtype))
        except (ValueError, TypeError) as exc:  # e.g. a non-numeric array
            raise ModelFileError(f'{path}: weight {key} cannot be used ({exc})') from None
    return model, card


def save_random_model(path: str | os.PathLike, spec: ModelSpec | None = None, seed: int = 0,
                      **card_fields: Any) -> pathlib.Path:
    """Write a model file with random, untrained weights (for tests and speed benchmarks).

    The score layers get small random weights instead of the builder's zeros, so outputs
    vary with the input; they mean nothing. ``card_fields`` override :class:`ModelCard`
    fields (``spec`` comes from ``spec``).
    """
    spec = spec or ModelSpec()
    keras.utils.set_random_seed(seed)
    model = build_fcn8s(spec)
    rng = np.random.default_rng(0)
    for name in ('score_fr', 'score_pool4', 'score_pool3'):
        layer = model.get_layer(name)
        kernel, bias = layer.get_weights()
        layer.set_weights([rng.normal(0, 0.05, kernel.shape).astype(np.float32), bias])
    card_fields.setdefault('training', {'dataset': 'none (random weights)'})
    return save_model(model, ModelCard(spec=spec.to_dict(), **card_fields), path)
