"""The lean per-frame path: BGR kept from decode to overlay, frames converted at the model
size, overlays rendered into reused message buffers, one host transfer per forward pass,
and the frame-path bench itself (a short run over real DDS)."""
from __future__ import annotations

import array
import json
import pathlib
import subprocess
import sys

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image

from seg_perception.core import preprocess, render
from seg_perception.core.image_msgs import (
    OutgoingImage,
    decode_frame,
    decode_image,
    fill_image_msg,
)

REPO = pathlib.Path(__file__).resolve().parent.parent
PALETTE = [[0, 0, 0], [255, 0, 255]]


def _frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_decode_frame_keeps_bgr_without_a_copy() -> None:
    rgb = _frame(30, 40)
    bgr_msg = fill_image_msg(Image(), np.ascontiguousarray(rgb[:, :, ::-1]), 'bgr8')
    image, is_bgr = decode_frame(bgr_msg)
    assert is_bgr and np.shares_memory(image, np.frombuffer(bgr_msg.data, np.uint8))
    assert np.array_equal(image[:, :, ::-1], rgb)
    image, is_bgr = decode_frame(fill_image_msg(Image(), rgb, 'rgb8'))
    assert not is_bgr and np.array_equal(image, rgb)
    image, is_bgr = decode_frame(fill_image_msg(Image(), rgb[:, :, 0].copy(), 'mono8'))
    assert not is_bgr and image.shape == (30, 40, 3)
    ok, png = cv2.imencode('.png', rgb[:, :, ::-1])
    msg = CompressedImage(format='png')
    msg.data = array.array('B', png.tobytes())
    image, is_bgr = decode_frame(msg)
    assert is_bgr and np.array_equal(image[:, :, ::-1], rgb)
    assert np.array_equal(decode_image(msg), rgb)  # the RGB API is unchanged


@pytest.mark.parametrize('mode, size', [('pad', None), ('fit', (64, 96)), ('resize', (64, 96))])
def test_bgr_frames_are_converted_inside_the_batch(mode: str, size: tuple | None) -> None:
    rgb = [_frame(75, 124, 1), _frame(50, 70, 2)]
    bgr = [np.ascontiguousarray(f[:, :, ::-1]) for f in rgb]
    want, geoms = preprocess.prepare_batch(rgb, mode, size)
    got, geoms2 = preprocess.prepare_batch(bgr, mode, size, bgr=True)
    assert np.array_equal(got, want) and geoms == geoms2
    mixed, _ = preprocess.prepare_batch([rgb[0], bgr[1]], mode, size, bgr=[False, True])
    assert np.array_equal(mixed, want)
    with pytest.raises(preprocess.InputError, match='flags'):
        preprocess.prepare_batch(rgb, mode, size, bgr=[True])


def test_segmenter_on_bgr_frames_equals_rgb(small_model_path: pathlib.Path) -> None:
    from seg_perception.runtime.segmenter import Segmenter

    seg = Segmenter(small_model_path, device='cpu', precision='float32')
    rgb = _frame(70, 100, 3)
    a = seg.segment([rgb])[0]
    b = seg.segment([np.ascontiguousarray(rgb[:, :, ::-1])], bgr=True)[0]
    assert np.array_equal(a.probability, b.probability)


def test_one_host_transfer_for_all_class_probabilities(small_model_path: pathlib.Path) -> None:
    from seg_perception.runtime.segmenter import Segmenter

    seg = Segmenter(small_model_path, device='cpu', precision='float32')
    batch, _ = seg.prepare([_frame(64, 96)])
    road, probs = seg.forward(batch, True)
    assert np.shares_memory(road, probs)  # the road channel is a view of the one transfer
    np.testing.assert_array_equal(road, probs[..., seg.road_class])
    (road_only,) = seg.forward(batch, False)
    np.testing.assert_allclose(road_only, road, atol=1e-6)


@pytest.mark.parametrize('classes', [[1], None, [1, 2], []])
def test_overlay_into_a_buffer_and_in_bgr(classes: list | None) -> None:
    image = _frame(40, 60, 4)
    labels = np.random.default_rng(5).integers(0, 3, (40, 60)).astype(np.uint8)
    palette = PALETTE + [[10, 200, 30]]
    want = render.overlay(image, labels, palette, 0.4, classes)
    out = np.full_like(image, 7)
    got = render.overlay(image, labels, palette, 0.4, classes, out=out)
    assert got is out and np.array_equal(out, want)
    # A BGR frame with the colours reversed gives the same overlay, channel-swapped.
    bgr = render.overlay(np.ascontiguousarray(image[:, :, ::-1]), labels,
                         render.reverse_channels(palette), 0.4, classes)
    assert np.array_equal(bgr[:, :, ::-1], want)
    # The one-colour path equals the straightforward formula.
    if classes == [1]:
        road = labels == 1
        blend = np.round(0.6 * image + 0.4 * np.array(PALETTE[1])).astype(np.uint8)
        assert np.abs(want[road].astype(int) - blend[road]).max() <= 1
        assert np.array_equal(want[~road], image[~road])


def test_overlay_rejects_a_bad_out_buffer() -> None:
    image, labels = _frame(10, 12), np.zeros((10, 12), np.uint8)
    for bad in (np.empty((10, 12, 3), np.float32), np.empty((12, 10, 3), np.uint8),
                np.empty((10, 24, 3), np.uint8)[:, ::2]):
        with pytest.raises(ValueError, match='out must be'):
            render.overlay(image, labels, PALETTE, out=bad)


def test_outgoing_image_reuses_its_buffer() -> None:
    out = OutgoingImage(Image(), 'rgb8')
    first = out.array(20, 30)
    first[:] = _frame(20, 30, 6)
    msg = out.message(fill_image_msg(Image(), np.zeros((1, 1), np.uint8), 'mono8').header)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (20, 30, 90, 'rgb8')
    assert np.array_equal(decode_image(msg), first)
    assert out.array(20, 30) is first  # same size: the same buffer, nothing allocated
    from rclpy.serialization import deserialize_message, serialize_message
    wire = serialize_message(msg)  # what publish sends is a copy taken at publish time
    first[:] = 0
    assert np.array_equal(decode_image(deserialize_message(wire, Image)),
                          _frame(20, 30, 6))
    other = out.array(10, 8)
    assert other.shape == (10, 8, 3) and (msg.width, msg.height, msg.step) == (8, 10, 24)
    mono = OutgoingImage(Image(), 'mono8')
    assert mono.array(5, 6).shape == (5, 6)
    with pytest.raises(ValueError, match='cannot build'):
        OutgoingImage(Image(), 'yuv422')
    with pytest.raises(RuntimeError, match='before array'):
        OutgoingImage(Image(), 'mono8').message(msg.header)


def test_frame_path_bench_runs(tmp_path: pathlib.Path) -> None:
    """A short run of bench/bench_frame_path.py (real DDS, stand-in model)."""
    out = tmp_path / 'frame_path.json'
    proc = subprocess.run(
        [sys.executable, '-m', 'bench.bench_frame_path', '--repeats', '3', '--warmup', '1',
         '--modes', 'fit', '--sizes', '375x1242', '--rate', '100', '--json', str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    stages = ('decode', 'preprocess', 'host_device', 'post', 'overlay', 'message', 'publish')
    assert {r['encoding'] for r in doc['rows']} == {'rgb8', 'bgr8'}
    for row in doc['rows']:
        assert all(row[s] >= 0 for s in stages)
        assert abs(row['total'] - sum(row[s] for s in stages)) < 1e-6
    assert '**total outside the model**' in proc.stdout
