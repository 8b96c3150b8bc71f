"""Launch one road_segmentation node for several cameras (one batched inference for all).

    ros2 launch seg_perception multi_camera.launch.py
    ros2 launch seg_perception multi_camera.launch.py cameras:=front,rear image:=image_raw
    ros2 launch seg_perception multi_camera.launch.py camera_prefix:=/sensors/

Camera ``c`` is read from ``<camera_prefix>c/<image>`` (remap of the node's ``c/image``) and
published on ``c/road/*`` in the node's namespace. Launch arguments become parameters and
remaps in :func:`node_arguments`, a pure function (no ``launch`` import) so that tests
without a launch install apply exactly the same configuration; launch imports are local.
"""
from __future__ import annotations

import pathlib
from typing import Any

PACKAGE = 'seg_perception'
EXECUTABLE = 'road_segmentation'
NODE_NAME = 'road_segmentation'
PARAMS_FILE = 'multi_camera.yaml'  # in <share>/config

# (name, default, description); default None = <share>/config/PARAMS_FILE.
ARGUMENTS: tuple[tuple[str, str | None, str], ...] = (
    ('model', '', 'Model file (.segmodel); empty = model_path from the params file (empty '
     'there = the packaged default model)'),
    ('params_file', None, 'Node parameters YAML; default: <share>/config/multi_camera.yaml'),
    ('namespace', '', 'Namespace of the node; all topics are relative to it'),
    ('cameras', '', 'Comma-separated camera names; empty = "cameras" from the params file'),
    ('camera_prefix', '', 'Prefix of the camera topics, e.g. "/" or "/sensors/"; empty = '
     'relative to the node namespace'),
    ('image', 'image', 'Image topic name under each camera, e.g. image_raw (compressed '
     'transport: <image>/compressed)'),
    ('use_crf', '', 'true/false: dense CRF refinement; empty = the params file'),
    ('device', '', 'Inference device auto, cpu or gpu; empty = the params file'),
    ('log_level', 'info', 'Node log level: debug, info, warn, error or fatal'),
)


def parse_bool(name: str, value: str) -> bool:
    """A launch argument as a bool ('true'/'false', '1'/'0', 'yes'/'no', any case)."""
    text = value.strip().lower()
    if text in ('true', '1', 'yes', 'on'):
        return True
    if text in ('false', '0', 'no', 'off'):
        return False
    raise ValueError(f'launch argument {name}:={value!r} is not true or false')


def cameras_from_params_file(path: str) -> list[str]:
    """The ``cameras`` parameter of the first node section in a ROS 2 params YAML."""
    import yaml

    data = yaml.safe_load(pathlib.Path(path).read_text()) or {}
    for section in data.values():
        params = (section or {}).get('ros__parameters', {}) if isinstance(section, dict) else {}
        if 'cameras' in params:
            return [str(c) for c in params['cameras']]
    return []


def node_arguments(values: dict[str, str]) -> dict[str, Any]:
    """Map launch argument values (strings) to what the node is started with.

    Args:
        values: every name of :data:`ARGUMENTS` -> its string value (``params_file``
            resolved to a path).

    Returns:
        ``params_files``, ``parameters`` (overrides after the files: only arguments that are
        set), ``remappings`` (per camera: image, image/compressed, camera_info),
        ``namespace``, ``log_level`` and ``cameras`` (the effective list).

    Raises:
        ValueError: no cameras given or configured.
    """
    overrides: dict[str, Any] = {}
    if values['model']:
        overrides['model_path'] = values['model']
    if values['device']:
        overrides['device'] = values['device']
    if values['use_crf']:
        overrides['crf.enabled'] = parse_bool('use_crf', values['use_crf'])
    cameras = [c.strip() for c in values['cameras'].split(',') if c.strip()]
    if cameras:
        overrides['cameras'] = cameras
    else:
        cameras = cameras_from_params_file(values['params_file'])
    if not cameras:
        raise ValueError('no cameras: set the cameras launch argument or "cameras" in '
                         f'{values["params_file"]}')
    prefix, image = values['camera_prefix'], values['image'].strip('/') or 'image'
    remappings = []
    for cam in cameras:
        remappings += [(f'{cam}/image', f'{prefix}{cam}/{image}'),
                       (f'{cam}/image/compressed', f'{prefix}{cam}/{image}/compressed'),
                       (f'{cam}/camera_info', f'{prefix}{cam}/camera_info')]
    return {'params_files': [values['params_file']], 'parameters': overrides,
            'remappings': remappings, 'namespace': values['namespace'],
            'log_level': values['log_level'], 'cameras': cameras}


def _launch_node(context: Any) -> list[Any]:
    """OpaqueFunction body: read the arguments, return the configured Node action."""
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    values = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    cfg = node_arguments(values)
    return [Node(package=PACKAGE, executable=EXECUTABLE, name=NODE_NAME,
                 namespace=cfg['namespace'], output='screen', emulate_tty=True,
                 parameters=[*cfg['params_files'], cfg['parameters']],
                 remappings=cfg['remappings'], ros_arguments=['--log-level', cfg['log_level']])]


def generate_launch_description() -> Any:
    """The launch description: arguments and the node."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import PathJoinSubstitution
    from launch_ros.substitutions import FindPackageShare

    actions: list[Any] = []
    for name, default, description in ARGUMENTS:
        if default is None:
            default = PathJoinSubstitution([FindPackageShare(PACKAGE), 'config', PARAMS_FILE])
        actions.append(DeclareLaunchArgument(name, default_value=default,
                                             description=description))
    actions.append(OpaqueFunction(function=_launch_node))
    return LaunchDescription(actions)
