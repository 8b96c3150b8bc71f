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

from seg_perception.datasets import open_dataset
from seg_perception.evaluation import evaluate_model
from seg_perception.model import ModelSpec, build_fcn8s, load_imagenet_vgg16
from seg_perception.model_io import ModelCard, load_model, save_model
from seg_perception.segmenter import PRECISIONS, Segmenter, cpu_has_bf16, gpu_available
from seg_perception.training.config import TrainConfig
from seg_perception.training.pipeline import (
    FrameStore,
    TrainSequence,
    make_tf_dataset,
    should_cache,
)

LOG = logging.getLogger(__name__)
CAMVID_CLASSES = (['not_road', 'road'], [[0, 0, 0], [255, 0, 255]])


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
              extra: dict[str, Any] | None = None) -> ModelCard:
    """Model card for a model trained with ``config``."""
    names, palette = CAMVID_CLASSES
    card = ModelCard(spec=spec.to_dict(), class_names=names, palette=palette, road_class=1,
                     input_size=[int(s) for s in config.input_size],
                     input_mode=config.input_mode,
                     threshold=float((metrics or {}).get('threshold', 0.5)),
                     training={'dataset': config.dataset, 'train_split': config.train_split,
                               'val_split': config.val_split, 'config': config.to_dict(),
                               **(extra or {})},
                     metrics=dict(metrics or {}))
    card.validate()
    return card


