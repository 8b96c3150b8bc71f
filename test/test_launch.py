"""Launch files and parameter files.

Always run here: the launch files compile, declare the documented arguments with
descriptions (AST), use FindPackageShare/PathJoinSubstitution and no eval/subprocess; their
pure argument mapping (``node_arguments``) gives the expected parameters and remaps; the
parameter files parse with the real rcl YAML parser into declared, valid node parameters;
the RViz2 config shows the node's image topics.

With launch_pytest (a real ROS 2 install) the launch files are also launched for real and
must serve labels. test_node.py starts the node with the same mapping, without launch.
"""
from __future__ import annotations

import ast
import pathlib
import py_compile
from typing import Any

import pytest
import yaml
from ros_harness import REPO, RosTestNode, load_launch_module, make_context

from seg_perception.node import PARAMETERS, ConfigError, settings_from_values

LAUNCH = REPO / 'launch'
ROAD_ARGS = {'model', 'params_file', 'namespace', 'image', 'use_crf', 'device', 'log_level',
             'rviz'}
MULTI_ARGS = {'model', 'params_file', 'namespace', 'cameras', 'use_crf', 'device', 'log_level'}
FORBIDDEN_CALLS = {'eval', 'exec', 'compile', '__import__', 'system', 'popen', 'Popen', 'run',
                   'check_output', 'check_call', 'call'}


def parse(name: str) -> ast.Module:
    return ast.parse((LAUNCH / name).read_text(), filename=name)


def arguments_of(tree: ast.Module) -> list[tuple[str, Any, str]]:
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == 'ARGUMENTS':
            return list(ast.literal_eval(node.value))
    raise AssertionError('no ARGUMENTS table')


def calls(tree: ast.Module) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)]


