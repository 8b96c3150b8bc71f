"""``seg_bag eval``: offline replay of a bag through the node's pipeline, with metrics.

The pipeline is the node's (:class:`seg_perception.runtime.pipeline.Pipeline`), built from the
node's parameters file (:func:`seg_perception.core.params_file.load_params_file`: ``model_path``,
``backend``, ``providers``, ``input_mode``, ``input_size``, ``threshold``, ``precision``,
``device``, the CRF and overlay settings of ``road_segmentation``): segment, optional dense
CRF, labels, overlays. No rclpy is imported. Every image
message is processed (no frame dropping, no keep-latest slot); frames go through
:class:`seg_perception.evaluation.run.EvalRun`, the loop ``seg_evaluate`` uses, so bag and
dataset numbers agree for the same frames.

Ground truth: a mono8 topic (1 road, 0 not road, 255 ignore; ``seg_bag make --labels``
writes ``<namespace>/road_gt``) matched to images by header stamp.
"""
from __future__ import annotations

import dataclasses
import logging
import pathlib
import shutil
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from seg_perception.bag import bagfile, errors
from seg_perception.bag import topics as bag_topics
from seg_perception.bag.output_bag import OutputBag, grid_config
from seg_perception.core import params, params_file
from seg_perception.core.formats import NODE_NAME
from seg_perception.core.image_msgs import ImageDecodeError, decode_image, decode_mono8
from seg_perception.core.share import share_file
from seg_perception.evaluation.report import ReportSpec
from seg_perception.evaluation.run import EvalRun, Frame, safe_name
from seg_perception.runtime.pipeline import Pipeline

LOG = logging.getLogger(__name__)
OUTPUT_MARKERS = ('/road/', '/road_gt')


@dataclasses.dataclass
class EvalOptions:
    """Settings of ``seg_bag eval`` (``None`` = from the params file / model card)."""

    topics: list[str] | None = None
    gt_topics: list[str] | None = None
    params_file: str | None = None
    model: str | None = None
    crf: bool | None = None
    crf_scale: float | None = None
    input_mode: str | None = None
    threshold: float | None = None
    device: str | None = None
    precision: str | None = None
    tta: str | None = None
    backend: str | None = None
    providers: list[str] | None = None
    write_bag: bool = False
    limit: int | None = None
    batch_size: int = 4
    overlays: int = 4
    save_probabilities: bool = False


# -- node parameters ---------------------------------------------------------------------
def load_node_params(path: str | pathlib.Path) -> dict[str, Any]:
    """``ros__parameters`` of the road_segmentation node in a ROS 2 params YAML
    (:func:`seg_perception.core.params_file.load_params_file`: any namespace, ``/**`` wildcards).

    Raises:
        bagfile.BagError: the file or the node's section is missing.
    """
    try:
        return params_file.load_params_file(path, f'/{NODE_NAME}')
    except params.ConfigError as exc:
        raise bagfile.BagError(str(exc)) from None


def default_params_file() -> pathlib.Path | None:
    """``config/road.yaml`` of the working folder (a source checkout), else of the installed
    package share folder, else ``None`` (node defaults).
    """
    local = pathlib.Path('config') / 'road.yaml'
    if local.is_file():
        return local
    shared = share_file('config/road.yaml')
    return shared if shared.is_file() else None


def node_settings(values: dict[str, Any], opt: EvalOptions) -> params.Settings:
    """The node's validated settings for these parameter values (unset = the node's
    defaults) with the command-line overrides of ``opt``.

    Raises:
        bagfile.BagError: a value the node would refuse (one line naming the parameter).
    """
    unknown = sorted(set(values) - set(params.SPECS))
    if unknown:
        LOG.warning('ignoring parameters the node does not declare: %s', ', '.join(unknown))
    merged = {k: v for k, v in values.items() if k in params.SPECS}
    overrides = {'model_path': opt.model, 'crf.enabled': opt.crf, 'crf.scale': opt.crf_scale,
                 'input_mode': opt.input_mode, 'threshold': opt.threshold,
                 'device': opt.device, 'precision': opt.precision, 'backend': opt.backend,
                 'tta': opt.tta,
                 'providers': opt.providers}
    merged.update({k: v for k, v in overrides.items() if v is not None})
    if opt.crf_scale is not None and opt.crf is None:
        merged['crf.enabled'] = True
    try:
        return params.settings_from_values(merged)
    except (params.ConfigError, TypeError, ValueError) as exc:
        hint = ' (or give --model)' if 'model_path' in str(exc) and not opt.model else ''
        raise bagfile.BagError(f'{exc}{hint}') from None


