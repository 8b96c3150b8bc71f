"""sensor_msgs Image / CompressedImage <-> numpy, without cv_bridge and without rclpy.

Works on rclpy messages and rosbags message objects alike (duck typing: only the field
names of ``sensor_msgs/msg/Image`` and ``sensor_msgs/msg/CompressedImage`` are used).

Decoding validates the message before touching its data and raises
:class:`ImageDecodeError` (a ``ValueError``) with a clear message and a short ``reason`` code
for anything unusable. Raw encodings are those rosbags-image knows
(:data:`rosbags.image.image.ENCODINGMAP`): rgb8/bgr8/rgba8/bgra8, mono8/mono16, bayer_*8/16,
yuv422/uyvy/yuyv/yuv422_yuy2, nv12/nv21 and the 16-bit colour encodings. Unlike rosbags-image
this module honours ``step`` (row padding) and follows the ROS convention for nv12/nv21:
``height`` is the image height and the buffer holds ``height * 3 / 2`` rows of ``step`` bytes.
"""
from __future__ import annotations

import array
import sys
from typing import Any

import cv2
import numpy as np
from rosbags.image.image import CONVERSIONS, ENCODINGMAP, Format

from seg_perception.core.preprocess import MAX_PIXELS

# Reason codes carried by ImageDecodeError (used for counting and log throttling).
REASONS = ('encoding', 'size', 'step', 'truncated', 'too_large', 'compressed')

