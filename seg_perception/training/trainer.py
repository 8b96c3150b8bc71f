"""The Keras compile/fit training loop with restartable checkpoints and validation MaxF.

Run folder layout (``config.out``)::

    config.yaml            the resolved TrainConfig
    backup/                Keras BackupAndRestore state (model + optimizer, every epoch)
    checkpoints/last.segmodel, checkpoints/best.segmodel
    log.csv, tensorboard/  per-epoch logs (TensorBoard only with TensorFlow installed)
    model.segmodel         the exported model (best by validation MaxF) with its card
"""
from __future__ import annotations

import contextlib
import json
import logging
import pathlib
import sys
import time
from typing import Any

import keras
import numpy as np

from seg_perception.core.hardware import cpu_has_bf16
from seg_perception.datasets import open_dataset
from seg_perception.evaluation.run import evaluate_model
from seg_perception.model.fcn8s import ModelSpec, build_fcn8s, load_hed_vgg16, load_imagenet_vgg16
from seg_perception.model.model_file import (
    ModelCard,
    ModelFileError,
    load_model,
    read_card,
    save_model,
)
from seg_perception.runtime.pipeline import Pipeline
from seg_perception.runtime.segmenter import DTYPE_POLICY, Segmenter, gpu_available
from seg_perception.training.config import TrainConfig, run_dir_problem
from seg_perception.training.input_pipeline import (
    FrameStore,
    TrainSequence,
    make_tf_dataset,
    should_cache,
)
from seg_perception.training.lineage import stage_record

LOG = logging.getLogger(__name__)
CLASSES = (['not_road', 'road'], [[0, 0, 0], [255, 0, 255]])


class TrainError(RuntimeError):
    """A training run that cannot start or continue (message is one readable line)."""


def resolve_training_precision(precision: str) -> str:
    """``auto``: float16 mixed on GPU, bfloat16 mixed on AMX CPUs, else float32."""
    if precision != 'auto':
        return precision
    if gpu_available():
        return 'float16'
    return 'bfloat16' if cpu_has_bf16() else 'float32'


def make_card(config: TrainConfig, spec: ModelSpec, metrics: dict[str, Any] | None = None,
              extra: dict[str, Any] | None = None,
              frames: dict[str, dict[str, int]] | None = None) -> ModelCard:
    """Model card for a model trained with ``config`` (data, splits, init, metrics).

    ``frames``: ``{source name: {'train': n, 'val': m}}`` frame counts of the splits used.
    """
    names, palette = CLASSES
    d = config.data
    counts = list((frames or {}).values())
    card = ModelCard(spec=spec.to_dict(), class_names=names, palette=palette, road_class=1,
                     input_size=[int(s) for s in d.input_size],
                     input_mode=d.input_mode,
                     threshold=float((metrics or {}).get('threshold', 0.5)),
                     training={'sources': [{'dataset': s.dataset, 'data_dir': s.data_dir,
                                            'weight': s.weight,
                                            'train_split': s.train_split,
                                            'val_split': s.val_split,
                                            **({'frames': counts[i]} if i < len(counts)
                                               else {})}
                                           for i, s in enumerate(d.sources)],
                               'split_seed': d.split_seed,
                               'init': config.model.init,
                               'freeze_blocks': config.model.freeze_blocks,
                               'selection': SELECTION,
                               'config': config.to_dict(), **(extra or {})},
                     metrics=dict(metrics or {}))
    card.validate()
    return card


SELECTION = ('checkpoint with the highest mean validation MaxF over the sources; threshold = '
             'mean of the per-source MaxF thresholds')


