"""Label images, colour overlays and probability images."""
import numpy as np
import pytest
from helpers import colorize

from seg_perception.core.metrics import quantize_probability
from seg_perception.core.render import label_image, overlay, probability_mono8

PALETTE = [[0, 0, 0], [255, 0, 255], [0, 200, 50]]


@pytest.fixture
def frame() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, (7, 9), dtype=np.uint8)
    return image, labels


def test_colorize_maps_each_id_to_its_colour(frame):
    _, labels = frame
    out = colorize(labels, PALETTE)
    assert out.shape == (7, 9, 3) and out.dtype == np.uint8
    for cls, colour in enumerate(PALETTE):
        assert (out[labels == cls] == colour).all()


def test_colorize_ids_beyond_palette_are_black():
    labels = np.array([[0, 1, 7]], np.uint8)
    out = colorize(labels, PALETTE[:2])
    np.testing.assert_array_equal(out[0], [[0, 0, 0], [255, 0, 255], [0, 0, 0]])


def test_overlay_blends_only_selected_classes(frame):
    image, labels = frame
    image_before, labels_before = image.copy(), labels.copy()
    alpha = 0.4
    out = overlay(image, labels, PALETTE, alpha=alpha)
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(image, image_before)  # inputs untouched
    np.testing.assert_array_equal(labels, labels_before)
    background = labels == 0
    np.testing.assert_array_equal(out[background], image[background])
    colours = np.asarray(PALETTE, np.float64)[labels]
    expected = np.rint((1 - alpha) * image + alpha * colours)
    diff = np.abs(out.astype(np.float64) - expected)[~background]
    assert diff.max() <= 1  # rounding of the blend


def test_overlay_explicit_classes_and_alpha_limits(frame):
    image, labels = frame
    only2 = overlay(image, labels, PALETTE, alpha=1.0, classes=[2])
    np.testing.assert_array_equal(only2[labels == 2],
                                  np.broadcast_to(PALETTE[2], only2[labels == 2].shape))
    np.testing.assert_array_equal(only2[labels != 2], image[labels != 2])
    np.testing.assert_array_equal(overlay(image, labels, PALETTE, alpha=0.0), image)
    np.testing.assert_array_equal(overlay(image, labels, PALETTE, classes=[]), image)
    # class 0 can be selected explicitly
    all_classes = overlay(image, labels, PALETTE, alpha=1.0, classes=[0, 1, 2])
    np.testing.assert_array_equal(all_classes, colorize(labels, PALETTE))


def test_overlay_accepts_a_non_contiguous_view(frame):
    image, labels = frame
    bgr_view = image[:, :, ::-1]
    out = overlay(bgr_view, labels, PALETTE, alpha=0.0)
    np.testing.assert_array_equal(out, bgr_view)


@pytest.mark.parametrize('alpha', [-0.1, 1.01, float('nan')])
def test_overlay_rejects_bad_alpha(frame, alpha):
    image, labels = frame
    with pytest.raises(ValueError, match='alpha'):
        overlay(image, labels, PALETTE, alpha=alpha)


def test_overlay_rejects_bad_inputs(frame):
    image, labels = frame
    with pytest.raises(ValueError):
        overlay(image, labels[:, :-1], PALETTE)
    with pytest.raises(TypeError):
        overlay(image.astype(np.float32), labels, PALETTE)
    with pytest.raises(ValueError):
        overlay(image[:, :, 0], labels, PALETTE)
    with pytest.raises(ValueError):
        overlay(image, labels, PALETTE, classes=[256])
    with pytest.raises(ValueError):
        overlay(image, labels, [[0, 0]])


def test_probability_mono8_uses_the_metrics_quantisation():
    prob = np.array([[0.0, 0.5, 1.0], [0.2, -0.3, 1.7]], np.float32)
    out = probability_mono8(prob)
    assert out.dtype == np.uint8 and out.shape == (2, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, [[0, 128, 255], [51, 0, 255]])
    np.testing.assert_array_equal(out, quantize_probability(prob))
    with pytest.raises(ValueError):
        probability_mono8(np.zeros((2, 2, 1), np.float32))


def test_label_image_contiguous_without_needless_copy():
    labels = np.zeros((4, 6), np.uint8)
    assert label_image(labels) is labels
    view = np.zeros((4, 12), np.uint8)[:, ::2]
    out = label_image(view)
    assert out.flags.c_contiguous and out.shape == (4, 6)
    np.testing.assert_array_equal(out, view)
    with pytest.raises(TypeError):
        label_image(labels.astype(np.int32))
    with pytest.raises(ValueError):
        label_image(np.zeros((4, 6, 1), np.uint8))
