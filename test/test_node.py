"""The road_segmentation node over real DDS, as a subprocess started like the launch files.

One node process per scenario is shared by the tests of this module:

* ``single``: started exactly as ``road.launch.py`` would (config/road.yaml, the launch
  file's remaps and overrides via its own ``node_arguments``), on the small test model.
* ``multi``: two cameras in one node as ``multi_camera.launch.py`` would start it, with
  the compressed transport.
"""
from __future__ import annotations

import array
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np
import psutil
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy._rclpy_pybind11 import RCLError
from ros_harness import (
    REPO,
    SENSOR,
    Collector,
    HarnessError,
    NodeProcess,
    RosTestNode,
    executable,
    launch_command,
    ros_arguments,
)
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from seg_perception.core.image_msgs import decode_image, fill_image_msg
from seg_perception.model.model_file import read_card

pytestmark = pytest.mark.timeout(600)
RNG = np.random.default_rng(11)
NODE = 'road_segmentation'
START_TIMEOUT = 180.0  # TensorFlow import + model load + warm-up on a loaded 2-core machine


def stamp_of(msg: Any) -> tuple[int, int]:
    return msg.header.stamp.sec, msg.header.stamp.nanosec


class Frames:
    """Builds input messages with unique stamps (the test node's clock) and frame ids."""

    def __init__(self, ros: RosTestNode) -> None:
        self.ros = ros
        self.count = 0

    def header(self, frame_id: str = 'camera') -> Any:
        msg = Image()
        msg.header.stamp = self.ros.node.get_clock().now().to_msg()
        msg.header.frame_id = f'{frame_id}_{self.count}'
        self.count += 1
        return msg.header

    def image(self, frame: np.ndarray, encoding: str = 'rgb8', frame_id: str = 'camera') -> Image:
        return fill_image_msg(Image(), frame, encoding, self.header(frame_id))

    def compressed(self, frame_rgb: np.ndarray, ext: str = '.png',
                   frame_id: str = 'camera') -> CompressedImage:
        ok, data = cv2.imencode(ext, cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))
        assert ok
        msg = CompressedImage(format='png' if ext == '.png' else 'jpeg')
        msg.header = self.header(frame_id)
        msg.data = array.array('B', data.tobytes())
        return msg


