"""Geometric preprocessing: pad / resize into a batch and back."""
import numpy as np
import pytest

from seg_perception.core import preprocess
from seg_perception.core.preprocess import (
    FrameGeometry,
    InputError,
    prepare_batch,
    restore,
    round_up,
)


def _frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_round_up():
    assert [round_up(v) for v in (1, 31, 32, 33, 375, 1242)] == [32, 32, 32, 64, 384, 1248]
    assert round_up(10, 8) == 16


def test_pad_mixed_sizes_geometry_and_round_trip():
    sizes = [(375, 1242), (376, 1241), (370, 1226), (33, 47)]
    images = [_frame(h, w, i) for i, (h, w) in enumerate(sizes)]
    batch, geoms = prepare_batch(images, 'pad')
    assert batch.shape == (4, 384, 1248, 3) and batch.dtype == np.uint8
    for image, geom, slot in zip(images, geoms, batch):
        h, w = image.shape[:2]
        assert geom == FrameGeometry(h, w, 'pad', h, w)
        np.testing.assert_array_equal(slot[:h, :w], image)  # content placed unscaled
        # restore() crops any per-pixel output back, channels or not
        back = restore(slot.astype(np.float32), geom)
        assert back.dtype == np.float32 and back.flags.c_contiguous
        np.testing.assert_array_equal(back, image)
        back2d = restore(slot[:, :, 0].astype(np.float32), geom)
        assert back2d.shape == (h, w)


def test_pad_is_a_reflection_at_the_border():
    image = _frame(40, 50)
    batch, _ = prepare_batch([image], 'pad')
    assert batch.shape == (1, 64, 64, 3)
    slot = batch[0]
    # reflect-101: row 40 + j mirrors row 38 - j (the edge row is not repeated)
    for j in range(24):
        np.testing.assert_array_equal(slot[40 + j, :50], image[38 - j])
    for j in range(14):
        np.testing.assert_array_equal(slot[:40, 50 + j], image[:, 48 - j])


def test_pad_larger_than_frame_repeats_the_edge():
    small, big = _frame(8, 8, 1), _frame(100, 100, 2)
    batch, geoms = prepare_batch([small, big], 'pad')
    assert batch.shape == (2, 128, 128, 3)
    slot = batch[0]
    np.testing.assert_array_equal(slot[:8, :8], small)
    np.testing.assert_array_equal(slot[50, :8], small[7])    # edge row repeated
    np.testing.assert_array_equal(slot[:8, 99], small[:, 7])  # edge column repeated
    np.testing.assert_array_equal(restore(slot.astype(np.float32), geoms[0]), small)


def test_resize_geometry_and_round_trip():
    # a smooth image survives down- and up-scaling closely
    yy, xx = np.mgrid[0:375, 0:1242]
    smooth = np.stack([xx / 1242 * 255, yy / 375 * 255, (xx + yy) / 1617 * 255], -1)
    images = [smooth.astype(np.uint8), _frame(33, 47)]
    batch, geoms = prepare_batch(images, 'resize', (64, 96))
    assert batch.shape == (2, 64, 96, 3)
    assert geoms[0] == FrameGeometry(375, 1242, 'resize', 64, 96)
    assert geoms[1] == FrameGeometry(33, 47, 'resize', 64, 96)
    back = restore(batch[0].astype(np.float32), geoms[0])
    assert back.shape == (375, 1242, 3) and back.dtype == np.float32
    assert np.abs(back - images[0].astype(np.float32)).max() <= 8
    prob = restore(np.full((64, 96), 0.25, np.float32), geoms[1])
    assert prob.shape == (33, 47)
    np.testing.assert_allclose(prob, 0.25, atol=1e-6)
    one = restore(np.zeros((64, 96, 1), np.float32), geoms[1])
    assert one.shape == (33, 47, 1)  # a single channel axis is kept


@pytest.mark.parametrize('images, kwargs, match', [
    ([], {}, 'empty'),
    ([_frame(32, 32)], {'mode': 'crop'}, 'mode'),
    ([_frame(32, 32)], {'mode': 'resize', 'size': None}, 'multiple'),
    ([_frame(32, 32)], {'mode': 'resize', 'size': (50, 64)}, 'multiple'),
    ([np.zeros((4, 4, 3), np.uint8)], {}, 'too small'),
    ([np.zeros((32, 32, 3), np.float32)], {}, 'uint8'),
    ([np.zeros((32, 32, 4), np.uint8)], {}, 'RGB'),
    ([np.zeros((32, 32), np.uint8)], {}, 'RGB'),
    ([[[0, 0, 0]]], {}, 'numpy'),
    ([_frame(32, 32), np.zeros((32, 32, 3), np.int16)], {}, 'uint8'),
])
def test_bad_input_rejected(images, kwargs, match):
    with pytest.raises(InputError, match=match):
        prepare_batch(images, **kwargs)


