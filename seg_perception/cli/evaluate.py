r"""``seg_evaluate``: score a road-segmentation model on a KITTI Road or CamVid split.

Runs the model exactly as the ROS node does (same Segmenter, preprocessing, optional dense
CRF) over every frame of the split and computes the KITTI Road devkit metrics (MaxF,
AvgPrec, PRE, REC, FPR, FNR at the MaxF threshold, plus road IoU). All metrics are
fractions in [0, 1].

Examples::

    seg_evaluate --model models/road_fcn8s_vgg16.segmodel --dataset camvid \
        --data-dir ../shared/data/camvid --split val --out eval/camvid_val
    seg_evaluate --model runs/kitti/model.segmodel --dataset kitti \
        --data-dir ~/data/data_road --split val --out eval/kitti_val --crf --save-probabilities
    seg_evaluate --backend onnxruntime --model road.onnx --dataset kitti \
        --data-dir ~/data/data_road --split val --out eval/kitti_val_onnx
    seg_evaluate --model models/road_fcn8s_vgg16.segmodel --dataset kitti --bev \
        --data-dir ~/data/data_road --split val --out eval/kitti_val_bev   # per-frame calib

Writes into --out:
    metrics.json       MaxF, AvgPrec, PRE, REC, FPR, FNR, IoU, accuracy, threshold, n_images
                       (+ F/PRE/REC/IoU_at_threshold for the model's threshold, timing, settings)
    summary.md         the same as a readable report, with the PR curve and overlays
    pr_curve.png       precision-recall curve
    frames.csv         per-frame inference time, road fraction and IoU
    overlays/          a few colour overlays (--overlays N)
    prob/<frame>.png   with --save-probabilities: road probability as uint8 0..255 at the
                       input resolution (what the metrics were computed from)
    bev/<frame>.png    with --bev: the road probability on the KITTI devkit's road-plane grid
                       (far at the top) with the ground-truth outline; bev_sheet.png: all
    prob_bev/<frame>.png  with --bev --save-probabilities: uint8 BEV probability (800 x 400)
                       metrics.json then has a "bev" object with the perspective keys

Splits without ground truth (KITTI ``testing``, a CamVid folder without ``<split>annot/``)
run in prediction-only mode: overlays, probabilities and timings are written, metrics.json
has ``"ground_truth": false`` and no metric values. For camera streams use ``seg_bag`` or
the ``road_segmentation`` node.

Splits: KITTI ``train``/``val`` (stratified 241/48 of the 289 training frames),
``training`` (all), ``testing``, or a text file of frame names; CamVid ``train``, ``val``,
``test`` (any folder name with a matching ``<name>annot/`` label folder).
"""
from __future__ import annotations

import argparse
import logging
import pathlib
import sys
from typing import Any

from seg_perception.cli.common import check_out_dir, run_cli, setup_logging
from seg_perception.core.backend_choice import choose_backend
from seg_perception.core.choices import (
    BACKEND_CHOICES,
    DEVICES,
    INPUT_MODES,
    PRECISIONS,
    PROVIDERS,
    TTA_MODES,
)
from seg_perception.core.crf import CRFParams
from seg_perception.core.formats import UsageError, backend_of_file, check_model_for_backend
from seg_perception.datasets import NAMES, DatasetError, dataset_option, open_dataset
from seg_perception.evaluation.bev import BevScorer
from seg_perception.evaluation.report import ReportSpec, metrics_table
from seg_perception.evaluation.run import EvalRun, dataset_frames
from seg_perception.geometry.kitti_bev import read_kitti_calib
from seg_perception.runtime.pipeline import Pipeline

