"""ros_image: every rosbags-image encoding, row padding, compressed images, clear errors and
outgoing Image building (rclpy and rosbags message objects)."""
from __future__ import annotations

import array

import cv2
import numpy as np
import pytest
from rosbags.image import message_to_cvimage
from rosbags.image.image import ENCODINGMAP
from sensor_msgs.msg import CompressedImage, Image

from seg_perception.core.image_msgs import (
    SUPPORTED_ENCODINGS,
    ImageDecodeError,
    decode_image,
    decode_mono8,
    fill_image_msg,
    numpy_to_image_fields,
)
from seg_perception.core.preprocess import MAX_PIXELS

RNG = np.random.default_rng(7)
H, W = 6, 10  # even sizes: valid for every encoding (yuv422 / nv12 need even sides)


def raw_msg(pixels: np.ndarray, encoding: str, height: int, width: int, pad: int = 0,
            bigendian: bool = False) -> Image:
    """An rclpy Image whose rows are ``pixels`` rows (bytes) plus ``pad`` junk bytes each."""
    rows = pixels.reshape(pixels.shape[0], -1).view(np.uint8).reshape(pixels.shape[0], -1)
    padded = np.concatenate([rows, np.full((rows.shape[0], pad), 0xAB, np.uint8)], axis=1)
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=int(bigendian),
                step=padded.shape[1])
    msg.data = array.array('B', padded.tobytes())
    return msg


def sample(encoding: str) -> tuple[np.ndarray, bool]:
    """Random pixel data (rows, ...) in the encoding's sample type, and its byte order."""
    depth, _, typestr, channels = ENCODINGMAP[encoding]
    rows = H * 3 // 2 if encoding in ('nv12', 'nv21') else H
    shape = (rows, W) if channels == 1 else (rows, W, channels)
    return RNG.integers(0, 2 ** depth, shape).astype(typestr), False


@pytest.mark.parametrize('encoding', SUPPORTED_ENCODINGS)
@pytest.mark.parametrize('pad', [0, 5])
def test_every_encoding_decodes_to_rgb(encoding: str, pad: int) -> None:
    pixels, _ = sample(encoding)
    msg = raw_msg(pixels, encoding, H, W, pad=pad * pixels.itemsize)
    rgb = decode_image(msg)
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8
    # Reference: rosbags-image on the same pixels without padding (it ignores step).
    if encoding in ('nv12', 'nv21'):  # ROS convention: height = image height
        code = cv2.COLOR_YUV2RGB_NV12 if encoding == 'nv12' else cv2.COLOR_YUV2RGB_NV21
        expected = cv2.cvtColor(pixels, code)
        assert np.array_equal(rgb, expected)
        return
    expected = message_to_cvimage(raw_msg(pixels, encoding, H, W), 'rgb8')
    if pixels.itemsize == 2:  # rosbags scales by 255/65535, we shift by 8: off by <= 1
        assert np.abs(rgb.astype(int) - expected.astype(int)).max() <= 1
    else:
        assert np.array_equal(rgb, expected)


def test_known_colours() -> None:
    rgb = RNG.integers(0, 256, (H, W, 3), np.uint8)
    assert np.array_equal(decode_image(raw_msg(rgb, 'rgb8', H, W)), rgb)
    assert np.array_equal(decode_image(raw_msg(rgb[:, :, ::-1].copy(), 'bgr8', H, W)), rgb)
    rgba = np.concatenate([rgb, np.full((H, W, 1), 9, np.uint8)], axis=2)
    assert np.array_equal(decode_image(raw_msg(rgba, 'rgba8', H, W)), rgb)
    bgra = np.ascontiguousarray(rgba[:, :, [2, 1, 0, 3]])
    assert np.array_equal(decode_image(raw_msg(bgra, 'bgra8', H, W)), rgb)
    gray = rgb[:, :, 0].copy()
    assert np.array_equal(decode_image(raw_msg(gray, 'mono8', H, W)), np.stack([gray] * 3, 2))