def test_too_large_rejected_without_allocating():
    # a read-only broadcast view: no memory behind it, only the shape is checked
    huge = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (8000, 5001, 3))
    with pytest.raises(InputError, match='too large'):
        preprocess.check_frame(huge)


def test_fit_keeps_the_aspect_ratio_and_round_trips():
    # KITTI, Cityscapes (restored 2:1) and CamVid frames at a model height of 192
    sizes = {(375, 1242): 640, (256, 512): 384, (360, 480): 256}
    for (h, w), batch_width in sizes.items():
        image = _frame(h, w)
        batch, (geom,) = prepare_batch([image], 'fit', (192, 384))
        scaled_w = round(w * 192 / h)
        assert batch.shape == (1, 192, batch_width, 3)
        assert geom == FrameGeometry(h, w, 'fit', 192, scaled_w)
        assert abs(geom.inner_width / geom.inner_height - w / h) < 0.01   # not squashed
        prob = np.zeros(batch.shape[1:3], np.float32)
        prob[:, :scaled_w // 2] = 1.0                  # left half of the content
        back = restore(prob, geom)
        assert back.shape == (h, w)
        assert back[:, : w // 2 - 4].min() == 1.0 and back[:, w // 2 + 4:].max() == 0.0


def test_fit_batches_mixed_widths_and_pads_by_reflection():
    images = [_frame(375, 1242, 0), _frame(360, 480, 1)]
    batch, geoms = prepare_batch(images, 'fit', (96, 96))
    assert batch.shape == (2, 96, 320, 3)
    assert [g.inner_width for g in geoms] == [318, 128]
    slot, w = batch[0], geoms[0].inner_width
    np.testing.assert_array_equal(slot[:, w], slot[:, w - 2])     # reflect-101 border
    with pytest.raises(InputError, match='multiple of 32'):
        prepare_batch(images, 'fit', (100, 96))


@pytest.mark.parametrize('size', [(384, 192), (256, 192), (160, 120)])
def test_scale_image_averages_pixel_areas_beyond_2x(size):
    """Shrinking a real KITTI frame 3.2x to 7.8x stays within half a grey level of OpenCV's
    INTER_AREA on average and never differs by more than a few levels."""
    import pathlib

    import cv2
    frames = pathlib.Path(__file__).parent.parent / 'demo/frames/kitti/testing/image_2'
    image = cv2.imread(str(sorted(frames.glob('*.png'))[0]))
    w, h = size
    area = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    out = preprocess.scale_image(image, w, h)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    diff = np.abs(out.astype(np.float32) - area)
    assert diff.mean() < 0.6, diff.mean()
    assert np.percentile(diff, 99.9) <= 8


def test_scale_image_enlarges_bilinearly_and_writes_into_dst():
    image = _frame(24, 40)
    dst = np.empty((48, 80, 3), np.uint8)
    assert preprocess.scale_image(image, 80, 48, dst=dst) is dst
    import cv2
    np.testing.assert_array_equal(dst, cv2.resize(image, (80, 48)))
    big = _frame(375, 1242)                            # fit on KITTI: 1.95x, bilinear
    np.testing.assert_array_equal(preprocess.scale_image(big, 636, 192),
                                  cv2.resize(big, (636, 192), interpolation=cv2.INTER_LINEAR))
    flat = np.full((375, 1242), 77, np.uint8)          # a flat field stays flat when shrunk
    assert set(np.unique(preprocess.scale_image(flat, 636, 192))) == {77}


@pytest.mark.parametrize('height, width', [(64, 5), (64, 6), (64, 7), (64, 11), (64, 100),
                                           (40, 100), (375, 1242), (3, 4)])
def test_pad_in_place_is_copy_make_border_or_edge(height, width):
    """Both modes pad the batch slot in place: reflect-101 exactly as OpenCV's
    copyMakeBorder, or the edge repeated (numpy's 'edge' mode) for content too small."""
    import cv2
    image = _frame(height, width, width)
    hb, wb = round_up(max(height, 64)), 12 if width < 12 else round_up(width)
    pad_h, pad_w = hb - height, wb - width
    if pad_h < height and pad_w < width:
        expected = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_REFLECT_101)
    else:
        expected = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode='edge')
    slot = np.zeros((hb, wb, 3), np.uint8)
    slot[:height, :width] = image
    preprocess._pad_in_place(slot, height, width)
    np.testing.assert_array_equal(slot, expected)
