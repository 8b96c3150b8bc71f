r"""``seg_bag live``: play a bag into a RUNNING ``road_segmentation`` node and measure it.

The bag's image topics are published over rclpy at the recorded rate (times ``--rate``),
the node's outputs are recorded, and the run is scored:

* end-to-end latency: receive time of ``road/label`` minus its header stamp, and receive
  time of the output minus publish time of its input (percentiles, ms);
* dropped frames: inputs without an output (the node keeps only the newest frame per camera
  while it is busy, so a slow node drops rather than lags);
* accuracy, when the bag has ground truth (``<ns>/road_gt``, see ``seg_bag make``): F, PRE,
  REC, IoU of the published labels, and the full KITTI metrics (MaxF, AvgPrec ...) when the
  node publishes ``road/probability`` (parameter ``publish_probability: true``).

Headers are re-stamped with the wall-clock time each frame is due (the "capture" time of a
live camera), so latencies are measured as the node measures its own; ground truth is
matched through the original stamps (road = class id 1 in the labels). The bag's
``<namespace>/camera_info`` is published too, so the node relays ``road/camera_info``.
Topic mapping: without ``--namespace`` every image
topic is published under its own name and the outputs are expected at
``<namespace of the topic>/road/*`` (a bag from ``seg_bag make`` and a node in ``/camera``
fit as they are); with ``--namespace NS`` a single image topic goes to ``NS/image`` (or
``NS/image/compressed``), several go to ``NS/<camera>/image`` for a node with
``cameras: [<camera>, ...]``.

Writes into --out: metrics.json, frames.csv, report.md, pr_curve.png (with probabilities)
and ``recorded/`` (mcap bag: the published inputs and the node's outputs). The same test
with ``ros2 bag`` on a full ROS 2 install: README.md, "Rosbag replay".
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import pathlib
import sys
import threading
import time
from typing import Any

import numpy as np

from seg_perception.bag import bagfile
from seg_perception.ros_image import ImageDecodeError, decode_mono8

LOG = logging.getLogger(__name__)
LIVE_COLUMNS = ('group', 'original_stamp_ns', 'stamp_ns', 'published_ns', 'received_ns',
                'latency_ms', 'publish_to_receive_ms', 'road_fraction', 'iou')
ROAD_CLASS = 1  # class id of road in the node's label images (binary models)


@dataclasses.dataclass
class LiveOptions:
    """Settings of ``seg_bag live``."""

    rate: float = 1.0
    namespace: str | None = None
    timeout: float = 30.0
    topics: list[str] | None = None
    gt_topics: list[str] | None = None
    limit: int | None = None
    record_overlay: bool = False


@dataclasses.dataclass
class Sent:
    """One published input frame and what came back for it (times in ns, wall clock)."""

    topic: str
    original_stamp: int
    stamp: int
    published: int
    received: int | None = None
    source: int | None = None    # DDS source timestamp of the label message
    arrival: int | None = None   # DDS reception timestamp of the label message
    road_fraction: float | None = None
    iou: float | None = None
    has_probability: bool = False

    def record(self) -> Any:
        """The report's :class:`~seg_perception.report.FrameRecord` of this frame."""
        from seg_perception.report import FrameRecord
        got = self.received is not None
        return FrameRecord(
            name=f'{self.topic}_{self.stamp}', group=self.topic, stamp_ns=self.stamp,
            road_fraction=self.road_fraction, iou=self.iou,
            original_stamp_ns=self.original_stamp, published_ns=self.published,
            received_ns=self.received,
            latency_ms=(self.received - self.stamp) / 1e6 if got else None,
            publish_to_receive_ms=(self.received - self.published) / 1e6 if got else None)


def plan_topics(topics: list[str], msgtypes: dict[str, str], namespace: str | None,
                ) -> dict[str, tuple[str, str]]:
    """``{bag topic: (topic to publish on, output namespace)}``; see the module docstring."""
    plan: dict[str, tuple[str, str]] = {}
    if namespace is None:
        for t in topics:
            plan[t] = (t, bagfile.parent_namespace(t))
        return plan
    ns = '/' + namespace.strip('/') if namespace.strip('/') else ''
    for t in topics:
        suffix = '/image/compressed' if msgtypes[t] == bagfile.COMPRESSED else '/image'
        if len(topics) == 1:
            plan[t] = (ns + suffix, ns)
            continue
        cam = bagfile.parent_namespace(t).strip('/')
        if not cam:
            raise bagfile.BagError(f'image topic {t} has no namespace to use as a camera '
                                   f'name under --namespace {namespace}')
        plan[t] = (f'{ns}/{cam}{suffix}', f'{ns}/{cam}')
    outs = [o for _, o in plan.values()]
    if len(set(outs)) != len(outs):
        raise bagfile.BagError(f'image topics {", ".join(topics)} would share one node '
                               'camera; choose one with --topics')
    return plan


