"""The node's parameter schema and settings, without ROS: one declaration of every parameter.

:data:`PARAMETERS` declares each parameter once: name, type, default, range, choices,
description and whether it can change at run time. From it come

* the ROS descriptors and declarations (``seg_perception.ros.node``; rclpy then applies the
  ranges and the read-only flags itself);
* the validation into :class:`Settings` (:func:`settings_from_values`), shared by the node
  and the offline tools (``seg_bag eval``, ``seg_evaluate``), which never import rclpy;
* the parameter table of docs/NODE.md (:func:`markdown_table`, checked by
  ``test/test_params.py``).

The choice lists are in :mod:`.choices`, the params-file reader in :mod:`.params_file`.
"""
from __future__ import annotations

import dataclasses
import math
import pathlib
import re
import sys
from collections.abc import Sequence
from typing import Any

from seg_perception.core.backend_choice import choose_backend
from seg_perception.core.choices import (
    BACKEND_CHOICES,
    DEVICES,
    INPUT_MODES,
    OVERLAY_ENCODINGS,
    PRECISIONS,
    PROVIDERS,
    RELIABILITIES,
    TRANSPORTS,
    TTA_MODES,
)
from seg_perception.core.formats import DEFAULT_MODEL_NAME, PACKAGE, backend_of_file
from seg_perception.core.share import share_file

#: ROS parameter types (``rclpy.Parameter.Type`` names, lower case)
TYPES = ('bool', 'integer', 'double', 'string', 'integer_array', 'double_array',
         'string_array')
_CAMERA_RE = re.compile(r'^[A-Za-z][A-Za-z0-9_]*(/[A-Za-z][A-Za-z0-9_]*)*$')


