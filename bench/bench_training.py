"""Training throughput: the previous recipe against the shipped recipe, in one run.

For each recipe, on the same machine one after the other:
  * ``pipeline``: ``model.fit`` steps fed by the real input pipeline (cached decoded frames,
    random scale/crop/flip, photometric augmentation, tf.data or PyDataset), as ``seg_train``;
  * ``cached``: ``model.fit`` steps on one fixed, already-built batch (no input work);
  * ``input only``: the time the pipeline needs to produce the same batches alone.

Recipes: ``previous`` = VGG16-BN from scratch, 256x192 crops, batch 8, CamVid only (what
trained the former default); ``shipped`` = config/train_road.yaml (plain VGG16 from HED
weights with blocks 1-2 frozen, 384x192 crops, batch 4, KITTI + Cityscapes + CamVid).
Images/s are crops per second; pixels/s (crop area) compare recipes of different crops.

    python -m bench.bench_training [--config config/train_road.yaml] [--steps 6]
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time
from typing import Any

from bench.common import REPO, SHARED_DATA, machine_info, print_table, write_results
from seg_perception.core.choices import PRECISIONS

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


def _fit_time(model: Any, data: Any, steps: int) -> float:
    t0 = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    return time.perf_counter() - t0


def _measure(name: str, config: Any, steps: int, pipeline: str) -> dict[str, Any]:
    import keras

    from seg_perception.training.input_pipeline import (
        FrameStore,
        TrainSequence,
        make_tf_dataset,
    )
    from seg_perception.training.trainer import (
        compile_model,
        model_spec,
        open_sources,
        resolve_training_precision,
    )

    d, o = config.data, config.optim
    precision = resolve_training_precision(o.precision)
    sets = list(open_sources(config, 'train_split').values())
    weights = [s.weight for s in d.sources] if len(sets) > 1 else None
    store = FrameStore(sets, cache=True, weights=weights)
    seq = TrainSequence(store, d.input_size, o.batch_size, (d.scale_min, d.scale_max), d.flip,
                        d.jitter, None, seed=0, steps=max(steps, 4), workers=d.workers)
    use_tfdata = pipeline == 'tfdata' or (pipeline == 'auto'
                                          and keras.backend.backend() == 'tensorflow')
    data = make_tf_dataset(seq) if use_tfdata else seq
    model = compile_model(config, model_spec(config), precision, len(seq))
    cached = seq[0]

    def cached_batches() -> Any:
        while True:
            yield cached

    _fit_time(model, data, 2)                 # compile the train step on each feed
    _fit_time(model, cached_batches(), 2)
    t_cached = _fit_time(model, cached_batches(), steps)
    t_pipe = _fit_time(model, data, steps)
    t0 = time.perf_counter()
    for i in range(steps):
        seq[i % len(seq)]
    t_input = time.perf_counter() - t0
    b, (h, w) = o.batch_size, d.input_size
    return {'recipe': name, 'crop': f'{w}x{h}', 'batch': b, 'precision': precision,
            'init': config.model.init, 'frozen_blocks': config.model.freeze_blocks,
            'pipeline': 'tf.data' if use_tfdata else 'PyDataset',
            'step_s_pipeline': t_pipe / steps, 'step_s_cached': t_cached / steps,
            'input_only_s_per_batch': t_input / steps,
            'images_per_s_pipeline': b * steps / t_pipe,
            'images_per_s_cached': b * steps / t_cached,
            'mpixels_per_s_pipeline': b * h * w * steps / t_pipe / 1e6,
            'pipeline_over_cached': t_pipe / t_cached}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', default=str(REPO / 'config' / 'train_road.yaml'),
                   help='the shipped recipe')
    p.add_argument('--steps', type=int, default=6, help='timed steps per measurement')
    p.add_argument('--pipeline', default='auto', choices=['auto', 'tfdata', 'pydataset'])
    p.add_argument('--precision', choices=PRECISIONS,
                   help='override both recipes\' precision (e.g. float32 = an AVX2-only CPU)')
    p.add_argument('--json', default=None, help='results file (default bench/results/'
                   'training.json)')
    args = p.parse_args(argv)
    from seg_perception.training.config import TrainConfig

    os.chdir(REPO)   # the recipe's data paths are relative to the repository root
    shipped = TrainConfig.from_yaml(args.config)
    missing = [s.data_dir for s in shipped.data.sources if not pathlib.Path(s.data_dir).is_dir()]
    if missing or not (SHARED_DATA / 'camvid').is_dir():
        print(f'bench_training: data not found: {missing or SHARED_DATA / "camvid"}',
              file=sys.stderr)
        return 1
    previous = TrainConfig().updated({
        'model': {'batch_norm': True, 'init': 'none', 'freeze_blocks': 0},
        'data': {'sources': [{'dataset': 'camvid', 'data_dir': str(SHARED_DATA / 'camvid')}],
                 'input_size': [192, 256], 'scale_min': 0.85, 'scale_max': 1.25,
                 'jitter': 0.2},
        'optim': {'batch_size': 8, 'optimizer': 'adamw', 'learning_rate': 1e-3}})
    if args.precision:
        shipped = shipped.updated({'optim': {'precision': args.precision}})
        previous = previous.updated({'optim': {'precision': args.precision}})
    rows = [_measure('previous', previous, args.steps, args.pipeline),
            _measure('shipped', shipped, args.steps, args.pipeline)]
    info = machine_info()
    write_results('training', {'machine': info, 'rows': rows}, args.json)
    print(f"{info['cpu']}, {info['cpu_count']} CPUs; CPU flags: {info['cpu_flags']}")
    print_table('Training throughput, previous vs shipped recipe', rows,
                ['recipe', 'crop', 'batch', 'precision', 'init', 'frozen_blocks',
                 'images_per_s_pipeline', 'images_per_s_cached', 'mpixels_per_s_pipeline',
                 'input_only_s_per_batch', 'pipeline_over_cached'],
                ['recipe', 'crop', 'batch', 'precision', 'init', 'frozen blocks',
                 'images/s (pipeline)', 'images/s (cached batch)', 'Mpixel/s (pipeline)',
                 'input alone (s/batch)', 'pipeline / cached step'])
    return 0


if __name__ == '__main__':
    sys.exit(main())