class _Recorder:
    """Output subscriptions: matches outputs to sent frames, scores them, records them."""

    def __init__(self, bag_writer: bagfile.BagWriter, gt: Any, pairing: dict[str, str | None],
                 ) -> None:
        from seg_perception.metrics import RoadEvaluator
        self.lock = threading.Lock()
        self.writer = bag_writer
        self.gt, self.pairing = gt, pairing
        self.by_key: dict[tuple[str, int], Sent] = {}  # (output ns, stamp)
        self.label_eval = RoadEvaluator()
        self.prob_eval = RoadEvaluator()
        self.unmatched = 0
        self.bad_outputs: list[str] = []

    def expect(self, ns: str, sent: Sent) -> None:
        with self.lock:
            self.by_key[(ns, sent.stamp)] = sent

    def record(self, topic: str, raw: bytes, t: int) -> None:
        with self.lock:
            self.writer.write(topic, t, raw)

    def record_now(self, topic: str, raw: bytes) -> None:
        self.record(topic, raw, time.time_ns())

    def _record_output(self, ns: str, topic: str, raw: bytes) -> tuple[Any, Sent | None, int]:
        """Record an output image; return (message, its input frame or None, receive ns).

        Call with ``self.lock`` held.
        """
        now = time.time_ns()
        msg = bagfile.typestore().deserialize_cdr(raw, bagfile.IMAGE)
        self.writer.write(topic, now, raw)
        return msg, self.by_key.get((ns, bagfile.stamp_ns(msg.header))), now

    def on_label(self, ns: str, topic: str, raw: bytes, info: Any) -> None:
        with self.lock:
            msg, sent, now = self._record_output(ns, topic, raw)
            if sent is None or sent.received is not None:
                self.unmatched += 1
                return
            sent.received = now
            sent.source = _info_time(info, 'source_timestamp')
            sent.arrival = _info_time(info, 'received_timestamp')
        self._score_label(sent, msg)

    def _score_label(self, sent: Sent, msg: Any) -> None:
        from seg_perception.metrics import road_iou
        try:
            labels = decode_mono8(msg)
        except ImageDecodeError as exc:
            self.bad_outputs.append(str(exc))
            return
        road = labels == ROAD_CLASS
        target = self.gt.get(self.pairing.get(sent.topic), sent.original_stamp)
        with self.lock:
            sent.road_fraction = float(road.mean())
            if target is not None and target.shape == labels.shape:
                sent.iou = road_iou(labels, target, ROAD_CLASS)
                self.label_eval.update(road.astype(np.uint8) * np.uint8(255), target)
            elif target is not None:
                self.bad_outputs.append(f'{sent.topic}: label {labels.shape[::-1]} and ground '
                                        f'truth {target.shape[::-1]} differ in size')

    def on_probability(self, ns: str, topic: str, raw: bytes) -> None:
        with self.lock:
            msg, sent, _ = self._record_output(ns, topic, raw)
            if sent is None or sent.has_probability:
                return
            sent.has_probability = True
        target = self.gt.get(self.pairing.get(sent.topic), sent.original_stamp)
        if target is None:
            return
        try:
            prob = decode_mono8(msg)
        except ImageDecodeError as exc:
            self.bad_outputs.append(str(exc))
            return
        if prob.shape == target.shape:
            with self.lock:
                self.prob_eval.update(np.ascontiguousarray(prob), target)


def _info_time(info: Any, key: str) -> int | None:
    try:
        value = info[key] if isinstance(info, dict) else getattr(info, key)
    except (KeyError, AttributeError):
        return None
    return int(value) if value else None