def road_frame(height: int, width: int) -> np.ndarray:
    """A synthetic street-like RGB frame: sky, grey road trapezoid, green verges, noise."""
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = (60, 140, 60)
    frame[: height // 3] = (150, 190, 235)
    pts = np.array([[width * 0.45, height / 3], [width * 0.55, height / 3],
                    [width * 0.95, height - 1], [width * 0.05, height - 1]], np.int32)
    cv2.fillPoly(frame, [pts], (110, 110, 115))
    noise = RNG.integers(-12, 13, frame.shape)
    return np.clip(frame.astype(int) + noise, 0, 255).astype(np.uint8)


def diag_values(msg: DiagnosticArray, name: str) -> dict[str, str] | None:
    for status in msg.status:
        if status.name == name:
            return {kv.key: kv.value for kv in status.values}
    return None


class Running:
    """A started node process plus the topics the tests talk to."""

    def __init__(self, proc: NodeProcess, fqn: str, inputs: dict[str, str],
                 outputs: dict[str, str], cfg: dict[str, Any]) -> None:
        self.proc, self.fqn, self.inputs, self.outputs, self.cfg = (proc, fqn, inputs,
                                                                     outputs, cfg)


# -- the single-camera node, started as road.launch.py starts it -------------------------------
@pytest.fixture(scope='module')
def single(ros: RosTestNode, ros_namespace: str, small_model_path: Any,
           node_processes: Callable[..., NodeProcess]) -> Iterator[Running]:
    ns = ros_namespace
    command, args, cfg = launch_command('road.launch.py', {
        'model': str(small_model_path), 'namespace': ns, 'device': 'cpu',
        'image': f'{ns}/camera/image_raw', 'camera_info': f'{ns}/camera/camera_info'})
    proc = node_processes(command, args, name='road_segmentation_single')
    outputs = {k: f'{ns}/road/{k}' for k in ('label', 'overlay', 'probability', 'camera_info')}
    proc.wait_ready(ros, publishers=list(outputs.values()),
                    subscribers=[f'{ns}/camera/image_raw'], timeout=START_TIMEOUT)
    yield Running(proc, f'{ns}/{NODE}', {'image': f'{ns}/camera/image_raw',
                                         'camera_info': f'{ns}/camera/camera_info'},
                  outputs, cfg)


@pytest.fixture(scope='module')
def io(ros: RosTestNode, single: Running) -> Iterator[dict[str, Any]]:
    """Publishers and collectors on the single node's topics (matched before use)."""
    pub = ros.publisher(Image, single.inputs['image'])
    info_pub = ros.publisher(CameraInfo, single.inputs['camera_info'])
    out = {k: ros.collect(t, CameraInfo if k == 'camera_info' else Image)
           for k, t in single.outputs.items()}
    diag = ros.collect('/diagnostics', DiagnosticArray)
    ros.wait_matched(pub)
    ros.wait_matched(info_pub)
    yield {'pub': pub, 'info_pub': info_pub, 'out': out, 'diag': diag, 'frames': Frames(ros)}


def send_and_receive(ros: RosTestNode, io: dict[str, Any], msg: Image,
                     kinds: tuple[str, ...] = ('label', 'overlay', 'probability'),
                     timeout: float = 60.0) -> dict[str, Any]:
    """Publish ``msg`` (re-sent until answered) and return the outputs with its stamp."""
    stamp = stamp_of(msg)
    first = io['out'][kinds[0]]
    ros.request(lambda: io['pub'].publish(msg), first, lambda m: stamp_of(m) == stamp,
                timeout=timeout)
    return {k: io['out'][k].wait_for(lambda m: stamp_of(m) == stamp, timeout) for k in kinds}


@pytest.fixture(scope='module')
def reference(small_model_path: Any) -> Any:
    """The same pipeline in this process, for comparing the node's labels."""
    from seg_perception.runtime.pipeline import Pipeline
    from seg_perception.runtime.segmenter import Segmenter

    return Pipeline(Segmenter(small_model_path, device='cpu'))


def test_frames_come_back_with_the_input_header_and_size(
        ros: RosTestNode, single: Running, io: dict[str, Any], reference: Any,
        small_model_path: Any) -> None:
    card = read_card(small_model_path)
    frame = road_frame(90, 150)  # not a multiple of 32: padded inside, cropped back
    info = CameraInfo(width=150, height=90, k=[100.0, 0, 75, 0, 100, 45, 0, 0, 1])
    io['info_pub'].publish(info)
    deadline = time.monotonic() + 60
    while True:  # camera_info and image travel on different topics: retry until paired
        msg = io['frames'].image(frame)
        out = send_and_receive(ros, io, msg)
        try:
            relayed = io['out']['camera_info'].wait_for(
                lambda m, s=stamp_of(msg): stamp_of(m) == s, 2.0)
            break
        except HarnessError:
            assert time.monotonic() < deadline, 'road/camera_info never relayed'
            io['info_pub'].publish(info)
    for kind, reply in out.items():
        assert reply.header.frame_id == msg.header.frame_id, kind
        assert stamp_of(reply) == stamp_of(msg), kind
        assert (reply.height, reply.width) == (90, 150), kind
    assert relayed.header.frame_id == msg.header.frame_id and list(relayed.k) == list(info.k)

    label, overlay, prob = out['label'], out['overlay'], out['probability']
    assert (label.encoding, overlay.encoding, prob.encoding) == ('mono8', 'rgb8', 'mono8')
    labels = np.frombuffer(label.data, np.uint8).reshape(90, 150)
    assert set(np.unique(labels)) <= set(range(card.num_classes))
    q = np.frombuffer(prob.data, np.uint8).reshape(90, 150)
    road = labels == card.road_class
    assert (q[road] >= 127).all() and (q[~road] <= 128).all()  # threshold 0.5 in 0..255
    # Overlay: non-road pixels are the input exactly; road pixels are blended.
    over = decode_image(overlay)
    assert np.array_equal(over[~road], frame[~road])
    # Same labels as the pipeline in this process (same model, precision and geometry).
    expected = reference.run([frame])[0].labels
    assert (expected == labels).mean() > 0.99


@pytest.mark.parametrize('encoding', ['bgr8', 'mono8', 'rgba8', 'yuv422', 'bayer_rggb8'])
def test_other_encodings_are_served(ros: RosTestNode, io: dict[str, Any],
                                    encoding: str) -> None:
    rgb = road_frame(64, 96)
    if encoding == 'bgr8':
        data = rgb[:, :, ::-1]
    elif encoding == 'mono8':
        data = rgb[:, :, 1]
    elif encoding == 'rgba8':
        data = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    else:  # 2-byte yuv422 and 1-byte bayer: any bytes are a valid image
        data = rgb[:, :, :2] if encoding == 'yuv422' else rgb[:, :, 0]
    msg = io['frames'].image(np.zeros((1, 1), np.uint8), 'mono8')
    row = data.reshape(64, -1)
    msg.height, msg.width, msg.encoding, msg.step = 64, 96, encoding, row.shape[1]
    msg.data = array.array('B', np.ascontiguousarray(row).tobytes())
    out = send_and_receive(ros, io, msg, kinds=('label',))
    assert (out['label'].height, out['label'].width) == (64, 96)


def test_bgr8_frames_give_the_same_outputs_without_full_size_swaps(
        ros: RosTestNode, single: Running, io: dict[str, Any], small_model_path: Any) -> None:
    """A bgr8 camera: BGR is kept from decode to the overlay (the lean path); the outputs
    equal those of the same frame in rgb8 exactly, and diagnostics report the path's cost.
    """
    from seg_perception.core import render

    card = read_card(small_model_path)
    frame = road_frame(75, 124)
    rgb = send_and_receive(ros, io, io['frames'].image(frame))
    bgr = send_and_receive(ros, io, io['frames'].image(
        np.ascontiguousarray(frame[:, :, ::-1]), 'bgr8'))
    for kind in ('label', 'probability'):
        assert bytes(rgb[kind].data) == bytes(bgr[kind].data), kind
    assert bgr['overlay'].encoding == 'rgb8'  # overlay.encoding of config/road.yaml
    labels = np.frombuffer(bgr['label'].data, np.uint8).reshape(75, 124)
    want = render.overlay(frame, labels, card.palette, 0.5, [card.road_class])
    assert np.array_equal(decode_image(bgr['overlay']), want)
    assert np.array_equal(decode_image(rgb['overlay']), want)
    status = f'{single.fqn}: image'
    report = io['diag'].wait_for(
        lambda m: (diag_values(m, status) or {}).get('frame_path_ms', 'nan') != 'nan', 30)
    values = diag_values(report, status)
    assert 0 < float(values['frame_path_ms']) < 1000 and values['backend'] == 'keras'


def test_runtime_parameters_take_effect_on_the_next_frame(ros: RosTestNode, single: Running,
                                                          io: dict[str, Any],
                                                          small_model_path: Any) -> None:
    card = read_card(small_model_path)
    frame = road_frame(64, 96)
    assert ros.get_parameters(single.fqn, ['threshold'])['threshold'] == card.threshold
    try:
        results = ros.set_parameters(single.fqn, {'threshold': 0.0, 'overlay.alpha': 1.0})
        assert all(r.successful for r in results), [r.reason for r in results]
        out = send_and_receive(ros, io, io['frames'].image(frame))
        labels = np.frombuffer(out['label'].data, np.uint8)
        assert (labels == card.road_class).all()  # p >= 0 everywhere
        over = decode_image(out['overlay'])
        assert (over == np.array(card.palette[card.road_class], np.uint8)).all()  # alpha 1

        results = ros.set_parameters(single.fqn, {'overlay.alpha': 0.0})
        assert results[0].successful
        out = send_and_receive(ros, io, io['frames'].image(frame), kinds=('overlay',))
        assert np.array_equal(decode_image(out['overlay']), frame)  # alpha 0: the input

        for name, value in (('threshold', 1.5), ('threshold', -0.1), ('overlay.alpha', 2.0),
                            ('crf.iterations', 0), ('device', 'gpu'),
                            ('model_path', '/x.segmodel')):
            (result,) = ros.set_parameters(single.fqn, {name: value})
            assert not result.successful and result.reason, (name, value)
        values = ros.get_parameters(single.fqn, ['threshold', 'overlay.alpha', 'device'])
        assert values == {'threshold': 0.0, 'overlay.alpha': 0.0, 'device': 'cpu'}
    finally:
        results = ros.set_parameters(single.fqn, {'threshold': card.threshold,
                                                  'overlay.alpha': 0.5})
        assert all(r.successful for r in results)


def test_crf_can_be_switched_on_at_run_time(ros: RosTestNode, single: Running,
                                            io: dict[str, Any]) -> None:
    status = f'{single.fqn}: image'
    diag: Collector = io['diag']
    frame = road_frame(64, 96)
    try:
        results = ros.set_parameters(single.fqn, {'crf.enabled': True, 'crf.iterations': 2})
        assert all(r.successful for r in results), [r.reason for r in results]
        diag.clear()
        out = send_and_receive(ros, io, io['frames'].image(frame))
        assert (out['label'].height, out['label'].width) == (64, 96)
        report = diag.wait_for(lambda m: (diag_values(m, status) or {}).get('crf_ms', 'nan')
                               != 'nan', 30)
        values = diag_values(report, status)
        assert values['crf'] == 'on (2 iterations)' and float(values['crf_ms']) > 0
    finally:
        results = ros.set_parameters(single.fqn, {'crf.enabled': False})
        assert results[0].successful


def bad_messages(frames: Frames) -> dict[str, Image]:
    good = road_frame(64, 96)
    unsupported = frames.image(good)
    unsupported.encoding = '32FC1'
    short_step = frames.image(good)
    short_step.step = 96 * 3 - 4
    truncated = frames.image(good)
    truncated.data = truncated.data[: 64 * 96 * 3 - 100]
    empty = frames.image(good)
    empty.height = empty.width = empty.step = 0
    empty.data = array.array('B')
    huge = frames.image(good)
    huge.height, huge.width, huge.step = 8000, 8000, 24000
    return {'unsupported encoding': unsupported, 'step 284 is smaller': short_step,
            'truncated data': truncated, 'zero size (0x0)': empty,
            '8000x8000 is too large': huge}


def test_bad_inputs_are_logged_counted_and_skipped(ros: RosTestNode, single: Running,
                                                   io: dict[str, Any]) -> None:
    status = f'{single.fqn}: image'
    diag: Collector = io['diag']

    def bad_count() -> int:
        values = [diag_values(m, status) for m in diag.messages]
        values = [v for v in values if v]
        return int(values[-1]['frames_bad']) if values else 0

    diag.wait_for(lambda m: diag_values(m, status) is not None, 30)
    for expected_log, msg in bad_messages(io['frames']).items():
        before = bad_count()
        io['pub'].publish(msg)
        ros.spin_until(lambda b=before: bad_count() > b, 30, f'bad frame counted ({expected_log})',
                       single.proc)
        # ... and the next good frame is still served.
        out = send_and_receive(ros, io, io['frames'].image(road_frame(64, 96)), ('label',))
        assert out['label'].height == 64
        assert expected_log in single.proc.log(), expected_log
    assert single.proc.poll() is None


def test_burst_leaves_no_backlog_and_counts_drops(ros: RosTestNode, single: Running,
                                                  io: dict[str, Any]) -> None:
    status = f'{single.fqn}: image'
    frame = road_frame(64, 96)
    label = io['out']['label']
    send_and_receive(ros, io, io['frames'].image(frame), ('label',))  # warm and matched
    diag: Collector = io['diag']
    diag.clear()
    before = diag.wait_for(lambda m: diag_values(m, status) is not None, 30)
    v0 = diag_values(before, status)
    label.clear()
    sent: dict[tuple[int, int], float] = {}
    period = 0.01  # 100 Hz
    start = time.monotonic()
    for i in range(500):
        msg = io['frames'].image(frame)
        io['pub'].publish(msg)
        sent[stamp_of(msg)] = time.monotonic()
        # pace the publisher while serving callbacks (outputs arrive meanwhile)
        while (wait := start + (i + 1) * period - time.monotonic()) > 0:
            ros.spin_once(wait)
    last = stamp_of(msg)
    label.wait_for(lambda m: stamp_of(m) == last, 30)
    arrival = dict(zip((stamp_of(m) for m in label.messages), label.times))
    latency = arrival[last] - sent[last]
    # The processing period: time between consecutive outputs while the node was saturated.
    gaps = np.diff([t for s, t in zip(map(stamp_of, label.messages), label.times) if s in sent])
    inference_period = float(np.median(gaps))
    stamps = [stamp_of(m) for m in label.messages if stamp_of(m) in sent]
    assert stamps == sorted(stamps)  # in order, newest last
    assert len(stamps) < 500  # the node could not keep up with 100 Hz: frames were dropped
    assert latency < 2 * inference_period + 0.05, (latency, inference_period)
    ros.spin_for(2 * inference_period + 0.2)
    assert stamp_of(label.messages[-1]) == last  # nothing stale queued behind the last frame

    diag.clear()  # the next report is after the burst settled (the slot is empty)
    v1 = diag_values(diag.wait_for(lambda m: diag_values(m, status) is not None, 30), status)
    received = int(v1['frames_received']) - int(v0['frames_received'])
    processed = int(v1['frames_processed']) - int(v0['frames_processed'])
    dropped = int(v1['frames_dropped']) - int(v0['frames_dropped'])
    assert dropped > 0
    assert received == processed + dropped  # every received frame is processed or dropped
    lost = int(v1['frames_lost'])  # reported by rmw_fastrtps message_lost events
    assert lost >= int(v0['frames_lost']) >= 0
    print(f'burst: {received} received, {processed} processed, {dropped} dropped; '
          f'last latency {latency * 1e3:.0f} ms, period {inference_period * 1e3:.0f} ms')


def test_resident_memory_is_flat(ros: RosTestNode, single: Running, io: dict[str, Any]) -> None:
    node = psutil.Process(single.proc.pid)
    frame = road_frame(48, 64)
    label = io['out']['label']
    rss: list[int] = []
    baseline = 0
    rate = 1 / 150.0
    # A camera-like best-effort publisher: at 150 Hz on a loaded 2-core machine a reliable
    # one can fail a publish (Fast DDS: "cannot publish data"); that is the test's side.
    pub = ros.publisher(Image, single.inputs['image'], SENSOR)
    ros.wait_matched(pub)
    failed = 0
    start = time.monotonic()
    for i in range(2000):
        msg = io['frames'].image(frame)
        try:
            pub.publish(msg)
        except RCLError:
            failed += 1
        if i == 300:
            baseline = node.memory_info().rss
        elif i > 300 and i % 100 == 0:
            rss.append(node.memory_info().rss)
        while (wait := start + (i + 1) * rate - time.monotonic()) > 0:
            ros.spin_once(wait)
    last = stamp_of(msg)
    label.wait_for(lambda m: stamp_of(m) == last, 30)
    rss.append(node.memory_info().rss)
    growth = max(rss) / baseline - 1
    print(f'RSS baseline {baseline / 2**20:.1f} MiB, max {max(rss) / 2**20:.1f} MiB '
          f'({growth:+.2%}); {failed} of 2000 publishes failed on the test side')
    assert growth < 0.05 and failed < 100


# -- the shipped default model, started exactly as road.launch.py with defaults ---------------
def test_default_model_finds_the_road_in_real_frames(ros: RosTestNode, ros_namespace: str,
                                                     default_model: Any,
                                                     node_processes: Callable[..., NodeProcess],
                                                     ) -> None:
    from seg_perception.core.image_io import camvid_to_target, read_gray, read_rgb
    from seg_perception.core.metrics import road_iou

    ns = ros_namespace + '/default'
    command, args, cfg = launch_command('road.launch.py', {'namespace': ns})
    assert 'model_path' not in cfg['parameters']  # the packaged default via the share dir
    proc = node_processes(command, args, name='road_segmentation_default')
    proc.wait_ready(ros, publishers=[f'{ns}/road/label'], subscribers=[f'{ns}/image'],
                    timeout=START_TIMEOUT)
    pub = ros.publisher(Image, f'{ns}/image')
    label = ros.collect(f'{ns}/road/label', Image)
    ros.wait_matched(pub)
    frames = Frames(ros)
    card = read_card(default_model)
    demo = REPO / 'demo' / 'frames' / 'camvid'
    for path in sorted((demo / 'val').glob('*.png')):
        rgb = read_rgb(path)
        target = camvid_to_target(read_gray(demo / 'valannot' / path.name))
        msg = frames.image(rgb)
        reply = ros.request(lambda m=msg: pub.publish(m), label,
                            lambda m, s=stamp_of(msg): stamp_of(m) == s, 120)
        labels = np.frombuffer(reply.data, np.uint8).reshape(rgb.shape[:2])
        iou = road_iou(labels, target, card.road_class)
        assert iou > 0.6, (path.name, iou)
    proc.stop_and_check(signal.SIGINT)


# -- startup failures --------------------------------------------------------------------------
@pytest.mark.parametrize('params, message', [
    ({'device': 'tpu'}, "parameter 'device' must be one of"),
    ({'threshold': 1.5}, "parameter 'threshold'"),
    ({'input_size': [100, 200]}, "parameter 'input_size' must be"),
    ({'overlay.encoding': 'rgba8'}, "parameter 'overlay.encoding' must be one of"),
    ({'cameras': ['front', 'front']}, "parameter 'cameras' has duplicates"),
    ({'qos.input.reliability': 'sometimes'}, "parameter 'qos.input.reliability'"),
    ({'model_path': '/nonexistent/model.segmodel'}, 'model file not found'),
])
def test_invalid_parameters_fail_fast(ros_namespace: str, small_model_path: Any,
                                      params: dict[str, Any], message: str) -> None:
    args = ros_arguments([], {'model_path': str(small_model_path), **params},
                         namespace=ros_namespace + '/invalid')
    proc = NodeProcess(executable('road_segmentation', 'seg_perception.ros.node'), args,
                       name='road_segmentation_invalid')
    rc = proc.wait_exit(60)
    log = proc.log()
    assert rc != 0, log
    assert message in log and 'cannot start' in log, log
    assert 'Traceback' not in log, log


def test_corrupt_model_file_fails_fast(ros_namespace: str, small_model_path: Any,
                                       tmp_path: Any) -> None:
    corrupt = tmp_path / 'corrupt.segmodel'
    corrupt.write_bytes(small_model_path.read_bytes()[:50_000])  # truncated zip
    args = ros_arguments([], {'model_path': str(corrupt)}, namespace=ros_namespace + '/bad')
    proc = NodeProcess(executable('road_segmentation', 'seg_perception.ros.node'), args,
                       name='road_segmentation_corrupt')
    rc = proc.wait_exit(120)
    log = proc.log()
    assert rc != 0, log
    assert 'model file unusable' in log and str(corrupt) in log, log
    assert 'Traceback' not in log, log


# -- two cameras in one node, compressed transport (multi_camera.launch.py) ------------------
@pytest.fixture(scope='module')
def multi(ros: RosTestNode, ros_namespace: str, small_model_path: Any,
          node_processes: Callable[..., NodeProcess]) -> Iterator[Running]:
    ns = ros_namespace + '/multi'
    command, args, cfg = launch_command(
        'multi_camera.launch.py',
        {'model': str(small_model_path), 'namespace': ns, 'cameras': 'front,left',
         'camera_prefix': f'{ns}/cams/', 'image': 'image_raw', 'device': 'cpu'},
        extra_params={'transport': 'compressed', 'overlay.encoding': 'bgr8',
                      'overlay.color': [0, 255, 0], 'overlay.colour': [1, 2, 3]})
    proc = node_processes(command, args, name='road_segmentation_multi')
    inputs = {c: f'{ns}/cams/{c}/image_raw/compressed' for c in ('front', 'left')}
    outputs = {c: f'{ns}/{c}/road/label' for c in ('front', 'left')}
    proc.wait_ready(ros, publishers=list(outputs.values()), subscribers=list(inputs.values()),
                    timeout=START_TIMEOUT)
    yield Running(proc, f'{ns}/{NODE}', inputs, outputs, cfg)


def test_two_cameras_compressed_in_one_node(ros: RosTestNode, multi: Running) -> None:
    assert multi.cfg['cameras'] == ['front', 'left']
    frames = Frames(ros)
    pubs = {c: ros.publisher(CompressedImage, t, SENSOR) for c, t in multi.inputs.items()}
    labels = {c: ros.collect(t, Image) for c, t in multi.outputs.items()}
    overlays = {c: ros.collect(f'{multi.fqn.rsplit("/", 1)[0]}/{c}/road/overlay', Image)
                for c in pubs}
    for pub in pubs.values():
        ros.wait_matched(pub)
    sizes = {'front': (64, 96), 'left': (72, 120)}
    for ext in ('.png', '.jpg'):
        msgs = {c: frames.compressed(road_frame(*sizes[c]), ext, frame_id=c) for c in pubs}
        got: dict[str, Any] = {}

        want = {c: stamp_of(m) for c, m in msgs.items()}

        def publish_all(msgs: dict[str, CompressedImage] = msgs) -> None:
            for c, m in msgs.items():
                pubs[c].publish(m)

        for cam in pubs:
            got[cam] = ros.request(publish_all, labels[cam],
                                   lambda m, s=want[cam]: stamp_of(m) == s, 60)
        for cam, reply in got.items():
            assert reply.header.frame_id == msgs[cam].header.frame_id
            assert (reply.height, reply.width) == sizes[cam]
            over = overlays[cam].wait_for(lambda m, s=want[cam]: stamp_of(m) == s, 30)
            assert (over.height, over.width, over.encoding) == (*sizes[cam], 'bgr8')
            if ext == '.png':  # lossless: check the blend exactly (alpha 0.5, green road)
                frame = decode_image(msgs[cam])
                road = np.frombuffer(reply.data, np.uint8).reshape(sizes[cam]) == 1
                blended = decode_image(over).astype(int)
                assert np.array_equal(blended[~road], frame[~road])
                expected = (frame[road].astype(int) + np.array([0, 255, 0])) / 2
                assert np.abs(blended[road] - expected).max() <= 1
    assert "ignoring unknown parameters (typo?): ['overlay.colour']" in multi.proc.log()


def test_cameras_are_segmented_in_one_batch(ros: RosTestNode, multi: Running) -> None:
    frames = Frames(ros)
    pubs = [ros.publisher(CompressedImage, t, SENSOR) for t in multi.inputs.values()]
    diag = ros.collect('/diagnostics', DiagnosticArray)
    for pub in pubs:
        ros.wait_matched(pub)
    data = {c: frames.compressed(road_frame(64, 96), frame_id=c) for c in ('front', 'left')}
    status = f'{multi.fqn}: front'

    def batched(m: DiagnosticArray) -> bool:
        value = (diag_values(m, status) or {}).get('batch_frames', 'nan')
        return value != 'nan' and float(value) > 1.5

    # Both cameras stream faster than the node serves: every batch holds both frames.
    deadline = time.monotonic() + 60
    while not any(batched(m) for m in diag.messages):
        assert time.monotonic() < deadline, [diag_values(m, status) for m in diag.messages]
        for pub, msg in zip(pubs, data.values()):
            msg.header.stamp = ros.node.get_clock().now().to_msg()
            pub.publish(msg)
        ros.spin_for(0.05)
    multi.proc.stop_and_check(signal.SIGINT)


# -- shutdown (last: stops the shared single-camera node) ---------------------------------------
def test_sigterm_exits_0_without_traceback(single: Running) -> None:
    single.proc.stop_and_check(signal.SIGTERM)
    log = single.proc.log()
    assert 'configured:' in log and 'model=' in log  # the resolved configuration, logged once
    assert log.count('configured:') == 1
    assert 'finalized (from active)' in log  # SIGTERM took the lifecycle node to finalized