PROG = 'seg_evaluate'
LOG = logging.getLogger(PROG)


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', required=True,
                   help='model file to evaluate: .segmodel (--backend keras) or .onnx from '
                        'seg_export (--backend onnxruntime)')
    p.add_argument('--dataset', required=True, choices=NAMES,
                   help='dataset layout of --data-dir (docs/TRAINING.md, "Your own labels")')
    p.add_argument('--dataset-option', action='append', type=dataset_option, default=[],
                   metavar='KEY=VALUE',
                   help='dataset option, repeatable (value read as YAML), e.g. mapping=my.yaml '
                        '(folder), alternative=ignore (bdd100k), require_gt=false')
    p.add_argument('--data-dir', required=True,
                   help='KITTI data_road folder (with training/, testing/) or CamVid folder '
                        '(with val/, valannot/ ...)')
    p.add_argument('--split', default='val', help='split to evaluate (default val; see above)')
    p.add_argument('--out', required=True, help='output folder (created; files are replaced)')
    p.add_argument('--limit', type=int, help='evaluate only the first N frames (sorted by name)')
    p.add_argument('--task', choices=['road', 'lane'], default='road',
                   help='KITTI ground truth: road (default) or ego lane')
    g = p.add_argument_group('inference (defaults: the model card)')
    g.add_argument('--input-mode', choices=INPUT_MODES,
                   help='fit: scaled to the model input height, aspect kept; pad: full '
                        'resolution padded to a multiple of 32; resize: to the model size')
    g.add_argument('--input-size', type=int, nargs=2, metavar=('H', 'W'),
                   help='model input size for resize mode (multiples of 32)')
    g.add_argument('--threshold', type=float,
                   help='road threshold for labels, overlays, per-frame IoU and '
                        '*_at_threshold (MaxF scans all thresholds anyway)')
    g.add_argument('--precision', default='auto',
                   choices=PRECISIONS,
                   help='backend keras: compute precision (auto: bfloat16 on CPUs with AMX or '
                        'AVX512-BF16, else float32)')
    g.add_argument('--device', default='auto', choices=DEVICES,
                   help='backend keras: inference device')
    g.add_argument('--backend', default='auto', choices=BACKEND_CHOICES,
                   help="inference runtime: auto (the node's default: see the backend "
                        'parameter), keras, or onnxruntime (an .onnx export; needs the '
                        'onnxruntime package)')
    g.add_argument('--providers', nargs='+', default=list(PROVIDERS), choices=PROVIDERS,
                   metavar='EP',
                   help='onnxruntime execution providers in order of preference (default: '
                        'tensorrt cuda cpu; unavailable ones are skipped)')
    g.add_argument('--tta', choices=TTA_MODES, default='none',
                   help='test-time augmentation: flip = the average of the frame and its '
                        'mirror (twice the inference work)')
    g.add_argument('--batch-size', type=int, default=4, help='frames per forward pass')
    g.add_argument('--crf', action='store_true', help='refine with a dense CRF (slow)')
    g.add_argument('--crf-scale', type=float, metavar='S',
                   help='run the CRF at S times the input resolution (e.g. 0.5; implies --crf)')
    g = p.add_argument_group('outputs')
    g.add_argument('--save-probabilities', action='store_true',
                   help='write prob/<frame>.png (uint8 road probability, input resolution)')
    g.add_argument('--overlays', type=int, default=4, metavar='N',
                   help='number of overlay PNGs (default 4; 0 = none)')
    g = p.add_argument_group("bird's-eye view (KITTI layout)")
    g.add_argument('--bev', action='store_true',
                   help='also score in bird\'s-eye view as the KITTI devkit does (metrics.json '
                        '"bev"; bev/<frame>.png pictures; prob_bev/ with --save-probabilities)')
    g.add_argument('--calib', metavar='FILE',
                   help='KITTI calibration for every frame (default: training/calib/<frame>.txt '
                        'of --data-dir); one file for all frames gives approximate BEV numbers')
    p.add_argument('-v', '--verbose', action='store_true')
    return p




