"""Launch one road_segmentation node for several cameras (one batched inference for all).

    ros2 launch seg_perception multi_camera.launch.py
    ros2 launch seg_perception multi_camera.launch.py cameras:=front,rear image:=image_raw
    ros2 launch seg_perception multi_camera.launch.py camera_prefix:=/sensors/

Camera ``c`` is read from ``<camera_prefix>c/<image>`` (remap of the node's ``c/image``) and
published on ``c/road/*`` in the node's namespace. Launch arguments become parameters and
remaps in :func:`node_arguments`, a pure function (no ``launch`` import) so that tests
without a launch install apply exactly the same configuration; the code shared with
road.launch.py is in :mod:`seg_perception.ros.launch_support`.
"""
from __future__ import annotations

from typing import Any

from seg_perception.ros import launch_support as common

PACKAGE = common.PACKAGE
EXECUTABLE = common.EXECUTABLE
NODE_NAME = common.NODE_NAME
PARAMS_FILE = 'multi_camera.yaml'  # in <share>/config

# (name, default, description, choices); default None = <share>/config/PARAMS_FILE.
ARGUMENTS: tuple[common.Argument, ...] = (
    *common.common_arguments(PARAMS_FILE),
    ('cameras', '', 'Comma-separated camera names; empty = "cameras" from the params file',
     None),
    ('camera_prefix', '', 'Prefix of the camera topics, e.g. "/" or "/sensors/"; empty = '
     'relative to the node namespace', None),
    ('image', 'image', 'Image topic name under each camera, e.g. image_raw (compressed '
     'transport: <image>/compressed)', None),
)


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
        ValueError: no cameras given or configured, or a value outside its choices.
    """
    common.check_choices(ARGUMENTS, values)
    overrides = common.common_overrides(values)
    cameras = [c.strip() for c in values['cameras'].split(',') if c.strip()]
    if cameras:
        overrides['cameras'] = cameras
    else:
        cameras = common.cameras_from_params_file(values['params_file'], values['namespace'])
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


def _actions(context: Any, values: dict[str, str]) -> list[Any]:
    """The node with its exit handling."""
    return common.node_actions(node_arguments(values))


def generate_launch_description() -> Any:
    """The launch description: the declared arguments and the node."""
    return common.launch_description(ARGUMENTS, PARAMS_FILE, _actions)