SUPPORTED_ENCODINGS = tuple(sorted(ENCODINGMAP))
MONO8_ENCODINGS = ('mono8', '8UC1')  # what decode_mono8 reads
_NV = (Format.YUV_NV12, Format.YUV_NV21)
_YUV422 = (Format.YUV_UYVY, Format.YUV_YUYV)
_BAYER = (Format.BAYER_RG, Format.BAYER_BG, Format.BAYER_GB, Format.BAYER_GR)
_OUT_CHANNELS = {'mono8': 1, 'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4}
_LITTLE = sys.byteorder == 'little'


class ImageDecodeError(ValueError):
    """An image message that cannot be turned into an RGB frame.

    Attributes:
        reason: one of :data:`REASONS` (what is wrong, for counters and throttled logs).
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def is_compressed(msg: Any) -> bool:
    """True for a CompressedImage (it has ``format``), False for an Image."""
    return hasattr(msg, 'format')


def _as_uint8(data: Any) -> np.ndarray:
    """Message ``data`` (array.array('B'), bytes, numpy, list) as a 1-D uint8 array.

    No copy for anything exporting a buffer.
    """
    try:
        return np.frombuffer(data, np.uint8)
    except (TypeError, ValueError):
        return np.asarray(data, np.uint8).reshape(-1)


def decode_image(msg: Any) -> np.ndarray:
    """Decode a sensor_msgs Image or CompressedImage into an RGB frame.

    Args:
        msg: ``sensor_msgs/msg/Image`` (any encoding in :data:`SUPPORTED_ENCODINGS`) or
            ``sensor_msgs/msg/CompressedImage`` (JPEG or PNG), rclpy or rosbags object.

    Returns:
        (H, W, 3) uint8 RGB. For rgb8 input this is a view of ``msg.data`` (no copy; rows
        may be strided when ``step`` has padding): copy it before modifying it.

    Raises:
        ImageDecodeError: unsupported encoding, zero size, ``step`` smaller than a row,
            truncated data, more than ``preprocess.MAX_PIXELS`` pixels, or compressed data
            that does not decode.
    """
    if is_compressed(msg):
        return _decode_compressed(msg)
    return _decode_raw(msg)


def decode_frame(msg: Any) -> tuple[np.ndarray, bool]:
    """Decode like :func:`decode_image`, but keep BGR where the source is BGR.

    A bgr8 Image is returned as a view of ``msg.data`` and a JPEG/PNG as OpenCV decodes it
    (BGR), with no full-resolution channel swap: the Segmenter converts the (smaller) model
    input, and a bgr8 overlay is drawn on the frame as it is.

    Returns:
        ``(frame, is_bgr)``: (H, W, 3) uint8, in BGR order when ``is_bgr`` else RGB.

    Raises:
        ImageDecodeError: as :func:`decode_image`.
    """
    if is_compressed(msg):
        return _decode_compressed_bgr(msg), True
    if str(msg.encoding) == 'bgr8':
        return _decode_raw(msg, keep_bgr=True), True
    return _decode_raw(msg), False


def _decode_raw(msg: Any, keep_bgr: bool = False) -> np.ndarray:
    encoding = str(msg.encoding)
    info = ENCODINGMAP.get(encoding)
    if info is None:
        raise ImageDecodeError(
            f'unsupported encoding {encoding!r} (supported: {", ".join(SUPPORTED_ENCODINGS)})',
            'encoding')
    depth, fmt, typestr, channels = info
    itemsize = depth // 8
    view = _rows(msg, encoding, itemsize * channels, fmt)
    rows, width = view.shape[0], int(msg.width)
    code = CONVERSIONS.get((fmt, Format.RGB))
    if fmt != Format.RGB and code is None:  # pragma: no cover - all ENCODINGMAP formats have one
        raise ImageDecodeError(f'no RGB conversion for {encoding!r}', 'encoding')
    if itemsize == 2:
        view = view.view('>u2' if msg.is_bigendian else '<u2')
        if fmt in _BAYER:  # demosaic at full depth, then reduce (more accurate)
            rgb16 = cv2.cvtColor(view.astype(np.uint16), code)
            return (rgb16 >> 8).astype(np.uint8)
        view = (view >> 8).astype(np.uint8)  # 16 -> 8 bit, native order (one copy)
    elif typestr != 'uint8':  # pragma: no cover - ENCODINGMAP holds 8 and 16 bit only
        raise ImageDecodeError(f'unsupported sample type {typestr}', 'encoding')
    if channels > 1:
        view = view.reshape(rows, width, channels)
    if fmt == Format.RGB or (keep_bgr and fmt == Format.BGR and itemsize == 1):
        return view
    return cv2.cvtColor(view, code)


def _rows(msg: Any, encoding: str, pixel_bytes: int, fmt: Format | None) -> np.ndarray:
    """Validated (rows, width * pixel_bytes) uint8 view of ``msg.data`` (row stride ``step``).

    Raises:
        ImageDecodeError: zero or too large size, ``step`` below a row, truncated data.
    """
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f'image has zero size ({width}x{height})', 'size')
    if height * width > MAX_PIXELS:
        raise ImageDecodeError(f'image {width}x{height} is too large (maximum {MAX_PIXELS} '
                               'pixels)', 'too_large')
    row_bytes = width * pixel_bytes
    if step < row_bytes:
        raise ImageDecodeError(f'step {step} is smaller than one row of {width} {encoding} '
                               f'pixels ({row_bytes} bytes)', 'step')
    rows = height
    if fmt in _NV:
        if height % 2 or width % 2:
            raise ImageDecodeError(f'{encoding} needs an even width and height, got '
                                   f'{width}x{height}', 'size')
        rows = height * 3 // 2  # Y plane, then the interleaved half-height chroma plane
    elif fmt in _YUV422 and width % 2:
        raise ImageDecodeError(f'{encoding} needs an even width, got {width}', 'size')
    data = _as_uint8(msg.data)
    needed = step * rows
    if data.size < needed:
        raise ImageDecodeError(f'truncated data: {data.size} bytes, {encoding} {width}x{height} '
                               f'with step {step} needs {needed}', 'truncated')
    # Row-padded view of the buffer (no copy): (rows, row_bytes) with row stride `step`.
    return data[:needed].reshape(rows, step)[:, :row_bytes]


def decode_mono8(msg: Any) -> np.ndarray:
    """The values of a one-channel 8-bit Image (``mono8`` or ``8UC1``: label, ground-truth
    and probability images), without a colour conversion.

    Returns:
        (H, W) uint8, a view of ``msg.data`` (rows may be strided when ``step`` has padding).

    Raises:
        ImageDecodeError: another encoding, or as :func:`decode_image` (zero or too large
            size, ``step`` smaller than a row, truncated data).
    """
    encoding = str(msg.encoding)
    if encoding not in MONO8_ENCODINGS:
        raise ImageDecodeError(f'expected a mono8 label image, got encoding {encoding!r}',
                               'encoding')
    return _rows(msg, encoding, 1, None)


def _compressed_size(data: np.ndarray) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header without decoding, or None if unknown."""
    raw = data[:65536].tobytes() if data.size > 65536 else data.tobytes()
    if raw[:8] == b'\x89PNG\r\n\x1a\n' and len(raw) >= 24:
        return int.from_bytes(raw[16:20], 'big'), int.from_bytes(raw[20:24], 'big')
    if raw[:2] != b'\xff\xd8':
        return None
    i = 2
    while i + 9 <= len(raw):
        if raw[i] != 0xFF:
            return None
        marker = raw[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            return int.from_bytes(raw[i + 7:i + 9], 'big'), int.from_bytes(raw[i + 5:i + 7],
                                                                             'big')
        i += 2 + int.from_bytes(raw[i + 2:i + 4], 'big')
    return None


def _decode_compressed(msg: Any) -> np.ndarray:
    bgr = _decode_compressed_bgr(msg)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=bgr)


def _decode_compressed_bgr(msg: Any) -> np.ndarray:
    fmt = str(msg.format)
    if 'compresseddepth' in fmt.lower():
        raise ImageDecodeError(f'unsupported compressed format {fmt!r} (depth image)',
                               'encoding')
    data = _as_uint8(msg.data)
    if data.size == 0:
        raise ImageDecodeError('compressed image has no data', 'compressed')
    size = _compressed_size(data)
    if size is not None:  # refuse decompression bombs before decoding
        width, height = size
        if width <= 0 or height <= 0:
            raise ImageDecodeError(f'compressed image has zero size ({width}x{height})', 'size')
        if width * height > MAX_PIXELS:
            raise ImageDecodeError(f'compressed image {width}x{height} is too large (maximum '
                                   f'{MAX_PIXELS} pixels)', 'too_large')
    try:
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise ImageDecodeError(f'compressed data ({fmt!r}, {data.size} bytes) does not '
                               f'decode: {exc}', 'compressed') from None
    if bgr is None:
        raise ImageDecodeError(f'compressed data ({fmt!r}, {data.size} bytes) does not decode '
                               '(truncated, corrupt or not JPEG/PNG)', 'compressed')
    if bgr.shape[0] * bgr.shape[1] > MAX_PIXELS:
        raise ImageDecodeError(f'compressed image {bgr.shape[1]}x{bgr.shape[0]} is too large',
                               'too_large')
    return bgr


def numpy_to_image_fields(image: np.ndarray, encoding: str) -> dict[str, Any]:
    """Fields of an outgoing sensor_msgs/Image for a numpy frame (header excluded).

    Args:
        image: (H, W) uint8 for ``mono8``; (H, W, 3) uint8 for ``rgb8``/``bgr8``;
            (H, W, 4) uint8 for ``rgba8``/``bgra8``. Non-contiguous input is compacted.
        encoding: the ROS encoding the array is in.

    Returns:
        ``height``, ``width``, ``encoding``, ``is_bigendian`` (0), ``step`` (bytes per row,
        no padding) and ``data`` as ``array.array('B')`` filled with a single memcpy — the
        type rclpy's ``Image.data`` setter takes without a per-element check.

    Raises:
        ValueError: dtype, shape and encoding do not match.
    """
    channels = _OUT_CHANNELS.get(encoding)
    if channels is None:
        raise ValueError(f'cannot build {encoding!r} images (supported: {sorted(_OUT_CHANNELS)})')
    if image.dtype != np.uint8:
        raise ValueError(f'{encoding} needs uint8 data, got {image.dtype}')
    expected_ndim = 2 if channels == 1 else 3
    if image.ndim != expected_ndim or (channels > 1 and image.shape[2] != channels):
        shape = '(H, W)' if channels == 1 else f'(H, W, {channels})'
        raise ValueError(f'{encoding} needs shape {shape}, got {image.shape}')
    height, width = image.shape[:2]
    data = array.array('B')
    data.frombytes(np.ascontiguousarray(image))  # the one copy into the message buffer
    return {'height': int(height), 'width': int(width), 'encoding': encoding,
            'is_bigendian': 0, 'step': int(width * channels), 'data': data}


def fill_image_msg(msg: Any, image: np.ndarray, encoding: str, header: Any = None) -> Any:
    """Fill an Image message (rclpy or rosbags) from a numpy frame; returns ``msg``.

    Args:
        msg: an empty ``sensor_msgs/msg/Image`` to fill.
        image: see :func:`numpy_to_image_fields`.
        encoding: ``mono8``, ``rgb8``, ``bgr8``, ``rgba8`` or ``bgra8``.
        header: ``std_msgs/Header`` copied by reference (None leaves it untouched).
    """
    fields = numpy_to_image_fields(image, encoding)
    if not hasattr(type(msg), 'get_fields_and_field_types'):  # rosbags: numpy uint8 data
        fields['data'] = np.frombuffer(fields['data'], np.uint8)
    for name, value in fields.items():
        setattr(msg, name, value)
    if header is not None:
        msg.header = header
    return msg


class OutgoingImage:
    """A reusable outgoing rclpy ``sensor_msgs/msg/Image`` that numpy code writes into.

    :meth:`array` hands out a numpy view of the message's own ``data`` buffer (an
    ``array.array('B')``, which rclpy converts with one memcpy); render straight into it,
    then :meth:`message` stamps the header and returns the message for ``publish``. The
    buffer is kept while the frame size stays the same, so a camera stream allocates
    nothing per frame. ``publish`` copies the message before it returns, so the next frame
    may overwrite the buffer.

    Args:
        msg: an empty ``sensor_msgs/msg/Image`` (rclpy) to reuse.
        encoding: ``mono8``, ``rgb8``, ``bgr8``, ``rgba8`` or ``bgra8``.
    """

    def __init__(self, msg: Any, encoding: str) -> None:
        if encoding not in _OUT_CHANNELS:
            raise ValueError(f'cannot build {encoding!r} images (supported: '
                             f'{sorted(_OUT_CHANNELS)})')
        self.msg = msg
        self.encoding = encoding
        self.channels = _OUT_CHANNELS[encoding]
        self._view: np.ndarray | None = None

    def array(self, height: int, width: int) -> np.ndarray:
        """The (height, width[, channels]) uint8 view of the message data to fill.

        Contents are those of the previous frame (or zeros): overwrite every pixel.
        """
        shape = (height, width) if self.channels == 1 else (height, width, self.channels)
        if self._view is None or self._view.shape != shape:
            self._view = None  # release the old buffer's export before replacing it
            data = array.array('B', bytes(height * width * self.channels))
            msg = self.msg
            msg.height, msg.width, msg.encoding = int(height), int(width), self.encoding
            msg.is_bigendian, msg.step = 0, int(width * self.channels)
            msg.data = data  # the setter may copy (without field checks): view what it kept
            self._view = np.frombuffer(msg.data, np.uint8).reshape(shape)
        return self._view

    def message(self, header: Any) -> Any:
        """The message (data as last written into :meth:`array`) with ``header``."""
        if self._view is None:
            raise RuntimeError('OutgoingImage.message before array(): nothing written')
        self.msg.header = header
        return self.msg
