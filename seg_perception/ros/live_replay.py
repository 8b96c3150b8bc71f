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
with ``ros2 bag`` on a full ROS 2 install: docs/BAGS.md.
"""
from __future__ import annotations

import functools
import logging
import pathlib
import sys
import threading
import time
from typing import Any

from seg_perception.bag import bagfile
from seg_perception.bag import topics as bag_topics
from seg_perception.bag.live_scoring import (
    LiveOptions,
    LiveRecorder,
    Sent,
    plan_topics,
    write_live_report,
)
from seg_perception.bag.replay import GroundTruth, select_topics

LOG = logging.getLogger(__name__)


def run_live(bag_path: str | pathlib.Path, out: str | pathlib.Path,
             opt: LiveOptions) -> dict[str, Any]:
    """Play ``bag_path`` into the running node, record and score its outputs.

    On Ctrl-C, a damaged bag or no node, what was done is written (``partial``) and the
    error is raised again.

    Returns:
        The metrics.json content.
    """
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
            recorder = LiveRecorder(writer, gt, pairing)
            session = _Session(bag, topics, plan, recorder, opt)
            error: BaseException | None = None
            try:
                session.run()
            except BaseException as exc:  # written as partial results, then raised again
                error = exc
            finally:
                session.close()
            with recorder.lock:
                sent = list(session.sent)
            doc = write_live_report(out, bag_path, sent, recorder, plan, pairing, opt, error,
                                    gt_error)
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
                 plan: dict[str, tuple[str, str]], recorder: LiveRecorder,
                 opt: LiveOptions) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image

        from seg_perception.ros import spin as ros_spin

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
            info = f'{bag_topics.parent_namespace(t)}/camera_info'
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
            original = bag_topics.stamp_ns(msg.header)
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
