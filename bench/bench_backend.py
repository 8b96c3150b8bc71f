"""FCN-8s forward throughput on the current Keras backend/device, batch 1 and 8, fp32/mixed.

This is the GPU row of docs/PERFORMANCE.md. The GPU machines lent to this project have JAX
but no TensorFlow, so it runs the same pure-Keras model with ``KERAS_BACKEND=jax``::

    KERAS_BACKEND=jax python -m bench.bench_backend --model models/road_fcn8s_vgg16.segmodel

It also runs on the CPU (any backend) for comparison. Timings use the Segmenter's compiled
forward pass (jax.jit / tf.function) on an already prepared uint8 batch.
"""
from __future__ import annotations

import argparse
import functools
import sys

from bench.common import DEFAULT_MODEL, machine_info, print_table, time_call, write_results
from seg_perception.core.choices import DEVICES


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default=str(DEFAULT_MODEL))
    p.add_argument('--size', type=int, nargs=2, default=(375, 1242), metavar=('H', 'W'))
    p.add_argument('--batches', type=int, nargs='+', default=[1, 8])
    p.add_argument('--precisions', nargs='+', default=['float32', 'mixed'])
    p.add_argument('--device', default='auto', choices=DEVICES)
    p.add_argument('--repeats', type=int, default=10)
    p.add_argument('--json', default=None, help='default bench/results/backend_<backend>_'
                                                 '<device>.json')
    args = p.parse_args(argv)

    import keras
    import numpy as np

    from seg_perception.core import preprocess
    from seg_perception.runtime.segmenter import Segmenter, resolve_device

    device = resolve_device(args.device)
    rows = []
    for precision in args.precisions:
        # mixed = float16 on GPUs, bfloat16 on CPUs (what their matrix units do fast)
        prec = ('float16' if device == 'gpu' else 'bfloat16') if precision == 'mixed' \
            else precision
        seg = Segmenter(args.model, device=device, input_mode='pad', precision=prec)
        for b in args.batches:
            frames = [np.random.default_rng(i).integers(0, 256, (*args.size, 3), np.uint8)
                      for i in range(b)]
            batch, _ = preprocess.prepare_batch(frames, 'pad')
            stats = time_call(functools.partial(seg.forward, batch, False), repeats=args.repeats,
                              warmup=2)
            rows.append({'backend': keras.backend.backend(), 'device': device,
                         'precision': prec, 'batch': b,
                         'size': f'{args.size[1]}x{args.size[0]}',
                         'ms_per_batch': stats['median_ms'],
                         'frames_per_s': b / stats['median_ms'] * 1e3})
    name = f'backend_{keras.backend.backend()}_{device}'
    write_results(name, {'machine': machine_info(), 'rows': rows}, args.json)
    print_table(f'FCN-8s forward, {keras.backend.backend()} on {device}', rows,
                ['backend', 'device', 'precision', 'batch', 'size', 'ms_per_batch',
                 'frames_per_s'])
    return 0


if __name__ == '__main__':
    sys.exit(main())
