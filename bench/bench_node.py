"""road_segmentation node benchmarks over real DDS (node processes started like the tests).

(a) Node overhead: per-frame round trip through the node (publish an rgb8 frame, receive
    road/label, road/overlay and road/probability: decode + segment + render + publish + DDS
    both ways) against the bare ``Segmenter.segment`` call on the same frame, same model,
    device and precision, in this process. Runs interleaved (node, bare, node, bare, ...)
    and sequential (never both at once). Target: overhead <= 10 %. Also against the node's
    own ``segment`` time for the same frames (from its /diagnostics ``inference_ms``), which
    is immune to load changes between the two processes.
(b) Three cameras in one node (one batched inference) against three single-camera nodes:
    throughput (labels/s over all cameras while every camera streams faster than the nodes
    can serve, i.e. saturated steady state) and resident memory (RSS of the one node against
    the sum of the three). Targets: throughput ratio >= 1.5, memory ratio reported.

The nodes subscribe with their default best-effort QoS; this process publishes the frames
with the packaged Fast DDS profile for large images (config/fastdds_large_images.xml).

    python -m bench.bench_node [--model M] [--size 375x1242] [--frames 10] [--duration 20]

Without --model: models/road_fcn8s_vgg16.segmodel if present, else a random-weights FCN-8s with
the tests' small-model spec (VGG16-BN, light head) written to a temporary file.
Prints markdown tables and writes bench/results/node.json.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import random
import signal
import statistics
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from bench.common import (  # noqa: E402 - the environment above must be set first
    REPO,
    machine_info,
    parse_size,
    print_table,
    resolve_model,
    write_results,
)
from seg_perception.core.params import DEVICES  # noqa: E402

START_TIMEOUT = 300.0


class Bench:
    """Test-side ROS node plus the node processes of one benchmark run."""

    def __init__(self, model: pathlib.Path, device: str, input_mode: str = '') -> None:
        sys.path.insert(0, str(REPO / 'test'))  # reuse the integration-test harness
        import ros_harness

        self.h = ros_harness
        self.model, self.device, self.input_mode = model, device, input_mode
        self.ros = ros_harness.RosTestNode(ros_harness.make_context(), 'bench_node')
        self.procs: list[Any] = []
        self.count = 0

    def start(self, namespace: str, params: dict[str, Any], source: str | None = None) -> Any:
        """Start a node process in ``namespace`` with ``params`` (plus model and device);
        ``source``: run the node of another checkout (``python -m seg_perception.ros.node`` with
        that folder first on PYTHONPATH) instead of this one's.
        """
        h = self.h
        args = h.ros_arguments(params={'model_path': str(self.model), 'device': self.device,
                                       'input_mode': self.input_mode, **params},
                               namespace=namespace, log_level='warn')
        command = h.executable('road_segmentation', 'seg_perception.ros.node')
        env = None
        if source:
            command = [sys.executable, '-m', 'seg_perception.ros.node']
            env = {'PYTHONPATH': os.pathsep.join(  # added to this environment
                [str(pathlib.Path(source).resolve()), os.environ.get('PYTHONPATH', '')])}
        proc = h.NodeProcess(command, args, name=f'bench{namespace.replace("/", "_")}',
                             env=env)
        self.procs.append(proc)
        return proc

    def connect(self, ns: str, params: dict[str, Any], source: str | None = None,
                ) -> tuple[Any, Any, list[Any]]:
        """Start a node in ``ns`` and connect to it: (process, image publisher, collectors of
        road/label, road/overlay, road/probability), every match established.
        """
        from sensor_msgs.msg import Image

        ros = self.ros
        proc = self.start(ns, params, source=source)
        outs = [ros.collect(f'{ns}/road/{k}', Image) for k in ('label', 'overlay', 'probability')]
        pub = ros.publisher(Image, f'{ns}/image')
        proc.wait_ready(ros, publishers=[c.topic for c in outs], subscribers=[f'{ns}/image'],
                        timeout=START_TIMEOUT)
        ros.wait_matched(pub)
        for col in outs:
            ros.spin_until(lambda c=col: c.subscription.get_publisher_count() > 0, 30, col.topic)
        return proc, pub, outs

    def message(self, frame: Any) -> Any:
        """An rgb8 Image of ``frame`` with a fresh stamp and a unique frame id."""
        from sensor_msgs.msg import Image

        from seg_perception.core.image_msgs import fill_image_msg

        msg = fill_image_msg(Image(), frame, 'rgb8')
        msg.header.stamp = self.ros.node.get_clock().now().to_msg()
        msg.header.frame_id = f'bench_{self.count}'
        self.count += 1
        return msg

    def round_trip(self, pubs: list[Any], collectors: list[Any], frame: Any,
                   timeout: float = 120.0) -> float:
        """Publish one frame on every publisher; seconds until every collector has its reply."""
        msgs = [self.message(frame) for _ in pubs]
        ids = [m.header.frame_id for m in msgs]
        t0 = time.perf_counter()
        for pub, msg in zip(pubs, msgs):
            pub.publish(msg)
        for col in collectors:
            col.wait_for(lambda m, ids=ids: m.header.frame_id in ids, timeout)
        elapsed = time.perf_counter() - t0
        for col in collectors:
            col.clear()
        return elapsed

    def stream(self, pubs: list[Any], frame: Any, rate: float, duration: float) -> float:
        """Publish a fresh frame on every publisher at ``rate`` Hz for ``duration`` s while
        serving callbacks; return the elapsed seconds.
        """
        t0 = time.perf_counter()
        tick = 0
        while (now := time.perf_counter()) - t0 < duration:
            if now >= t0 + tick / rate:
                for pub in pubs:
                    pub.publish(self.message(frame))
                tick += 1
            self.ros.spin_once(max(0.0, min(t0 + tick / rate - time.perf_counter(), 0.05)))
        return time.perf_counter() - t0

    def close(self) -> None:
        """Stop every node process still running and the test-side node."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.stop(signal.SIGINT)
        self.ros.close()
        self.ros.context.try_shutdown()