def eval_settings(opt: EvalOptions) -> params.Settings:
    """The node's settings for ``opt``: its params file (none = node defaults) with the
    command-line overrides (see :func:`node_settings`).
    """
    values = load_node_params(opt.params_file) if opt.params_file else {}
    return node_settings(values, opt)


def pipeline_from_settings(settings: params.Settings) -> Any:
    """The node's :class:`~seg_perception.runtime.pipeline.Pipeline` for ``settings``.

    Raises:
        bagfile.BagError: backend onnxruntime without onnxruntime, not an exported model
            file (checked before TensorFlow is imported), or an unusable model.
    """
    try:
        return Pipeline.from_settings(settings)
    except params.ConfigError as exc:
        raise bagfile.BagError(str(exc)) from None


# -- topics ------------------------------------------------------------------------------
def select_topics(bag: bagfile.BagReader, topics: list[str] | None,
                  gt_topics: list[str] | None) -> tuple[list[str], dict[str, str | None]]:
    """Image topics to process and the ground-truth topic of each (``None`` = none).

    Auto: every Image/CompressedImage topic except outputs (``.../road/...``) and ground
    truth; ground truth of ``<ns>/image[/compressed]`` is ``<ns>/road_gt`` when present.
    One ``--gt-topic`` applies to all image topics; several pair up with ``--topics``.
    """
    available = bag.image_topics()
    gts = set(gt_topics or [])
    if topics:
        for t in topics:
            if t not in bag.topics:
                raise bagfile.BagError(f'{bag.path}: topic {t} not in the bag (image topics: '
                                  f'{", ".join(available) or "none"})')
            if bag.topics[t].msgtype not in bagfile.IMAGE_TYPES:
                raise bagfile.BagError(f'{bag.path}: topic {t} is {bag.topics[t].msgtype}, not an '
                                  'Image or CompressedImage')
        chosen = list(topics)
    else:
        chosen = [t for t in available if t not in gts
                  and not any(m in t + '/' for m in OUTPUT_MARKERS)]
        if not chosen:
            listing = ', '.join(f'{t} ({i.msgtype})' for t, i in sorted(bag.topics.items()))
            raise bagfile.BagError(f'{bag.path}: no image topic (sensor_msgs/Image or '
                              f'CompressedImage) in the bag; topics: {listing or "none"}')
    for g in gts:
        if g not in bag.topics:
            raise bagfile.BagError(f'{bag.path}: ground-truth topic {g} not in the bag')
        if bag.topics[g].msgtype != bagfile.IMAGE:
            raise bagfile.BagError(f'{bag.path}: ground-truth topic {g} is '
                                   f'{bag.topics[g].msgtype}, expected a mono8 '
                                   'sensor_msgs/Image')
    pairing: dict[str, str | None] = {}
    if gt_topics and len(gt_topics) == 1:
        pairing = {t: gt_topics[0] for t in chosen}
    elif gt_topics:
        if len(gt_topics) != len(chosen):
            raise bagfile.BagError(f'{len(gt_topics)} --gt-topic for {len(chosen)} image topics '
                              '(give one for all, or one per --topics entry)')
        pairing = dict(zip(chosen, gt_topics))
    else:
        for t in chosen:
            g = f'{bag_topics.parent_namespace(t)}/road_gt'
            found = bag.topics.get(g)
            pairing[t] = g if found and found.msgtype == bagfile.IMAGE else None
    return chosen, pairing