def test_sixteen_bit_both_byte_orders() -> None:
    mono = RNG.integers(0, 65536, (H, W)).astype(np.uint16)
    expected = np.repeat((mono >> 8).astype(np.uint8)[:, :, None], 3, axis=2)
    little = raw_msg(mono.astype('<u2'), 'mono16', H, W)
    big = raw_msg(mono.astype('>u2'), 'mono16', H, W, bigendian=True)
    assert np.array_equal(decode_image(little), expected)
    assert np.array_equal(decode_image(big), expected)
    rgb16 = RNG.integers(0, 65536, (H, W, 3)).astype('>u2')
    assert np.array_equal(decode_image(raw_msg(rgb16, 'rgb16', H, W, pad=4, bigendian=True)),
                          (rgb16.astype(np.uint16) >> 8).astype(np.uint8))


def test_rgb8_with_row_padding_is_a_view_of_the_message_data() -> None:
    rgb = RNG.integers(0, 256, (H, W, 3), np.uint8)
    msg = raw_msg(rgb, 'rgb8', H, W, pad=7)
    out = decode_image(msg)
    assert np.array_equal(out, rgb)
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))  # no copy of the buffer


def test_rosbags_message_objects() -> None:
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.LATEST)
    RImage = store.types['sensor_msgs/msg/Image']
    RHeader = store.types['std_msgs/msg/Header']
    RTime = store.types['builtin_interfaces/msg/Time']
    bgr = RNG.integers(0, 256, (H, W, 3), np.uint8)
    header = RHeader(stamp=RTime(sec=1, nanosec=2), frame_id='cam')
    msg = RImage(header=header, height=H, width=W, encoding='bgr8', is_bigendian=0,
                 step=W * 3 + 2, data=np.concatenate(
                     [bgr.reshape(H, -1), np.zeros((H, 2), np.uint8)], 1).reshape(-1))
    assert np.array_equal(decode_image(msg), bgr[:, :, ::-1])
    out = RImage(header=header, height=0, width=0, encoding='', is_bigendian=0, step=0,
                 data=np.zeros(0, np.uint8))
    fill_image_msg(out, bgr, 'bgr8', header)
    assert isinstance(out.data, np.ndarray) and out.step == W * 3
    assert np.array_equal(decode_image(out), bgr[:, :, ::-1])
    RCompressed = store.types['sensor_msgs/msg/CompressedImage']
    ok, png = cv2.imencode('.png', bgr)
    assert ok
    cmsg = RCompressed(header=header, format='png', data=png.reshape(-1))
    assert np.array_equal(decode_image(cmsg), bgr[:, :, ::-1])


@pytest.mark.parametrize('ext', ['.png', '.jpg'])
def test_compressed(ext: str) -> None:
    rgb = np.zeros((40, 64, 3), np.uint8)
    rgb[:20] = (200, 30, 10)
    rgb[20:] = (10, 40, 220)
    ok, data = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    msg = CompressedImage(format='rgb8; jpeg compressed bgr8' if ext == '.jpg' else 'png')
    msg.data = array.array('B', data.tobytes())
    out = decode_image(msg)
    assert out.shape == (40, 64, 3)
    if ext == '.png':
        assert np.array_equal(out, rgb)
    else:  # lossy: compare away from the colour edge (chroma subsampling blurs it)
        inner = np.r_[0:12, 28:40]
        assert np.abs(out[inner].astype(int) - rgb[inner].astype(int)).max() <= 12


def _error(msg: object) -> ImageDecodeError:
    with pytest.raises(ImageDecodeError) as info:
        decode_image(msg)
    assert isinstance(info.value, ValueError)
    return info.value


def test_errors_are_clear() -> None:
    rgb = RNG.integers(0, 256, (H, W, 3), np.uint8)
    bad = raw_msg(rgb, 'rgb8', H, W)
    bad.encoding = '32FC1'
    err = _error(bad)
    assert err.reason == 'encoding' and "'32FC1'" in str(err)
    bad = raw_msg(rgb, 'weird', H, W)
    assert _error(bad).reason == 'encoding'

    zero = Image(height=0, width=0, encoding='rgb8', step=0)
    err = _error(zero)
    assert err.reason == 'size' and '0x0' in str(err)

    short_step = raw_msg(rgb, 'rgb8', H, W)
    short_step.step = W * 3 - 1
    err = _error(short_step)
    assert err.reason == 'step' and 'step 29' in str(err)

    truncated = raw_msg(rgb, 'rgb8', H, W)
    truncated.data = truncated.data[:-1]
    err = _error(truncated)
    assert err.reason == 'truncated' and '179 bytes' in str(err)

    claims_huge = Image(height=8000, width=8000, encoding='rgb8', step=24000)
    err = _error(claims_huge)
    assert err.reason == 'too_large' and '8000x8000' in str(err)

    odd = raw_msg(RNG.integers(0, 256, (H, W + 1, 2), np.uint8), 'yuv422', H, W + 1)
    assert _error(odd).reason == 'size'