def node_overhead(bench: Bench, frame: Any, frames: int, warmup: int) -> dict[str, Any]:
    """(a): round trip through the node against the bare Segmenter call."""
    from diagnostic_msgs.msg import DiagnosticArray

    from seg_perception.runtime.segmenter import Segmenter

    ns = '/bench_overhead'
    # Diagnostics every 0.1 s: with one frame in flight each report holds at most one
    # frame's inference time (the node's own Segmenter.segment call).
    ros = bench.ros
    diag = ros.collect('/diagnostics', DiagnosticArray)
    proc, pub, outs = bench.connect(ns, {'publish_probability': True,
                                         'diagnostics_period': 0.1})
    seg = Segmenter(bench.model, device=bench.device, input_mode=bench.input_mode or None)
    # Warm-up: the node and the in-process Segmenter compile for this frame size.
    for _ in range(warmup):
        ros.request(lambda: pub.publish(bench.message(frame)), outs[0], lambda m: True, 300)
        for col in outs:
            col.wait_for(lambda m: True, 60)
            col.clear()
        seg.segment([frame])
    node_s, bare_s = [], []
    diag.clear()
    for _ in range(frames):
        node_s.append(bench.round_trip([pub], outs, frame))
        t0 = time.perf_counter()
        seg.segment([frame])
        bare_s.append(time.perf_counter() - t0)
    ros.spin_for(0.3)  # the last diagnostics report
    proc.stop_and_check(signal.SIGINT)
    status = f'{ns}/road_segmentation: image'
    in_node = [float(kv.value) for m in diag.messages for st in m.status if st.name == status
               for kv in st.values if kv.key == 'inference_ms' and kv.value != 'nan']
    node_ms, bare_ms = statistics.median(node_s) * 1e3, statistics.median(bare_s) * 1e3
    in_node_ms = statistics.median(in_node) if in_node else float('nan')
    overhead = (node_ms / bare_ms - 1) * 100
    overhead_in_node = (node_ms / in_node_ms - 1) * 100
    return {'size': f'{frame.shape[0]}x{frame.shape[1]}', 'node_ms': node_ms,
            'bare_ms': bare_ms, 'overhead_pct': overhead, 'in_node_segment_ms': in_node_ms,
            'overhead_in_node_pct': overhead_in_node,
            'target': 'met' if min(overhead, overhead_in_node) <= 10 else 'not met',
            'device': seg.device, 'precision': seg.precision,
            'node_all_ms': [round(t * 1e3, 2) for t in node_s],
            'bare_all_ms': [round(t * 1e3, 2) for t in bare_s]}