def output_namespaces(topics: list[str]) -> dict[str, str]:
    """Output namespace per image topic: its parent namespace, or the topic itself when two
    image topics share a namespace (``/cam/image`` and ``/cam/image/compressed``).
    """
    out: dict[str, str] = {}
    for t in topics:
        ns = bag_topics.parent_namespace(t)
        out[t] = t if ns in out.values() else ns
    return out


# -- ground truth ------------------------------------------------------------------------
class GroundTruth:
    """Ground-truth masks by (topic, stamp), kept zlib-compressed in memory."""

    def __init__(self) -> None:
        """Start empty."""
        self._masks: dict[tuple[str, int], tuple[bytes, tuple[int, int]]] = {}

    def load(self, bag: bagfile.BagReader, topics: set[str]) -> str | None:
        """Read every message of ``topics``; returns the truncation error, if any."""
        try:
            for topic, msgtype, _, raw in bag.messages(topics):
                msg = bag.deserialize(raw, msgtype)
                try:
                    mask = decode_mono8(msg)
                except ImageDecodeError as exc:
                    raise bagfile.BagError(f'{bag.path}: ground truth on {topic}: {exc}') from None
                self._masks[(topic, bag_topics.stamp_ns(msg.header))] = (
                    zlib.compress(np.ascontiguousarray(mask).tobytes(), 1), mask.shape)
        except bagfile.TruncatedBagError as exc:
            return str(exc)
        return None

    def get(self, topic: str | None, stamp: int) -> np.ndarray | None:
        """(H, W) uint8 mask of ``topic`` at header stamp ``stamp``, or ``None``."""
        entry = self._masks.get((topic, stamp)) if topic else None
        if entry is None:
            return None
        data, shape = entry
        return np.frombuffer(zlib.decompress(data), np.uint8).reshape(shape)

    def __len__(self) -> int:
        """Number of masks."""
        return len(self._masks)


# -- the replay --------------------------------------------------------------------------
def run_eval(bag_path: str | pathlib.Path, out: str | pathlib.Path,
             opt: EvalOptions) -> dict[str, Any]:
    """Replay ``bag_path`` into ``out``; see the module docstring.

    On Ctrl-C, a damaged bag or bad frame, everything processed so far is written
    (metrics.json marked ``partial``) and the error is raised again.

    Returns:
        The metrics.json content.
    """
    bag = bagfile.BagReader(bag_path)
    try:
        return BagReplay(bag, str(bag_path), pathlib.Path(out), opt).run()
    finally:
        bag.close()


