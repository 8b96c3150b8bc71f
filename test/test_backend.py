"""The ``backend`` choice (keras | onnxruntime) and the execution-provider order: node
parameters, seg_evaluate, seg_bag eval, the cheap .onnx check, clear errors before
TensorFlow is imported, and the node over real DDS on an ONNX export."""
from __future__ import annotations

import contextlib
import io
import json
import pathlib
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from data_factory import make_kitti, scene
from test_cli_fail_fast import RUN as CLI_RUN

from seg_perception.cli import bag as bag_cli
from seg_perception.cli import evaluate as evaluate_cli
from seg_perception.core import formats
from seg_perception.core.params import PARAMETERS, ConfigError, settings_from_values

pytestmark = pytest.mark.timeout(600)
REPO = pathlib.Path(__file__).resolve().parent.parent
BLOCK_ORT = 'import sys; sys.modules["onnxruntime"] = None\n'
RUN = BLOCK_ORT + CLI_RUN   # a CLI in a subprocess that reports whether TF was imported


def node_values(**overrides: Any) -> dict[str, Any]:
    values = {s.name: s.default for s in PARAMETERS}
    return {**values, **overrides}


def run_blocked(module: str, args: list[str], cwd: pathlib.Path) -> tuple[int, list[str], str]:
    """A CLI in a subprocess where onnxruntime cannot be imported: (rc, error lines,
    imported heavy modules)."""
    proc = subprocess.run([sys.executable, '-c', RUN.format(module=module), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    imported = [line for line in lines if line.startswith('IMPORTED=')][-1].split('=', 1)[1]
    return proc.returncode, [x for x in lines if not x.startswith('IMPORTED=')], imported


# -- node parameters ---------------------------------------------------------------------
def test_parameters_declare_backend_and_providers() -> None:
    specs = {s.name: s for s in PARAMETERS}
    assert specs['backend'].default == 'auto' and not specs['backend'].runtime
    assert specs['providers'].default == ['tensorrt', 'cuda', 'cpu']
    from seg_perception.ros.parameters import descriptor
    constraints = descriptor(specs['backend']).additional_constraints
    assert "'onnxruntime'" in constraints and "'auto'" in constraints


def test_settings_backend_and_model_kind(small_model_path: pathlib.Path,
                                         tmp_path: pathlib.Path) -> None:
    onnx = tmp_path / 'm.onnx'
    onnx.write_bytes(b'\x08\x07')
    s = settings_from_values(node_values(model_path=str(small_model_path)))  # auto
    assert s.backend == 'keras' and s.providers == ('tensorrt', 'cuda', 'cpu')
    assert s.backend_note.startswith('auto: Keras')
    s = settings_from_values(node_values(model_path=str(onnx)))  # auto: an ONNX file
    assert (s.backend, s.model_path) == ('onnxruntime', onnx)
    s = settings_from_values(node_values(model_path=str(onnx), backend='onnxruntime',
                                         providers=['cuda', 'cpu']))
    assert s.backend == 'onnxruntime' and s.providers == ('cuda', 'cpu')
    assert s.model_path == onnx
    with pytest.raises(ConfigError, match="set backend to 'onnxruntime'"):
        settings_from_values(node_values(model_path=str(onnx), backend='keras'))
    with pytest.raises(ConfigError, match='needs an .onnx file from seg_export'):
        settings_from_values(node_values(model_path=str(small_model_path),
                                         backend='onnxruntime'))
    with pytest.raises(ConfigError, match="parameter 'backend' must be one of"):
        settings_from_values(node_values(model_path=str(small_model_path), backend='trt'))
    for bad in (['rocm'], [], ['cpu', 'cpu']):
        with pytest.raises(ConfigError, match="parameter 'providers'"):
            settings_from_values(node_values(model_path=str(onnx), backend='onnxruntime',
                                             providers=bad))


def test_default_onnx_model_hint(monkeypatch: pytest.MonkeyPatch,
                                 tmp_path: pathlib.Path) -> None:
    from seg_perception.core import params
    monkeypatch.setattr(params, 'default_model_path', lambda: tmp_path / 'road.segmodel')
    with pytest.raises(ConfigError, match=r'road\.onnx .*run seg_export on road\.segmodel'):
        settings_from_values(node_values(backend='onnxruntime'))


def test_async_publication_is_a_default_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from seg_perception.ros import dds_env as paths
    monkeypatch.delenv(paths.PUBLICATION_MODE_VARIABLE, raising=False)
    monkeypatch.setenv('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    assert paths.use_async_publication() == 'ASYNCHRONOUS'
    monkeypatch.setenv(paths.PUBLICATION_MODE_VARIABLE, 'SYNCHRONOUS')
    assert paths.use_async_publication() is None
    monkeypatch.delenv(paths.PUBLICATION_MODE_VARIABLE)
    monkeypatch.setenv('RMW_IMPLEMENTATION', 'rmw_cyclonedds_cpp')
    assert paths.use_async_publication() is None


# -- the cheap .onnx check ---------------------------------------------------------------
def test_check_onnx_file(small_onnx_path: pathlib.Path, small_model_path: pathlib.Path,
                         tmp_path: pathlib.Path) -> None:
    assert formats.check_onnx_file(small_onnx_path) == small_onnx_path
    not_onnx = tmp_path / 'zip.onnx'
    not_onnx.write_bytes(small_model_path.read_bytes())
    no_card = tmp_path / 'plain.onnx'
    no_card.write_bytes(small_onnx_path.read_bytes().replace(b'seg_perception.card',
                                                             b'something.else.xx'))
    cases = [(tmp_path / 'missing.onnx', 'ONNX file not found'),
             (tmp_path, 'not a file'), (small_model_path, 'needs an .onnx file'),
             (not_onnx, 'not an ONNX model file'), (no_card, 'no seg_perception model card')]
    for path, message in cases:
        with pytest.raises(formats.UsageError, match=message):
            formats.check_onnx_file(path)
    with pytest.raises(formats.UsageError, match='use --backend onnxruntime'):
        formats.check_model_for_backend(small_onnx_path, 'keras')


# -- seg_evaluate and seg_bag eval -------------------------------------------------------
@pytest.fixture(scope='module')
def kitti_tiny(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return make_kitti(tmp_path_factory.mktemp('kitti'), per_category=1, size=(80, 240))


def _evaluate(args: list[Any]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = evaluate_cli.main([str(a) for a in args])
    return rc, out.getvalue()


def test_seg_evaluate_onnxruntime_matches_keras(kitti_tiny: pathlib.Path,
                                                small_model_path: pathlib.Path,
                                                small_onnx_path: pathlib.Path,
                                                tmp_path: pathlib.Path) -> None:
    docs = {}
    for backend, model in (('keras', small_model_path), ('onnxruntime', small_onnx_path)):
        out = tmp_path / backend
        rc, text = _evaluate(['--model', model, '--dataset', 'kitti', '--data-dir', kitti_tiny,
                              '--split', 'training', '--out', out, '--backend', backend,
                              '--providers', 'cuda', 'cpu', '--precision', 'float32',
                              '--overlays', '0'])
        assert rc == 0, text
        docs[backend] = json.loads((out / 'metrics.json').read_text())
    k, o = docs['keras'], docs['onnxruntime']
    assert o['run']['backend'] == 'onnxruntime' and o['run']['providers'] == 'cpu'
    assert k['run']['backend'] == 'keras'
    for key in ('MaxF', 'AvgPrec', 'IoU', 'accuracy'):
        assert abs(k[key] - o[key]) < 1e-3, key


def test_seg_bag_eval_onnxruntime(kitti_tiny: pathlib.Path, small_onnx_path: pathlib.Path,
                                  tmp_path: pathlib.Path) -> None:
    bag = tmp_path / 'bag'
    images = kitti_tiny / 'training' / 'image_2'
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert bag_cli.main(['make', '--images', str(images), '--out', str(bag)]) == 0
        rc = bag_cli.main(['eval', '--bag', str(bag), '--out', str(tmp_path / 'eval'),
                           '--model', str(small_onnx_path), '--providers', 'cpu'])
    assert rc == 0, out.getvalue()
    doc = json.loads((tmp_path / 'eval' / 'metrics.json').read_text())
    assert doc['run']['backend'] == 'onnxruntime' and doc['run']['providers'] == 'cpu'
    assert doc['frames'] == 3


@pytest.mark.parametrize('module, args, message', [
    ('seg_perception.cli.evaluate',
     ['--model', '{onnx}', '--dataset', 'kitti', '--data-dir', '{tmp}', '--out', '{out}',
      '--backend', 'onnxruntime'], 'pip install onnxruntime'),
    ('seg_perception.cli.evaluate',
     ['--model', '{onnx}', '--dataset', 'kitti', '--data-dir', '{tmp}', '--out', '{out}',
      '--backend', 'keras'], 'is an ONNX file: use --backend onnxruntime'),
    ('seg_perception.cli.evaluate',      # backend auto: an .onnx file needs onnxruntime
     ['--model', '{onnx}', '--dataset', 'kitti', '--data-dir', '{tmp}', '--out', '{out}'],
     'pip install onnxruntime'),
    ('seg_perception.cli.bag',
     ['eval', '--bag', '{tmp}', '--model', '{onnx}', '--out', '{out}'],
     'pip install onnxruntime'),
])
def test_cli_errors_before_tensorflow(module: str, args: list[str], message: str,
                                      tmp_path: pathlib.Path) -> None:
    onnx = tmp_path / 'm.onnx'
    onnx.write_bytes(b'\x08\x07seg_perception.card')
    names = {'onnx': str(onnx), 'tmp': str(tmp_path), 'out': str(tmp_path / 'out')}
    rc, lines, imported = run_blocked(module, [a.format(**names) for a in args], tmp_path)
    assert rc == 1 and len(lines) == 1, lines
    assert message in lines[0] and 'Traceback' not in lines[0], lines
    assert imported == '', imported
    assert not (tmp_path / 'out').exists()


def test_onnxruntime_missing_is_one_error(small_onnx_path: pathlib.Path) -> None:
    code = BLOCK_ORT + (
        'from seg_perception.runtime.ort_session import OrtError, onnxruntime_installed\n'
        'from seg_perception.runtime.segmenter import Segmenter\n'
        f'print(onnxruntime_installed())\n'
        f'try:\n    Segmenter({str(small_onnx_path)!r}, backend="onnxruntime")\n'
        'except OrtError as e:\n    print(e)\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=120)
    lines = out.stdout.splitlines()
    assert lines[0] == 'False' and 'pip install onnxruntime' in lines[1], out.stderr


# -- the node over real DDS ----------------------------------------------------------------
def test_node_runs_the_onnx_export(ros: Any, ros_namespace: str,
                                   small_model_path: pathlib.Path,
                                   small_onnx_path: pathlib.Path,
                                   node_processes: Callable[..., Any]) -> None:
    from diagnostic_msgs.msg import DiagnosticArray
    from ros_harness import executable, ros_arguments
    from sensor_msgs.msg import Image

    from seg_perception.core.image_msgs import decode_image, fill_image_msg
    from seg_perception.runtime.segmenter import Segmenter

    ns = ros_namespace + '/onnx'
    args = ros_arguments([REPO / 'config' / 'road.yaml'], {
        'model_path': str(small_onnx_path), 'backend': 'onnxruntime',
        'providers': ['tensorrt', 'cpu'], 'diagnostics_period': 0.2,
        'overlay.encoding': 'bgr8'}, namespace=ns)
    proc = node_processes(executable('road_segmentation', 'seg_perception.ros.node'), args,
                          name='road_segmentation_onnx')
    label, overlay = (ros.collect(f'{ns}/road/{k}', Image) for k in ('label', 'overlay'))
    diag = ros.collect('/diagnostics', DiagnosticArray)
    proc.wait_ready(ros, publishers=[f'{ns}/road/label'], subscribers=[f'{ns}/image'],
                    timeout=240)
    pub = ros.publisher(Image, f'{ns}/image')
    ros.wait_matched(pub)
    frame, _ = scene(90, 150, 3)
    msg = fill_image_msg(Image(), np.ascontiguousarray(frame[:, :, ::-1]), 'bgr8')
    msg.header.frame_id = 'onnx_frame'
    msg.header.stamp = ros.node.get_clock().now().to_msg()
    ros.request(lambda: pub.publish(msg), label, lambda m: m.header.frame_id == 'onnx_frame',
                timeout=120)
    got = label.wait_for(lambda m: m.header.frame_id == 'onnx_frame', 30)
    over = overlay.wait_for(lambda m: m.header.frame_id == 'onnx_frame', 30)
    labels = np.frombuffer(got.data, np.uint8).reshape(90, 150)
    from seg_perception.runtime.pipeline import Pipeline
    expected = Pipeline(Segmenter(small_model_path, device='cpu', precision='float32')).run(
        [frame])[0].labels
    assert (labels == expected).mean() > 0.999
    assert over.encoding == 'bgr8'
    from seg_perception.core import render
    card = Segmenter(small_onnx_path, backend='onnxruntime', providers=('cpu',)).card
    want = render.overlay(frame, labels, card.palette, 0.5, [card.road_class])
    assert np.array_equal(decode_image(over), want)
    name = f'{ns}/road_segmentation: image'

    def has_frame(m: Any) -> bool:
        return any(st.name == name and any(kv.key == 'frames_processed' and kv.value != '0'
                                           for kv in st.values) for st in m.status)
    values = {kv.key: kv.value for st in diag.wait_for(has_frame, 30).status
              if st.name == name for kv in st.values}
    assert values['backend'] == 'onnxruntime' and values['device'] == 'cpu'
    log = proc.log()
    assert 'backend=onnxruntime providers=cpu (requested tensorrt,cpu' in log, log
    proc.stop_and_check()


def test_node_refuses_a_segmodel_for_onnxruntime(ros_namespace: str,
                                                 small_model_path: pathlib.Path) -> None:
    from ros_harness import NodeProcess, executable, ros_arguments

    args = ros_arguments([], {'model_path': str(small_model_path), 'backend': 'onnxruntime'},
                         namespace=ros_namespace + '/refuse')
    proc = NodeProcess(executable('road_segmentation', 'seg_perception.ros.node'), args,
                       name='road_segmentation_refuse')
    rc = proc.wait_exit(60)
    log = proc.log()
    assert rc != 0 and 'cannot start' in log and 'needs an .onnx file' in log, log
    assert 'Traceback' not in log, log
