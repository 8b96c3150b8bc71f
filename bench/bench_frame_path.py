"""The node's per-frame path outside the model, stage by stage, over real DDS.

For one camera frame the node does (``RoadSegmentationNode._process`` /
``CameraOutputs.publish``):

* ``decode``: sensor_msgs/Image -> numpy (:mod:`seg_perception.core.image_msgs`), frame check;
* ``preprocess``: the frame into the model batch (:func:`preprocess.prepare_batch`);
* ``host<->device``: the Segmenter's forward call minus the bare compiled model (timed
  separately on a tensor already on the device, interleaved, and subtracted);
* ``post``: probabilities back to the frame (restore) and the threshold into labels;
* ``overlay``: the colour overlay (:func:`render.overlay`), in the published encoding;
* ``message``: the road/label (mono8) and road/overlay Image messages;
* ``publish``: both, through an rclpy publisher to a subscriber in another process (real
  DDS; random ``ROS_DOMAIN_ID``, ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, the packaged
  Fast DDS large-image profile), reliable keep-last 1 like the node's outputs.

``total`` is the sum of the stage medians (the model's own forward pass excluded).
``grid`` (not in ``total``) is the node's ``road/grid`` step on the same frame
(``grid.enabled``): the probability through the cached remap tables into a 0.1 m grid of
40 x 20 m ahead of the vehicle, the OccupancyGrid values and message, and its publish; the
tables' build time (once per camera, pose and grid) is printed per frame size. Frames
are 1242x375 (KITTI) and 480x360 (CamVid), in rgb8 (overlay rgb8) and bgr8 (overlay bgr8),
paced at ``--rate`` Hz like a camera. The path outside the model does not depend on the
network, so by default the model is a stand-in with the FCN-8s input and output tensors
(uint8 NHWC in, 2-class softmax NHWC out at the input resolution) and a 1x1 convolution in
between: its forward pass is short, which keeps the subtraction for host<->device precise.
``--model`` times a real model file instead.

    python -m bench.bench_frame_path [--repeats 200] [--modes pad fit resize] [--model M]
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from bench.common import (  # noqa: E402 - the environment above must be set first
    REPO,
    machine_info,
    parse_size,
    print_table,
    write_results,
)
from seg_perception.core.choices import (  # noqa: E402
    BACKENDS,
    DEVICES,
    INPUT_MODES,
    OVERLAY_ENCODINGS,
)

STAGES = ('decode', 'preprocess', 'host_device', 'post', 'overlay', 'message', 'publish')
GRID = {'frame': 'base_link', 'resolution': 0.1, 'size': [40.0, 20.0], 'origin': [0.0, -10.0],
        'max_range': 40.0, 'free_threshold': None, 'occupied_threshold': None,
        'camera_pose': [1.0, 0.0, 1.65, 0.0, 0.02, 0.0], 'use_tf': False}  # KITTI-like height
GRID_TARGET_MS = 1.0
TARGET_MS = 2.0  # per 1242x375 frame, overlay and label both published
SUBSCRIBER = r'''
import sys
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy
from sensor_msgs.msg import Image
from seg_perception.ros import spin as ros_spin
ros_spin.init(sys.argv)
node = rclpy.create_node('frame_path_sink')
qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                 reliability=ReliabilityPolicy.RELIABLE)
from nav_msgs.msg import OccupancyGrid
for topic in sys.argv[1:]:
    kind = OccupancyGrid if topic.endswith('/grid') else Image
    node.create_subscription(kind, topic, lambda m: None, qos)
ex = SingleThreadedExecutor()
ex.add_node(node)
ros_spin.spin_until_signal(ex)
node.destroy_node()
rclpy.try_shutdown()
'''


def isolate_dds(sync_publication: bool = False) -> None:
    """A private DDS domain on localhost, and the node's DDS settings (large-image profile,
    asynchronous publication unless ``sync_publication``); before ``rclpy.init``.
    """
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.Random().randint(1, 101)))
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    from seg_perception.ros.dds_env import use_large_image_profile
    use_large_image_profile()
    if sync_publication:
        os.environ['RMW_FASTRTPS_PUBLICATION_MODE'] = 'SYNCHRONOUS'
    else:
        from seg_perception.ros.dds_env import use_async_publication
        use_async_publication()


def stand_in(mode: str, input_size: tuple[int, int]) -> tuple[Any, Any]:
    """``(keras.Model, ModelCard)``: uint8 (N, H, W, 3) -> 2-class logits (N, H, W, 2)."""
    import keras

    from seg_perception.model.model_file import ModelCard
    inputs = keras.Input((None, None, 3), dtype='uint8')
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    logits = keras.layers.Conv2D(2, 1, name='score')(x)
    model = keras.Model(inputs, logits)
    card = ModelCard(input_mode=mode, input_size=list(input_size), threshold=0.5)
    return model, card


def compute_only(seg: Any) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """``(put, compute)``: the Segmenter's own compiled model (``Segmenter.stages``) on a
    batch already on the device, each stage finished before it returns, for the subtraction.
    """
    import keras
    if getattr(seg, 'backend', 'keras') == 'onnxruntime':
        ort = seg._ort
        if ort.device == 'cpu':
            return (lambda b: b), (lambda b: ort.session.run(None, {ort.input_name: b}))
        import onnxruntime  # CUDA/TensorRT: input and output stay on the GPU (I/O binding)
        output = ort.session.get_outputs()[0].name

        def put_gpu(b: Any) -> Any:
            return onnxruntime.OrtValue.ortvalue_from_numpy(b, 'cuda', 0)

        def compute_gpu(x: Any) -> Any:
            binding = ort.session.io_binding()
            binding.bind_ortvalue_input(ort.input_name, x)
            binding.bind_output(output, 'cuda', 0)
            ort.session.run_with_iobinding(binding)
            return binding
        return put_gpu, compute_gpu
    put, compute, _ = seg.stages
    backend = keras.backend.backend()
    if backend == 'tensorflow':
        import tensorflow as tf
        device = '/GPU:0' if seg.device == 'gpu' else '/CPU:0'

        def put_tf(b: Any) -> Any:
            with tf.device(device):  # tf.constant stays on the host until used: copy now
                return tf.identity(put(b))
        return put_tf, compute
    if backend == 'jax':
        import jax
        return ((lambda b: put(b).block_until_ready()),
                (lambda x: jax.block_until_ready(compute(x))))
    return put, compute


class Sink:
    """A subscriber process on the output topics (so publishing delivers for real)."""

    def __init__(self, topics: list[str]) -> None:
        self.proc = subprocess.Popen([sys.executable, '-c', SUBSCRIBER, *topics], cwd=REPO,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def close(self) -> None:
        """SIGINT, then wait."""
        import signal
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Publishers:
    """The test-side rclpy node with the label and overlay publishers."""

    def __init__(self, ns: str) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from rclpy.signals import SignalHandlerOptions
        from sensor_msgs.msg import Image

        self.context = Context()
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node('frame_path_bench', context=self.context)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.RELIABLE)
        from nav_msgs.msg import OccupancyGrid
        self.topics = [f'{ns}/road/label', f'{ns}/road/overlay', f'{ns}/road/grid']
        self.label = self.node.create_publisher(Image, self.topics[0], qos)
        self.overlay = self.node.create_publisher(Image, self.topics[1], qos)
        self.grid = self.node.create_publisher(OccupancyGrid, self.topics[2], qos)

    def wait_matched(self, timeout: float = 60.0) -> None:
        """Until both publishers see the subscriber (raises TimeoutError)."""
        deadline = time.monotonic() + timeout
        while min(p.get_subscription_count() for p in (self.label, self.overlay, self.grid)) < 1:
            if time.monotonic() > deadline:
                raise TimeoutError('the subscriber process did not match')
            time.sleep(0.05)

    def close(self) -> None:
        """Destroy the node and the context."""
        self.node.destroy_node()
        self.context.try_shutdown()


def frame_message(h: int, w: int, encoding: str, seed: int = 0) -> Any:
    """An Image as it arrives from DDS (data in an ``array.array``), synthetic road scene."""
    import numpy as np
    from sensor_msgs.msg import Image

    from seg_perception.core.image_msgs import fill_image_msg
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    frame[h // 2:] //= 2
    msg = fill_image_msg(Image(), frame, encoding)
    msg.header.frame_id = 'camera'
    return msg


def camera_info(h: int, w: int) -> Any:
    """A pinhole CameraInfo for an ``w`` x ``h`` frame (KITTI's focal length at 1242 wide)."""
    from sensor_msgs.msg import CameraInfo
    f = 721.5 * w / 1242
    return CameraInfo(width=w, height=h, k=[f, 0.0, w / 2, 0.0, f, h / 2, 0.0, 0.0, 1.0],
                      d=[0.0] * 5, distortion_model='plumb_bob')


def grid_tables_ms(h: int, w: int, repeats: int = 5) -> float:
    """Median time (ms) to build the remap tables of the bench grid for a ``w`` x ``h`` frame."""
    from seg_perception.geometry.camera_grid import CameraGrid, GridConfig
    from seg_perception.ros.grid_output import info_fields
    config = GridConfig.from_settings(GRID, 1)
    times = []
    for _ in range(repeats):
        grid = CameraGrid(config)
        model = grid.model_for(info_fields(camera_info(h, w)), w, h)
        t0 = time.perf_counter()
        grid.projector.tables_for(model, config.optical_poses[0])
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def build_path(seg: Any, pubs: Publishers, encoding: str) -> Callable[[Any], dict[str, float]]:
    """One frame through the node's per-frame path; returns the stage times in seconds.

    Mirrors ``RoadSegmentationNode._process`` and ``CameraOutputs.publish`` stage by stage
    (keep in step
    with node.py): BGR frames stay BGR, the overlay is rendered into the reused overlay
    message, labels are copied into the reused label message, the overlay's subscriber
    count is re-read at most every ``SUBSCRIBER_CHECK_S``.
    """
    import numpy as np
    from sensor_msgs.msg import Image

    from seg_perception.core import image_msgs as ros_image
    from seg_perception.core import preprocess
    from seg_perception.geometry.camera_grid import GridConfig
    from seg_perception.ros.grid_output import GridOutputs
    from seg_perception.ros.outputs import CameraOutputs
    from seg_perception.ros.worker import Camera
    from seg_perception.runtime.pipeline import Pipeline

    pipe = Pipeline(seg)
    alpha, thr = 0.5, pipe.threshold
    out_bgr = encoding == 'bgr8'
    cam = CameraOutputs(lambda msg_type, topic: None, '', encoding, False)  # subscriber cache
    out_label = ros_image.OutgoingImage(Image(), 'mono8')
    out_overlay = ros_image.OutgoingImage(Image(), encoding)
    grid_cam = Camera('')
    grid = GridOutputs(GridConfig.from_settings(GRID, 1), [grid_cam], lambda t, topic: pubs.grid)
    clock = time.perf_counter

    def run(msg: Any) -> dict[str, float]:
        t0 = clock()
        image, bgr = ros_image.decode_frame(msg)
        preprocess.check_frame(image)
        t1 = clock()
        batch, geoms = seg.prepare([image], [bgr])
        t2 = clock()
        outputs = seg.forward(batch, False)
        t3 = clock()
        prob = seg.postprocess(outputs, geoms)[0].probability
        labels = pipe.labels(prob, None, thr)
        t4 = clock()
        h, w = labels.shape
        pipe.overlay(image, labels, alpha, bgr=bgr, out_bgr=out_bgr,
                     out=out_overlay.array(h, w))
        t5 = clock()
        np.copyto(out_label.array(h, w), labels)
        label_msg = out_label.message(msg.header)
        overlay_msg = out_overlay.message(msg.header)
        t6 = clock()
        pubs.label.publish(label_msg)
        if cam.subscribed(pubs.overlay, time.monotonic()):
            pubs.overlay.publish(overlay_msg)
        t7 = clock()
        if grid_cam.camera_info is None or grid_cam.camera_info.width != w:
            grid_cam.camera_info = camera_info(h, w)
        (_, state, _), = grid.publish([(grid_cam, msg.header, prob)])
        t8 = clock()
        assert state == 'ok', state
        return {'decode': t1 - t0, 'preprocess': t2 - t1, 'forward': t3 - t2,
                'post': t4 - t3, 'overlay': t5 - t4, 'message': t6 - t5, 'publish': t7 - t6,
                'grid': t8 - t7, 'batch': batch}
    return run


def measure(seg: Any, pubs: Publishers, size: tuple[int, int], encoding: str, repeats: int,
            warmup: int, rate: float) -> dict[str, Any]:
    """Median stage times (ms) of ``repeats`` paced frames after ``warmup`` frames."""
    h, w = size
    msg = frame_message(h, w, encoding)
    run = build_path(seg, pubs, encoding)
    put, compute = compute_only(seg)
    samples: dict[str, list[float]] = {k: [] for k in (*STAGES, 'forward', 'model', 'grid')}
    period = 1.0 / rate
    x = put(run(msg)['batch'])
    for i in range(warmup + repeats):
        start = time.perf_counter()
        # The bare model before the path on even frames, after it on odd ones: both calls
        # meet idle (just woken) and busy thread pools equally often.
        if i % 2 == 0:
            t0 = time.perf_counter()
            compute(x)
            model_s = time.perf_counter() - t0
        times = run(msg)
        x = put(times.pop('batch'))
        if i % 2 == 1:
            t0 = time.perf_counter()
            compute(x)
            model_s = time.perf_counter() - t0
        if i >= warmup:
            for k, v in times.items():
                samples[k].append(v)
            samples['model'].append(model_s)
        left = period - (time.perf_counter() - start)
        if left > 0:
            time.sleep(left)
    med = {k: statistics.median(v) * 1e3 for k, v in samples.items() if v}
    med['host_device'] = max(med['forward'] - med['model'], 0.0)
    med['total'] = sum(med[k] for k in STAGES)
    return med


def _segmenter(args: argparse.Namespace, mode: str, tmp: Any) -> tuple[Any, str]:
    """``(Segmenter, note)`` for ``mode``: ``--model``, else the stand-in (exported to ONNX
    for ``--backend onnxruntime``).
    """
    from seg_perception.runtime.segmenter import Segmenter
    ort = args.backend == 'onnxruntime'
    kwargs: dict[str, Any] = {'backend': 'onnxruntime'} if ort else {'device': args.device}
    if args.model:
        return (Segmenter(args.model, input_mode=mode, input_size=args.input_size, **kwargs),
                args.model)
    note = 'stand-in (1x1 convolution, FCN-8s input/output tensors)'
    model, card = stand_in(mode, args.input_size)
    if not ort:
        return Segmenter((model, card), **kwargs), note
    import pathlib

    from seg_perception.export.onnx_export import export_onnx
    path = export_onnx(model, card, pathlib.Path(tmp.name) / f'stand_in_{mode}.onnx')
    return Segmenter(path, **kwargs), note + ', ONNX'


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default=None, help='a model file to time instead of the '
                   'stand-in (.segmodel, or .onnx with --backend onnxruntime)')
    p.add_argument('--backend', default='keras', choices=BACKENDS)
    p.add_argument('--device', default='auto', choices=DEVICES)
    p.add_argument('--modes', nargs='+', default=['pad', 'fit', 'resize'],
                   choices=INPUT_MODES, help='input modes (one table each; default pad first)')
    p.add_argument('--input-size', type=parse_size, default=(192, 384),
                   help='HxW for resize (fit uses the height); default 192x384, the default '
                        "model's geometry")
    p.add_argument('--sizes', type=parse_size, nargs='+', default=[(375, 1242), (360, 480)])
    p.add_argument('--encodings', nargs='+', default=list(OVERLAY_ENCODINGS),
                   choices=OVERLAY_ENCODINGS, help='input = overlay encoding')
    p.add_argument('--repeats', type=int, default=200, help='timed frames per column')
    p.add_argument('--warmup', type=int, default=20, help='untimed frames first')
    p.add_argument('--rate', type=float, default=30.0, help='frames per second (paced)')
    p.add_argument('--sync-publication', action='store_true',
                   help="Fast DDS synchronous publication (the node's default is "
                        'asynchronous: publish returns once the sample is queued)')
    p.add_argument('--json', default=None, help='default bench/results/frame_path.json')
    args = p.parse_args(argv)

    isolate_dds(args.sync_publication)
    pubs = Publishers(f'/frame_path_{os.getpid()}')
    sink = Sink(pubs.topics)
    rows, raw = [], {}
    tmp = tempfile.TemporaryDirectory()
    try:
        pubs.wait_matched()
        for mode in args.modes:
            seg, note = _segmenter(args, mode, tmp)
            for h, w in args.sizes:
                for enc in args.encodings:
                    med = measure(seg, pubs, (h, w), enc, args.repeats, args.warmup, args.rate)
                    key = f'{mode} {w}x{h} {enc}'
                    raw[key] = med
                    rows.append({'mode': mode, 'size': f'{w}x{h}', 'encoding': enc, **med})
    finally:
        sink.close()
        pubs.close()
        tmp.cleanup()

    info = machine_info()
    publication = os.environ.get('RMW_FASTRTPS_PUBLICATION_MODE', 'rmw default')
    print(f'model: {note}; device {seg.device}; backend {getattr(seg, "backend", "keras")}; '
          f'{info["cpu"]}, {info["cpu_count"]} CPUs ({info["cpu_flags"]}), load '
          f'{info.get("load_average_1_5_15")}; Fast DDS publication {publication}; median of '
          f'{args.repeats} frames at {args.rate:g} Hz after {args.warmup}; ms per frame')
    for mode in args.modes:
        cols = [r for r in rows if r['mode'] == mode]
        table = []
        for stage in (*STAGES, 'total'):
            row = {'stage': stage if stage != 'total' else '**total outside the model**'}
            for r in cols:
                row[f'{r["size"]} {r["encoding"]}'] = r[stage]
            table.append(row)
        table.append({'stage': '(model forward, excluded)',
                      **{f'{r["size"]} {r["encoding"]}': r['model'] for r in cols}})
        table.append({'stage': 'grid: road/grid 0.1 m, 40 x 20 m (not in total)',
                      **{f'{r["size"]} {r["encoding"]}': r['grid'] for r in cols}})
        names = [f'{r["size"]} {r["encoding"]}' for r in cols]
        print_table(f'per-frame path outside the model, {mode} mode '
                    f'(input size {args.input_size[0]}x{args.input_size[1]})', table,
                    ['stage', *names])
        big = [r for r in cols if r['size'] == '1242x375']
        if big:
            worst = max(r['total'] for r in big)
            print(f'1242x375 total outside the model: {worst:.2f} ms (worst encoding); '
                  f'target <= {TARGET_MS:g} ms: {"met" if worst <= TARGET_MS else "not met"}')
            grid_worst = max(r['grid'] for r in big)
            print(f'1242x375 road/grid per frame: {grid_worst:.2f} ms (worst encoding); '
                  f'target <= {GRID_TARGET_MS:g} ms: '
                  f'{"met" if grid_worst <= GRID_TARGET_MS else "not met"}')
    tables = {f'{w}x{h}': grid_tables_ms(h, w) for h, w in args.sizes}
    print('road/grid remap tables, built once per camera, pose and grid: ' + ', '.join(
        f'{k} {v:.1f} ms' for k, v in tables.items()))
    out = write_results('frame_path', {'machine': info, 'model': note, 'rows': rows,
                                       'grid_tables_ms': tables,
                                       'repeats': args.repeats, 'rate': args.rate,
                                       'publication': publication}, args.json)
    print(f'\nresults: {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