def compare_sources(bench: Bench, frame: Any, frames: int, warmup: int,
                    other: str) -> dict[str, Any]:
    """(c): round trip through this checkout's node against another checkout's (e.g. the
    commit before a refactor), same model and parameters, both running, frames sent to one
    at a time, alternating in ABBA order (this, other, other, this, ...).
    """
    sides = {'this': ('/bench_this', None), 'other': ('/bench_other', other)}
    setup: dict[str, tuple[Any, list[Any]]] = {}
    for key, (ns, source) in sides.items():
        _, pub, outs = bench.connect(ns, {'publish_probability': True}, source=source)
        setup[key] = (pub, outs)
    for _ in range(warmup):
        for pub, outs in setup.values():
            bench.round_trip([pub], outs, frame, 300)
    times: dict[str, list[float]] = {k: [] for k in setup}
    for i in range(frames):  # ABBA order: neither side is always first after a pause
        for key in (('this', 'other') if i % 2 == 0 else ('other', 'this')):
            pub, outs = setup[key]
            times[key].append(bench.round_trip([pub], outs, frame))
    for proc in bench.procs[-2:]:
        proc.stop_and_check(signal.SIGINT)
    this_ms, other_ms = (statistics.median(times[k]) * 1e3 for k in ('this', 'other'))
    return {'size': f'{frame.shape[0]}x{frame.shape[1]}', 'other_source': other,
            'this_ms': this_ms, 'other_ms': other_ms, 'ratio': this_ms / other_ms,
            'this_all_ms': [round(t * 1e3, 2) for t in times['this']],
            'other_all_ms': [round(t * 1e3, 2) for t in times['other']]}