def _expected() -> tuple[type[BaseException], ...]:
    """Errors of bad input (one-line messages), as opposed to bugs. Found lazily: model_io
    (and so TensorFlow) is only imported once the checks passed.
    """
    errors: list[type[BaseException]] = [DatasetError, ValueError, OSError, RuntimeError]
    model_io = sys.modules.get('seg_perception.model.model_file')  # (OrtError is a RuntimeError)
    if model_io is not None:
        errors.append(model_io.ModelFileError)
    return tuple(errors)


def check_args(args: argparse.Namespace) -> None:
    """Reject bad flag values before loading anything (raises :class:`UsageError`)."""
    if args.input_size and any(s < 32 or s % 32 for s in args.input_size):
        raise UsageError(f'--input-size must be two multiples of 32, got {args.input_size}')
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise UsageError(f'--threshold must be in [0, 1], got {args.threshold}')
    if args.crf_scale is not None and not 0.0 < args.crf_scale <= 1.0:
        raise UsageError(f'--crf-scale must be in (0, 1], got {args.crf_scale}')
    if args.batch_size < 1:
        raise UsageError(f'--batch-size must be >= 1, got {args.batch_size}')
    if args.limit is not None and args.limit < 1:
        raise UsageError(f'--limit must be >= 1, got {args.limit}')
    if args.overlays < 0:
        raise UsageError(f'--overlays must be >= 0, got {args.overlays}')
    if len(set(args.providers)) != len(args.providers):
        raise UsageError(f'--providers has duplicates: {args.providers}')
    if (args.bev or args.calib) and args.dataset != 'kitti':
        raise UsageError('--bev and --calib need --dataset kitti (a KITTI Road layout)')
    if args.calib and not args.bev:
        raise UsageError('--calib goes with --bev')
    if args.calib:
        try:
            read_kitti_calib(args.calib)
        except (OSError, ValueError) as exc:
            raise UsageError(f'--calib {args.calib}: {" ".join(str(exc).split())}') from None
    if args.backend == 'auto':
        given = check_model_for_backend(args.model, backend_of_file(args.model))
        choice = choose_backend(given, args.device)
        args.backend, args.model = choice.backend, str(choice.model_path)
        args.providers = list(choice.providers or args.providers)
        args.backend_note = choice.reason
        print(f'backend {choice.backend}: {choice.reason}', flush=True)
    check_model_for_backend(args.model, args.backend)
    check_out_dir(args.out)


def pipeline_from(args: argparse.Namespace) -> Any:
    """The node's :class:`~seg_perception.runtime.pipeline.Pipeline` for these flags (imports
    TensorFlow or onnxruntime).
    """
    from seg_perception.runtime.segmenter import Segmenter
    segmenter = Segmenter(args.model, device=args.device, input_mode=args.input_mode,
                          input_size=args.input_size, precision=args.precision,
                          tta=args.tta,
                          backend=args.backend, providers=args.providers)
    crf = CRFParams() if args.crf_scale is None else CRFParams(scale=args.crf_scale)
    return Pipeline(segmenter, threshold=args.threshold, crf=crf,
                    crf_enabled=args.crf or args.crf_scale is not None,
                    backend_note=getattr(args, 'backend_note', ''))


def bev_scorer(args: argparse.Namespace, names: list[str]) -> BevScorer | None:
    """The BEV scorer of ``--bev`` (``None`` without it): ``--calib`` for every frame, else
    ``training/calib/<frame>.txt`` of ``--data-dir``, all checked before TensorFlow loads.

    Raises:
        UsageError: a frame without a calibration file.
    """
    if not args.bev:
        return None
    if args.calib:
        calib = read_kitti_calib(args.calib)
        return BevScorer(lambda name: calib, args.out, args.save_probabilities,
                         note=f'{args.calib} for every frame (approximate: the road plane '
                              'differs a little between frames)')
    folder = pathlib.Path(args.data_dir) / 'training' / 'calib'
    missing = [n for n in names if not (folder / f'{n}.txt').is_file()]
    if missing:
        raise UsageError(f'--bev: no calibration {folder / missing[0]}.txt ({len(missing)} of '
                         f'{len(names)} frames); pass --calib FILE to use one for all')
    calibs = {n: read_kitti_calib(folder / f'{n}.txt') for n in names}
    return BevScorer(calibs.__getitem__, args.out, args.save_probabilities,
                     note=f'per frame, {folder}/<frame>.txt')


