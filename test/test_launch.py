"""Launch files, the installed layouts ros2launch searches, and parameter files.

Always run here: the launch files compile (in memory: nothing is written into the source
tree), declare every argument with a description and choices where the values are
enumerated, keep their shared code in ``seg_perception.ros.launch_support`` (node exit handling,
RViz2 check) and use no eval/subprocess; their pure argument mapping (``node_arguments``)
gives the expected parameters and remaps; the parameter files parse with the real rcl YAML
parser into declared, valid node parameters; the RViz2 config shows the node's image topics.

``ros2 launch <pkg> <file>`` finds the launch file by walking the package's share directory
with ``os.walk`` (no ``followlinks``) and wants exactly one match (ros2launch's
``get_share_file_path_from_package``). The walk tests do the same over the venv prefix that
``make setup`` registers and over a colcon install built in a temporary folder, and then run
the found launch file's mapping from there.

With ``launch`` importable (a real ROS 2 install) the launch files are also run with a
LaunchService in a subprocess (failure exits); with launch_pytest they are launched and must
serve labels. Under a pytest those plugins cannot load in (the venv's 9.x),
``seg_perception.testing.pytest_guard`` keeps them out and the launch_pytest tests are skipped with
one reason; test_pytest_guard.py shows that. test_node.py starts the node with the same
mapping, without launch.
"""
from __future__ import annotations

import ast
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Any

import pytest
import yaml
from ros_harness import REPO, RosTestNode, load_launch_module, make_context

from seg_perception.core.params import (
    PARAMETERS,
    ConfigError,
    settings_from_values,
)
from seg_perception.core.params_file import load_params_file
from seg_perception.ros import launch_support as launch_common

LAUNCH = REPO / 'launch'
LAUNCH_FILES = ('road.launch.py', 'multi_camera.launch.py')
COMMON_ARGS = {'model', 'params_file', 'namespace', 'use_crf', 'device', 'log_level',
               'autostart'}
ROAD_ARGS = COMMON_ARGS | {'image', 'camera_info', 'rviz'}
MULTI_ARGS = COMMON_ARGS | {'cameras', 'camera_prefix', 'image'}
ENUMERATED = {'use_crf', 'device', 'log_level', 'autostart', 'rviz'}
FORBIDDEN_CALLS = {'eval', 'exec', 'compile', '__import__', 'system', 'popen', 'Popen', 'run',
                   'check_output', 'check_call', 'call'}
SHARE_FILES = {'package.xml', 'launch/road.launch.py', 'launch/multi_camera.launch.py'}


def parse(path: pathlib.Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def calls(tree: ast.Module) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)]