def run_live(bag_path: str | pathlib.Path, out: str | pathlib.Path,
             opt: LiveOptions) -> dict[str, Any]:
    """Play ``bag_path`` into the running node, record and score its outputs.

    On Ctrl-C, a damaged bag or no node, what was done is written (``partial``) and the
    error is raised again.

    Returns:
        The metrics.json content.
    """
    from seg_perception.bag.replay import GroundTruth, select_topics
    out = pathlib.Path(out)
    bag = bagfile.BagReader(bag_path)
    try:
        topics, pairing = select_topics(bag, opt.topics, opt.gt_topics)
        plan = plan_topics(topics, {t: bag.topics[t].msgtype for t in topics}, opt.namespace)
        gt = GroundTruth()
        gt_topics = {g for g in pairing.values() if g}
        gt_error = gt.load(bag, gt_topics) if gt_topics else None
        out.mkdir(parents=True, exist_ok=True)
        recorded = out / 'recorded'
        if recorded.exists():
            import shutil
            shutil.rmtree(recorded)
        with bagfile.BagWriter(recorded, 'mcap') as writer:
            recorder = _Recorder(writer, gt, pairing)
            session = _Session(bag, topics, plan, recorder, opt)
            error: BaseException | None = None
            try:
                session.run()
            except BaseException as exc:  # written as partial results, then raised again
                error = exc
            finally:
                session.close()
            doc = _report(out, bag_path, session, recorder, plan, pairing, opt, error, gt_error)
        if error is not None:
            raise error
        if gt_error:
            raise bagfile.TruncatedBagError(gt_error)
        return doc
    finally:
        bag.close()


