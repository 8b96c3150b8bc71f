"""The fleet report of ``seg_bag eval --bags`` and the comparison of two fleet runs.

The overall and per-topic metrics come from the per-bag metric counts, summed
(:meth:`seg_perception.core.metrics.RoadEvaluator.add`): exactly the metrics of one run over
all frames. Written with the one report writer
(:func:`seg_perception.evaluation.report.write_report`): ``metrics.json``, ``bags.csv``,
``fleet.md``, ``pr_curve.png``, plus ``maxf_hist.png`` (per-bag MaxF).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import pathlib
from collections.abc import Sequence
from typing import Any

from seg_perception.core.metrics import RoadEvaluator
from seg_perception.evaluation import plots
from seg_perception.evaluation.report import ReportSpec, fmt, metrics_table, write_report

COLUMNS = ('name', 'status', 'frames', 'MaxF', 'IoU', 'fps', 'reason', 'bag')


@dataclasses.dataclass
class BagRow:
    """One bag in ``bags.csv`` and the report's table."""

    name: str
    status: str
    frames: int
    MaxF: float | None  # noqa: N815 - the metric's name
    IoU: float | None  # noqa: N815
    fps: float | None
    reason: str
    bag: str | None


def _order(row: dict[str, Any]) -> tuple[int, float]:
    """Failed bags first, then by MaxF, worst first."""
    ok = row['status'] == 'ok' and row.get('MaxF') is not None
    return (1 if ok else 0, row['MaxF'] if ok else 0.0)


def write_fleet_report(out: pathlib.Path, rows: Sequence[dict[str, Any]],
                       run_info: dict[str, Any], partial: str | None = None,
                       ) -> dict[str, Any]:
    """Write the fleet report of the bags' result ``rows`` into ``out``.

    Args:
        out: the output folder.
        rows: one result per bag (from ``fleet.evaluate_bag`` or ``fleet.failed``).
        run_info: settings to record (model, params file, workers ...).
        partial: why the run stopped before every bag was done, if it did.

    Returns:
        The metrics.json content.
    """
    total, topics = RoadEvaluator(), {}
    threshold = 0.5
    for r in rows:
        if r['status'] != 'ok':
            continue
        total.add(RoadEvaluator.from_state(r['counts']['all']))
        for topic, state in r['counts']['groups'].items():
            topics.setdefault(topic, RoadEvaluator()).add(RoadEvaluator.from_state(state))
        threshold = r.get('model_threshold', threshold)
    overall = total.result_or_error(threshold)
    ordered = sorted(rows, key=_order)
    doc: dict[str, Any] = {
        **{k: v for k, v in overall.items() if k != 'error'},
        'ground_truth': 'error' not in overall, 'bags_total': len(rows),
        'bags_ok': sum(r['status'] == 'ok' for r in rows),
        'bags_failed': sum(r['status'] != 'ok' for r in rows),
        'frames': sum(r['frames'] for r in rows),
        'topics': {t: ev.result_or_error(threshold) for t, ev in sorted(topics.items())},
        'bags': [{k: v for k, v in r.items() if k != 'counts'} for r in ordered],
        'run': run_info, 'partial': partial is not None}
    if 'error' in overall:
        doc['metrics_error'] = overall['error']
    if partial:
        doc['error'] = partial
    records = [BagRow(r['name'], r['status'], r['frames'], r.get('MaxF'), r.get('IoU'),
                      r.get('fps'), r.get('reason', ''), r.get('bag')) for r in ordered]
    maxf = [r['MaxF'] for r in rows if r['status'] == 'ok' and r.get('MaxF') is not None]
    sections = _sections(doc)
    if maxf:
        plots.save_histogram(maxf, out / 'maxf_hist.png', 'MaxF per bag', 'MaxF', bins=20,
                             value_range=(min(min(maxf), 0.9), 1.0))
        sections.append('## MaxF per bag\n\n![MaxF per bag](maxf_hist.png)')
    spec = ReportSpec('Fleet evaluation', 'fleet.md', group_label='bag', columns=COLUMNS,
                      csv_name='bags.csv')
    curves = [('fleet', total.curves())] if 'MaxF' in doc else []
    write_report(out, spec, doc, records, sections, curves)
    return doc