def call_name(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ''


@pytest.mark.parametrize('name, required', [('road.launch.py', ROAD_ARGS),
                                            ('multi_camera.launch.py', MULTI_ARGS)])
def test_launch_file_structure(name: str, required: set[str]) -> None:
    py_compile.compile(str(LAUNCH / name), doraise=True)
    tree = parse(name)
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert {'generate_launch_description', 'node_arguments'} <= functions
    args = arguments_of(tree)
    names = [a[0] for a in args]
    assert required <= set(names), required - set(names)
    assert len(names) == len(set(names))
    for arg_name, _, description in args:
        assert isinstance(description, str) and len(description) > 10, arg_name
    found = {call_name(c) for c in calls(tree)}
    assert {'DeclareLaunchArgument', 'FindPackageShare', 'PathJoinSubstitution', 'Node',
            'OpaqueFunction'} <= found
    assert not found & FORBIDDEN_CALLS, found & FORBIDDEN_CALLS
    imported = {a.name.split('.')[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}
    imported |= {n.module.split('.')[0] for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {'subprocess', 'os'}
    # Every DeclareLaunchArgument passes a description.
    for call in calls(tree):
        if call_name(call) == 'DeclareLaunchArgument':
            assert any(k.arg == 'description' for k in call.keywords)
    # The node action runs this package's executable with params and remaps.
    nodes = [c for c in calls(tree) if call_name(c) == 'Node'
             and any(k.arg == 'executable' and isinstance(k.value, ast.Name)
                     and k.value.id == 'EXECUTABLE' for k in c.keywords)]
    assert len(nodes) == 1
    keywords = {k.arg for k in nodes[0].keywords}
    assert {'package', 'executable', 'name', 'namespace', 'parameters', 'remappings',
            'ros_arguments'} <= keywords


def test_road_launch_starts_rviz_only_on_request() -> None:
    tree = parse('road.launch.py')
    rviz = [c for c in calls(tree) if call_name(c) == 'Node'
            and any(k.arg == 'executable' and isinstance(k.value, ast.Constant)
                    and k.value.value == 'rviz2' for k in c.keywords)]
    assert len(rviz) == 1
    cond = next(k.value for k in rviz[0].keywords if k.arg == 'condition')
    assert call_name(cond) == 'IfCondition'
    assert ast.unparse(cond.args[0]) == "LaunchConfiguration('rviz')"
    assert 'RVIZ_CONFIG' in ast.unparse(rviz[0])


def defaults(module: Any) -> dict[str, str]:
    values = {n: ('' if d is None else d) for n, d, _ in module.ARGUMENTS}
    values['params_file'] = str(REPO / 'config' / module.PARAMS_FILE)
    return values


def test_road_launch_argument_mapping() -> None:
    road = load_launch_module('road.launch.py')
    cfg = road.node_arguments(defaults(road))
    assert cfg['parameters'] == {}  # nothing overrides the params file by default
    assert cfg['params_files'] == [str(REPO / 'config' / 'road.yaml')]
    assert cfg['remappings'] == [('image', 'image'), ('image/compressed', 'image/compressed'),
                                 ('camera_info', 'camera_info')]
    assert (cfg['namespace'], cfg['log_level']) == ('', 'info')
    cfg = road.node_arguments({**defaults(road), 'model': '/m.segmodel', 'device': 'cpu',
                               'use_crf': 'True', 'image': '/cam/image_raw',
                               'camera_info': '/cam/camera_info', 'namespace': 'car'})
    assert cfg['parameters'] == {'model_path': '/m.segmodel', 'device': 'cpu',
                                 'crf.enabled': True}
    assert cfg['remappings'] == [('image', '/cam/image_raw'),
                                 ('image/compressed', '/cam/image_raw/compressed'),
                                 ('camera_info', '/cam/camera_info')]
    assert cfg['namespace'] == 'car'
    with pytest.raises(ValueError, match='use_crf'):
        road.node_arguments({**defaults(road), 'use_crf': 'maybe'})


def test_multi_camera_launch_argument_mapping() -> None:
    multi = load_launch_module('multi_camera.launch.py')
    cfg = multi.node_arguments(defaults(multi))
    assert cfg['cameras'] == ['front', 'left', 'right']  # from config/multi_camera.yaml
    assert 'cameras' not in cfg['parameters']
    assert ('front/image', 'front/image') in cfg['remappings']
    cfg = multi.node_arguments({**defaults(multi), 'cameras': 'a, b', 'camera_prefix': '/s/',
                                'image': 'image_raw'})
    assert cfg['parameters'] == {'cameras': ['a', 'b']}
    assert cfg['remappings'] == [
        ('a/image', '/s/a/image_raw'), ('a/image/compressed', '/s/a/image_raw/compressed'),
        ('a/camera_info', '/s/a/camera_info'),
        ('b/image', '/s/b/image_raw'), ('b/image/compressed', '/s/b/image_raw/compressed'),
        ('b/camera_info', '/s/b/camera_info')]


def flatten(params: dict[str, Any], prefix: str = '') -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update(flatten(value, f'{prefix}{key}.'))
        else:
            out[f'{prefix}{key}'] = value
    return out


@pytest.mark.parametrize('name', ['road.yaml', 'multi_camera.yaml'])
def test_params_file_holds_valid_declared_parameters(name: str, small_model_path: Any) -> None:
    data = yaml.safe_load((REPO / 'config' / name).read_text())
    assert list(data) == ['/**/road_segmentation']
    flat = flatten(data['/**/road_segmentation']['ros__parameters'])
    declared = {s.name for s in PARAMETERS}
    assert set(flat) <= declared, set(flat) - declared
    # The real rcl parser, a namespaced node of that name, the node's own declarations.
    from rclpy.node import Node

    context = make_context(['--params-file', str(REPO / 'config' / name)])
    try:
        node = Node('road_segmentation', namespace='/some/ns', context=context)
        values = {s.name: node.declare_parameter(s.name, s.default, s.descriptor()).value
                  for s in PARAMETERS}
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
    assert data['Panels'] and data['Window Geometry']


# -- real launches (launch_pytest on a ROS 2 install) -------------------------------------------
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

    from seg_perception.ros_image import fill_image_msg

    def include(name: str, arguments: dict[str, str]) -> Any:
        from launch import LaunchDescription
        from launch.actions import IncludeLaunchDescription
        from launch.launch_description_sources import PythonLaunchDescriptionSource

        return LaunchDescription([
            IncludeLaunchDescription(PythonLaunchDescriptionSource(str(LAUNCH / name)),
                                     launch_arguments=list(arguments.items())),
            launch_pytest.actions.ReadyToTest()])

    @launch_pytest.fixture
    def road_launch(small_model_path: pathlib.Path, ros_namespace: str) -> Any:
        ns = ros_namespace + '/road'
        return include('road.launch.py', {
            'model': str(small_model_path), 'namespace': ns, 'device': 'cpu',
            'image': f'{ns}/camera/image_raw', 'rviz': 'false'})

    @launch_pytest.fixture
    def multi_launch(small_model_path: pathlib.Path, ros_namespace: str) -> Any:
        ns = ros_namespace + '/multi'
        return include('multi_camera.launch.py', {
            'model': str(small_model_path), 'namespace': ns, 'device': 'cpu',
            'cameras': 'front,left', 'camera_prefix': f'{ns}/cams/', 'image': 'image_raw'})

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