def summarize(per_source: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Card/log metrics from per-source results: means over sources plus ``per_source``.

    ``MaxF``, ``AvgPrec``, ``IoU`` are the means over sources (the selection score is
    ``MaxF``); ``threshold`` is the mean of the per-source MaxF thresholds.
    """
    keys = ('MaxF', 'AvgPrec', 'IoU', 'threshold')
    out: dict[str, Any] = {k: float(np.mean([m[k] for m in per_source.values()]))
                           for k in keys}
    out['per_source'] = {name: {k: float(m[k]) for k in ('MaxF', 'AvgPrec', 'IoU', 'threshold',
                                                         'IoU_at_threshold') if k in m}
                         for name, m in per_source.items()}
    return out


class ValidationCallback(keras.callbacks.Callback):
    """Every ``val_every`` epochs: MaxF/IoU per source into the logs, last/best checkpoints.

    Logs ``val_<source>_MaxF``/``val_<source>_IoU`` per source and ``val_MaxF``/``val_IoU``
    (means over sources; ``val_MaxF`` selects the best checkpoint). CSVLogger and
    TensorBoard, which run after this callback, record the same values.
    """

    def __init__(self, config: TrainConfig, spec: ModelSpec,
                 val_datasets: dict[str, Any], run_dir: pathlib.Path,
                 frames: dict[str, dict[str, int]] | None = None) -> None:
        """Prepare checkpoint paths; the pipeline is created on the first validation."""
        super().__init__()
        self.config, self.spec, self.val = config, spec, val_datasets
        self.frames = frames
        self.ckpt_dir = run_dir / 'checkpoints'
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        self.best_path = self.ckpt_dir / 'best.segmodel'
        self.state_path = self.ckpt_dir / 'best.json'
        self.best = json.loads(self.state_path.read_text()) if self.state_path.is_file() else {}
        self.pipeline: Pipeline | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Validate, log and checkpoint."""
        logs = logs if logs is not None else {}
        card = make_card(self.config, self.spec, extra={'epoch': epoch + 1},
                         frames=self.frames)
        save_model(self.model, card, self.ckpt_dir / 'last.segmodel', 'float32')
        if not self.val or (epoch + 1) % self.config.optim.val_every:
            return
        if self.pipeline is None:
            segmenter = Segmenter((self.model, card), device='auto',
                                  input_mode=self.config.data.input_mode,
                                  input_size=self.config.data.input_size)
            self.pipeline = Pipeline(segmenter, threshold=0.5)
        t0 = time.perf_counter()
        per_source = {name: evaluate_model(self.pipeline, ds) for name, ds in self.val.items()}
        metrics = summarize(per_source)
        for name, m in per_source.items():
            logs[f'val_{name}_MaxF'] = m['MaxF']
            logs[f'val_{name}_IoU'] = m['IoU']
        logs.update({'val_MaxF': metrics['MaxF'], 'val_IoU': metrics['IoU']})
        LOG.info('epoch %d: val MaxF/IoU %s | mean MaxF %.4f (%.0f s)', epoch + 1,
                 ' '.join(f'{n} {m["MaxF"]:.4f}/{m["IoU"]:.4f}' for n, m in per_source.items()),
                 metrics['MaxF'], time.perf_counter() - t0)
        if metrics['MaxF'] > self.best.get('MaxF', -1.0):
            self.best = {**metrics, 'epoch': epoch + 1}
            save_model(self.model, make_card(self.config, self.spec, metrics,
                                             {'epoch': epoch + 1}, self.frames),
                       self.best_path, 'float32')
            self.state_path.write_text(json.dumps(self.best, indent=2))


def _initial_epoch(backup_dir: pathlib.Path) -> int:
    meta = backup_dir / 'training_metadata.json'
    if not meta.is_file():
        return 0
    try:
        return int(json.loads(meta.read_text()).get('epoch', -1)) + 1
    except (ValueError, OSError):
        return 0


def _build_model(config: TrainConfig, spec: ModelSpec, dtype: str | None) -> keras.Model:
    model = build_fcn8s(spec, dtype=dtype)
    init = config.model.init
    try:
        if init == 'hed':
            loaded = load_hed_vgg16(model)
        elif init == 'imagenet' or init.endswith('.h5'):
            loaded = load_imagenet_vgg16(model, init)
        elif config.model.init_is_model_file:
            src, _ = load_model(init)
            loaded = []
            for layer in model.layers:
                try:
                    other = src.get_layer(layer.name)
                except ValueError:
                    continue
                if [w.shape for w in layer.weights] == [w.shape for w in other.weights]:
                    layer.set_weights(other.get_weights())
                    loaded.append(layer.name)
        else:
            loaded = []
    except ModelFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - download/file errors become one line
        raise TrainError(f'could not load {init!r} encoder weights: {exc}') from None
    if init != 'none':
        LOG.info('initialised %d layers from %s', len(loaded), init)
    frozen = tuple(f'block{b}_' for b in range(1, config.model.freeze_blocks + 1))
    for layer in model.layers:
        if frozen and layer.name.startswith(frozen):
            layer.trainable = False
    return model


def compile_model(config: TrainConfig, spec: ModelSpec, precision: str,
                  steps_per_epoch: int) -> keras.Model:
    """Build (with ``config.model.init``, frozen blocks) and compile the model as training does.

    Loss: masked sparse cross-entropy on logits (per-pixel weights from the pipeline are 0
    on ignored pixels); optimiser Adam/AdamW with linear warm-up then cosine decay.
    """
    o = config.optim
    model = _build_model(config, spec, DTYPE_POLICY.get(precision))
    total_steps = o.epochs * steps_per_epoch
    warmup = int(o.warmup_epochs * steps_per_epoch)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=o.learning_rate * 0.1,
        decay_steps=max(1, total_steps - warmup), alpha=0.01,
        warmup_target=o.learning_rate, warmup_steps=warmup)
    if o.optimizer == 'adamw':
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=o.weight_decay)
    else:
        optimizer = keras.optimizers.Adam(schedule)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[keras.metrics.IoU(num_classes=config.model.num_classes,
                                            target_class_ids=[1], sparse_y_pred=False,
                                            name='road_iou')])
    return model


