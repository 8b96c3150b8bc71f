"""Code shared by the launch files ``launch/road.launch.py`` and ``launch/multi_camera.launch.py``.

It lives in the package (installed by pip, colcon and the venv layout alike) so that both
launch files import one copy. The argument tables and the mapping from launch argument
values to the node's parameters and remaps are pure Python: tests without a ``launch``
install apply exactly the same configuration. Everything that needs ``launch`` /
``launch_ros`` imports them inside the function.

What the launch files get from here:

* ``DeclareLaunchArgument`` with ``choices`` for every enumerated argument, so a bad value
  (``log_level:=verbose``, ``device:=tpu``) stops the launch with launch's own one-line error
  before anything starts;
* the node action with an ``OnProcessExit`` handler: a node that exits non-zero (e.g. it
  cannot start) makes ``ros2 launch`` exit non-zero, with the node's ``cannot start: ...``
  line as the reason; a node that exits 0 (lifecycle shutdown) shuts the launch down;
* RViz2 on request, checked before the node is started: without rviz2 the launch stops
  with one message and nothing is left running.
"""
from __future__ import annotations

import pathlib
import re
from collections.abc import Callable, Sequence
from typing import Any

from seg_perception.core.choices import DEVICES
from seg_perception.core.formats import NODE_NAME, PACKAGE, START_FAILURE
from seg_perception.core.params import ConfigError
from seg_perception.core.params_file import load_params_file

EXECUTABLE = 'road_segmentation'
RVIZ_PACKAGE = 'rviz2'
RVIZ_EXECUTABLE = 'rviz2'
BOOL_CHOICES = ('true', 'false')
OPTIONAL_BOOL_CHOICES = ('', 'true', 'false')
DEVICE_CHOICES = ('', *DEVICES)  # '' = the params file's
LOG_LEVELS = ('debug', 'info', 'warn', 'error', 'fatal')
_ANSI = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')

# (name, default, description, choices); default None = <share>/config/<params file>.
Argument = tuple[str, 'str | None', str, 'tuple[str, ...] | None']


def common_arguments(params_file: str) -> tuple[Argument, ...]:
    """The arguments of both launch files (``params_file`` names the default file)."""
    return (
        ('model', '', 'Model file (.segmodel); empty = model_path from the params file (empty '
         'there = the packaged default model)', None),
        ('params_file', None, f'Node parameters YAML; default: <share>/config/{params_file}',
         None),
        ('namespace', '', 'Namespace of the node (and RViz2); all topics are relative to it',
         None),
        ('use_crf', '', 'Dense CRF refinement on/off; empty = crf.enabled of the params file',
         OPTIONAL_BOOL_CHOICES),
        ('device', '', 'Inference device; empty = device of the params file',
         DEVICE_CHOICES),
        ('log_level', 'info', 'Node log level', LOG_LEVELS),
        ('autostart', '', 'true: the node configures and activates itself; false: it stays '
         'unconfigured for a lifecycle manager; empty = autostart of the params file '
         '(default true)', OPTIONAL_BOOL_CHOICES),
    )


def parse_bool(name: str, value: str) -> bool:
    """A launch argument as a bool ('true'/'false', '1'/'0', 'yes'/'no', any case)."""
    text = value.strip().lower()
    if text in ('true', '1', 'yes', 'on'):
        return True
    if text in ('false', '0', 'no', 'off'):
        return False
    raise ValueError(f'launch argument {name}:={value!r} is not true or false')


def check_choices(arguments: Sequence[Argument], values: dict[str, str]) -> None:
    """Raise ValueError for a value outside an argument's choices (launch checks the same)."""
    for name, _, _, choices in arguments:
        if choices is not None and values.get(name, '') not in choices:
            raise ValueError(f'launch argument {name}:={values.get(name)!r} is not one of '
                             f'{list(choices)}')


def common_overrides(values: dict[str, str]) -> dict[str, Any]:
    """Node parameter overrides of the common arguments (only those that are set)."""
    overrides: dict[str, Any] = {}
    if values['model']:
        overrides['model_path'] = values['model']
    if values['device']:
        overrides['device'] = values['device']
    if values['use_crf']:
        overrides['crf.enabled'] = parse_bool('use_crf', values['use_crf'])
    if values.get('autostart'):
        overrides['autostart'] = parse_bool('autostart', values['autostart'])
    return overrides


def cameras_from_params_file(path: str, namespace: str = '') -> list[str]:
    """The ``cameras`` parameter a ROS 2 params YAML gives the node in ``namespace`` (read as
    the node reads it, :func:`seg_perception.core.params_file.load_params_file`); [] when not set.
    """
    ns = '/'.join(p for p in namespace.split('/') if p)
    try:
        values = load_params_file(path, f'/{ns}/{NODE_NAME}' if ns else f'/{NODE_NAME}')
    except ConfigError:
        return []
    return [str(c) for c in values.get('cameras') or []]


