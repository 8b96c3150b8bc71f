"""Training throughput at the default resolution, and whether the input pipeline limits it.

Measures, in one run on the same compiled model:
  * ``pipeline``: ``model.fit`` steps fed by the real input pipeline (decode from cache,
    random scale/crop/flip, jitter, tf.data or PyDataset) - what ``seg_train`` does;
  * ``cached``: ``model.fit`` steps on one fixed, already-built batch (no input work at all);
  * ``input only``: the time the pipeline needs to produce the same batches without training.
Step time pipeline/cached close to 1.0 means the input pipeline is not the bottleneck.

    python -m bench.bench_training --data-dir ../shared/data/camvid [--precision bfloat16]
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

from bench.common import SHARED_DATA, machine_info, print_table, write_results

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


def _fit_time(model, data, steps: int) -> float:
    t0 = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data-dir', default=str(SHARED_DATA / 'camvid'), help='CamVid folder')
    p.add_argument('--input-size', type=int, nargs=2, default=(192, 256))
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--steps', type=int, default=6, help='timed steps per measurement')
    p.add_argument('--precision', default='auto')
    p.add_argument('--pipeline', default='auto', choices=['auto', 'tfdata', 'pydataset'])
    p.add_argument('--json', default=None, help='results file (default bench/results/'
                   'training.json)')
    args = p.parse_args(argv)
    if not pathlib.Path(args.data_dir, 'train').is_dir():
        print(f'bench_training: CamVid not found in {args.data_dir}', file=sys.stderr)
        return 1

    import keras

    from seg_perception.datasets import open_dataset
    from seg_perception.model import ModelSpec
    from seg_perception.training.config import TrainConfig
    from seg_perception.training.pipeline import FrameStore, TrainSequence, make_tf_dataset
    from seg_perception.training.trainer import compile_model, resolve_training_precision

    config = TrainConfig(dataset='camvid', data_dir=args.data_dir,
                         input_size=tuple(args.input_size), batch_size=args.batch_size,
                         precision=args.precision, pipeline=args.pipeline)
    precision = resolve_training_precision(config.precision)
    store = FrameStore(open_dataset('camvid', args.data_dir, 'train'), cache=True)
    seq = TrainSequence(store, config.input_size, config.batch_size,
                        (config.scale_min, config.scale_max), config.flip, config.jitter,
                        None, seed=0, workers=config.workers)
    use_tfdata = args.pipeline == 'tfdata' or (args.pipeline == 'auto'
                                               and keras.backend.backend() == 'tensorflow')
    data = make_tf_dataset(seq) if use_tfdata else seq
    model = compile_model(config, ModelSpec(), precision, len(seq))

    x, y, w = seq[0]
    cached = (x, y, w)

    def cached_batches():
        while True:
            yield cached

    # Warm-up: compile the train step on each feed.
    _fit_time(model, data, 2)
    _fit_time(model, cached_batches(), 2)
    t_cached = _fit_time(model, cached_batches(), args.steps)
    t_pipe = _fit_time(model, data, args.steps)
    t0 = time.perf_counter()
    for i in range(args.steps):
        seq[i % len(seq)]
    t_input = time.perf_counter() - t0

    b, s = args.batch_size, args.steps
    result = {
        'machine': machine_info(),
        'input_size': list(args.input_size), 'batch_size': b, 'precision': precision,
        'pipeline': 'tf.data' if use_tfdata else 'PyDataset',
        'step_s_pipeline': t_pipe / s, 'step_s_cached': t_cached / s,
        'input_only_s_per_batch': t_input / s,
        'images_per_s_pipeline': b * s / t_pipe, 'images_per_s_cached': b * s / t_cached,
        'pipeline_over_cached': t_pipe / t_cached,
    }
    write_results('training', result, args.json)
    rows = [{'feed': f"real pipeline ({result['pipeline']})",
             'step': result['step_s_pipeline'], 'ips': result['images_per_s_pipeline']},
            {'feed': 'cached tensor batch', 'step': result['step_s_cached'],
             'ips': result['images_per_s_cached']},
            {'feed': 'input pipeline alone', 'step': result['input_only_s_per_batch']}]
    print_table(f'Training throughput ({precision}, {args.input_size[0]}x{args.input_size[1]}, '
                f'batch {b})', rows, ['feed', 'step', 'ips'],
                ['feed', 'step (s)', 'images/s'])
    print(f"pipeline/cached step time: {result['pipeline_over_cached']:.3f}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
