"""Dense CRF options: time per frame and road IoU on real CamVid frames with a trained model.

Baseline = full resolution, 5 mean-field iterations (``CRFParams()``). Each option is run on
the same model probabilities of the same frames (interleaved frame by frame, so machine
load changes hit all options alike) and scored with the same threshold the node applies
after the CRF (the model card's). Reported: CRF milliseconds per frame (median over
frames), speed-up over the baseline, road IoU over all frames together (TP / (TP + FP + FN)
summed over the set; ignore pixels excluded) and its difference in IoU points to no CRF and
to the baseline. Target: an option >= 10x faster than the baseline within 0.5 IoU points.

    python -m bench.bench_crf [--model models/road_fcn8s_vgg16.segmodel] [--frames 20]

The model must be a trained one: without the file the bench says so and exits with 2
(random weights would make the IoU numbers meaningless).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from bench.common import (  # noqa: E402 - the environment above must be set first
    DEFAULT_MODEL,
    SHARED_DATA,
    machine_info,
    print_table,
    write_results,
)

# (name, scale, iterations); the first is the baseline.
OPTIONS = (
    ('full, 5 it (baseline)', 1.0, 5),
    ('full, 3 it', 1.0, 3),
    ('full, 1 it', 1.0, 1),
    ('scale 0.5, 5 it', 0.5, 5),
    ('scale 0.5, 3 it', 0.5, 3),
    ('scale 0.25, 5 it', 0.25, 5),
    ('scale 0.25, 3 it', 0.25, 3),
    ('scale 0.25, 2 it', 0.25, 2),
)
SPEEDUP_TARGET = 10.0
IOU_POINTS_TARGET = 0.5


def _counts(labels_road, target) -> tuple[int, int, int]:
    """(TP, FP, FN) road pixel counts of one frame, ignore (255) pixels excluded."""
    valid = target != 255
    gt = (target == 1) & valid
    pred = labels_road & valid
    return int((pred & gt).sum()), int((pred & ~gt).sum()), int((~pred & gt).sum())


def _iou(counts: list[tuple[int, int, int]]) -> float:
    tp, fp, fn = (sum(c[i] for c in counts) for i in range(3))
    return tp / (tp + fp + fn) if tp + fp + fn else 1.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default=str(DEFAULT_MODEL), help='trained model file')
    p.add_argument('--data-dir', default=str(SHARED_DATA / 'camvid'), help='CamVid folder')
    p.add_argument('--split', default='val')
    p.add_argument('--frames', type=int, default=20, help='frames to use (first N, sorted)')
    p.add_argument('--json', default=None, help='results file (default bench/results/crf.json)')
    args = p.parse_args(argv)

    model_path = pathlib.Path(args.model)
    if not model_path.is_file():
        print(f'bench_crf: trained model {model_path} does not exist yet; train one (seg_train) '
              'or pass --model PATH. Not running: random weights would make IoU meaningless.',
              file=sys.stderr)
        return 2
    if not pathlib.Path(args.data_dir, args.split).is_dir():
        print(f'bench_crf: CamVid split {args.split!r} not found in {args.data_dir}',
              file=sys.stderr)
        return 2


    from seg_perception.core.crf import CRFParams, refine
    from seg_perception.datasets import open_dataset
    from seg_perception.runtime.segmenter import Segmenter

    dataset = open_dataset('camvid', args.data_dir, args.split)
    n = min(args.frames, len(dataset))
    seg = Segmenter(model_path)
    thr = seg.card.threshold
    params = {name: CRFParams(scale=scale, iterations=it) for name, scale, it in OPTIONS}
    for prm in params.values():
        prm.validate()

    counts: dict[str, list[tuple[int, int, int]]] = {'no CRF': []}
    counts.update({name: [] for name in params})
    times: dict[str, list[float]] = {name: [] for name in params}
    seg_ms = []
    frame_size = None
    for i in range(n):
        sample = dataset[i]
        frame_size = sample.image.shape[:2]
        t0 = time.perf_counter()
        prob = seg.segment([sample.image])[0].probability
        seg_ms.append((time.perf_counter() - t0) * 1e3)
        counts['no CRF'].append(_counts(prob >= thr, sample.target))
        if i == 0:  # warm-up: first call of the C extension, page faults
            refine(sample.image, prob, params[OPTIONS[0][0]])
        for name, prm in params.items():
            t0 = time.perf_counter()
            refined = refine(sample.image, prob, prm)
            times[name].append((time.perf_counter() - t0) * 1e3)
            counts[name].append(_counts(refined >= thr, sample.target))

    base_name = OPTIONS[0][0]
    base_ms = statistics.median(times[base_name])
    iou_none = _iou(counts['no CRF'])
    iou_base = _iou(counts[base_name])
    rows = [{'option': 'no CRF', 'ms': 0.0, 'speedup': '', 'iou': 100 * iou_none,
             'd_none': 0.0, 'd_base': 100 * (iou_none - iou_base), 'target': ''}]
    for name in params:
        ms = statistics.median(times[name])
        iou = _iou(counts[name])
        speedup = base_ms / ms
        d_base = 100 * (iou - iou_base)
        meets = speedup >= SPEEDUP_TARGET and d_base >= -IOU_POINTS_TARGET
        rows.append({'option': name, 'ms': ms, 'speedup': round(speedup, 2),
                     'iou': 100 * iou, 'd_none': 100 * (iou - iou_none), 'd_base': d_base,
                     'target': '' if name == base_name else ('met' if meets else 'not met')})

    info = machine_info()
    print(f'model: {model_path} (threshold {thr:.3f}, {seg.precision}); CamVid {args.split}: '
          f'{n} frames {frame_size[1]}x{frame_size[0]}; segmentation '
          f'{statistics.median(seg_ms):.0f} ms/frame; {info["cpu"]}, {info["cpu_count"]} CPUs, '
          f'load {info.get("load_average_1_5_15")}')
    print_table('Dense CRF options (road IoU in %, differences in IoU points)', rows,
                ['option', 'ms', 'speedup', 'iou', 'd_none', 'd_base', 'target'],
                ['option', 'CRF ms/frame', 'speed-up vs baseline', 'road IoU %',
                 'vs no CRF', 'vs baseline', f'>= {SPEEDUP_TARGET:g}x within '
                 f'{IOU_POINTS_TARGET} pt'])
    out = write_results('crf', {
        'machine': info, 'model': str(model_path), 'threshold': thr,
        'precision': seg.precision, 'split': args.split, 'frames': n,
        'frame_size': list(frame_size), 'segmentation_ms_median': statistics.median(seg_ms),
        'options': [{'name': name, 'scale': s, 'iterations': it} for name, s, it in OPTIONS],
        'rows': rows, 'per_frame_ms': times}, args.json)
    print(f'results: {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
