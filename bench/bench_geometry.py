"""Default-model latency: the previous default's geometry against the new default's, in one run.

At a 1242x375 frame (KITTI) and a 480x360 frame (CamVid), single-frame ``Segmenter.segment``
(auto precision, restore to the input size and labels included), interleaved:

* ``previous default``: VGG16-BN encoder (BN folded at load), light head, every frame
  squashed to 192x256 (``input_mode: resize``), i.e. the architecture and geometry of the
  former ``road_camvid.segmodel``; random weights of that spec (timing does not depend on
  the weights, and the old file is no longer shipped);
* ``new default, fit``: the shipped model at its card geometry (height 192, aspect kept:
  640x192 for KITTI);
* ``new default, pad``: the shipped model at full resolution (1248x384 for KITTI).

Target: the new default geometry at most 3x the previous default at 1242x375.

``--against FILE`` times a real model file at its own card geometry in place of the random
previous default (e.g. the release before, to check a new default against a latency budget
such as ``--max-ratio 1.5``).

    python -m bench.bench_geometry [--model models/road_fcn8s_vgg16.segmodel] [--repeats 5]
    python -m bench.bench_geometry --against old.segmodel --max-ratio 1.5
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from bench.common import (  # noqa: E402 - the environment above must be set first
    machine_info,
    parse_size,
    print_table,
    resolve_model,
    time_interleaved,
    write_results,
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default=None, help='the new default (default: the shipped one)')
    p.add_argument('--repeats', type=int, default=5, help='timed runs per variant (median)')
    p.add_argument('--warmup', type=int, default=1, help='untimed runs per variant first')
    p.add_argument('--sizes', type=parse_size, nargs='+', default=[(375, 1242), (360, 480)],
                   help='frame sizes HxW')
    p.add_argument('--against', default=None, metavar='FILE',
                   help='baseline model file at its card geometry (default: the random '
                        'previous-default spec, resize 256x192)')
    p.add_argument('--max-ratio', type=float, default=3.0,
                   help='target: fit at 1242x375 at most this times the baseline (default 3)')
    p.add_argument('--json', default=None, help='results file (default '
                   'bench/results/geometry.json)')
    args = p.parse_args(argv)

    import numpy as np

    from seg_perception.model.fcn8s import ModelSpec
    from seg_perception.model.model_file import save_random_model
    from seg_perception.runtime.segmenter import Segmenter

    with tempfile.TemporaryDirectory() as tmp:
        try:
            model_path, model_note = resolve_model(
                args.model, pathlib.Path(tmp), ModelSpec(batch_norm=False, head='light'))
        except FileNotFoundError as exc:
            print(f'bench_geometry: {exc}', file=sys.stderr)
            return 2
        if args.against:
            old_path = pathlib.Path(args.against)
            if not old_path.is_file():
                print(f'bench_geometry: --against {old_path}: not found', file=sys.stderr)
                return 2
            old_note = f'{old_path} at its card geometry'
        else:
            old_path = save_random_model(pathlib.Path(tmp) / 'previous.segmodel',
                                         ModelSpec(batch_norm=True, head='light'), seed=0,
                                         input_size=[192, 256], input_mode='resize')
            old_note = 'VGG16-BN light head, resize 256x192, random weights'
        previous = Segmenter(old_path)
        new_fit = Segmenter(model_path)
        new_pad = Segmenter(model_path, input_mode='pad')
    rng = np.random.default_rng(0)
    rows, raw = [], {}
    for h, w in args.sizes:
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        t = time_interleaved({
            'previous': lambda f=frame: previous.segment([f]),
            'fit': lambda f=frame: new_fit.segment([f]),
            'pad': lambda f=frame: new_pad.segment([f]),
        }, repeats=args.repeats, warmup=args.warmup)
        base = t['previous']['median_ms']
        fit_h = new_fit.input_size[0]
        fit_w = -(-round(w * fit_h / h) // 32) * 32
        rows.append({
            'size': f'{w}x{h}', 'previous_ms': base,
            'fit': f"{t['fit']['median_ms']:.1f} ({fit_w}x{fit_h})",
            'pad': f"{t['pad']['median_ms']:.1f} ({-(-w // 32) * 32}x{-(-h // 32) * 32})",
            'fit_ratio': t['fit']['median_ms'] / base,
            'pad_ratio': t['pad']['median_ms'] / base,
            'target': ('met' if t['fit']['median_ms'] <= args.max_ratio * base else 'not met')
            if (h, w) == (375, 1242) else '',
        })
        raw[f'{w}x{h}'] = t
    info = machine_info()
    print(f'new default: {model_note}; baseline: {old_note}; precision {new_fit.precision} / '
          f'{previous.precision}; device {new_fit.device}; {info["cpu"]}, '
          f'{info["cpu_count"]} CPUs; CPU flags: {info.get("cpu_flags", "?")}; median of '
          f'{args.repeats} after {args.warmup} warm-up')
    print_table('Default-model latency per frame (Segmenter.segment, ms)', rows,
                ['size', 'previous_ms', 'fit', 'pad', 'fit_ratio', 'pad_ratio', 'target'],
                ['frame', f'baseline: {old_note}', 'new default, fit (model input)',
                 'new default, pad (model input)', 'fit / baseline', 'pad / baseline',
                 f'target fit <= {args.max_ratio:g}x at 1242x375'])
    out = write_results('geometry', {'machine': info, 'model': model_note, 'baseline': old_note,
                                     'max_ratio': args.max_ratio, 'rows': rows,
                                     'raw': raw, 'precision': new_fit.precision}, args.json)
    print(f'results: {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