def call_name(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ''


def forbidden_calls(tree: ast.Module) -> set[str]:
    """Calls of eval/exec/compile/__import__ (builtins) and of process-spawning functions."""
    builtins = {'eval', 'exec', 'compile', '__import__'}
    found = set()
    for c in calls(tree):
        name = call_name(c)
        if name in FORBIDDEN_CALLS and (isinstance(c.func, ast.Attribute) is
                                        (name not in builtins)):
            found.add(name)
    return found


def imported_roots(tree: ast.Module) -> set[str]:
    roots = {a.name.split('.')[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
             for a in n.names}
    return roots | {n.module.split('.')[0] for n in ast.walk(tree)
                    if isinstance(n, ast.ImportFrom) and n.module}


def tree_files(folder: pathlib.Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob('*')}


@pytest.mark.parametrize('name, required', [('road.launch.py', ROAD_ARGS),
                                            ('multi_camera.launch.py', MULTI_ARGS)])
def test_launch_file_structure(name: str, required: set[str]) -> None:
    before = tree_files(LAUNCH)
    path = LAUNCH / name
    compile(path.read_text(), str(path), 'exec')  # syntax, without writing __pycache__
    tree = parse(path)
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert {'generate_launch_description', 'node_arguments'} <= functions
    assert 'parse_bool' not in functions  # shared code lives in seg_perception.ros.launch_support
    module = load_launch_module(name)
    names = [a[0] for a in module.ARGUMENTS]
    assert set(names) == required, set(names) ^ required
    assert len(names) == len(set(names))
    for arg_name, default, description, choices in module.ARGUMENTS:
        assert isinstance(description, str) and len(description) > 10, arg_name
        assert (choices is not None) == (arg_name in ENUMERATED), arg_name
        if choices is not None:  # launch rejects a default outside the choices
            assert default in choices, arg_name
    assert dict((a[0], a[3]) for a in module.ARGUMENTS)['log_level'] == \
        launch_common.LOG_LEVELS
    assert {'launch_description', 'node_actions'} <= {call_name(c) for c in calls(tree)}
    assert not forbidden_calls(tree), forbidden_calls(tree)
    assert not imported_roots(tree) & {'subprocess', 'os'}
    assert 'seg_perception' in imported_roots(tree)
    assert tree_files(LAUNCH) == before  # nothing written next to the launch files


def test_shared_launch_code_declares_choices_and_handles_node_exit() -> None:
    tree = parse(pathlib.Path(launch_common.__file__))
    found = {call_name(c) for c in calls(tree)}
    assert {'DeclareLaunchArgument', 'FindPackageShare', 'PathJoinSubstitution', 'Node',
            'OpaqueFunction', 'OnProcessExit', 'OnProcessIO', 'Shutdown',
            'RegisterEventHandler'} <= found
    declare = next(c for c in calls(tree) if call_name(c) == 'DeclareLaunchArgument')
    assert {'default_value', 'description', 'choices'} <= {k.arg for k in declare.keywords}
    node = next(c for c in calls(tree) if call_name(c) == 'Node'
                and any(k.arg == 'executable' and isinstance(k.value, ast.Name)
                        and k.value.id == 'EXECUTABLE' for k in c.keywords))
    assert {'package', 'executable', 'name', 'namespace', 'parameters', 'remappings',
            'ros_arguments'} <= {k.arg for k in node.keywords}
    assert not forbidden_calls(tree), forbidden_calls(tree)
    assert not imported_roots(tree) & {'subprocess', 'os'}
    # launch and launch_ros are imported inside functions only (tests run without them).
    top = {a.name.split('.')[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    top |= {n.module.split('.')[0] for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert not top & {'launch', 'launch_ros', 'ament_index_python'}


def test_node_start_failure_reason_is_the_nodes_one_line() -> None:
    lines = ['[INFO] [1.0] [road_segmentation]: unconfigured',
             "\x1b[31;1m[ERROR] [2.0] [road_segmentation]: cannot start: parameter "
             "'model_path': model file not found: /x.segmodel\x1b[0m", '']
    assert launch_common.start_failure_reason(lines) == (
        "cannot start: parameter 'model_path': model file not found: /x.segmodel")
    assert launch_common.start_failure_reason(['Traceback ...', 'KeyError: 1']) == 'KeyError: 1'
    assert launch_common.start_failure_reason([]) is None


def test_rviz_check_names_the_missing_package(tmp_path: pathlib.Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(tmp_path))
    why = launch_common.rviz_missing_reason()
    assert why is not None and 'rviz2 package is not installed' in why and 'rviz:=false' in why
    index = tmp_path / 'share' / 'ament_index' / 'resource_index' / 'packages'
    index.mkdir(parents=True)
    (index / 'rviz2').touch()
    why = launch_common.rviz_missing_reason()
    assert why is not None and 'lib/rviz2/rviz2 does not exist' in why
    exe = tmp_path / 'lib' / 'rviz2' / 'rviz2'
    exe.parent.mkdir(parents=True)
    exe.write_text('#!/bin/sh\n')
    assert launch_common.rviz_missing_reason() is None


def defaults(module: Any) -> dict[str, str]:
    values = {n: ('' if d is None else d) for n, d, _, _ in module.ARGUMENTS}
    values['params_file'] = str(REPO / 'config' / module.PARAMS_FILE)
    return values


def test_road_launch_argument_mapping() -> None:
    road = load_launch_module('road.launch.py')
    cfg = road.node_arguments(defaults(road))
    assert cfg['parameters'] == {}  # nothing overrides the params file by default
    assert cfg['params_files'] == [str(REPO / 'config' / 'road.yaml')]
    assert cfg['remappings'] == [('image', 'image'), ('image/compressed', 'image/compressed'),
                                 ('camera_info', 'camera_info')]
    assert (cfg['namespace'], cfg['log_level'], cfg['rviz']) == ('', 'info', False)
    cfg = road.node_arguments({**defaults(road), 'model': '/m.segmodel', 'device': 'cpu',
                               'use_crf': 'true', 'image': '/cam/image_raw',
                               'camera_info': '/cam/camera_info', 'namespace': 'car',
                               'autostart': 'false', 'rviz': 'true'})
    assert cfg['parameters'] == {'model_path': '/m.segmodel', 'device': 'cpu',
                                 'crf.enabled': True, 'autostart': False}
    assert cfg['remappings'] == [('image', '/cam/image_raw'),
                                 ('image/compressed', '/cam/image_raw/compressed'),
                                 ('camera_info', '/cam/camera_info')]
    assert cfg['namespace'] == 'car' and cfg['rviz'] is True
    for name, value in (('use_crf', 'maybe'), ('log_level', 'verbose'), ('device', 'tpu'),
                        ('rviz', 'yes please'), ('autostart', 'later')):
        with pytest.raises(ValueError, match=name):
            road.node_arguments({**defaults(road), name: value})


def test_multi_camera_launch_argument_mapping() -> None:
    multi = load_launch_module('multi_camera.launch.py')
    cfg = multi.node_arguments(defaults(multi))
    assert cfg['cameras'] == ['front', 'left', 'right']  # from config/multi_camera.yaml
    assert cfg['parameters'] == {}
    assert ('front/image', 'front/image') in cfg['remappings']
    cfg = multi.node_arguments({**defaults(multi), 'cameras': 'a, b', 'camera_prefix': '/s/',
                                'image': 'image_raw', 'autostart': 'true'})
    assert cfg['parameters'] == {'cameras': ['a', 'b'], 'autostart': True}
    assert cfg['remappings'] == [
        ('a/image', '/s/a/image_raw'), ('a/image/compressed', '/s/a/image_raw/compressed'),
        ('a/camera_info', '/s/a/camera_info'),
        ('b/image', '/s/b/image_raw'), ('b/image/compressed', '/s/b/image_raw/compressed'),
        ('b/camera_info', '/s/b/camera_info')]
    with pytest.raises(ValueError, match='log_level'):
        multi.node_arguments({**defaults(multi), 'log_level': 'verbose'})


# -- the installed layouts, searched as ros2launch searches them ---------------------------------
def ros2launch_find(share: pathlib.Path, file_name: str) -> list[pathlib.Path]:
    """Every ``file_name`` under ``share`` as ros2launch's lookup walks it (os.walk, which
    does not descend into directory symlinks)."""
    return [pathlib.Path(root) / name for root, _, files in os.walk(share)
            for name in files if name == file_name]


def share_of(prefix: pathlib.Path) -> pathlib.Path:
    """``share/seg_perception`` of ``prefix`` through the ament index, as ros2launch gets it."""
    from ament_index_python.packages import get_package_share_directory

    old = os.environ.get('AMENT_PREFIX_PATH')
    os.environ['AMENT_PREFIX_PATH'] = str(prefix)
    try:
        return pathlib.Path(get_package_share_directory('seg_perception'))
    finally:
        if old is None:
            os.environ.pop('AMENT_PREFIX_PATH')
        else:
            os.environ['AMENT_PREFIX_PATH'] = old


def data_files(share: pathlib.Path) -> set[str]:
    """The installed data files (package.xml, launch/, config/, models/) under ``share``."""
    found = set()
    for root, _, files in os.walk(share):
        for name in files:
            rel = (pathlib.Path(root) / name).relative_to(share)
            if str(rel) == 'package.xml' or rel.parts[0] in ('launch', 'config', 'models'):
                found.add(str(rel))
    return found


def check_share(share: pathlib.Path) -> None:
    """What ``ros2 launch seg_perception <file>`` needs from ``share``."""
    assert SHARE_FILES <= data_files(share), SHARE_FILES - data_files(share)
    for name in LAUNCH_FILES:
        found = ros2launch_find(share, name)
        assert len(found) == 1, (name, found)  # 0: not found; >1: MultipleLaunchFilesError
        assert found[0].is_file()
        module = load_launch_module(name, found[0].parent)  # imports launch_common there
        values = {n: ('' if d is None else d) for n, d, _, _ in module.ARGUMENTS}
        values['params_file'] = str(share / 'config' / module.PARAMS_FILE)
        assert module.node_arguments(values)['params_files'] == [values['params_file']]


@pytest.fixture(scope='module')
def colcon_prefix(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """This package built with ``colcon build`` (copies, as ``make colcon``) into a temporary
    workspace; returns the package's install prefix."""
    colcon = shutil.which('colcon') or str(pathlib.Path(sys.executable).parent / 'colcon')
    if not pathlib.Path(colcon).is_file():
        pytest.skip('colcon is not installed in this environment')
    ws = tmp_path_factory.mktemp('colcon_ws')
    result = subprocess.run(
        [colcon, '--log-base', str(ws / 'log'), 'build', '--base-paths', str(REPO),
         '--build-base', str(ws / 'build'), '--install-base', str(ws / 'install'),
         '--packages-select', 'seg_perception'],
        cwd=ws, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return ws / 'install' / 'seg_perception'


def test_ros2launch_finds_the_launch_files_in_a_colcon_install(
        colcon_prefix: pathlib.Path) -> None:
    share = share_of(colcon_prefix)
    assert share == colcon_prefix / 'share' / 'seg_perception'
    check_share(share)


def test_ros2launch_finds_the_launch_files_in_the_venv(colcon_prefix: pathlib.Path) -> None:
    prefix = pathlib.Path(sys.prefix)
    if not (prefix / 'share' / 'seg_perception').is_dir():
        pytest.skip(f'{prefix} is not a venv set up by make setup (no share/seg_perception)')
    share = share_of(prefix)
    check_share(share)
    # The same data files as a colcon install, each a file link (not a directory link).
    assert data_files(share) == data_files(colcon_prefix / 'share' / 'seg_perception')
    for root, dirs, _ in os.walk(share):
        assert not [d for d in dirs if (pathlib.Path(root) / d).is_symlink()], root


def test_venv_hook_links_file_by_file_and_replaces_old_directory_links(
        tmp_path: pathlib.Path) -> None:
    sys.path.insert(0, str(REPO / 'tools'))
    try:
        import venv_hook
    finally:
        sys.path.remove(str(REPO / 'tools'))
    venv = tmp_path / 'venv'
    (venv / 'bin').mkdir(parents=True)
    (venv / 'bin' / 'road_segmentation').write_text('#!/bin/sh\n')
    (venv / 'bin' / 'activate').write_text(
        'deactivate () {\n    unset VIRTUAL_ENV\n    if [ ! "${1:-}" = "nondestructive" ]; '
        'then unset -f deactivate; fi\n}\ndeactivate nondestructive\n'
        'VIRTUAL_ENV=%s\nexport VIRTUAL_ENV\n' % venv)
    share = venv / 'share' / 'seg_perception'
    share.mkdir(parents=True)
    (share / 'launch').symlink_to(REPO / 'launch')  # the layout of the previous hook
    (share / 'config').mkdir()
    (share / 'config' / 'gone.yaml').symlink_to(REPO / 'config' / 'gone.yaml')
    assert ros2launch_find(share, 'road.launch.py') == []  # the reported failure
    for _ in range(2):  # idempotent
        assert venv_hook.main(str(venv)) == 0
    check_share(share)
    assert not (share / 'launch').is_symlink()
    assert not (share / 'config' / 'gone.yaml').is_symlink()
    assert (share / 'launch' / 'road.launch.py').resolve() == LAUNCH / 'road.launch.py'
    assert (venv / 'lib' / 'seg_perception' / 'road_segmentation').is_symlink()
    activate = (venv / 'bin' / 'activate').read_text()
    assert activate.count(venv_hook.MARK) == 1
    # The environment block in bash: set on activate, PYTEST_ADDOPTS restored on deactivate.
    script = (f'export PYTEST_ADDOPTS=-q; source {venv}/bin/activate; '
              'echo "$AMENT_PREFIX_PATH|$PYTEST_ADDOPTS"; deactivate; echo "$PYTEST_ADDOPTS"')
    out = subprocess.run(['bash', '-c', script], capture_output=True, text=True,
                         env={'PATH': os.environ['PATH'], 'HOME': str(tmp_path)}, check=True)
    first, second = out.stdout.splitlines()
    assert first == f'{venv}|-p seg_perception.testing.pytest_guard -q'
    assert second == '-q'


@pytest.mark.parametrize('name', ['road.yaml', 'multi_camera.yaml'])
def test_params_file_holds_valid_declared_parameters(name: str, small_model_path: Any) -> None:
    data = yaml.safe_load((REPO / 'config' / name).read_text())
    assert list(data) == ['/**/road_segmentation']
    flat = load_params_file(REPO / 'config' / name, '/some/ns/road_segmentation')
    declared = {s.name for s in PARAMETERS}
    assert set(flat) <= declared, set(flat) - declared
    # The real rcl parser, a namespaced node of that name, the node's own declarations.
    from rclpy.node import Node

    context = make_context(['--params-file', str(REPO / 'config' / name)])
    try:
        node = Node('road_segmentation', namespace='/some/ns', context=context)
        from seg_perception.ros.parameters import declaration
        values = {s.name: node.declare_parameter(*declaration(s)).value for s in PARAMETERS}
        for key, value in flat.items():
            assert values[key] == value, key
        node.destroy_node()
    finally:
        context.try_shutdown()
    settings = settings_from_values({**values, 'model_path': str(small_model_path)})
    assert settings.qos_input == (1, 'best_effort') and settings.qos_output[1] == 'reliable'
    with pytest.raises(ConfigError, match='transport'):
        settings_from_values({**values, 'model_path': str(small_model_path),
                              'transport': 'carrier_pigeon'})


def test_rviz_config_shows_the_outputs() -> None:
    data = yaml.safe_load((REPO / 'config' / 'road.rviz').read_text())
    displays = data['Visualization Manager']['Displays']
    images = {d['Topic']['Value'] for d in displays if d['Class'] == 'rviz_default_plugins/Image'}
    assert images == {'road/overlay', 'road/label', 'road/probability'}
    maps = [d for d in displays if d['Class'] == 'rviz_default_plugins/Map']
    assert [m['Topic']['Value'] for m in maps] == ['road/grid']
    assert data['Visualization Manager']['Global Options']['Fixed Frame'] == 'base_link'
    assert data['Panels'] and data['Window Geometry']


# -- real launches (a ROS 2 install with launch / launch_pytest) ----------------------------------
RUN_LAUNCH = """
import sys
import launch
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
path, args = sys.argv[1], [tuple(a.split(':=', 1)) for a in sys.argv[2:]]
service = launch.LaunchService()
service.include_launch_description(launch.LaunchDescription([
    IncludeLaunchDescription(PythonLaunchDescriptionSource(path), launch_arguments=args)]))
sys.exit(service.run())
"""


def installed_launch_file(name: str, tmp_path: pathlib.Path) -> pathlib.Path:
    """The launch file as ``ros2 launch`` would run it: from the installed share directory,
    else a temporary copy (running it writes __pycache__ next to it, never into the tree)."""
    try:
        found = ros2launch_find(share_of_env(), name)
    except LookupError:
        found = []
    if len(found) == 1:
        return found[0]
    shutil.copy(LAUNCH / name, tmp_path / name)
    return tmp_path / name


def share_of_env() -> pathlib.Path:
    from ament_index_python.packages import get_package_share_directory

    return pathlib.Path(get_package_share_directory('seg_perception'))


def run_launch(name: str, arguments: dict[str, str], tmp_path: pathlib.Path,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a launch file with a LaunchService in a subprocess (as ``ros2 launch`` does)."""
    pytest.importorskip('launch_ros', reason='launch/launch_ros are not installable here; '
                        'runs on a real ROS 2 install')
    path = installed_launch_file(name, tmp_path)
    return subprocess.run(
        [sys.executable, '-c', RUN_LAUNCH, str(path),
         *(f'{k}:={v}' for k, v in arguments.items())],
        capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def test_launch_exits_nonzero_with_the_nodes_reason(tmp_path: pathlib.Path,
                                                    ros_namespace: str) -> None:
    result = run_launch('road.launch.py', {'model': '/nonexistent/model.segmodel',
                                           'namespace': ros_namespace + '/fail'}, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "road_segmentation exited with code 1: cannot start: parameter 'model_path'" \
        in output, output


def test_launch_rejects_values_outside_the_choices(tmp_path: pathlib.Path) -> None:
    result = run_launch('road.launch.py', {'log_level': 'verbose'}, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert 'log_level' in output and 'verbose' in output and 'RCLError' not in output, output


def test_rviz_without_rviz2_stops_before_starting_anything(tmp_path: pathlib.Path,
                                                            ros_namespace: str) -> None:
    pytest.importorskip('launch_ros', reason='launch/launch_ros are not installable here; '
                        'runs on a real ROS 2 install')
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep)
                if p and not (pathlib.Path(p) / 'lib' / 'rviz2').exists()]
    result = run_launch('road.launch.py', {'rviz': 'true', 'namespace': ros_namespace + '/rv'},
                        tmp_path, env={'AMENT_PREFIX_PATH': os.pathsep.join(prefixes)})
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert 'rviz:=true but the rviz2 package is not installed' in output, output
    assert 'process started' not in output, output  # the node was never started: no orphan


# -- launch_pytest (skipped with one reason by seg_perception.testing.pytest_guard where it
#    cannot load)
try:
    import launch_pytest
except ImportError:
    launch_pytest = None

if launch_pytest is None:
    def test_launch_files_with_launch_pytest() -> None:
        pytest.importorskip('launch_pytest', reason='launch_pytest is not installable here; '
                            'runs on a real ROS 2 install')
else:
    import numpy as np
    from sensor_msgs.msg import Image

    from seg_perception.core.image_msgs import fill_image_msg

    def include(name: str, arguments: dict[str, str], folder: pathlib.Path) -> Any:
        from launch import LaunchDescription
        from launch.actions import IncludeLaunchDescription
        from launch.launch_description_sources import PythonLaunchDescriptionSource

        path = installed_launch_file(name, folder)
        return LaunchDescription([
            IncludeLaunchDescription(PythonLaunchDescriptionSource(str(path)),
                                     launch_arguments=list(arguments.items())),
            launch_pytest.actions.ReadyToTest()])

    @launch_pytest.fixture
    def road_launch(small_model_path: pathlib.Path, ros_namespace: str,
                    tmp_path: pathlib.Path) -> Any:
        ns = ros_namespace + '/road'
        return include('road.launch.py', {
            'model': str(small_model_path), 'namespace': ns, 'device': 'cpu',
            'image': f'{ns}/camera/image_raw', 'rviz': 'false'}, tmp_path)

    @launch_pytest.fixture
    def multi_launch(small_model_path: pathlib.Path, ros_namespace: str,
                     tmp_path: pathlib.Path) -> Any:
        ns = ros_namespace + '/multi'
        return include('multi_camera.launch.py', {
            'model': str(small_model_path), 'namespace': ns, 'device': 'cpu',
            'cameras': 'front,left', 'camera_prefix': f'{ns}/cams/', 'image': 'image_raw'},
            tmp_path)

    def serve_one(ros: RosTestNode, image_topic: str, label_topic: str) -> None:
        pub = ros.publisher(Image, image_topic)
        label = ros.collect(label_topic, Image)
        ros.wait_for_publishers(label_topic, timeout=180)
        ros.wait_matched(pub, timeout=60)
        frame = np.random.default_rng(0).integers(0, 256, (64, 96, 3), np.uint8)
        msg = fill_image_msg(Image(), frame, 'rgb8')
        msg.header.stamp = ros.node.get_clock().now().to_msg()
        msg.header.frame_id = 'launch_test'
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        reply = ros.request(lambda: pub.publish(msg), label,
                            lambda m: (m.header.stamp.sec, m.header.stamp.nanosec) == stamp, 60)
        assert (reply.height, reply.width, reply.encoding) == (64, 96, 'mono8')
        assert reply.header.frame_id == 'launch_test'

    @pytest.mark.launch(fixture=road_launch)
    def test_road_launch_serves(ros: RosTestNode, ros_namespace: str) -> None:
        ns = ros_namespace + '/road'
        serve_one(ros, f'{ns}/camera/image_raw', f'{ns}/road/label')

    @pytest.mark.launch(fixture=multi_launch)
    def test_multi_camera_launch_serves(ros: RosTestNode, ros_namespace: str) -> None:
        ns = ros_namespace + '/multi'
        for cam in ('front', 'left'):
            serve_one(ros, f'{ns}/cams/{cam}/image_raw', f'{ns}/{cam}/road/label')