class _Session:
    """The rclpy side: publishers, output subscriptions, the paced publishing loop."""

    def __init__(self, bag: bagfile.BagReader, topics: list[str],
                 plan: dict[str, tuple[str, str]], recorder: _Recorder,
                 opt: LiveOptions) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image

        from seg_perception import ros_spin

        self.bag, self.topics, self.plan, self.rec, self.opt = bag, topics, plan, recorder, opt
        self.sent: list[Sent] = []
        self.started = time.time_ns()
        self.context = Context()
        ros_spin.init([], self.context)
        self.node = rclpy.create_node('seg_bag_live', context=self.context,
                                      start_parameter_services=False)
        qos_pub = ros_spin.qos_profile(5, 'reliable')
        qos_sub = ros_spin.qos_profile(100, 'reliable')
        self.pubs: dict[str, Any] = {}
        self.info_pubs: dict[str, tuple[str, Any]] = {}  # bag camera_info -> (topic, pub)
        for t in topics:
            pub_topic, ns = plan[t]
            msg_cls = CompressedImage if bag.topics[t].msgtype == bagfile.COMPRESSED else Image
            self.pubs[t] = self.node.create_publisher(msg_cls, pub_topic, qos_pub)
            recorder.writer.add_topic(pub_topic, bag.topics[t].msgtype)
            info = f'{bagfile.parent_namespace(t)}/camera_info'
            if info not in self.info_pubs and getattr(bag.topics.get(info), 'msgtype',
                                                      '') == bagfile.CAMERA_INFO:
                self.info_pubs[info] = (f'{ns}/camera_info', self.node.create_publisher(
                    CameraInfo, f'{ns}/camera_info', qos_pub))
                recorder.writer.add_topic(f'{ns}/camera_info', bagfile.CAMERA_INFO)
            outputs = [('road/label', Image), ('road/probability', Image),
                       ('road/camera_info', CameraInfo)]
            if opt.record_overlay:
                outputs.append(('road/overlay', Image))
            for rel, cls in outputs:
                topic = f'{ns}/{rel}'
                recorder.writer.add_topic(topic, bagfile.CAMERA_INFO if cls is CameraInfo
                                          else bagfile.IMAGE)
                if rel == 'road/label':  # (raw, MessageInfo) callback
                    cb: Any = functools.partial(recorder.on_label, ns, topic)
                elif rel == 'road/probability':
                    cb = functools.partial(recorder.on_probability, ns, topic)
                else:
                    cb = functools.partial(recorder.record_now, topic)
                self.node.create_subscription(cls, topic, cb, qos_sub, raw=True)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.spinner = threading.Thread(target=self._spin, name='seg_bag_live_spin',
                                        daemon=True)
        self.spinner.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException
        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass
        except Exception as exc:  # noqa: BLE001 - reported, the run ends with what it has
            LOG.error('executor stopped: %s', exc)

    def wait_for_node(self) -> None:
        """Until the node subscribes to every input and publishes every road/label."""
        deadline = time.monotonic() + self.opt.timeout
        while True:
            missing = [self.plan[t][0] for t, p in self.pubs.items()
                       if p.get_subscription_count() == 0]
            missing += [f'{self.plan[t][1]}/road/label' for t in self.topics
                        if self.node.count_publishers(f'{self.plan[t][1]}/road/label') == 0]
            if not missing:
                return
            if time.monotonic() > deadline:
                ns = self.plan[self.topics[0]][1] or '/'
                raise bagfile.BagError(
                    f'no road_segmentation node on {missing[0]} within {self.opt.timeout:g} s '
                    f'(start one first, e.g. "road_segmentation --ros-args -r __ns:={ns}", '
                    'with transport: compressed for CompressedImage bags; check ROS_DOMAIN_ID)')
            time.sleep(0.05)  # polling the graph; there is no discovery event to wait on

    def run(self) -> None:
        """Wait for the node, publish at the recorded pace, then wait for the last outputs."""
        self.wait_for_node()
        LOG.info('node found; publishing %s at %gx the recorded rate',
                 ', '.join(self.plan[t][0] for t in self.topics), self.opt.rate)
        from tqdm import tqdm
        total = sum(self.bag.topics[t].count for t in self.topics)
        if self.opt.limit is not None:
            total = min(total, self.opt.limit)
        bar = tqdm(total=total, desc='seg_bag live', unit='frame', file=sys.stderr,
                   disable=not sys.stderr.isatty())
        try:
            self._publish_all(bar)
        finally:
            bar.close()
        self._drain()

    def _publish_all(self, bar: Any) -> None:
        store = bagfile.typestore()
        wall0: int | None = None
        bag0 = 0
        last_stamp: dict[str, int] = {}
        for topic, msgtype, t, raw in self.bag.messages({*self.topics, *self.info_pubs}):
            if self.opt.limit is not None and len(self.sent) >= self.opt.limit:
                break
            if wall0 is None:
                wall0, bag0 = time.time_ns() + 50_000_000, t
            due = wall0 + int((t - bag0) / self.opt.rate)
            msg = self.bag.deserialize(raw, msgtype)
            original = bagfile.stamp_ns(msg.header)
            stamp = max(due, last_stamp.get(topic, 0) + 1)  # unique per topic
            last_stamp[topic] = stamp
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            data = bytes(store.serialize_cdr(msg, msgtype))
            delay = (due - time.time_ns()) / 1e9
            if delay > 0:
                time.sleep(delay)  # pacing to the recorded rate
            if topic in self.info_pubs:
                info_topic, pub = self.info_pubs[topic]
                pub.publish(data)
                self.rec.record(info_topic, data, time.time_ns())
                continue
            pub_topic, ns = self.plan[topic]
            sent = Sent(topic, original, stamp, time.time_ns())
            self.rec.expect(ns, sent)
            self.pubs[topic].publish(data)
            self.sent.append(sent)
            self.rec.record(pub_topic, data, sent.published)
            bar.update(1)

    def _drain(self) -> None:
        """Wait until the last frame of every topic has its label (or the timeout)."""
        last: dict[str, Sent] = {}
        for s in self.sent:
            last[s.topic] = s
        deadline = time.monotonic() + self.opt.timeout
        while time.monotonic() < deadline:
            with self.rec.lock:
                if all(s.received is not None for s in last.values()):
                    return
            time.sleep(0.02)  # polling the recorder; outputs arrive on the executor thread
        LOG.warning('no output for the last frame within %g s', self.opt.timeout)

    def close(self) -> None:
        """Stop spinning and leave the ROS graph."""
        self.executor.shutdown(timeout_sec=5.0)
        self.node.destroy_node()
        self.context.try_shutdown()
        self.spinner.join(timeout=5.0)