def test_real_8000x8000_frame_is_rejected_without_decoding() -> None:
    assert 8000 * 8000 > MAX_PIXELS
    msg = Image(height=8000, width=8000, encoding='mono8', step=8000)
    msg.data = array.array('B', bytes(8000 * 8000))
    assert _error(msg).reason == 'too_large'


def test_compressed_errors() -> None:
    msg = CompressedImage(format='jpeg')
    assert _error(msg).reason == 'compressed'  # no data
    msg.data = array.array('B', b'\xff\xd8\xff\xe0 this is not a jpeg at all')
    assert _error(msg).reason == 'compressed'
    ok, png = cv2.imencode('.png', np.zeros((8, 8, 3), np.uint8))
    assert ok
    cut = CompressedImage(format='png')
    cut.data = array.array('B', png.tobytes()[:40])
    assert _error(cut).reason == 'compressed'
    # A PNG header that claims 100000 x 100000 pixels is refused before decoding.
    bomb = bytearray(png.tobytes())
    bomb[16:24] = (100000).to_bytes(4, 'big') * 2
    big = CompressedImage(format='png')
    big.data = array.array('B', bytes(bomb))
    assert _error(big).reason == 'too_large'
    depth = CompressedImage(format='16UC1; compressedDepth png')
    depth.data = array.array('B', png.tobytes())
    assert _error(depth).reason == 'encoding'


@pytest.mark.parametrize('encoding', ['mono8', 'rgb8', 'bgr8', 'rgba8'])
def test_fill_image_msg_round_trip(encoding: str) -> None:
    channels = {'mono8': 1, 'rgb8': 3, 'bgr8': 3, 'rgba8': 4}[encoding]
    shape = (H, W) if channels == 1 else (H, W, channels)
    frame = RNG.integers(0, 256, shape, np.uint8)
    header = Image().header
    header.frame_id = 'cam'
    msg = fill_image_msg(Image(), frame, encoding, header)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (H, W, W * channels, encoding)
    assert msg.header.frame_id == 'cam'
    assert isinstance(msg.data, array.array) and msg.data.typecode == 'B'
    assert bytes(msg.data) == frame.tobytes()


def test_fill_image_msg_compacts_views_and_validates() -> None:
    rgb = RNG.integers(0, 256, (H, W, 3), np.uint8)
    msg = fill_image_msg(Image(), rgb[:, :, ::-1], 'bgr8')  # non-contiguous view
    assert np.array_equal(decode_image(msg), rgb)
    with pytest.raises(ValueError, match='uint8'):
        numpy_to_image_fields(rgb.astype(np.uint16), 'rgb8')
    with pytest.raises(ValueError, match='shape'):
        numpy_to_image_fields(rgb, 'mono8')
    with pytest.raises(ValueError, match='cannot build'):
        numpy_to_image_fields(rgb, 'yuv422')


def test_decode_mono8_keeps_the_values_and_honours_step() -> None:
    labels = RNG.integers(0, 256, (H, W), np.uint8)
    for encoding in ('mono8', '8UC1'):
        msg = raw_msg(labels, encoding, H, W, pad=3)
        out = decode_mono8(msg)
        assert out.shape == (H, W) and np.array_equal(out, labels)
        assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))  # no copy
    with pytest.raises(ImageDecodeError, match="expected a mono8 label image, got encoding "
                                               "'rgb8'") as exc:
        decode_mono8(raw_msg(RNG.integers(0, 256, (H, W, 3), np.uint8), 'rgb8', H, W))
    assert exc.value.reason == 'encoding'
    short = raw_msg(labels, 'mono8', H, W)
    short.data = short.data[:-1]
    with pytest.raises(ImageDecodeError, match='truncated') as exc:
        decode_mono8(short)
    assert exc.value.reason == 'truncated'