def cameras(bench: Bench, frame: Any, rate: float, duration: float, settle: float,
            warmup: int) -> dict[str, Any]:
    """(b): three cameras in one node against three single-camera nodes, each camera
    streaming at ``rate`` Hz: labels served per second over ``duration`` s (after ``settle``
    s of the same stream).
    """
    import psutil
    from sensor_msgs.msg import Image

    ros, names = bench.ros, ('c0', 'c1', 'c2')
    results: dict[str, Any] = {}
    setups = {  # started one setup at a time
        'one_node': lambda: [(bench.start('/bench_multi', {'cameras': list(names)}),
                              [f'/bench_multi/{c}' for c in names])],
        'three_nodes': lambda: [(bench.start(f'/bench_{c}', {}), [f'/bench_{c}'])
                                for c in names],
    }
    for key, start in setups.items():
        procs = start()
        pubs, cols = [], []
        for proc, prefixes in procs:
            for prefix in prefixes:
                cols.append(ros.collect(f'{prefix}/road/label', Image))
                pubs.append(ros.publisher(Image, f'{prefix}/image'))
            proc.wait_ready(ros, publishers=[f'{p}/road/label' for p in prefixes],
                            subscribers=[f'{p}/image' for p in prefixes],
                            timeout=START_TIMEOUT)
        for pub in pubs:
            ros.wait_matched(pub)
        for col in cols:
            ros.spin_until(lambda c=col: c.subscription.get_publisher_count() > 0, 30, col.topic)
        for _ in range(warmup):  # compile for the size (and batch of 3)
            first = bench.message(frame)
            ros.request(lambda p=pubs, f=first: [x.publish(f) for x in p], cols[0],
                        lambda m: True, 300)
            bench.round_trip(pubs, cols, frame, 300)
        # Saturated steady state: every camera streams faster than the node(s) can serve.
        bench.stream(pubs, frame, rate, settle)
        for col in cols:
            col.clear()
        elapsed = bench.stream(pubs, frame, rate, duration)
        served = sum(len(c.messages) for c in cols)
        rss = sum(psutil.Process(p.pid).memory_info().rss for p, _ in procs)
        results[key] = {'fps': served / elapsed, 'served': served, 'seconds': elapsed,
                        'rss_mib': rss / 2**20, 'processes': len(procs)}
        for col in cols:
            col.close()
        for proc, _ in procs:
            proc.stop_and_check(signal.SIGINT)
    one, three = results['one_node'], results['three_nodes']
    results['throughput_ratio'] = one['fps'] / three['fps']
    results['memory_ratio'] = three['rss_mib'] / one['rss_mib']
    results['target'] = 'met' if results['throughput_ratio'] >= 1.5 else 'not met'
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default=None, help='model file (default: the trained default '
                   'model if present, else a random small model)')
    p.add_argument('--size', type=parse_size, default=(375, 1242), help='frame size HxW')
    p.add_argument('--frames', type=int, default=10, help='(a) timed frames (median)')
    p.add_argument('--rate', type=float, default=5.0, help='(b) frames/s per camera')
    p.add_argument('--duration', type=float, default=20.0, help='(b) measured seconds')
    p.add_argument('--settle', type=float, default=5.0, help='(b) unmeasured seconds first')
    p.add_argument('--warmup', type=int, default=2, help='untimed frames/rounds first')
    p.add_argument('--device', default='auto', choices=DEVICES)
    p.add_argument('--input-mode', default='', choices=['', 'pad', 'resize'],
                   help="'' = the model card's (the default model: resize to 192x256); pad = "
                        'full-resolution inference')
    p.add_argument('--skip-cameras', action='store_true', help='only part (a)')
    p.add_argument('--compare-source', metavar='DIR',
                   help='(c): also time the node of another checkout (e.g. a git worktree '
                        'of an earlier commit) against this one, alternating')
    p.add_argument('--json', default=None, help='results file (default '
                   'bench/results/node.json)')
    args = p.parse_args(argv)
    # DDS isolation like the tests: nothing else on this machine sees the benchmark traffic.
    os.environ['ROS_DOMAIN_ID'] = str(random.Random().randint(1, 101))
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    from seg_perception.ros.dds_env import use_large_image_profile
    use_large_image_profile()  # 1.4 MB best-effort frames from this process

    import numpy as np

    from seg_perception.model.fcn8s import ModelSpec

    with tempfile.TemporaryDirectory() as tmp:
        try:
            model, note = resolve_model(args.model, pathlib.Path(tmp), ModelSpec(
                num_classes=2, batch_norm=True, head='light', dropout=0.0))
        except FileNotFoundError as exc:
            print(f'bench_node: {exc}', file=sys.stderr)
            return 2
        h, w = args.size
        frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), np.uint8)
        bench = Bench(model, args.device, args.input_mode)
        try:
            overhead = node_overhead(bench, frame, args.frames, args.warmup)
            versus = compare_sources(bench, frame, args.frames, args.warmup,
                                     args.compare_source) if args.compare_source else None
            cams = None if args.skip_cameras else cameras(
                bench, frame, args.rate, args.duration, args.settle, args.warmup)
        finally:
            bench.close()

    info = machine_info()
    print(f'model: {note}; input mode {args.input_mode or "from the model card"}; '
          f'device {overhead["device"]}, precision {overhead["precision"]}; '
          f'{info["cpu"]}, {info["cpu_count"]} CPUs, load {info.get("load_average_1_5_15")}')
    print_table('(a) node overhead: round trip through the node vs bare Segmenter.segment',
                [overhead], ['size', 'node_ms', 'bare_ms', 'overhead_pct',
                             'in_node_segment_ms', 'overhead_in_node_pct', 'target'],
                ['frame', 'node round trip (ms)', 'bare segment here (ms)', 'overhead %',
                 'segment in the node (ms)', 'overhead % vs in-node segment',
                 'target <= 10 %'])
    if versus:
        print_table(f'(c) node round trip: this checkout vs {versus["other_source"]} '
                    '(alternating, both running)', [versus],
                    ['size', 'this_ms', 'other_ms', 'ratio'],
                    ['frame', 'this node (ms)', 'other node (ms)', 'this / other'])
    if cams:
        rows = [{'setup': '3 cameras, 1 node', 'fps': cams['one_node']['fps'],
                 'rss': cams['one_node']['rss_mib']},
                {'setup': '3 nodes, 1 camera each', 'fps': cams['three_nodes']['fps'],
                 'rss': cams['three_nodes']['rss_mib']}]
        print_table(f'(b) three cameras ({h}x{w})', rows, ['setup', 'fps', 'rss'],
                    ['setup', 'throughput (frames/s)', 'RSS total (MiB)'])
        print(f'throughput ratio (1 node / 3 nodes): {cams["throughput_ratio"]:.2f} '
              f'(target >= 1.5: {cams["target"]}); memory ratio (3 nodes / 1 node): '
              f'{cams["memory_ratio"]:.2f}')
    out = write_results('node', {'machine': info, 'model': note, 'size': [h, w],
                                 'input_mode': args.input_mode or 'model card',
                                 'frames': args.frames, 'rate_hz': args.rate,
                                 'duration_s': args.duration,
                                 'warmup': args.warmup, 'overhead': overhead,
                                 'versus': versus,
                                 'cameras': cams}, args.json)
    print(f'results: {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