class ValidationCallback(keras.callbacks.Callback):
    """Every ``every`` epochs: validation MaxF/IoU into the logs, last/best checkpoints."""

    def __init__(self, config: TrainConfig, spec: ModelSpec, val_dataset: Any,
                 run_dir: pathlib.Path) -> None:
        """Prepare checkpoint paths; the segmenter is created on the first validation."""
        super().__init__()
        self.config, self.spec, self.val = config, spec, val_dataset
        self.ckpt_dir = run_dir / 'checkpoints'
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        self.best_path = self.ckpt_dir / 'best.segmodel'
        self.state_path = self.ckpt_dir / 'best.json'
        self.best = json.loads(self.state_path.read_text()) if self.state_path.is_file() else {}
        self.segmenter: Segmenter | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Validate, log and checkpoint."""
        logs = logs if logs is not None else {}
        card = make_card(self.config, self.spec, extra={'epoch': epoch + 1})
        save_model(self.model, card, self.ckpt_dir / 'last.segmodel', 'float32')
        if self.val is None or (epoch + 1) % self.config.val_every:
            return
        if self.segmenter is None:
            self.segmenter = Segmenter((self.model, card), device='auto', input_mode='resize',
                                       input_size=self.config.input_size, threshold=0.5)
        t0 = time.perf_counter()
        metrics = evaluate_model(self.segmenter, self.val)
        logs.update({'val_MaxF': metrics['MaxF'], 'val_IoU': metrics['IoU'],
                     'val_IoU_at_0.5': metrics['IoU_at_threshold']})
        LOG.info('epoch %d: val MaxF %.4f IoU %.4f (%.1f s)', epoch + 1, metrics['MaxF'],
                 metrics['IoU'], time.perf_counter() - t0)
        if metrics['MaxF'] > self.best.get('MaxF', -1.0):
            self.best = {**metrics, 'epoch': epoch + 1}
            save_model(self.model, make_card(self.config, self.spec, metrics,
                                             {'epoch': epoch + 1}),
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
    if config.init == 'none':
        return model
    if config.init == 'imagenet' or config.init.endswith('.h5'):
        if spec.batch_norm:
            raise TrainError('--init imagenet/.h5 needs the plain VGG16 encoder '
                             '(--no-batch-norm)')
        try:
            loaded = load_imagenet_vgg16(model, config.init)
        except Exception as exc:  # noqa: BLE001 - download/file errors become one line
            raise TrainError(f'could not load ImageNet VGG16 weights from {config.init!r}: '
                             f'{exc}') from None
        LOG.info('initialised %d layers from %s', len(loaded), config.init)
        return model
    src, _ = load_model(config.init)
    for layer in model.layers:
        try:
            other = src.get_layer(layer.name)
        except ValueError:
            continue
        if [w.shape for w in layer.weights] == [w.shape for w in other.weights]:
            layer.set_weights(other.get_weights())
    LOG.info('initialised from %s', config.init)
    return model


def compile_model(config: TrainConfig, spec: ModelSpec, precision: str,
                  steps_per_epoch: int) -> keras.Model:
    """Build (with ``config.init``) and compile the model exactly as training uses it.

    Loss: masked sparse cross-entropy on logits (per-pixel weights from the pipeline are 0
    on ignored pixels); optimiser Adam/AdamW with linear warm-up then cosine decay.
    """
    model = _build_model(config, spec, PRECISIONS[precision])
    total_steps = config.epochs * steps_per_epoch
    warmup = int(config.warmup_epochs * steps_per_epoch)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate * 0.1,
        decay_steps=max(1, total_steps - warmup), alpha=0.01,
        warmup_target=config.learning_rate, warmup_steps=warmup)
    if config.optimizer == 'adamw':
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    else:
        optimizer = keras.optimizers.Adam(schedule)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[keras.metrics.IoU(num_classes=config.num_classes,
                                            target_class_ids=[1], sparse_y_pred=False,
                                            name='road_iou')])
    return model


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
    if backup_dir.exists() and not resume:
        raise TrainError(f'{run_dir} already holds a run: pass --resume to continue it, or '
                         'choose another --out')
    if resume and not backup_dir.exists():
        raise TrainError(f'{run_dir}: nothing to resume (no backup/ folder)')
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / 'config.yaml')
    keras.utils.set_random_seed(config.seed)

    kwargs = {'seed': config.split_seed} if config.dataset == 'kitti' else {}
    train_ds = open_dataset(config.dataset, config.data_dir, config.train_split, **kwargs)
    val_ds = open_dataset(config.dataset, config.data_dir, config.val_split, **kwargs) \
        if config.val_split else None
    LOG.info('data: %d train / %d val frames (%s)', len(train_ds), len(val_ds or []),
             config.dataset)

    precision = resolve_training_precision(config.precision)
    spec = ModelSpec(num_classes=config.num_classes, batch_norm=config.batch_norm,
                     head=config.head, dropout=config.dropout, pool_scaling=config.pool_scaling)
    store = FrameStore(train_ds, should_cache(train_ds, config.cache))
    sequence = TrainSequence(store, config.input_size, config.batch_size,
                             (config.scale_min, config.scale_max), config.flip, config.jitter,
                             config.class_weights, config.seed, config.steps_per_epoch,
                             workers=config.workers)
    initial_epoch = _initial_epoch(backup_dir) if resume else 0
    sequence.set_epoch(initial_epoch)

    strategy = _strategy(config)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = compile_model(config, spec, precision, len(sequence))

    callbacks: list[keras.callbacks.Callback] = [
        ValidationCallback(config, spec, val_ds, run_dir),
        keras.callbacks.CSVLogger(str(run_dir / 'log.csv'), append=True),
    ]
    if val_ds is not None and config.early_stopping > 0:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor='val_MaxF', mode='max', patience=config.early_stopping,
            restore_best_weights=False))
    if keras.backend.backend() == 'tensorflow' and _has_tensorboard():
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / 'tensorboard'),
                                                     write_graph=False))
    # Last, so an epoch counts as done (for --resume) only once its logs and checkpoints are.
    callbacks.append(keras.callbacks.BackupAndRestore(str(backup_dir), save_freq='epoch',
                                                      delete_checkpoint=False))
    use_tfdata = config.pipeline == 'tfdata' or (
        config.pipeline == 'auto' and keras.backend.backend() == 'tensorflow')
    data = make_tf_dataset(sequence, initial_epoch) if use_tfdata else sequence
    LOG.info('training %s, %s precision, %d steps/epoch, %s pipeline, from epoch %d',
             'VGG16-BN' if spec.batch_norm else 'VGG16', precision, len(sequence),
             'tf.data' if use_tfdata else 'PyDataset', initial_epoch + 1)
    if verbose == 'auto':
        verbose = 1 if sys.stdout.isatty() else 2
    t0 = time.perf_counter()
    model.fit(data, epochs=config.epochs, steps_per_epoch=len(sequence),
              callbacks=callbacks, verbose=verbose)
    elapsed = time.perf_counter() - t0
    return export_best(config, spec, run_dir, command, elapsed, model)


def export_best(config: TrainConfig, spec: ModelSpec, run_dir: pathlib.Path,
                command: str | None, elapsed: float, model: keras.Model) -> pathlib.Path:
    """Write ``model.segmodel``: the best validation checkpoint (else the last weights)."""
    best_json = run_dir / 'checkpoints' / 'best.json'
    best_path = run_dir / 'checkpoints' / 'best.segmodel'
    extra = {'command': command or '', 'train_seconds_last_session': round(elapsed, 1)}
    if best_path.is_file() and best_json.is_file():
        best = json.loads(best_json.read_text())
        best_model, _ = load_model(best_path)
        metrics = {k: v for k, v in best.items() if k != 'epoch'}
        card = make_card(config, spec, metrics, {**extra, 'epoch': best['epoch']})
        model = best_model
    else:
        card = make_card(config, spec, None, extra)
    out = save_model(model, card, run_dir / 'model.segmodel', config.weights_dtype)
    LOG.info('wrote %s', out)
    return out


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        LOG.warning('tensorboard not installed: no TensorBoard logs (log.csv is written)')
        return False
    return True


def _strategy(config: TrainConfig) -> Any:
    """tf.distribute.MirroredStrategy for several GPUs on the TensorFlow backend."""
    if keras.backend.backend() != 'tensorflow' or config.distribute == 'none':
        return None
    import tensorflow as tf
    gpus = tf.config.list_physical_devices('GPU')
    if config.distribute == 'mirrored' or (config.distribute == 'auto' and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    return None