def model_spec(config: TrainConfig) -> ModelSpec:
    """The architecture a config trains."""
    m = config.model
    return ModelSpec(num_classes=m.num_classes, batch_norm=m.batch_norm, head=m.head,
                     dropout=m.dropout, pool_scaling=m.pool_scaling)


def open_sources(config: TrainConfig, split_field: str) -> dict[str, Any]:
    """``{source name: dataset}`` of each source's ``train_split``/``val_split`` (if set).

    Source names are the dataset names (``kitti``, ``cityscapes``, ``camvid``), suffixed
    ``_2``... when a dataset appears twice.
    """
    out: dict[str, Any] = {}
    for s in config.data.sources:
        split = getattr(s, split_field)
        if not split:
            continue
        kwargs = {**({'seed': config.data.split_seed} if s.dataset == 'kitti' else {}),
                  **s.options}
        name, k = s.dataset, 2
        while name in out:
            name, k = f'{s.dataset}_{k}', k + 1
        out[name] = open_dataset(s.dataset, s.data_dir, split, **kwargs)
    return out


def train(config: TrainConfig, resume: bool = False, command: str | None = None,
          verbose: int | str = 'auto') -> pathlib.Path:
    """Train a model as described by ``config``; returns the exported model path.

    Raises:
        TrainError: the run cannot start (bad data, existing run without ``resume``...).
        seg_perception.datasets.DatasetError: missing or mismatched dataset files.
    """
    config.validate()
    run_dir = pathlib.Path(config.out)
    backup_dir = run_dir / 'backup'
    problem = run_dir_problem(run_dir, resume)
    if problem:
        raise TrainError(problem)
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / 'config.yaml')
    keras.utils.set_random_seed(config.optim.seed)

    train_sets = open_sources(config, 'train_split')
    val_sets = open_sources(config, 'val_split')
    if not train_sets:
        raise TrainError('no training split in any source')
    LOG.info('data: %s train / %s val frames', _counts(train_sets), _counts(val_sets))
    frames = {name: {'train': len(ds), **({'val': len(val_sets[name])} if name in val_sets
                                           else {})}
              for name, ds in train_sets.items()}

    d, o = config.data, config.optim
    precision = resolve_training_precision(o.precision)
    spec = model_spec(config)
    datasets = list(train_sets.values())
    weights = [s.weight for s in d.sources if s.train_split]
    store = FrameStore(datasets, should_cache(datasets, d.cache),
                       weights if len(datasets) > 1 else None)
    sequence = TrainSequence(store, d.input_size, o.batch_size, (d.scale_min, d.scale_max),
                             d.flip, d.jitter, o.class_weights, o.seed, o.steps_per_epoch,
                             workers=d.workers)
    initial_epoch = _initial_epoch(backup_dir) if resume else 0
    sequence.set_epoch(initial_epoch)

    strategy = _strategy(config)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = compile_model(config, spec, precision, len(sequence))

    callbacks: list[keras.callbacks.Callback] = [
        ValidationCallback(config, spec, val_sets, run_dir, frames),
        keras.callbacks.CSVLogger(str(run_dir / 'log.csv'), append=True),
    ]
    if val_sets and o.early_stopping > 0:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor='val_MaxF', mode='max', patience=o.early_stopping,
            restore_best_weights=False))
    if keras.backend.backend() == 'tensorflow' and _has_tensorboard():
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / 'tensorboard'),
                                                     write_graph=False))
    # Last, so an epoch counts as done (for --resume) only once its logs and checkpoints are.
    callbacks.append(keras.callbacks.BackupAndRestore(str(backup_dir), save_freq='epoch',
                                                      delete_checkpoint=False))
    use_tfdata = d.pipeline == 'tfdata' or (
        d.pipeline == 'auto' and keras.backend.backend() == 'tensorflow')
    data = make_tf_dataset(sequence, initial_epoch) if use_tfdata else sequence
    LOG.info('training %s (init %s, blocks 1-%d frozen), %s precision, %d steps/epoch, '
             '%s pipeline, from epoch %d', 'VGG16-BN' if spec.batch_norm else 'VGG16',
             config.model.init, config.model.freeze_blocks, precision, len(sequence),
             'tf.data' if use_tfdata else 'PyDataset', initial_epoch + 1)
    if verbose == 'auto':
        verbose = 1 if sys.stdout.isatty() else 2
    t0 = time.perf_counter()
    model.fit(data, epochs=o.epochs, steps_per_epoch=len(sequence),
              callbacks=callbacks, verbose=verbose)
    elapsed = time.perf_counter() - t0
    return export_best(config, spec, run_dir, command, elapsed, model, frames)