class ConfigError(ValueError):
    """A parameter value or model file the node cannot start with (one line)."""


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One declared parameter.

    Attributes:
        name: parameter name (dots for nested YAML keys).
        type: one of :data:`TYPES`.
        default: default value; ``None`` = unset (array parameters whose empty default cannot
            be typed, and ``threshold``: unset = the model card's).
        description: shown by ``ros2 param describe`` and in docs/NODE.md.
        runtime: can change while the node runs (otherwise read-only).
        range: inclusive (from, to) for integer and double parameters.
        choices: allowed values (string parameters; ``''`` allowed where listed).
    """

    name: str
    type: str
    default: Any
    description: str
    runtime: bool = False
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec('model_path', 'string', '', 'Model file: .segmodel (backend keras) or .onnx from '
              'seg_export (backend onnxruntime); empty = the packaged default '
              f'share/{PACKAGE}/models/{DEFAULT_MODEL_NAME} (.onnx next to it for '
              'onnxruntime)'),
    ParamSpec('backend', 'string', 'auto', 'Inference runtime: auto (onnxruntime for an .onnx '
              'file; the int8 export <model stem>.int8.onnx beside the .segmodel when it '
              'suits this CPU (8-bit weights: VNNI/AMX-INT8; 7-bit: any x86) and onnxruntime '
              'is installed; else keras; the choice and why are logged), keras '
              '(TensorFlow/JAX, the .segmodel) or onnxruntime (an .onnx export; needs the '
              'onnxruntime package)',
              choices=BACKEND_CHOICES),
    ParamSpec('providers', 'string_array', list(PROVIDERS), 'onnxruntime execution providers '
              'in order of preference (tensorrt, cuda, cpu); unavailable ones are skipped and '
              'the order used is logged', choices=PROVIDERS),
    ParamSpec('device', 'string', 'auto', 'Inference device (backend keras): auto (GPU if '
              'visible), cpu or gpu', choices=DEVICES),
    ParamSpec('precision', 'string', 'auto', 'Compute precision (backend keras): auto '
              '(bfloat16 on bf16-capable CPUs, else float32), float32, bfloat16 or float16',
              choices=PRECISIONS),
    ParamSpec('input_mode', 'string', '', "Geometry: '' = the model card's, fit (scale to the "
              'input height, keep aspect), pad (full resolution, pad to a multiple of 32) or '
              'resize (to input_size)', choices=('', *INPUT_MODES)),
    ParamSpec('input_size', 'integer_array', None, '[height, width] for fit (height only) and '
              'resize modes, multiples of 32; unset = the model card input_size'),
    ParamSpec('tta', 'string', 'none', 'Test-time augmentation: none, or flip (the average of '
              'the frame and its mirror; twice the inference work)', choices=TTA_MODES),
    ParamSpec('threshold', 'double', None, 'Road probability threshold in [0, 1]; unset = the '
              "model card's recommended value (then set to it at start)", runtime=True,
              range=(0.0, 1.0)),
    ParamSpec('crf.enabled', 'bool', False, 'Refine probabilities with a dense CRF',
              runtime=True),
    ParamSpec('crf.iterations', 'integer', 5, 'CRF mean-field iterations', runtime=True,
              range=(1, 50)),
    ParamSpec('crf.sxy', 'double', 80.0, 'CRF bilateral position std (pixels at full '
              'resolution)', range=(0.1, 1000.0)),
    ParamSpec('crf.srgb', 'double', 13.0, 'CRF bilateral colour std (intensity levels)',
              range=(0.1, 255.0)),
    ParamSpec('crf.compat', 'double', 10.0, 'CRF bilateral weight (Potts compatibility)',
              range=(0.0, 100.0)),
    ParamSpec('crf.gaussian_sxy', 'double', 3.0, 'CRF smoothness position std (pixels)',
              range=(0.1, 1000.0)),
    ParamSpec('crf.gaussian_compat', 'double', 3.0, 'CRF smoothness weight',
              range=(0.0, 100.0)),
    ParamSpec('crf.scale', 'double', 1.0, 'CRF resolution factor (1 = full resolution)',
              range=(0.05, 1.0)),
    ParamSpec('overlay.alpha', 'double', 0.5, 'Overlay colour weight (0 = frame only, 1 = '
              'colour only)', runtime=True, range=(0.0, 1.0)),
    ParamSpec('overlay.color', 'integer_array', None, 'Road colour [R, G, B] 0..255 in the '
              'overlay; unset = the model card palette'),
    ParamSpec('overlay.encoding', 'string', 'rgb8', 'Overlay image encoding: rgb8 or bgr8',
              choices=OVERLAY_ENCODINGS),
    ParamSpec('publish_probability', 'bool', False, 'Publish road/probability (mono8, 255 = '
              'road)'),
    ParamSpec('cameras', 'string_array', None, 'Camera names; each camera uses <camera>/image '
              '-> <camera>/road/*. Unset = one camera on image -> road/*'),
    ParamSpec('transport', 'string', 'raw', 'Input transport: raw (image) or compressed '
              '(image/compressed, JPEG/PNG)', choices=TRANSPORTS),
    ParamSpec('qos.input.depth', 'integer', 1, 'Input subscription queue depth',
              range=(1, 100)),
    ParamSpec('qos.input.reliability', 'string', 'best_effort', 'Input reliability (REP-2003: '
              'best_effort; reliable for large raw frames from a reliable publisher)',
              choices=RELIABILITIES),
    ParamSpec('qos.output.depth', 'integer', 1, 'Output publisher queue depth',
              range=(1, 100)),
    ParamSpec('qos.output.reliability', 'string', 'reliable', 'Output reliability (REP-2003: '
              'reliable)', choices=RELIABILITIES),
    ParamSpec('grid.enabled', 'bool', False, 'Publish road/grid (nav_msgs/OccupancyGrid): the '
              'road probability projected onto the ground plane of grid.frame (0 free road .. '
              '100 not road, -1 unknown); needs camera_info and a camera pose'),
    ParamSpec('grid.frame', 'string', 'base_link', 'Frame of the grid (z up, ground plane z = '
              '0) and of grid.camera_pose'),
    ParamSpec('grid.resolution', 'double', 0.1, 'Grid cell size in metres',
              range=(0.01, 5.0)),
    ParamSpec('grid.size', 'double_array', [40.0, 20.0], 'Grid extent [forward, lateral] in '
              'metres (along x and y of grid.frame)'),
    ParamSpec('grid.origin', 'double_array', [0.0, -10.0], 'Position [x, y] in grid.frame '
              'of the outer corner of cell (0, 0), metres (OccupancyGrid info.origin)'),
    ParamSpec('grid.max_range', 'double', 40.0, 'Cells farther than this from the camera '
              '(metres, on the ground) are unknown; 0 = no limit', range=(0.0, 1000.0)),
    ParamSpec('grid.camera_pose', 'double_array', None, 'Camera link pose in grid.frame, '
              '[x, y, z, roll, pitch, yaw] (metres, radians; x forward, y left, z up as in '
              'URDF; the optical frame follows by REP-103); 6 values per camera in the order '
              'of cameras. Unset with grid.use_tf'),
    ParamSpec('grid.use_tf', 'bool', False, 'Camera pose from tf2 (grid.frame <- the image '
              'frame_id) at each image stamp instead of grid.camera_pose; needs tf2_ros'),
    ParamSpec('grid.free_threshold', 'double', None, 'Trinary grid: cells with cost <= this '
              '(0..100) are 0 (free); with grid.occupied_threshold; unset = 0..100 values',
              range=(0.0, 100.0)),
    ParamSpec('grid.occupied_threshold', 'double', None, 'Trinary grid: cells with cost >= '
              'this (0..100) are 100 (occupied), between the thresholds -1', range=(0.0, 100.0)),
    ParamSpec('diagnostics_period', 'double', 1.0, 'Period of /diagnostics in seconds',
              range=(0.05, 60.0)),
    ParamSpec('autostart', 'bool', True, 'Configure and activate on start; false = stay '
              'unconfigured for a lifecycle manager'),
)
SPECS: dict[str, ParamSpec] = {s.name: s for s in PARAMETERS}
RUNTIME_PARAMETERS = tuple(s.name for s in PARAMETERS if s.runtime)
CRF_KEYS = tuple(s.name.split('.', 1)[1] for s in PARAMETERS
                 if s.name.startswith('crf.') and s.name != 'crf.enabled')


@dataclasses.dataclass(frozen=True)
class Settings:
    """Validated start-up configuration (see :data:`PARAMETERS` for meanings)."""

    model_path: pathlib.Path
    backend: str
    providers: tuple[str, ...]
    device: str
    precision: str
    tta: str
    input_mode: str | None
    input_size: tuple[int, int] | None
    threshold: float | None
    crf_enabled: bool
    crf: dict[str, float]  # CRFParams fields (iterations, sxy, ..., scale)
    overlay_alpha: float
    overlay_color: tuple[int, int, int] | None
    overlay_encoding: str
    publish_probability: bool
    cameras: tuple[str, ...]
    transport: str
    qos_input: tuple[int, str]
    qos_output: tuple[int, str]
    diagnostics_period: float
    grid: dict[str, Any] | None  # the grid.* values (keys without 'grid.'); None = off
    backend_note: str = ''  # why backend auto chose what it chose ('' when set explicitly)


@dataclasses.dataclass(frozen=True)
class Runtime:
    """The settings that can change at run time (replaced as a whole, read once per batch)."""

    threshold: float
    crf_enabled: bool
    crf_iterations: int
    overlay_alpha: float


def defaults() -> dict[str, Any]:
    """Every parameter's default value (``None`` = unset)."""
    return {s.name: s.default for s in PARAMETERS}


def check_value(spec: ParamSpec, value: Any) -> None:
    """Raise :class:`ConfigError` when ``value`` is outside ``spec``'s choices or range.

    ``None`` (unset) passes; rclpy applies the same descriptors to a running node.
    """
    if value is None:
        return
    if spec.choices is not None:
        items = value if spec.type.endswith('_array') else [value]
        bad = [v for v in items if v not in spec.choices]
        if bad:
            raise ConfigError(f'parameter {spec.name!r} must be one of {list(spec.choices)}, '
                              f'got {value!r}')
    if spec.range is not None:
        low, high = spec.range
        number = _number(spec, value)
        if not low <= number <= high:
            raise ConfigError(f'parameter {spec.name!r} must be in {low:g}..{high:g}, '
                              f'got {value!r}')


def _number(spec: ParamSpec, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f'parameter {spec.name!r} must be a number, got {value!r}') \
                from None
    if spec.type == 'integer' and not float(value).is_integer():
        raise ConfigError(f'parameter {spec.name!r} must be an integer, got {value!r}')
    if not math.isfinite(float(value)):
        raise ConfigError(f'parameter {spec.name!r} must be a finite number, got {value!r}')
    return float(value)


def settings_from_values(values: dict[str, Any]) -> Settings:
    """Validate parameter values (``None`` = unset, missing = the default) into
    :class:`Settings`; the model file is checked to exist and to suit the backend.

    Raises:
        ConfigError: the first invalid value, naming the parameter, the value and what is
            allowed.
    """
    values = {**defaults(), **values}
    for spec in PARAMETERS:
        check_value(spec, values[spec.name])
    size = values['input_size']
    if size:
        if len(size) != 2 or any(int(s) < 32 or int(s) % 32 for s in size):
            raise ConfigError(f"parameter 'input_size' must be [height, width], multiples of "
                              f'32 and >= 32, got {list(size)}')
    color = values['overlay.color']
    if color:
        if len(color) != 3 or any(not 0 <= int(c) <= 255 for c in color):
            raise ConfigError(f"parameter 'overlay.color' must be [R, G, B] in 0..255, got "
                              f'{list(color)}')
    cameras = tuple(values['cameras'] or ())
    for cam in cameras:
        if not _CAMERA_RE.match(cam):
            raise ConfigError(f"parameter 'cameras': {cam!r} is not a valid topic namespace "
                              '(letters, digits, underscores; segments separated by /)')
    if len(set(cameras)) != len(cameras):
        raise ConfigError(f"parameter 'cameras' has duplicates: {list(cameras)}")
    providers = tuple(PROVIDERS if values['providers'] is None else values['providers'])
    if not providers or len(set(providers)) != len(providers):
        raise ConfigError(f"parameter 'providers' must be a non-empty list of distinct "
                          f'{list(PROVIDERS)}, got {list(providers)}')
    backend, note = values['backend'] or 'auto', ''
    if backend == 'auto':
        model = values['model_path']
        given = model_file(model, backend_of_file(model))
        choice = choose_backend(given, values['device'])
        backend, model_path, note = choice.backend, choice.model_path, choice.reason
        providers = choice.providers or providers
    else:
        model_path = model_file(values['model_path'], backend)
    crf = {k: values[f'crf.{k}'] for k in CRF_KEYS}
    crf['iterations'] = int(crf['iterations'])
    return Settings(
        model_path=model_path, backend=backend, backend_note=note,
        providers=providers, device=values['device'], precision=values['precision'],
        tta=values['tta'],
        input_mode=values['input_mode'] or None,
        input_size=(int(size[0]), int(size[1])) if size else None,
        threshold=None if values['threshold'] is None else float(values['threshold']),
        crf_enabled=bool(values['crf.enabled']), crf=crf,
        overlay_alpha=float(values['overlay.alpha']),
        overlay_color=tuple(int(c) for c in color) if color else None,
        overlay_encoding=values['overlay.encoding'],
        publish_probability=bool(values['publish_probability']), cameras=cameras,
        transport=values['transport'],
        qos_input=(int(values['qos.input.depth']), values['qos.input.reliability']),
        qos_output=(int(values['qos.output.depth']), values['qos.output.reliability']),
        diagnostics_period=float(values['diagnostics_period']),
        grid={s.name[5:]: values[s.name] for s in PARAMETERS if s.name.startswith('grid.')}
        if values['grid.enabled'] else None)


def default_model_path() -> pathlib.Path:
    """The packaged default model: the ament share directory, else ``<repo>/models``."""
    return share_file(f'models/{DEFAULT_MODEL_NAME}')


def model_file(model: str, backend: str) -> pathlib.Path:
    """The model file for ``model_path`` value ``model`` ('' = the packaged default) and
    ``backend``: a .segmodel for keras, an .onnx export for onnxruntime.

    Raises:
        ConfigError: the file is missing or of the other backend's kind.
    """
    onnx = backend == 'onnxruntime'
    default = default_model_path()
    path = pathlib.Path(model).expanduser() if model else (
        default.with_suffix('.onnx') if onnx else default)
    is_onnx = backend_of_file(path) == 'onnxruntime'
    if onnx and not is_onnx:
        raise ConfigError(f"parameter 'model_path': backend 'onnxruntime' needs an .onnx file "
                          f'from seg_export, got {path}')
    if not onnx and is_onnx:
        raise ConfigError(f"parameter 'model_path': {path} is an ONNX file; set backend to "
                          "'onnxruntime' (or give the .segmodel)")
    if not path.is_file():
        hint = ('the packaged default; set model_path or run seg_export on '
                f'{default.name}' if onnx else 'the packaged default; set model_path or '
                'train/install the default model')
        where = f'{path}' if model else f'{path} ({hint})'
        raise ConfigError(f"parameter 'model_path': model file not found: {where}")
    return path


# -- documentation -------------------------------------------------------------------------
def _default_text(spec: ParamSpec) -> str:
    if spec.default is None:
        return '`unset`'
    return f'`{spec.default!r}`' if spec.type == 'string' and spec.default == '' else \
        f'`{spec.default}`'


def _range_text(spec: ParamSpec) -> str:
    if spec.choices is not None:
        return ', '.join(repr(c) if c == '' else c for c in spec.choices)
    if spec.range is not None:
        return f'{spec.range[0]} .. {spec.range[1]}'
    return ''


def markdown_table() -> str:
    """The parameter table of docs/NODE.md (one row per parameter, from :data:`PARAMETERS`)."""
    rows = ['| parameter | default | range / choices | runtime | description |',
            '|---|---|---|---|---|']
    for s in PARAMETERS:
        rows.append(f'| `{s.name}` | {_default_text(s)} | {_range_text(s)} | '
                    f'{"yes" if s.runtime else ""} | {s.description} |')
    return '\n'.join(rows) + '\n'


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m seg_perception.core.params``: print the parameter table of docs/NODE.md."""
    sys.stdout.write(markdown_table())
    return 0


if __name__ == '__main__':
    sys.exit(main())
