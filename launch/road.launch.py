"""Launch the road_segmentation node for one camera, optionally with RViz2.

    ros2 launch seg_perception road.launch.py image:=/camera/image_raw
    ros2 launch seg_perception road.launch.py model:=/path/model.segmodel rviz:=true

Launch arguments become node parameters and remaps in :func:`node_arguments`, a pure
function (no ``launch`` import) so that tests without a launch install apply exactly the same
configuration to the same executable. The launch imports are therefore local to the
functions that build launch actions.
"""
from __future__ import annotations

from typing import Any

PACKAGE = 'seg_perception'
EXECUTABLE = 'road_segmentation'
NODE_NAME = 'road_segmentation'
PARAMS_FILE = 'road.yaml'  # in <share>/config
RVIZ_CONFIG = 'road.rviz'  # in <share>/config

# (name, default, description); default None = <share>/config/PARAMS_FILE.
ARGUMENTS: tuple[tuple[str, str | None, str], ...] = (
    ('model', '', 'Model file (.segmodel); empty = model_path from the params file (empty '
     'there = the packaged default model)'),
    ('params_file', None, 'Node parameters YAML; default: <share>/config/road.yaml'),
    ('namespace', '', 'Namespace of the node (and RViz2); all topics are relative to it'),
    ('image', 'image', 'Input image topic (remap of "image"; the compressed transport reads '
     '<image>/compressed)'),
    ('camera_info', 'camera_info', 'CameraInfo topic relayed to road/camera_info'),
    ('use_crf', '', 'true/false: dense CRF refinement; empty = the params file'),
    ('device', '', 'Inference device auto, cpu or gpu; empty = the params file'),
    ('log_level', 'info', 'Node log level: debug, info, warn, error or fatal'),
    ('rviz', 'false', 'true: also start RViz2 with config/road.rviz'),
)


def parse_bool(name: str, value: str) -> bool:
    """A launch argument as a bool ('true'/'false', '1'/'0', 'yes'/'no', any case)."""
    text = value.strip().lower()
    if text in ('true', '1', 'yes', 'on'):
        return True
    if text in ('false', '0', 'no', 'off'):
        return False
    raise ValueError(f'launch argument {name}:={value!r} is not true or false')


def node_arguments(values: dict[str, str]) -> dict[str, Any]:
    """Map launch argument values (strings) to what the node is started with.

    Args:
        values: every name of :data:`ARGUMENTS` -> its string value (``params_file``
            resolved to a path).

    Returns:
        ``params_files`` (list of paths, in order), ``parameters`` (overrides applied after
        the files: only arguments that are set), ``remappings`` (list of (from, to)),
        ``namespace`` and ``log_level``.
    """
    overrides: dict[str, Any] = {}
    if values['model']:
        overrides['model_path'] = values['model']
    if values['device']:
        overrides['device'] = values['device']
    if values['use_crf']:
        overrides['crf.enabled'] = parse_bool('use_crf', values['use_crf'])
    image = values['image'].rstrip('/') or 'image'
    remappings = [('image', image), ('image/compressed', f'{image}/compressed'),
                  ('camera_info', values['camera_info'] or 'camera_info')]
    return {'params_files': [values['params_file']], 'parameters': overrides,
            'remappings': remappings, 'namespace': values['namespace'],
            'log_level': values['log_level']}


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
    """The launch description: arguments, the node, and RViz2 when ``rviz:=true``."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
    from launch_ros.actions import Node
    from launch_ros.substitutions import FindPackageShare

    share = FindPackageShare(PACKAGE)
    actions: list[Any] = []
    for name, default, description in ARGUMENTS:
        if default is None:
            default = PathJoinSubstitution([share, 'config', PARAMS_FILE])
        actions.append(DeclareLaunchArgument(name, default_value=default,
                                             description=description))
    actions.append(OpaqueFunction(function=_launch_node))
    actions.append(Node(package='rviz2', executable='rviz2', name='rviz2',
                        namespace=LaunchConfiguration('namespace'), output='screen',
                        arguments=['-d', PathJoinSubstitution([share, 'config', RVIZ_CONFIG])],
                        condition=IfCondition(LaunchConfiguration('rviz'))))
    return LaunchDescription(actions)