def evaluate(args: argparse.Namespace) -> int:
    """Open the split and the model, run the evaluation loop, write and print results."""
    kwargs: dict[str, Any] = ({'task': args.task} if args.dataset == 'kitti'
                              else {'require_gt': False} if args.dataset == 'camvid' else {})
    kwargs.update(dict(args.dataset_option))
    dataset = open_dataset(args.dataset, args.data_dir, args.split, **kwargs)
    # TensorFlow only now: the flags, the model file, --out and the split are fine.

    total = len(dataset) if args.limit is None else min(args.limit, len(dataset))
    bev = bev_scorer(args, [dataset.items[i].name for i in range(total)])
    if not dataset.has_ground_truth:
        LOG.warning('split %r has no ground truth: prediction-only mode (overlays, '
                    'probabilities and timings; no metrics)', args.split)
    pipeline = pipeline_from(args)
    segmenter = pipeline.segmenter
    run = EvalRun(pipeline, args.out, save_probabilities=args.save_probabilities,
                  n_overlays=args.overlays, total=total, batch_size=args.batch_size, bev=bev)
    summary = pipeline.summary()
    summary.pop('threshold')
    info = {'model': str(args.model), 'dataset': args.dataset, 'data_dir': str(args.data_dir),
            'split': args.split, 'frames_in_split': len(dataset), **summary}
    LOG.info('evaluating %d frame(s) of %s %s with %s (%s, %s)', total, args.dataset,
             args.split, args.model, segmenter.input_mode, segmenter.precision)
    try:
        for _ in run.iterate(dataset_frames(dataset, total), desc=PROG):
            pass
    except BaseException as exc:  # keep what was done, then report the error
        reason = 'interrupted' if isinstance(exc, KeyboardInterrupt) else str(exc)
        if not run.n_frames:
            raise
        run.finish(ReportSpec(f'{args.dataset} {args.split}: partial evaluation'), info,
                   partial=True, error=reason)
        if not isinstance(exc, _expected()):
            raise
        raise UsageError(f'{exc} (results of the {run.n_frames} frame(s) processed are in '
                    f'{args.out})') from None
    labels = dataset.report()  # unknown label values, empty masks (own label layouts)
    label_note = dataset.label_report.summary() if dataset.label_report is not None else None
    if label_note:
        LOG.warning('%s', label_note)
    doc = run.finish(ReportSpec(f'Evaluation of {pathlib.Path(args.model).name} on '
                                f'{args.dataset} {args.split}'), info,
                     extra={'label_report': labels} if labels else None)
    if doc['ground_truth']:
        print(metrics_table(doc))
        if 'MaxF' in doc.get('bev', {}):
            print("bird's-eye view:")
            print(metrics_table(doc['bev']))
        if 'IoU_at_threshold' in doc:
            print(f'at threshold {doc["threshold_fixed"]:.3f}: F {doc["F_at_threshold"]:.4f} '
                  f'IoU {doc["IoU_at_threshold"]:.4f}')
    else:
        print(f'{run.n_frames} frame(s) segmented, no metrics ({doc.get("metrics_error")})')
    print(f'results written to {args.out}/ (metrics.json, summary.md)')
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``seg_evaluate``."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)

    def run() -> int:
        try:
            check_args(args)
            return evaluate(args)
        except Exception as exc:
            if not isinstance(exc, _expected()):
                raise
            raise UsageError(' '.join(str(exc).split())) from None
    return run_cli(PROG, run, ())


if __name__ == '__main__':
    sys.exit(main())
