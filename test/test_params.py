"""The ROS-free parameter schema: one declaration, the parameter table of docs/NODE.md, the
params-file reader
(compared with the real rcl parser), choices used by the CLIs, and no rclpy in offline tools.
"""
from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
from ros_harness import REPO, make_context

from seg_perception.core import params, params_file
from seg_perception.core.formats import NODE_NAME

BLOCK_RCLPY = ('import sys\n'
               'class _NoRclpy:\n'
               '    def find_spec(self, name, path=None, target=None):\n'
               '        if name == "rclpy" or name.startswith("rclpy."):\n'
               '            raise ImportError("rclpy is blocked in this test")\n'
               'sys.meta_path.insert(0, _NoRclpy())\n')


def test_node_doc_parameter_table_is_generated_from_the_schema() -> None:
    doc = (REPO / 'docs' / 'NODE.md').read_text()
    assert params.markdown_table() in doc, \
        'docs/NODE.md parameter table is stale: paste `python -m seg_perception.core.params`'


def test_every_parameter_is_declared_once_with_a_valid_type() -> None:
    names = [s.name for s in params.PARAMETERS]
    assert len(names) == len(set(names))
    for s in params.PARAMETERS:
        assert s.type in params.TYPES and len(s.description) > 10, s.name
        if s.default is not None and s.choices is not None:
            items = s.default if s.type.endswith('_array') else [s.default]
            assert all(v in s.choices for v in items), s.name
    assert params.RUNTIME_PARAMETERS == ('threshold', 'crf.enabled', 'crf.iterations',
                                         'overlay.alpha')


@pytest.mark.parametrize('name, value, match', [
    ('device', 'tpu', "'device' must be one of"), ('crf.iterations', 0, 'in 1..50'),
    ('overlay.alpha', 1.5, 'in 0..1'), ('threshold', float('nan'), 'finite'),
    ('providers', ['cuda', 'npu'], "'providers' must be one of"),
])
def test_settings_reject_out_of_schema_values(small_model_path: pathlib.Path, name: str,
                                              value: object, match: str) -> None:
    with pytest.raises(params.ConfigError, match=match):
        params.settings_from_values({'model_path': str(small_model_path), name: value})


PARAMS_YAML = """\
/**:
  ros__parameters:
    device: cpu
    crf: {iterations: 7}
/**/road_segmentation:
  ros__parameters:
    crf: {scale: 0.5}
    cameras: [front, rear]
/other_node:
  ros__parameters:
    device: gpu
"""


@pytest.mark.parametrize('namespace', ['/', '/some/ns'])
def test_params_file_reader_agrees_with_rcl(tmp_path: pathlib.Path, namespace: str) -> None:
    from rclpy.node import Node

    from seg_perception.ros.parameters import declaration
    path = tmp_path / 'p.yaml'
    path.write_text(PARAMS_YAML)
    fqn = f'{namespace.rstrip("/")}/{NODE_NAME}'
    ours = params_file.load_params_file(path, fqn)
    assert ours == {'device': 'cpu', 'crf.iterations': 7, 'crf.scale': 0.5,
                    'cameras': ['front', 'rear']}
    context = make_context(['--params-file', str(path)])
    try:
        node = Node(NODE_NAME, namespace=namespace, context=context)
        for spec in params.PARAMETERS:
            node.declare_parameter(*declaration(spec))
        for key, value in ours.items():
            assert node.get_parameter(key).value == value, key
        node.destroy_node()
    finally:
        context.try_shutdown()


def test_params_file_errors(tmp_path: pathlib.Path) -> None:
    with pytest.raises(params.ConfigError, match='not found'):
        params_file.load_params_file(tmp_path / 'missing.yaml')
    (tmp_path / 'x.yaml').write_text('/other:\n  ros__parameters: {a: 1}\n')
    with pytest.raises(params.ConfigError, match='no ros__parameters for /road_segmentation'):
        params_file.load_params_file(tmp_path / 'x.yaml')


def test_offline_modules_never_import_rclpy() -> None:
    code = BLOCK_RCLPY + (
        'import seg_perception.core.params, seg_perception.runtime.pipeline\n'
        'import seg_perception.bag.replay, seg_perception.cli.evaluate, seg_perception.cli.bag\n'
        'import seg_perception.evaluation.report\n'
        'assert "rclpy" not in sys.modules\nprint("ok")\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert out.returncode == 0 and out.stdout.strip() == 'ok', out.stderr[-2000:]