def start_failure_reason(lines: Sequence[str]) -> str | None:
    """The node's ``cannot start: ...`` reason in its output lines, else the last line."""
    clean = [_ANSI.sub('', line).strip() for line in lines]
    clean = [line for line in clean if line]
    for line in reversed(clean):
        if START_FAILURE in line:
            return line[line.index(START_FAILURE):]
    return clean[-1] if clean else None


def rviz_missing_reason() -> str | None:
    """Why RViz2 cannot be started here (package or executable missing), or ``None``."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        prefix = pathlib.Path(get_package_prefix(RVIZ_PACKAGE))
    except PackageNotFoundError:
        return (f'rviz:=true but the {RVIZ_PACKAGE} package is not installed (not on '
                'AMENT_PREFIX_PATH): install ros-$ROS_DISTRO-rviz2 or launch with rviz:=false')
    exe = prefix / 'lib' / RVIZ_PACKAGE / RVIZ_EXECUTABLE
    if not exe.is_file():
        return f'rviz:=true but {exe} does not exist: reinstall rviz2 or use rviz:=false'
    return None


# -- launch actions (need launch / launch_ros) ---------------------------------------------------
def declare_arguments(arguments: Sequence[Argument], params_file: str) -> list[Any]:
    """``DeclareLaunchArgument`` actions (with choices) for ``arguments``."""
    from launch.actions import DeclareLaunchArgument
    from launch.substitutions import PathJoinSubstitution
    from launch_ros.substitutions import FindPackageShare

    actions = []
    for name, default, description, choices in arguments:
        value: Any = default
        if value is None:
            value = PathJoinSubstitution([FindPackageShare(PACKAGE), 'config', params_file])
        actions.append(DeclareLaunchArgument(
            name, default_value=value, description=description,
            choices=list(choices) if choices is not None else None))
    return actions


def argument_values(context: Any, arguments: Sequence[Argument]) -> dict[str, str]:
    """The performed value of every launch argument."""
    from launch.substitutions import LaunchConfiguration

    return {name: LaunchConfiguration(name).perform(context) for name, _, _, _ in arguments}


def node_actions(cfg: dict[str, Any]) -> list[Any]:
    """The road_segmentation Node plus its output and exit handlers.

    Args:
        cfg: a launch file's ``node_arguments`` result.
    """
    from launch.actions import RegisterEventHandler, Shutdown
    from launch.event_handlers import OnProcessExit, OnProcessIO
    from launch_ros.actions import Node

    node = Node(package=PACKAGE, executable=EXECUTABLE, name=NODE_NAME,
                namespace=cfg['namespace'], output='screen', emulate_tty=True,
                parameters=[*cfg['params_files'], cfg['parameters']],
                remappings=cfg['remappings'], ros_arguments=['--log-level', cfg['log_level']])
    lines: list[str] = []

    def on_output(event: Any) -> None:
        lines.extend(event.text.decode(errors='replace').splitlines())
        del lines[:-50]  # the reason is among the last lines

    def on_exit(event: Any, context: Any) -> list[Any] | None:
        if event.returncode == 0:
            return [Shutdown(reason=f'{NODE_NAME} exited')]
        if context.is_shutdown:
            return None  # stopped by the launch's own shutdown
        raise RuntimeError(f'{NODE_NAME} exited with code {event.returncode}: '
                           f'{start_failure_reason(lines) or "no output"}')

    return [
        RegisterEventHandler(OnProcessIO(target_action=node, on_stdout=on_output,
                                         on_stderr=on_output)),
        RegisterEventHandler(OnProcessExit(target_action=node, on_exit=on_exit)),
        node,
    ]


def rviz_action(namespace: str, config: str) -> Any:
    """The RViz2 Node with ``config`` (raises RuntimeError when RViz2 is not installed)."""
    from launch_ros.actions import Node

    why = rviz_missing_reason()
    if why is not None:
        raise RuntimeError(why)
    return Node(package=RVIZ_PACKAGE, executable=RVIZ_EXECUTABLE, name='rviz2',
                namespace=namespace, output='screen', arguments=['-d', config])


def launch_description(arguments: Sequence[Argument], params_file: str,
                       build: Callable[[Any, dict[str, str]], list[Any]]) -> Any:
    """Declared arguments plus an OpaqueFunction that calls ``build(context, values)``."""
    from launch import LaunchDescription
    from launch.actions import OpaqueFunction

    def opaque(context: Any) -> list[Any]:
        return build(context, argument_values(context, arguments))

    return LaunchDescription([*declare_arguments(arguments, params_file),
                              OpaqueFunction(function=opaque)])
