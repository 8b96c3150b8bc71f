"""Training configuration: one dataclass, overridable from a YAML file and from flags."""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import yaml


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.yaml`` in the run folder).

    Sizes are (height, width) in pixels; learning rates per step.
    """

    dataset: str = 'kitti'                  # kitti | camvid
    data_dir: str = ''
    out: str = 'runs/fcn8s'
    train_split: str = 'train'
    val_split: str = 'val'
    split_seed: int = 0                     # KITTI train/val split seed
    # model
    num_classes: int = 2
    batch_norm: bool = True                 # VGG16-BN encoder (from scratch); False = plain VGG16
    head: str = 'light'                     # light | full
    dropout: float = 0.5
    pool_scaling: bool = False
    init: str = 'none'                      # none | imagenet | PATH (weights .h5 / .segmodel)
    # data
    input_size: tuple[int, int] = (192, 256)    # crop and model size
    input_mode: str = 'resize'              # how the exported model is used: resize | pad
    scale_min: float = 0.85                 # random scale relative to fitting the height
    scale_max: float = 1.25
    flip: bool = True
    jitter: float = 0.2                     # photometric jitter strength (0 = off)
    cache: str = 'auto'                     # auto | yes | no : keep decoded frames in memory
    pipeline: str = 'auto'                  # auto | tfdata | pydataset
    workers: int = 2
    # optimisation
    epochs: int = 40
    batch_size: int = 8
    steps_per_epoch: int = 0                # 0 = one pass over the training set
    optimizer: str = 'adamw'                # adam | adamw
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    class_weights: tuple[float, float] | None = None
    precision: str = 'auto'                 # auto | float32 | bfloat16 | float16
    distribute: str = 'auto'                # auto | none | mirrored (tf backend, several GPUs)
    # validation / stopping
    val_every: int = 1
    early_stopping: int = 12                # patience in validations (0 = off)
    seed: int = 0
    weights_dtype: str = 'float16'          # storage of the exported model

    def validate(self) -> None:
        """Raise ``ValueError`` for values that cannot work."""
        if self.dataset not in ('kitti', 'camvid'):
            raise ValueError(f"dataset must be 'kitti' or 'camvid', got {self.dataset!r}")
        if not self.data_dir:
            raise ValueError('data_dir is required (--data-dir)')
        if len(self.input_size) != 2 or any(int(s) % 32 or int(s) < 32 for s in self.input_size):
            raise ValueError(f'input_size must be two multiples of 32, got {self.input_size}')
        if self.input_mode not in ('pad', 'resize'):
            raise ValueError(f"input_mode must be 'pad' or 'resize', got {self.input_mode!r}")
        if not 0 < self.scale_min <= self.scale_max:
            raise ValueError('need 0 < scale_min <= scale_max')
        for name in ('epochs', 'batch_size', 'val_every'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be >= 1')
        if self.optimizer not in ('adam', 'adamw'):
            raise ValueError(f"optimizer must be 'adam' or 'adamw', got {self.optimizer!r}")
        if self.learning_rate <= 0:
            raise ValueError('learning_rate must be > 0')
        if self.precision not in ('auto', 'float32', 'bfloat16', 'float16'):
            raise ValueError(f'unknown precision {self.precision!r}')
        if self.cache not in ('auto', 'yes', 'no'):
            raise ValueError(f'unknown cache setting {self.cache!r}')
        if self.pipeline not in ('auto', 'tfdata', 'pydataset'):
            raise ValueError(f'unknown pipeline {self.pipeline!r}')
        if self.distribute not in ('auto', 'none', 'mirrored'):
            raise ValueError(f'unknown distribute setting {self.distribute!r}')
        if self.class_weights is not None and len(self.class_weights) != self.num_classes:
            raise ValueError('class_weights needs one weight per class')

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (tuples as lists) for YAML/JSON."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    def save(self, path: str | pathlib.Path) -> None:
        """Write the config as YAML."""
        pathlib.Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    def updated(self, values: dict[str, Any]) -> 'TrainConfig':
        """Return a copy with ``values`` applied (unknown keys are an error)."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(f'unknown config keys: {", ".join(unknown)}')
        data = dataclasses.asdict(self)
        for k, v in values.items():
            data[k] = tuple(v) if isinstance(v, list) else v
        return TrainConfig(**data)

    @classmethod
    def from_yaml(cls, path: str | pathlib.Path, base: 'TrainConfig | None' = None,
                  ) -> 'TrainConfig':
        """Load a YAML file of config keys over ``base`` (defaults if None)."""
        p = pathlib.Path(path)
        if not p.is_file():
            raise ValueError(f'{p}: config file not found')
        data = yaml.safe_load(p.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f'{p}: expected a mapping of config keys')
        return (base or cls()).updated(data)