def _report(out: pathlib.Path, bag_path: Any, session: _Session, rec: _Recorder,
            plan: dict[str, tuple[str, str]], pairing: dict[str, str | None],
            opt: LiveOptions, error: BaseException | None, gt_error: str | None,
            ) -> dict[str, Any]:
    from seg_perception.report import ReportSpec, percentiles, write_report
    with rec.lock:
        sent = list(session.sent)
    records = [s.record() for s in sent]
    got = [r for r in records if r.received_ns is not None]
    transport = [(s.arrival - s.source) / 1e6 for s in sent
                 if s.received is not None and s.arrival and s.source]
    per_topic = {}
    for t in plan:
        st = [r for r in records if r.group == t]
        rt = [r for r in st if r.received_ns is not None]
        per_topic[t] = {
            'published_on': plan[t][0], 'outputs': f'{plan[t][1]}/road/label',
            'ground_truth': pairing.get(t), 'published': len(st), 'received': len(rt),
            'dropped': len(st) - len(rt),
            'latency_ms': percentiles([r.latency_ms for r in rt])}
    doc: dict[str, Any] = {
        'bag': str(bag_path), 'rate_factor': opt.rate, 'namespace': opt.namespace,
        'frames_published': len(sent), 'outputs_received': len(got),
        'dropped_frames': len(sent) - len(got),
        'drop_rate': (len(sent) - len(got)) / len(sent) if sent else 0.0,
        'latency_ms': {'header_to_receive': percentiles([r.latency_ms for r in got]),
                       'publish_to_receive': percentiles([r.publish_to_receive_ms
                                                          for r in got]),
                       'label_transport': percentiles(transport)},
        'topics': per_topic, 'unmatched_outputs': rec.unmatched,
        'recorded_bag': str(out / 'recorded'),
    }
    accuracy: dict[str, Any] = {}
    if rec.prob_eval.n_images:
        try:
            accuracy.update(rec.prob_eval.result())
            doc['accuracy_source'] = 'probability'
        except ValueError as exc:
            accuracy['error'] = str(exc)
    if rec.label_eval.n_images:
        try:
            at = rec.label_eval.result(threshold=0.5)
            accuracy.update({k: at[k] for k in ('F_at_threshold', 'PRE_at_threshold',
                                                'REC_at_threshold', 'IoU_at_threshold')})
            doc.setdefault('accuracy_source', 'label')
            accuracy['n_images'] = rec.label_eval.n_images
        except ValueError as exc:
            accuracy['error'] = str(exc)
    if accuracy:
        doc['accuracy'] = accuracy
    if rec.bad_outputs:
        doc['output_problems'] = rec.bad_outputs[:10]
    partial = error is not None or gt_error is not None
    doc['partial'] = partial
    if partial:
        doc['error'] = ('interrupted' if isinstance(error, KeyboardInterrupt)
                        else str(error or gt_error))
    curves = []
    if rec.prob_eval.n_images and 'MaxF' in accuracy:
        curves = [('node road/probability', rec.prob_eval.curves())]
    spec = ReportSpec(f'Live replay of {pathlib.Path(doc["bag"]).name}', 'report.md',
                      group_label='topic', columns=LIVE_COLUMNS)
    write_report(out, spec, doc, records, _sections(doc), curves)
    return doc


def _sections(doc: dict[str, Any]) -> list[str]:
    """The report's markdown blocks: frames per topic, latency, accuracy."""
    from seg_perception.report import metrics_table, percentile_table
    frames = [f'Published {doc["frames_published"]} frame(s) at {doc["rate_factor"]:g}x the '
              f'recorded rate; {doc["outputs_received"]} segmented, {doc["dropped_frames"]} '
              f'dropped ({100 * doc["drop_rate"]:.1f} %).', '',
              '| topic | published on | outputs | published | received | dropped |',
              '|---|---|---|---|---|---|']
    for t, m in doc['topics'].items():
        frames.append(f'| {t} | {m["published_on"]} | {m["outputs"]} | {m["published"]} | '
                      f'{m["received"]} | {m["dropped"]} |')
    names = {'header_to_receive': 'receive - header stamp',
             'publish_to_receive': 'receive - input publish',
             'label_transport': 'label delivery (DDS)'}
    latency = ['## Latency (ms)', '', *percentile_table(
        {names[k]: v for k, v in doc['latency_ms'].items()},
        ('mean', 'p50', 'p90', 'p95', 'p99', 'max'))]
    blocks = ['\n'.join(frames), '\n'.join(latency)]
    acc = doc.get('accuracy')
    if acc:
        lines = [f'## Accuracy (from the node\'s {doc.get("accuracy_source")})', '']
        if 'MaxF' in acc:
            lines += [metrics_table(acc), '']
        if 'IoU_at_threshold' in acc:
            lines.append(f'Published labels: F {acc["F_at_threshold"]:.4f}, PRE '
                         f'{acc["PRE_at_threshold"]:.4f}, REC {acc["REC_at_threshold"]:.4f}, '
                         f'IoU {acc["IoU_at_threshold"]:.4f} over {acc["n_images"]} frame(s).')
        blocks.append('\n'.join(lines))
    return blocks