def _sections(doc: dict[str, Any]) -> list[str]:
    head = [f'{doc["bags_ok"]} of {doc["bags_total"]} bag(s) evaluated, {doc["frames"]} '
            'frame(s). The metrics below come from the summed per-bag counts: the same as '
            'one run over every frame.']
    blocks = ['\n'.join(head)]
    if doc['ground_truth']:
        blocks.append('## Overall (KITTI Road devkit metrics)\n\n' + metrics_table(doc))
    else:
        blocks.append(f'No overall metrics: {doc.get("metrics_error", "no ground truth")}.')
    rows = ['## Per topic', '', '| topic | frames with ground truth | MaxF | AvgPrec | IoU |',
            '|---|---|---|---|---|']
    for t, m in doc['topics'].items():
        rows.append(f'| {t} | {m.get("n_images", 0)} | ' + ' | '.join(
            fmt(m.get(k)) if k in m else '-' for k in ('MaxF', 'AvgPrec', 'IoU')) + ' |')
    blocks.append('\n'.join(rows))
    bags = ['## Per bag (worst first)', '', '| bag | status | frames | MaxF | IoU | fps | '
            'reason |', '|---|---|---|---|---|---|---|']
    for r in doc['bags']:
        bags.append(f'| {r["name"]} | {r["status"]} | {r["frames"]} | {_num(r.get("MaxF"))} | '
                    f'{_num(r.get("IoU"))} | {_num(r.get("fps"), 1)} | {r.get("reason", "")} |')
    blocks.append('\n'.join(bags))
    return blocks


def compare_runs(out: pathlib.Path, other: pathlib.Path) -> dict[str, Any]:
    """Put this fleet run (``out``) and an earlier one (``other``) side by side, per bag.

    Writes ``compare.md`` and ``compare.csv`` into ``out``: MaxF and IoU of each bag in both
    runs and the difference (this run minus the other), the largest drops first.

    Raises:
        ValueError: either folder holds no fleet report.
    """
    ours, theirs = _fleet_doc(out), _fleet_doc(other)
    before = {r['name']: r for r in theirs['bags']}
    rows = []
    for r in ours['bags']:
        b = before.get(r['name'], {})
        rows.append({'name': r['name'], 'MaxF': r.get('MaxF'), 'MaxF_other': b.get('MaxF'),
                     'dMaxF': _delta(r.get('MaxF'), b.get('MaxF')), 'IoU': r.get('IoU'),
                     'IoU_other': b.get('IoU'), 'dIoU': _delta(r.get('IoU'), b.get('IoU'))})
    rows.sort(key=lambda r: math.inf if r['dMaxF'] is None else r['dMaxF'])
    with (out / 'compare.csv').open('w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ['name'])
        w.writeheader()
        w.writerows(rows)
    overall = {k: _delta(ours.get(k), theirs.get(k)) for k in ('MaxF', 'AvgPrec', 'IoU')}
    lines = [f'# This run ({out}) vs {other}', '',
             '| | MaxF | AvgPrec | IoU |', '|---|---|---|---|',
             '| this run | ' + ' | '.join(fmt(ours.get(k)) for k in overall) + ' |',
             '| other | ' + ' | '.join(fmt(theirs.get(k)) for k in overall) + ' |',
             '| difference | ' + ' | '.join(_signed(v) for v in overall.values()) + ' |', '',
             '## Per bag (largest MaxF drop first)', '',
             '| bag | MaxF | other | difference | IoU | other | difference |',
             '|---|---|---|---|---|---|---|']
    lines += [f'| {r["name"]} | {_num(r["MaxF"])} | {_num(r["MaxF_other"])} | '
              f'{_signed(r["dMaxF"])} | {_num(r["IoU"])} | {_num(r["IoU_other"])} | '
              f'{_signed(r["dIoU"])} |' for r in rows]
    missing = sorted(set(before) - {r['name'] for r in ours['bags']})
    if missing:
        lines += ['', f'Only in the other run: {", ".join(missing)}.']
    (out / 'compare.md').write_text('\n'.join(lines) + '\n')
    worse = [r for r in rows if r['dMaxF'] is not None and r['dMaxF'] < 0]
    return {'overall': overall, 'bags': rows, 'worse': [r['name'] for r in worse]}


def _fleet_doc(folder: pathlib.Path) -> dict[str, Any]:
    try:
        doc = json.loads((folder / 'metrics.json').read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f'{folder}: no fleet report ({exc})') from None
    if 'bags' not in doc:
        raise ValueError(f'{folder}: not a fleet report (run seg_bag eval --bags)')
    return doc


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 6)


def _num(v: float | None, decimals: int = 4) -> str:
    return '-' if v is None else f'{v:.{decimals}f}'


def _signed(v: float | None) -> str:
    return '-' if v is None else f'{v:+.4f}'
