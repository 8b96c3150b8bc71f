"""The one report writer of ``seg_evaluate``, ``seg_bag eval``, ``seg_bag live`` and the demo.

Every run writes into its output folder, through :func:`write_report`:

    metrics.json   the run's document (fractions in [0, 1]; non-finite numbers as null)
    frames.csv     one :class:`FrameRecord` per frame (csv module; empty cell = not known)
    <summary>.md   markdown: title, partial-result banner, sections, PR curve, overlays
    pr_curve.png   precision-recall curve(s), when there were scored frames

and the markdown pieces every report shares (:func:`settings_table`, :func:`metrics_table`,
:func:`percentile_table`) are written here once.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from seg_perception.evaluation import plots

LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class FrameRecord:
    """The per-frame record (one CSV row) of every report; ``None`` = not known.

    Attributes:
        name: frame name (dataset file stem, ``<topic>_<stamp>``).
        group: what the frame belongs to (its topic, or '' for a dataset split).
        stamp_ns: header stamp in ns (bag frames).
        width, height: frame size in pixels.
        inference_ms: this frame's share of the batched pipeline call plus its CRF time.
        road_fraction: fraction of pixels labelled road, in [0, 1].
        iou: road IoU against the ground truth, ``None`` without it.
        original_stamp_ns, published_ns, received_ns: live replay: the bag's header stamp,
            when the frame was published and when its label came back (wall clock, ns).
        latency_ms, publish_to_receive_ms: live replay: receive - header stamp, receive -
            publish.
    """

    name: str
    group: str = ''
    stamp_ns: int | None = None
    width: int | None = None
    height: int | None = None
    inference_ms: float | None = None
    road_fraction: float | None = None
    iou: float | None = None
    original_stamp_ns: int | None = None
    published_ns: int | None = None
    received_ns: int | None = None
    latency_ms: float | None = None
    publish_to_receive_ms: float | None = None


@dataclasses.dataclass
class ReportSpec:
    """What a report looks like.

    Attributes:
        title: markdown heading (also the PR curve's title).
        summary_name: markdown file name (``summary.md``, ``report.md``).
        group_label: the CSV header of :attr:`FrameRecord.group` (``'topic'``).
        columns: the :class:`FrameRecord` fields in the CSV, in order (any record with
            these attributes works).
        csv_name: the CSV file name.
    """

    title: str
    summary_name: str = 'summary.md'
    group_label: str = 'group'
    columns: tuple[str, ...] = ('name', 'group', 'stamp_ns', 'width', 'height',
                                'inference_ms', 'road_fraction', 'iou')
    csv_name: str = 'frames.csv'


_DECIMALS = {'inference_ms': 3, 'latency_ms': 3, 'publish_to_receive_ms': 3,
             'road_fraction': 6, 'iou': 6}


def to_jsonable(v: Any) -> Any:
    """``v`` with numpy scalars, paths and non-finite floats made JSON-friendly."""
    if isinstance(v, dict):
        return {str(k): to_jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, pathlib.Path):
        return str(v)
    return v


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """Statistics mean / p50 / p90 / p95 / p99 / max of ``values`` (empty -> empty dict)."""
    if not len(values):
        return {}
    v = np.asarray(values, np.float64)
    out = {'mean': float(v.mean())}
    out.update({f'p{q}': float(np.percentile(v, q)) for q in (50, 90, 95, 99)})
    out['max'] = float(v.max())
    return out


def fmt(v: Any) -> str:
    """A table cell: floats with 4 decimals, lists space-separated."""
    if isinstance(v, float):
        return f'{v:.4f}'
    if isinstance(v, (list, tuple)):
        return ' '.join(str(x) for x in v)
    return str(v)


def metrics_table(m: dict[str, Any]) -> str:
    """The headline metrics as a markdown table (fractions with 4 decimals)."""
    keys = ['MaxF', 'AvgPrec', 'PRE', 'REC', 'FPR', 'FNR', 'IoU', 'accuracy', 'threshold',
            'n_images']
    keys = [k for k in keys if k in m]
    return '\n'.join(['| ' + ' | '.join(keys) + ' |', '|' + '---|' * len(keys),
                      '| ' + ' | '.join(fmt(m[k]) for k in keys) + ' |'])


def settings_table(settings: dict[str, Any]) -> list[str]:
    """Markdown lines of a setting/value table."""
    return ['| setting | value |', '|---|---|', *(f'| {k} | {fmt(v)} |'
                                                 for k, v in settings.items())]


def percentile_table(rows: dict[str, dict[str, float]],
                     keys: Sequence[str] = ('mean', 'p50', 'p95', 'max')) -> list[str]:
    """Markdown lines of a ``measure | mean | p50 ...`` table (ms, 1 decimal); empty
    statistics are left out.
    """
    lines = ['| measure | ' + ' | '.join(keys) + ' |', '|---|' + '---|' * len(keys)]
    lines += [f'| {name} | ' + ' | '.join(f'{stats[k]:.1f}' for k in keys) + ' |'
              for name, stats in rows.items() if stats]
    return lines


def evaluation_sections(doc: dict[str, Any], groups: dict[str, Any], group_label: str,
                        n_with_gt: int) -> list[str]:
    """The markdown blocks of an evaluation report: settings, metrics, per-group table and
    inference time, from its metrics.json ``doc`` and per-group metrics ``groups``.
    """
    blocks = ['\n'.join(settings_table(doc.get('run', {}))),
              f'Frames processed: {doc["frames"]}; with ground truth: '
              f'{n_with_gt}.']
    if doc['ground_truth']:
        metrics = ['## Metrics (KITTI Road devkit, fractions)', '', metrics_table(doc)]
        if 'IoU_at_threshold' in doc:
            metrics += ['', f'At the model threshold {doc["threshold_fixed"]:.3f}: '
                        f'F {doc["F_at_threshold"]:.4f}, IoU {doc["IoU_at_threshold"]:.4f}.']
        blocks.append('\n'.join(metrics))
    else:
        blocks.append(f'No metrics: {doc.get("metrics_error", "no ground truth")}.')
    bev = doc.get('bev')
    if bev:
        lines = ["## Bird's-eye view (KITTI devkit grid: lateral -10..10 m, forward 6..46 m, "
                 '0.05 m cells)', '', f'Calibration: {bev.get("calibration", "")}', '']
        lines.append(metrics_table(bev) if 'MaxF' in bev else f'No BEV metrics: {bev["error"]}.')
        lines += ['', 'Road probability on the road plane (bright magenta = road, far at the '
                  'top), ground-truth road outlined in green; grey: outside the image.', '',
                  '![BEV per frame](bev_sheet.png)']
        blocks.append('\n'.join(lines))
    if len(groups) > 1 or (groups and next(iter(groups))):
        rows = [f'## Per {group_label}', '', f'| {group_label} | frames | MaxF | AvgPrec | '
                'IoU |', '|---|---|---|---|---|']
        for g, m in groups.items():
            cells = [fmt(m.get(k)) if k in m else '-' for k in ('MaxF', 'AvgPrec', 'IoU')]
            rows.append(f'| {g} | {m["frames"]} | ' + ' | '.join(cells) + ' |')
        blocks.append('\n'.join(rows))
    if doc.get('inference_ms'):
        blocks.append('\n'.join(['## Inference time per frame (ms)', '',
                                 'Excluding the first batch (graph tracing) when there '
                                 'are more.', '',
                                 *percentile_table({'pipeline': doc['inference_ms']})]))
    return blocks


def write_report(out: pathlib.Path, spec: ReportSpec, doc: dict[str, Any],
                 records: Sequence[FrameRecord], sections: Sequence[str],
                 curves: Sequence[tuple[str, dict[str, np.ndarray]]] = (),
                 overlays: Sequence[pathlib.Path] = ()) -> None:
    """Write metrics.json, frames.csv, the PR curve and the markdown summary into ``out``.

    Args:
        out: the output folder (created).
        spec: title, summary file name, CSV columns.
        doc: the metrics.json content; ``doc['partial']`` / ``doc['error']`` give the banner.
        records: the CSV rows (objects with the ``spec.columns`` attributes).
        sections: markdown blocks between the banner and the pictures.
        curves: ``(label, RoadEvaluator.curves())`` per curve; none = no PR curve.
        overlays: overlay PNGs under ``out`` to show.
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / 'metrics.json').write_text(json.dumps(to_jsonable(doc), indent=2) + '\n')
    with (out / spec.csv_name).open('w', newline='') as f:
        w = csv.writer(f)
        w.writerow([spec.group_label if c == 'group' else c for c in spec.columns])
        for r in records:
            w.writerow([_cell(c, getattr(r, c)) for c in spec.columns])
    has_curve = False
    if curves:
        try:
            plots.save_pr_curve(list(curves), out / 'pr_curve.png', title=spec.title)
            has_curve = True
        except Exception as exc:  # noqa: BLE001 - a missing picture must not lose metrics
            LOG.warning('could not draw the PR curve: %s', exc)
    lines = [f'# {spec.title}', '']
    if doc.get('partial'):
        why = doc.get('error') or 'stopped early'
        lines += [f'**Partial results**: stopped after {doc["frames"]} frame(s) ({why}).'
                  if 'frames' in doc else f'**Partial results**: {why}.', '']
    for block in sections:
        lines += [block.rstrip('\n'), '']
    if has_curve:
        lines += ['## Precision-recall', '', '![PR curve](pr_curve.png)', '']
    if overlays:
        lines += ['## Overlays', '', *(f'![{p.stem}]({p.relative_to(out)})' for p in overlays),
                  '']
    (out / spec.summary_name).write_text('\n'.join(lines))


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ''
    if column in _DECIMALS:
        return f'{float(value):.{_DECIMALS[column]}f}'
    return str(value)