def export_best(config: TrainConfig, spec: ModelSpec, run_dir: pathlib.Path,
                command: str | None, elapsed: float, model: keras.Model,
                frames: dict[str, dict[str, int]] | None = None) -> pathlib.Path:
    """Write ``model.segmodel``: the best validation checkpoint (else the last weights)."""
    best_json = run_dir / 'checkpoints' / 'best.json'
    best_path = run_dir / 'checkpoints' / 'best.segmodel'
    best = (json.loads(best_json.read_text())
            if best_path.is_file() and best_json.is_file() else None)
    init_card = read_card(config.model.init) if config.model.init_is_model_file else None
    extra = {'command': command or '', 'train_seconds_last_session': round(elapsed, 1),
             **stage_record(config, init_card, command or '', best['epoch'] if best else None)}
    if best is not None:
        model, _ = load_model(best_path)
        metrics = {k: v for k, v in best.items() if k != 'epoch'}
        card = make_card(config, spec, metrics, {**extra, 'epoch': best['epoch']}, frames)
    else:
        card = make_card(config, spec, None, extra, frames)
    out = save_model(model, card, run_dir / 'model.segmodel', config.optim.weights_dtype)
    LOG.info('wrote %s', out)
    return out


def _counts(sets: dict[str, Any]) -> str:
    return ', '.join(f'{len(ds)} {name}' for name, ds in sets.items()) or 'no'


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        LOG.warning('tensorboard not installed: no TensorBoard logs (log.csv is written)')
        return False
    return True


def _strategy(config: TrainConfig) -> Any:
    """tf.distribute.MirroredStrategy for several GPUs on the TensorFlow backend."""
    if keras.backend.backend() != 'tensorflow' or config.optim.distribute == 'none':
        return None
    import tensorflow as tf
    gpus = tf.config.list_physical_devices('GPU')
    mode = config.optim.distribute
    if mode == 'mirrored' or (mode == 'auto' and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    return None

