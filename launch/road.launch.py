"""Launch the road_segmentation node for one camera, optionally with RViz2.

    ros2 launch seg_perception road.launch.py image:=/camera/image_raw
    ros2 launch seg_perception road.launch.py model:=/path/model.segmodel rviz:=true
    ros2 launch seg_perception road.launch.py autostart:=false   # for a lifecycle manager

Launch arguments become node parameters and remaps in :func:`node_arguments`, a pure
function (no ``launch`` import) so that tests without a launch install apply exactly the same
configuration to the same executable. The code both launch files share (argument
declarations with choices, the node action and its exit handling, the RViz2 check) is in
:mod:`seg_perception.ros.launch_support`.
"""
from __future__ import annotations

from typing import Any

from seg_perception.ros import launch_support as common

PACKAGE = common.PACKAGE
EXECUTABLE = common.EXECUTABLE
NODE_NAME = common.NODE_NAME
PARAMS_FILE = 'road.yaml'  # in <share>/config
RVIZ_CONFIG = 'road.rviz'  # in <share>/config

# (name, default, description, choices); default None = <share>/config/PARAMS_FILE.
ARGUMENTS: tuple[common.Argument, ...] = (
    *common.common_arguments(PARAMS_FILE),
    ('image', 'image', 'Input image topic (remap of "image"; the compressed transport reads '
     '<image>/compressed)', None),
    ('camera_info', 'camera_info', 'CameraInfo topic, relayed to road/camera_info', None),
    ('rviz', 'false', 'Also start RViz2 with config/road.rviz', common.BOOL_CHOICES),
)


def node_arguments(values: dict[str, str]) -> dict[str, Any]:
    """Map launch argument values (strings) to what the node is started with.

    Args:
        values: every name of :data:`ARGUMENTS` -> its string value (``params_file``
            resolved to a path).

    Returns:
        ``params_files`` (list of paths, in order), ``parameters`` (overrides applied after
        the files: only arguments that are set), ``remappings`` (list of (from, to)),
        ``namespace``, ``log_level`` and ``rviz`` (bool).

    Raises:
        ValueError: a value outside its argument's choices.
    """
    common.check_choices(ARGUMENTS, values)
    image = values['image'].rstrip('/') or 'image'
    remappings = [('image', image), ('image/compressed', f'{image}/compressed'),
                  ('camera_info', values['camera_info'] or 'camera_info')]
    return {'params_files': [values['params_file']],
            'parameters': common.common_overrides(values), 'remappings': remappings,
            'namespace': values['namespace'], 'log_level': values['log_level'],
            'rviz': common.parse_bool('rviz', values['rviz'])}


def _actions(context: Any, values: dict[str, str]) -> list[Any]:
    """The node (and RViz2, checked first: nothing starts when it is missing)."""
    cfg = node_arguments(values)
    actions = []
    if cfg['rviz']:
        from launch_ros.substitutions import FindPackageShare

        share = FindPackageShare(PACKAGE).perform(context)
        actions.append(common.rviz_action(cfg['namespace'],
                                          f'{share}/config/{RVIZ_CONFIG}'))
    return common.node_actions(cfg) + actions


def generate_launch_description() -> Any:
    """The launch description: the declared arguments, the node, RViz2 on request."""
    return common.launch_description(ARGUMENTS, PARAMS_FILE, _actions)
