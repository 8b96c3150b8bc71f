"""Segmenter latency against a per-frame ``model.predict`` loop, and its own overhead.

(a) Single-frame latency, pad mode, at 375x1242 (KITTI) and 360x480 (CamVid):
    * ``predict``: what a plain Keras user writes per frame on the same float32 model:
      ``prepare_batch`` -> ``model.predict(x)`` -> numpy softmax -> ``restore`` -> labels;
    * ``Segmenter`` float32 and ``Segmenter`` with the auto precision (bfloat16 on CPUs with
      AMX/AVX512-BF16), same model file. Target: Segmenter <= 1/3 of predict's time.
    * ``Segmenter`` on ONNX Runtime (CPU execution provider, float32): the same model
      exported with ``seg_export`` into a temporary file (or ``--onnx``); skipped without
      onnxruntime/tf2onnx or with ``--no-onnx``;
    * ``Segmenter`` on ONNX Runtime with the int8 (static QDQ) version of that export
      (:mod:`seg_perception.export.int8`, calibrated on ``--calibration-frames``).

To see an AVX2-only CPU on an AVX-512 machine, cap oneDNN (TensorFlow's CPU kernels) with
``ONEDNN_MAX_CPU_ISA=AVX2`` (``make bench`` runs this bench that way too). The cap does not
reach ONNX Runtime's own kernels, so that run leaves ONNX Runtime out.
(b) ``Segmenter.segment`` against the bare compiled forward pass
    (``Segmenter.forward`` on the already prepared batch) on the same batch: the
    overhead of preprocessing, softmax slicing and restore. Target: <= 5 %.
    Also measured inside each call (``segment`` wall time minus its ``last_forward_ms``),
    which is immune to load changes between calls.

All variants are timed interleaved in one run (warm-up, then the median of --repeats).

    python -m bench.bench_segmenter [--model models/road_fcn8s_vgg16.segmodel] [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import pathlib
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
    time_interleaved,
    write_results,
)
from seg_perception.core.params import DEVICES  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default=None,
                   help='model file (default models/road_fcn8s_vgg16.segmodel if present, '
                        'else a random-weights model in a temp file)')
    p.add_argument('--repeats', type=int, default=5, help='timed runs per variant (median)')
    p.add_argument('--warmup', type=int, default=1, help='untimed runs per variant first')
    p.add_argument('--sizes', type=parse_size, nargs='+', default=[(375, 1242), (360, 480)],
                   help='frame sizes HxW')
    p.add_argument('--batch', type=int, default=1, help='frames per batch in part (b)')
    p.add_argument('--device', default='auto', choices=DEVICES)
    p.add_argument('--onnx', default=None, help='ONNX export of --model (default: export it '
                   'into a temporary file)')
    p.add_argument('--no-onnx', action='store_true', help='leave ONNX Runtime out')
    p.add_argument('--calibration-frames', default=str(REPO / 'demo' / 'frames'),
                   help='real frames to calibrate the int8 ONNX model on (default '
                        'demo/frames; its accuracy is measured with seg_evaluate, not here)')
    p.add_argument('--json', default=None, help='results file (default '
                   'bench/results/segmenter.json)')
    args = p.parse_args(argv)
    isa_cap = os.environ.get('ONEDNN_MAX_CPU_ISA')

    import keras
    import numpy as np

    from seg_perception.core import preprocess
    from seg_perception.model.model_file import load_model
    from seg_perception.runtime.segmenter import Segmenter

    with tempfile.TemporaryDirectory() as tmp:
        try:
            model_path, model_note = resolve_model(args.model, pathlib.Path(tmp))
        except FileNotFoundError as exc:
            print(f'bench_segmenter: {exc}', file=sys.stderr)
            return 2
        seg32 = Segmenter(model_path, device=args.device, precision='float32',
                          input_mode='pad')
        seg_auto = Segmenter(model_path, device=args.device, precision='auto',
                             input_mode='pad')
        plain, card = load_model(model_path)  # the same file, float32, for model.predict
        seg_ort, seg_int8, ort_note = None, None, 'left out (--no-onnx)'
        if not args.no_onnx:
            seg_ort, seg_int8, ort_note = _ort_segmenters(args.onnx, plain, card,
                                                          pathlib.Path(tmp),
                                                          args.calibration_frames)
        auto = _auto_choice(pathlib.Path(model_path), pathlib.Path(tmp), seg_int8, args.device)

    def predict_pipeline(frame: np.ndarray) -> np.ndarray:
        batch, geoms = preprocess.prepare_batch([frame], 'pad')
        logits = plain.predict(batch, verbose=0)
        e = np.exp(logits - logits.max(axis=-1, keepdims=True))
        prob = preprocess.restore((e / e.sum(axis=-1, keepdims=True))[0, ..., card.road_class],
                                  geoms[0])
        return (prob >= card.threshold).astype(np.uint8)

    rng = np.random.default_rng(0)
    rows_a, rows_b, raw = [], [], {}
    for h, w in args.sizes:
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        variants = {
            'predict': lambda f=frame: predict_pipeline(f),
            'segmenter_float32': lambda f=frame: seg32.segment([f]),
            'segmenter_auto': lambda f=frame: seg_auto.segment([f]),
        }
        if seg_ort is not None:
            variants['segmenter_onnxruntime'] = lambda f=frame: seg_ort.segment([f])
        if seg_int8 is not None:
            variants['segmenter_onnxruntime_int8'] = lambda f=frame: seg_int8.segment([f])
        t = time_interleaved(variants, repeats=args.repeats, warmup=args.warmup)
        pred = t['predict']['median_ms']
        best = min((v['median_ms'], k) for k, v in t.items() if k != 'predict')
        row = {
            'size': f'{h}x{w}', 'predict_ms': pred,
            'seg32_ms': t['segmenter_float32']['median_ms'],
            'seg_auto_ms': t['segmenter_auto']['median_ms'],
            'ratio32': t['segmenter_float32']['median_ms'] / pred,
            'ratio_auto': t['segmenter_auto']['median_ms'] / pred,
            'fastest': best[1].replace('segmenter_', ''), 'ratio_best': best[0] / pred,
            'target': 'met' if best[0] <= pred / 3 else 'not met',
        }
        picked = ('segmenter_onnxruntime_int8' if auto.backend == 'onnxruntime'
                  else 'segmenter_auto')
        row['ratio_auto_backend'] = t[picked]['median_ms'] / pred
        if seg_ort is not None:
            row['seg_ort_ms'] = t['segmenter_onnxruntime']['median_ms']
            row['ratio_ort'] = row['seg_ort_ms'] / pred
        if seg_int8 is not None:
            row['seg_int8_ms'] = t['segmenter_onnxruntime_int8']['median_ms']
            row['ratio_int8'] = row['seg_int8_ms'] / pred
        rows_a.append(row)

        frames = [frame] * args.batch
        batch, _ = preprocess.prepare_batch(frames, 'pad')
        in_call: list[tuple[float, float]] = []

        def segment_and_split(fs: list = frames, record: list = in_call) -> None:
            t0 = time.perf_counter()
            seg_auto.segment(fs)
            record.append(((time.perf_counter() - t0) * 1e3, seg_auto.last_forward_ms))

        tb = time_interleaved({'segment': segment_and_split,
                               'forward': lambda b=batch: seg_auto.forward(b, False)},
                              repeats=args.repeats, warmup=args.warmup)
        timed = in_call[len(in_call) - args.repeats:]
        overhead_in_call = statistics.median(
            (total - fwd) / fwd for total, fwd in timed) * 100
        seg_ms, fwd_ms = tb['segment']['median_ms'], tb['forward']['median_ms']
        rows_b.append({
            'size': f'{h}x{w} x{args.batch}', 'segment_ms': seg_ms, 'forward_ms': fwd_ms,
            'overhead_pct': (seg_ms - fwd_ms) / fwd_ms * 100,
            'overhead_in_call_pct': overhead_in_call,
            'target': 'met' if max(overhead_in_call, 0) <= 5 else 'not met',
        })
        raw[f'{h}x{w}'] = {'a': t, 'b': tb}

    columns_a = ['size', 'predict_ms', 'seg32_ms', 'seg_auto_ms', 'seg_ort_ms', 'seg_int8_ms',
                 'ratio32', 'ratio_auto', 'ratio_ort', 'ratio_int8', 'fastest', 'ratio_best',
                 'target', 'ratio_auto_backend']
    headers_a = ['frame', 'predict loop (ms)', 'Segmenter float32 (ms)',
                 f'Segmenter auto={seg_auto.precision} (ms)', 'Segmenter onnxruntime CPU '
                 'float32 (ms)', 'Segmenter onnxruntime CPU int8 (ms)', 'float32 / predict',
                 'auto / predict', 'onnxruntime / predict', 'int8 / predict', 'fastest',
                 'fastest / predict', 'target fastest <= 1/3',
                 "backend auto's pick / predict"]
    columns_b = ['size', 'segment_ms', 'forward_ms', 'overhead_pct', 'overhead_in_call_pct',
                 'target']
    headers_b = ['batch', 'segment (ms)', 'forward (ms)', 'overhead % (medians)',
                 'overhead % (in call)', 'target <= 5 %']
    info = machine_info()
    print(f'model: {model_note}; device {seg_auto.device}; backend {keras.backend.backend()}; '
          f'jit {seg_auto.jit}; {info["cpu"]}, {info["cpu_count"]} CPUs, flags '
          f'{info["cpu_flags"]}; oneDNN ISA cap {isa_cap or "none"}; ONNX Runtime: '
          f'{ort_note}; load {info.get("load_average_1_5_15")}; median of {args.repeats} '
          f'after {args.warmup} warm-up')
    print_table('(a) single-frame latency, pad mode', rows_a, columns_a, headers_a)
    print(f'backend auto on this CPU, with the int8 export beside the model: {auto.backend} '
          f'({auto.reason})')
    print_table(f'(b) Segmenter.segment overhead over the bare forward pass '
                f'({seg_auto.precision})', rows_b, columns_b, headers_b)
    out = write_results('segmenter', {
        'machine': info, 'model': model_note, 'device': seg_auto.device,
        'onednn_max_cpu_isa': isa_cap, 'onnxruntime': ort_note,
        'auto_precision': seg_auto.precision, 'jit': seg_auto.jit,
        'auto_backend': {'backend': auto.backend, 'reason': auto.reason},
        'repeats': args.repeats, 'warmup': args.warmup,
        'latency': rows_a, 'overhead': rows_b, 'raw': raw}, args.json)
    print(f'results: {out}')
    return 0


def _ort_segmenters(onnx: str | None, model: Any, card: Any, tmp: pathlib.Path,
                    calibration: str) -> tuple[Any, Any, str]:
    """``(float32 Segmenter, int8 Segmenter, note)`` on ONNX Runtime's CPU provider; ``None``
    for what cannot run (the note says why).
    """
    from seg_perception.runtime.ort_session import onnxruntime_installed
    from seg_perception.runtime.segmenter import Segmenter
    if not onnxruntime_installed():
        return None, None, 'not installed'
    path = pathlib.Path(onnx) if onnx else tmp / 'model.onnx'
    if not onnx:
        from seg_perception.export.onnx_export import ExportError, export_onnx
        try:
            export_onnx(model, card, path)
        except ExportError as exc:
            return None, None, f'no export ({exc})'
    import onnxruntime

    from seg_perception.cli.export import calibration_frames
    from seg_perception.export.int8 import quantize_int8
    seg = Segmenter(path, backend='onnxruntime', providers=('cpu',), input_mode='pad')
    note = f'{onnxruntime.__version__}, {", ".join(seg.providers)}'
    frames = calibration_frames(calibration, 32)
    if not frames:
        return seg, None, note + f'; int8 left out (no frames in {calibration})'
    from seg_perception.core.hardware import int8_dot_flags
    # Without VNNI, the export backend auto would run there: 7-bit weights (no saturation).
    reduce_range = not int8_dot_flags()
    quantize_int8(path, tmp / 'model_int8.onnx', frames, card, reduce_range=reduce_range)
    seg8 = Segmenter(tmp / 'model_int8.onnx', backend='onnxruntime', providers=('cpu',),
                     input_mode='pad')
    return seg, seg8, note + (f'; {seg8.precision} calibrated on {len(frames)} frames of '
                              f'{calibration}')


def _auto_choice(model_path: pathlib.Path, tmp: pathlib.Path, seg_int8: Any,
                 device: str) -> Any:
    """What ``backend: auto`` picks on this machine when the bench's int8 export lies beside
    the model as ``<stem>.int8.onnx`` (links in ``tmp``; none when int8 was left out).
    """
    from seg_perception.core.backend_choice import choose_backend, int8_export_of
    beside = tmp / 'auto' / 'model.segmodel'
    beside.parent.mkdir()
    beside.symlink_to(model_path.resolve())
    if seg_int8 is not None:
        int8_export_of(beside).symlink_to((tmp / 'model_int8.onnx').resolve())
    return choose_backend(beside, device)


if __name__ == '__main__':
    sys.exit(main())
