"""The recording and scoring side of ``seg_bag live`` (no rclpy): which topics go where,
what was sent, the node's outputs matched to their inputs and scored, and the report.

The rclpy side (publishing the bag, subscribing to the outputs) is
:mod:`seg_perception.ros.live_replay`.
"""
from __future__ import annotations

import dataclasses
import logging
import pathlib
import threading
import time
from typing import Any

import numpy as np

from seg_perception.bag import bagfile
from seg_perception.bag import topics as bag_topics
from seg_perception.core.image_msgs import ImageDecodeError, decode_mono8
from seg_perception.core.metrics import RoadEvaluator, road_iou
from seg_perception.evaluation.report import (
    FrameRecord,
    ReportSpec,
    metrics_table,
    percentile_table,
    percentiles,
    write_report,
)

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
        """The report's :class:`~seg_perception.evaluation.report.FrameRecord` of this frame."""
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
            plan[t] = (t, bag_topics.parent_namespace(t))
        return plan
    ns = '/' + namespace.strip('/') if namespace.strip('/') else ''
    for t in topics:
        suffix = '/image/compressed' if msgtypes[t] == bagfile.COMPRESSED else '/image'
        if len(topics) == 1:
            plan[t] = (ns + suffix, ns)
            continue
        cam = bag_topics.parent_namespace(t).strip('/')
        if not cam:
            raise bagfile.BagError(f'image topic {t} has no namespace to use as a camera '
                                   f'name under --namespace {namespace}')
        plan[t] = (f'{ns}/{cam}{suffix}', f'{ns}/{cam}')
    outs = [o for _, o in plan.values()]
    if len(set(outs)) != len(outs):
        raise bagfile.BagError(f'image topics {", ".join(topics)} would share one node '
                               'camera; choose one with --topics')
    return plan


class LiveRecorder:
    """Output subscriptions: matches outputs to sent frames, scores them, records them."""

    def __init__(self, bag_writer: bagfile.BagWriter, gt: Any, pairing: dict[str, str | None],
                 ) -> None:
        self.lock = threading.Lock()
        self.writer = bag_writer
        self.gt, self.pairing = gt, pairing
        self.by_key: dict[tuple[str, int], Sent] = {}  # (output ns, stamp)
        self.label_eval = RoadEvaluator()
        self.prob_eval = RoadEvaluator()
        self.unmatched = 0
        self.bad_outputs: list[str] = []

    def expect(self, ns: str, sent: Sent) -> None:
        """Register ``sent`` (published into camera namespace ``ns``) for matching."""
        with self.lock:
            self.by_key[(ns, sent.stamp)] = sent

    def record(self, topic: str, raw: bytes, t: int) -> None:
        """Write a serialised message to the recorded bag at time ``t`` (ns)."""
        with self.lock:
            self.writer.write(topic, t, raw)

    def record_now(self, topic: str, raw: bytes) -> None:
        """Write a serialised message to the recorded bag, stamped now."""
        self.record(topic, raw, time.time_ns())

    def _record_output(self, ns: str, topic: str, raw: bytes) -> tuple[Any, Sent | None, int]:
        """Record an output image; return (message, its input frame or None, receive ns).

        Call with ``self.lock`` held.
        """
        now = time.time_ns()
        msg = bagfile.typestore().deserialize_cdr(raw, bagfile.IMAGE)
        self.writer.write(topic, now, raw)
        return msg, self.by_key.get((ns, bag_topics.stamp_ns(msg.header))), now

    def on_label(self, ns: str, topic: str, raw: bytes, info: Any) -> None:
        """A ``road/label`` from the node: match it to its input, time and score it."""
        with self.lock:
            msg, sent, now = self._record_output(ns, topic, raw)
            if sent is None or sent.received is not None:
                self.unmatched += 1
                return
            sent.received = now
            sent.source = info_time(info, 'source_timestamp')
            sent.arrival = info_time(info, 'received_timestamp')
        self._score_label(sent, msg)

    def _score_label(self, sent: Sent, msg: Any) -> None:
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
        """A ``road/probability`` from the node: score it with the full KITTI metrics."""
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


def info_time(info: Any, key: str) -> int | None:
    """The integer ``key`` of a message-info dict or object (``None`` when absent or 0)."""
    try:
        value = info[key] if isinstance(info, dict) else getattr(info, key)
    except (KeyError, AttributeError):
        return None
    return int(value) if value else None


def write_live_report(out: pathlib.Path, bag_path: Any, sent: list[Sent], rec: LiveRecorder,
            plan: dict[str, tuple[str, str]], pairing: dict[str, str | None],
            opt: LiveOptions, error: BaseException | None, gt_error: str | None,
            ) -> dict[str, Any]:
    """Score the run and write its report (metrics.json, frames.csv, report.md, PR curve).

    Returns:
        The metrics.json content.
    """
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
