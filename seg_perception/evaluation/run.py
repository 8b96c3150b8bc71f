"""The one evaluation loop: the node's pipeline over frames -> metrics, reports.

Shared by ``seg_evaluate`` (dataset splits), ``seg_bag eval`` (bag replay) and the trainer's
validation, so their numbers agree by construction: every frame goes through
:meth:`Pipeline.run <seg_perception.runtime.pipeline.Pipeline.run>` (the node's preprocessing,
optional CRF and labels), then :class:`metrics.RoadEvaluator` (KITTI Road devkit metrics on
uint8-quantised probabilities) and :func:`metrics.road_iou` (per-frame IoU at the threshold).

:class:`EvalRun` writes through :func:`seg_perception.evaluation.report.write_report`
(metrics.json with
per-group metrics under ``groups_key``, frames.csv, the summary, pr_curve.png) plus
``overlays/<name>.png`` (a few, spread over the run) and, when asked, ``prob/<name>.png``
(uint8 road probability at input resolution; rescoring these with
:class:`metrics.RoadEvaluator` reproduces metrics.json).
"""
from __future__ import annotations

import dataclasses
import logging
import pathlib
import re
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from seg_perception.core import image_io, render
from seg_perception.core.metrics import RoadEvaluator, quantize_probability, road_iou
from seg_perception.evaluation import plots
from seg_perception.evaluation.report import (
    FrameRecord,
    ReportSpec,
    evaluation_sections,
    percentiles,
    write_report,
)

LOG = logging.getLogger(__name__)

#: metric keys every metrics.json carries when ground truth was available
REQUIRED_KEYS = ('MaxF', 'AvgPrec', 'PRE', 'REC', 'FPR', 'FNR', 'IoU', 'threshold', 'n_images')


@dataclasses.dataclass
class Frame:
    """One input frame.

    Attributes:
        name: unique name, used for output files (e.g. ``um_000000``).
        image: (H, W, 3) uint8 RGB.
        target: (H, W) uint8 ground truth (1 road, 0 not road, 255 ignore) or ``None``.
        group: what the frame belongs to for per-group metrics (e.g. its topic).
        stamp_ns: header stamp in nanoseconds (bag frames), else ``None``.
    """

    name: str
    image: np.ndarray
    target: np.ndarray | None = None
    group: str = ''
    stamp_ns: int | None = None


@dataclasses.dataclass
class FrameResult:
    """A processed frame: the input, (H, W) float32 probability, (H, W) uint8 labels, record."""

    frame: Frame
    probability: np.ndarray
    labels: np.ndarray
    record: FrameRecord


def safe_name(name: str) -> str:
    """A file-name-safe version of ``name`` (topic slashes etc. become ``_``)."""
    return re.sub(r'[^A-Za-z0-9._-]+', '_', name).strip('_') or 'frame'


def dataset_frames(dataset: Sequence[Any], limit: int | None = None) -> Iterator[Frame]:
    """Frames of a :class:`datasets.RoadDataset`, decoded lazily (first ``limit`` only)."""
    n = len(dataset) if limit is None else min(int(limit), len(dataset))
    for i in range(n):
        sample = dataset[i]
        yield Frame(sample.name, sample.image, sample.target)