class BagReplay:
    """One ``seg_bag eval`` run over an open bag.

    Args:
        pipeline: a pipeline built once for many bags (``seg_bag eval --bags``), else one is
            built from the params file and ``opt``.
        on_frames: called with the number of frames after each processed frame (progress).
    """

    def __init__(self, bag: bagfile.BagReader, bag_path: str, out: pathlib.Path,
                 opt: EvalOptions, pipeline: Any = None,
                 on_frames: Callable[[int], None] | None = None) -> None:
        self.bag, self.bag_path, self.out, self.opt = bag, bag_path, out, opt
        self.topics, self.pairing = select_topics(bag, opt.topics, opt.gt_topics)
        self.params_file = pathlib.Path(opt.params_file) if opt.params_file else None
        settings = eval_settings(opt)
        grid = grid_config(settings, self.topics) if opt.write_bag else None
        self.pipeline = pipeline or pipeline_from_settings(settings)
        self.on_frames = on_frames
        self.gt = GroundTruth()
        self.gt_topics = {g for g in self.pairing.values() if g}
        self.gt_error = self.gt.load(bag, self.gt_topics) if self.gt_topics else None
        total = sum(bag.topics[t].count for t in self.topics)
        if opt.limit is not None:
            total = min(total, opt.limit)
        out.mkdir(parents=True, exist_ok=True)
        if opt.write_bag and (out / 'bag' / 'metadata.yaml').is_file():
            shutil.rmtree(out / 'bag')  # the output bag of an earlier run into this folder
        self.writer = (OutputBag(out / 'bag', bag, output_namespaces(self.topics),
                                 self.pipeline, grid) if opt.write_bag else None)
        self.run_ = EvalRun(self.pipeline, out, save_probabilities=opt.save_probabilities,
                            n_overlays=opt.overlays, total=total, batch_size=opt.batch_size)
        self.headers: dict[str, Any] = {}
        self.without_gt = 0

    def frames(self) -> Iterator[Any]:
        """The image frames of the chosen topics (every message copied to the output bag)."""
        n, bag, limit = 0, self.bag, self.opt.limit
        for topic, msgtype, t, raw in bag.messages(set(bag.topics) if self.writer
                                                   else set(self.topics)):
            if topic in self.topics and limit is not None and n >= limit:
                return
            if self.writer:
                self.writer.copy(topic, msgtype, t, raw)
            if topic not in self.topics:
                continue
            msg = bag.deserialize(raw, msgtype)
            stamp = bag_topics.stamp_ns(msg.header)
            try:
                image = np.ascontiguousarray(decode_image(msg))
            except ImageDecodeError as exc:
                raise bagfile.BagError(f'{bag.path}: {topic} at stamp {stamp}: {exc}') from None
            target = self.gt.get(self.pairing.get(topic), stamp)
            if target is None:
                self.without_gt += 1
            elif target.shape != image.shape[:2]:
                raise bagfile.BagError(
                    f'{bag.path}: ground truth on {self.pairing[topic]} at stamp {stamp} is '
                    f'{target.shape[1]}x{target.shape[0]} but the image on {topic} is '
                    f'{image.shape[1]}x{image.shape[0]}')
            name = f'{safe_name(topic)}_{stamp}'
            self.headers[name] = (t, msg.header)
            n += 1
            yield Frame(name, image, target, group=topic, stamp_ns=stamp)

    def finish(self, error: str | None) -> dict[str, Any]:
        """Close the output bag and write the report (partial when ``error``)."""
        if self.writer:
            self.writer.close()
        info = {'bag': self.bag_path, 'storage': self.bag.storage,
                'topics': ', '.join(self.topics),
                'ground_truth_topics': ', '.join(sorted(self.gt_topics)) or 'none',
                'params_file': str(self.params_file or 'none (node defaults)'),
                **self.pipeline.summary()}
        extra = {'bag': self.bag_path, 'ground_truth_topics': {
            t: self.pairing[t] for t in self.topics},
            'frames_without_ground_truth': self.without_gt}
        if self.writer:
            extra['output_bag'] = self.writer.summary()
        spec = ReportSpec(f'Bag replay of {pathlib.Path(self.bag_path).name}', 'report.md',
                          group_label='topic')
        return self.run_.finish(spec, info, groups_key='topics', partial=error is not None,
                                error=error, extra=extra)

    def run(self) -> dict[str, Any]:
        """Process every frame; write the report (partial on any failure, then raise)."""
        try:
            for res in self.run_.iterate(self.frames(), desc='seg_bag eval'):
                t, hdr = self.headers.pop(res.frame.name)
                if self.writer:
                    self.writer.outputs(res, t, hdr)
                if self.on_frames is not None:
                    self.on_frames(1)
        except KeyboardInterrupt:
            self.finish('interrupted')
            raise
        except Exception as exc:  # noqa: BLE001 - any failure: keep what was done
            self.finish(str(exc))
            if not isinstance(exc, (bagfile.BagError, ValueError, OSError)):
                raise
            raise errors.PartialResultsError(
                f'{exc} (results of the {self.run_.n_frames} frame(s) processed are in '
                f'{self.out})') from None
        if self.gt_error:
            self.finish(self.gt_error)
            raise errors.PartialResultsError(
                f'{self.gt_error} (results of the {self.run_.n_frames} frame(s) processed '
                f'are in {self.out})')
        return self.finish(None)
