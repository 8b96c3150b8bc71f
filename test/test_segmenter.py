"""Segmenter: batched inference on frames of any size (probabilities), precision, devices."""
import numpy as np
import pytest

from seg_perception.core import preprocess
from seg_perception.runtime.segmenter import Segmenter, gpu_available

SIZES = [(64, 96), (50, 70), (33, 47), (100, 30)]


def _scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus a little noise: structure the network responds to."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([255 * xx / w, 255 * yy / h, 127 + 100 * np.sin(xx / 7.0 + yy / 11.0)], -1)
    noise = np.random.default_rng(seed).normal(0, 10, base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope='module')
def segmenter(small_model_path):
    return Segmenter(small_model_path, device='cpu', precision='float32')


@pytest.fixture(scope='module')
def frames():
    return [_scene(h, w, i) for i, (h, w) in enumerate(SIZES)]


def test_batch_of_differing_sizes(segmenter, frames):
    results = segmenter.segment(frames)
    assert len(results) == len(frames)
    for res, (h, w) in zip(results, SIZES):
        assert res.probability.shape == (h, w) and res.probability.dtype == np.float32
        assert res.class_probabilities is None
        assert res.probability.min() >= 0.0 and res.probability.max() <= 1.0
    assert segmenter.last_forward_ms > 0


def test_segment_agrees_with_forward(segmenter, frames):
    batch, geoms = preprocess.prepare_batch(frames, 'pad')
    (bare,) = segmenter.forward(batch, False)
    assert bare.shape == batch.shape[:3] and bare.dtype == np.float32
    results = segmenter.segment(frames)
    for res, geom, prob in zip(results, geoms, bare):
        np.testing.assert_allclose(res.probability, prob[:geom.height, :geom.width], atol=1e-6)


def test_class_probabilities(segmenter, frames):
    res = segmenter.segment(frames[:2], class_probabilities=True)
    for r, (h, w) in zip(res, SIZES):
        assert r.class_probabilities.shape == (h, w, 2)
        assert r.class_probabilities.dtype == np.float32
        np.testing.assert_allclose(r.class_probabilities.sum(-1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(r.class_probabilities[:, :, 1], r.probability)


def test_bfloat16_close_to_float32(small_model_path, segmenter, frames):
    bf16 = Segmenter(small_model_path, device='cpu', precision='bfloat16')
    assert bf16.precision == 'bfloat16'
    for ref, res in zip(segmenter.segment(frames), bf16.segment(frames)):
        diff = np.abs(ref.probability - res.probability)
        # bfloat16 keeps 8 significant bits (relative rounding ~2e-3 per op). The logits of
        # this random-weight model reach a few hundred, so their absolute error is around 1:
        # enough to move pixels with a small logit margin (class boundaries), not the rest.
        # Hence bounds on the mean difference and the label agreement, not on the maximum.
        assert diff.mean() < 0.02, diff.mean()
        assert np.mean((ref.probability >= 0.5) == (res.probability >= 0.5)) > 0.98


def test_gpu_request_without_gpu(small_model_path):
    if gpu_available():
        pytest.skip('a GPU is present: the no-GPU error cannot be exercised')
    with pytest.raises(RuntimeError, match='gpu'):
        Segmenter(small_model_path, device='gpu')


@pytest.mark.parametrize('kwargs, match', [
    ({'device': 'tpu'}, 'device'), ({'precision': 'int8'}, 'precision'),
])
def test_invalid_options_before_loading(small_model_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Segmenter(small_model_path, **{'device': 'cpu', **kwargs})


@pytest.mark.parametrize('kwargs, match', [
    ({'input_mode': 'crop'}, 'input_mode'),
])
def test_invalid_options(segmenter, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Segmenter((segmenter.model, segmenter.card), device='cpu', **kwargs)


def test_bad_frame_rejected(segmenter):
    with pytest.raises(preprocess.InputError):
        segmenter.segment([np.zeros((4, 4, 3), np.uint8)])
    with pytest.raises(preprocess.InputError):
        segmenter.segment([])


def test_flip_tta_averages_the_frame_and_its_mirror(small_model_path) -> None:
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)  # no padding: exact mirror
    plain = Segmenter(small_model_path, device='cpu', precision='float32')
    tta = Segmenter(small_model_path, device='cpu', precision='float32', tta='flip')
    (p,) = plain.segment([frame])
    (m,) = plain.segment([np.ascontiguousarray(frame[:, ::-1])])
    (t,) = tta.segment([frame])
    expected = (p.probability + m.probability[:, ::-1]) / 2
    np.testing.assert_allclose(t.probability, expected, atol=2e-6)
    assert not np.allclose(t.probability, p.probability)
    with pytest.raises(ValueError, match='tta'):
        Segmenter(small_model_path, device='cpu', tta='rotate')