class EvalRun:
    """Runs frames through the pipeline in batches and accumulates metrics and outputs.

    Args:
        pipeline: a :class:`seg_perception.runtime.pipeline.Pipeline` (its threshold and CRF
            setting apply).
        out_dir: where outputs go; ``None`` = metrics only (nothing written).
        save_probabilities: write ``prob/<name>.png`` (uint8 0..255) per frame.
        n_overlays: number of overlay PNGs to write (spread evenly when ``total`` is known).
        total: expected number of frames (progress bar and overlay spacing), if known.
        batch_size: frames per ``segment`` call.
        bev: a :class:`~seg_perception.evaluation.bev.BevScorer` to score in bird's-eye view
            too (KITTI layout), or ``None``.
    """

    def __init__(self, pipeline: Any, out_dir: str | pathlib.Path | None = None,
                 save_probabilities: bool = False,
                 n_overlays: int = 0, total: int | None = None, batch_size: int = 4,
                 bev: Any = None) -> None:
        """Prepare accumulators and output folders."""
        if batch_size < 1:
            raise ValueError(f'batch size must be >= 1, got {batch_size}')
        self.pipeline = pipeline
        self.out_dir = pathlib.Path(out_dir) if out_dir is not None else None
        self.save_probabilities = bool(save_probabilities) and self.out_dir is not None
        self.n_overlays = int(n_overlays) if self.out_dir is not None else 0
        self.total = total
        self.batch_size = int(batch_size)
        self.bev = bev
        self.evaluator = RoadEvaluator()
        self.groups: dict[str, RoadEvaluator] = {}
        self.group_frames: dict[str, int] = {}
        self.records: list[FrameRecord] = []
        self.overlay_files: list[pathlib.Path] = []
        self._overlay_at = self._overlay_indices()
        self._names: set[str] = set()
        self._first_batch = 0
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)

    # -- processing ------------------------------------------------------------------
    def _overlay_indices(self) -> set[int]:
        if self.n_overlays <= 0:
            return set()
        if not self.total:
            return set(range(self.n_overlays))
        n = min(self.n_overlays, self.total)
        return {int(round(i)) for i in np.linspace(0, self.total - 1, n)}

    def process(self, frames: Sequence[Frame]) -> list[FrameResult]:
        """Segment one batch of frames, score them and write their per-frame outputs.

        Raises:
            preprocess.InputError: a frame is not a usable image.
            ValueError: a frame's ground truth differs in size from its image.
        """
        for f in frames:
            if f.target is not None and f.target.shape != f.image.shape[:2]:
                raise ValueError(f'{f.name}: ground truth {f.target.shape[1]}x'
                                 f'{f.target.shape[0]} does not match image '
                                 f'{f.image.shape[1]}x{f.image.shape[0]}')
        t0 = time.perf_counter()
        outputs = self.pipeline.run([f.image for f in frames])
        if not self.records:
            self._first_batch = len(frames)
        share_ms = (time.perf_counter() - t0) * 1e3 / len(frames)  # segment + CRF
        return [self._score(f, o.probability, o.labels, share_ms)
                for f, o in zip(frames, outputs)]

    def _score(self, frame: Frame, prob: np.ndarray, labels: np.ndarray,
               ms: float) -> FrameResult:
        index = len(self.records)
        iou = None
        if frame.target is not None:
            q = quantize_probability(prob)
            self.evaluator.update(q, frame.target)
            self.groups.setdefault(frame.group, RoadEvaluator()).update(q, frame.target)
            iou = road_iou(labels, frame.target, self.pipeline.road_class)
        self.group_frames[frame.group] = self.group_frames.get(frame.group, 0) + 1
        road = float(np.mean(labels == self.pipeline.road_class))
        record = FrameRecord(frame.name, frame.group, frame.stamp_ns, int(prob.shape[1]),
                             int(prob.shape[0]), round(ms, 3), road, iou)
        self.records.append(record)
        fname = self._file_name(frame.name)
        if self.bev is not None:
            self.bev.update(frame.name, fname, prob, frame.target)
        if self.out_dir is not None:
            if self.save_probabilities:
                image_io.write_rgb(self.out_dir / 'prob' / f'{fname}.png',
                                   render.probability_mono8(prob))
            if index in self._overlay_at:
                path = self.out_dir / 'overlays' / f'{fname}.png'
                image_io.write_rgb(path, render.overlay(frame.image, labels,
                                                        self.pipeline.card.palette))
                self.overlay_files.append(path)
        return FrameResult(frame, prob, labels, record)

    def _file_name(self, name: str) -> str:
        base = safe_name(name)
        fname, k = base, 1
        while fname in self._names:  # names must not overwrite each other's files
            k += 1
            fname = f'{base}_{k}'
        self._names.add(fname)
        return fname

    def iterate(self, frames: Iterable[Frame], progress: bool = True,
                desc: str = 'segment') -> Iterator[FrameResult]:
        """Batch ``frames`` and yield one :class:`FrameResult` per frame, in order.

        If ``frames`` raises (e.g. a bag that ends mid-write), the frames read before are
        still processed, then the error is raised again. A progress bar goes to stderr
        when it is a terminal and ``progress`` is set.
        """
        from tqdm import tqdm
        bar = tqdm(total=self.total, desc=desc, unit='frame', file=sys.stderr,
                   disable=not (progress and sys.stderr.isatty()))
        source = iter(frames)
        batch: list[Frame] = []
        failure: Exception | None = None
        try:
            while failure is None:
                try:
                    frame = next(source)
                except StopIteration:
                    break
                except Exception as exc:  # noqa: BLE001 - re-raised after the pending batch
                    failure = exc
                    break
                batch.append(frame)
                if len(batch) >= self.batch_size:
                    yield from self.process(batch)
                    bar.update(len(batch))
                    batch = []
            if batch:  # frames read before the end (or before a source error)
                yield from self.process(batch)
                bar.update(len(batch))
        finally:
            bar.close()
        if failure is not None:
            raise failure

    # -- results ---------------------------------------------------------------------
    @property
    def n_frames(self) -> int:
        """Frames processed so far."""
        return len(self.records)

    def metrics(self) -> dict[str, Any]:
        """Overall metrics (``RoadEvaluator.result`` at the segmenter threshold).

        An ``{'error': ...}`` entry replaces them when undefined (no ground truth / no road).
        """
        return self.evaluator.result_or_error(self.pipeline.threshold)

    def group_metrics(self) -> dict[str, dict[str, Any]]:
        """Metrics per group, for every group seen (frames without ground truth included)."""
        out = {}
        for g, n in self.group_frames.items():
            ev = self.groups.get(g)
            res = ev.result_or_error(self.pipeline.threshold) if ev else {
                'error': 'no ground truth', 'n_images': 0}
            out[g] = {**res, 'frames': n}
        return out

    def counts(self) -> dict[str, Any]:
        """The metric counts, overall and per group (``RoadEvaluator.state``), so results of
        several runs combine exactly (e.g. a fleet of bags).
        """
        return {'all': self.evaluator.state(),
                'groups': {g: ev.state() for g, ev in self.groups.items()}}

    def timing(self) -> dict[str, float]:
        """Per-frame inference time statistics in ms, without the first batch (it includes
        graph tracing / compilation) unless it is all there is.
        """
        warm = self._first_batch if len(self.records) > self._first_batch else 0
        return percentiles([r.inference_ms for r in self.records[warm:]])

    def finish(self, spec: ReportSpec, run_info: dict[str, Any] | None = None,
               groups_key: str | None = None, partial: bool = False,
               error: str | None = None, extra: dict[str, Any] | None = None,
               ) -> dict[str, Any]:
        """The metrics.json document; with an output folder, the report is written too.

        Args:
            spec: title, summary file name and group label of the report.
            run_info: settings to record (model, dataset, input mode ...).
            groups_key: key for per-group metrics in metrics.json (e.g. ``'topics'``);
                ``None`` = no per-group metrics.
            partial: the run stopped early (interrupted or an input error).
            error: why it stopped, if it did.
            extra: more top-level entries for metrics.json.
        """
        overall = self.metrics()
        doc: dict[str, Any] = {k: v for k, v in overall.items() if k != 'error'}
        doc['ground_truth'] = 'error' not in overall
        if 'error' in overall:
            doc['metrics_error'] = overall['error']
            doc['n_images'] = int(self.evaluator.n_images)
        doc['frames'] = self.n_frames
        groups = self.group_metrics() if groups_key else {}
        if groups_key:
            doc[groups_key] = groups
        doc['inference_ms'] = self.timing()
        doc['run'] = {**(run_info or {}), 'crf': self.pipeline.crf_enabled,
                      'batch_size': self.batch_size,
                      'model_threshold': float(self.pipeline.threshold)}
        doc['partial'] = bool(partial)
        if error:
            doc['error'] = error
        if self.bev is not None:
            doc['bev'] = self.bev.metrics(self.pipeline.threshold)
            if self.out_dir is not None and self.bev.pictures:
                sheet = plots.contact_sheet(
                    [image_io.read_rgb(p) for p in self.bev.pictures], columns=10,
                    tile_width=100, captions=[p.stem for p in self.bev.pictures])
                image_io.write_rgb(self.out_dir / 'bev_sheet.png', sheet)
        doc.update(extra or {})
        if self.out_dir is not None:
            write_report(self.out_dir, spec, doc, self.records,
                         evaluation_sections(doc, groups, spec.group_label,
                                             self.evaluator.n_images),
                         self._curves(groups), self.overlay_files)
        return doc

    def _curves(self, groups: dict[str, Any]) -> list[tuple[str, dict[str, np.ndarray]]]:
        if self.evaluator.n_images == 0 or 'error' in self.metrics():
            return []
        scored = [(g, ev) for g, ev in self.groups.items()
                  if g and 'error' not in groups.get(g, {})]
        if len(scored) <= 1:
            return [(scored[0][0] if scored else '', self.evaluator.curves())]
        return [(g, ev.curves()) for g, ev in scored] + [('all', self.evaluator.curves())]


def evaluate_model(pipeline: Any, dataset: Sequence[Any], batch_size: int = 4,
                   ) -> dict[str, Any]:
    """KITTI-style metrics of ``pipeline`` on every frame of ``dataset`` (no files written).

    Raises:
        ValueError: metrics are undefined (no ground truth / no road pixels).
    """
    run = EvalRun(pipeline, batch_size=batch_size, total=len(dataset))
    for _ in run.iterate(dataset_frames(dataset), progress=False):
        pass
    return run.evaluator.result(threshold=pipeline.threshold)
