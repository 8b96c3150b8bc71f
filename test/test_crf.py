"""Dense CRF refinement: improves a noisy mask on a synthetic two-region image."""
import numpy as np
import pytest

from seg_perception.core.crf import CRFParams, refine
from seg_perception.core.metrics import road_iou

H, W = 96, 128


@pytest.fixture(scope='module')
def scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image with two flat colour regions plus noise, the road mask, a noisy probability."""
    rng = np.random.default_rng(0)
    gt = np.zeros((H, W), np.uint8)
    gt[H // 2:, :] = 1
    gt[H // 2 - 10:H // 2, W // 3:2 * W // 3] = 1  # a bump: the boundary is not a straight line
    image = np.where(gt[:, :, None] == 1, np.uint8([110, 110, 120]), np.uint8([60, 150, 70]))
    image = np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)
    # Weak, noisy evidence: about a quarter of the pixels are on the wrong side of 0.5.
    prob = np.clip(0.5 + 0.15 * (2.0 * gt - 1.0) + rng.normal(0, 0.22, gt.shape), 0, 1)
    return image, gt, prob.astype(np.float32)


def _iou(prob: np.ndarray, gt: np.ndarray) -> float:
    return road_iou((prob >= 0.5).astype(np.uint8), gt)


def test_refine_improves_noisy_mask(scene):
    image, gt, prob = scene
    before = _iou(prob, gt)
    refined = refine(image, prob, CRFParams())
    assert refined.shape == prob.shape and refined.dtype == np.float32
    assert refined.min() >= 0.0 and refined.max() <= 1.0
    after = _iou(refined, gt)
    assert before < 0.8  # the test input really is noisy
    assert after > before + 0.15, (before, after)
    assert after > 0.95


def test_reduced_resolution_also_improves(scene):
    image, gt, prob = scene
    before = _iou(prob, gt)
    for scale in (0.5, 0.25):
        refined = refine(image, prob, CRFParams(scale=scale))
        assert refined.shape == (H, W) and refined.dtype == np.float32
        assert np.isfinite(refined).all()
        assert _iou(refined, gt) > before + 0.15, scale


def test_class_probabilities_keep_shape_and_sum_to_one(scene):
    image, gt, prob = scene
    probs = np.stack([1.0 - prob, prob], axis=-1)
    refined = refine(image, probs, CRFParams(iterations=3))
    assert refined.shape == (H, W, 2) and refined.dtype == np.float32
    np.testing.assert_allclose(refined.sum(axis=-1), 1.0, atol=1e-4)
    # The binary entry point is the same CRF on [1 - p, p].
    np.testing.assert_allclose(refine(image, prob, CRFParams(iterations=3)), refined[:, :, 1],
                               atol=1e-6)
    # Three classes, odd size, reduced resolution: shapes survive the round trip.
    rng = np.random.default_rng(1)
    p3 = rng.dirichlet([1, 1, 1], size=(37, 53)).astype(np.float32)
    out = refine(image[:37, :53], p3, CRFParams(scale=0.5, iterations=2))
    assert out.shape == (37, 53, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, atol=1e-3)


def test_input_is_not_modified(scene):
    image, _, prob = scene
    image_copy, prob_copy = image.copy(), prob.copy()
    probs = np.stack([1.0 - prob, prob], axis=-1)
    probs_copy = probs.copy()
    refine(image, prob, CRFParams(iterations=1))
    refine(image, probs, CRFParams(iterations=1))
    np.testing.assert_array_equal(image, image_copy)
    np.testing.assert_array_equal(prob, prob_copy)
    np.testing.assert_array_equal(probs, probs_copy)


def test_saturated_probabilities_stay_finite(scene):
    image, gt, _ = scene
    hard = gt.astype(np.float32)  # exact 0 and 1: -log would be infinite without clipping
    refined = refine(image, hard, CRFParams(iterations=2))
    assert np.isfinite(refined).all()
    assert _iou(refined, gt) > 0.95


@pytest.mark.parametrize('kwargs, match', [
    ({'iterations': 0}, 'iterations'),
    ({'iterations': 51}, 'iterations'),
    ({'iterations': 2.5}, 'iterations'),
    ({'sxy': 0.0}, 'sxy'),
    ({'srgb': -1.0}, 'srgb'),
    ({'gaussian_sxy': float('nan')}, 'gaussian_sxy'),
    ({'compat': -1.0}, 'compat'),
    ({'gaussian_compat': float('inf')}, 'gaussian_compat'),
    ({'scale': 0.0}, 'scale'),
    ({'scale': 1.5}, 'scale'),
])
def test_invalid_params_rejected(kwargs, match):
    params = CRFParams(**kwargs)
    with pytest.raises(ValueError, match=match):
        params.validate()
    image = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match=match):
        refine(image, np.full((16, 16), 0.5, np.float32), params)


def test_default_params_valid():
    CRFParams().validate()
    CRFParams(iterations=1, scale=1.0, compat=0.0).validate()


@pytest.mark.parametrize('image, prob', [
    (np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.float32)),         # gray image
    (np.zeros((16, 16, 3), np.float32), np.zeros((16, 16), np.float32)),    # float image
    (np.zeros((16, 16, 3), np.uint8), np.zeros((16, 17), np.float32)),      # size mismatch
    (np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16), np.uint8)),        # uint8 prob
    (np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16, 1), np.float32)),   # one class
])
def test_bad_inputs_rejected(image, prob):
    with pytest.raises(ValueError):
        refine(image, prob)


def test_views_and_float64_accepted(scene):
    image, gt, prob = scene
    flipped = image[:, ::-1]          # a non-contiguous view
    out = refine(flipped, prob[:, ::-1].astype(np.float64), CRFParams(scale=0.5))
    assert out.dtype == np.float32 and out.shape == (H, W)
    assert _iou(out[:, ::-1], gt) > 0.9
