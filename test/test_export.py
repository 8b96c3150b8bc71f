"""seg_export and the onnxruntime backend: round trip against Keras, card inside the file,
provider fallback, clear errors, and arguments checked before TensorFlow is imported."""
from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from seg_perception.cli import export as export_cli
from seg_perception.export.frames import image_files
from seg_perception.model.model_file import read_card
from seg_perception.runtime.ort_session import OrtError, provider_order
from seg_perception.runtime.segmenter import Segmenter

pytest.importorskip('onnxruntime')
pytest.importorskip('tf2onnx')


@pytest.fixture(scope='module')
def onnx_path(small_model_path: pathlib.Path, tmp_path_factory: pytest.TempPathFactory,
              ) -> pathlib.Path:
    out = tmp_path_factory.mktemp('onnx') / 'small.onnx'
    frames = pathlib.Path(__file__).resolve().parent.parent / 'demo' / 'frames'
    rc = export_cli.main(['--model', str(small_model_path), '--out', str(out),
                          '--check-frames', str(frames), '--check-limit', '3'])
    assert rc == 0
    return out


def test_export_round_trip_matches_keras(onnx_path: pathlib.Path,
                                         small_model_path: pathlib.Path) -> None:
    check = json.loads(onnx_path.with_name(onnx_path.name + '.check.json').read_text())
    assert check['frames'] == 3 and check['max_abs_prob_diff'] < 1e-3
    assert check['label_agreement'] > 0.9999
    keras_seg = Segmenter(small_model_path, precision='float32')
    ort_seg = Segmenter(onnx_path, backend='onnxruntime', providers=('cuda', 'cpu'))
    assert ort_seg.card.to_json() == read_card(small_model_path).to_json()
    assert ort_seg.device == 'cpu' and ort_seg.backend == 'onnxruntime'
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
              for h, w in ((375, 1242), (360, 480), (50, 70))]      # dynamic H and W
    for a, b in zip(keras_seg.segment(frames, class_probabilities=True),
                    ort_seg.segment(frames, class_probabilities=True)):
        assert a.probability.shape == b.probability.shape
        assert np.abs(a.probability - b.probability).max() < 1e-3
        assert np.abs(a.class_probabilities - b.class_probabilities).max() < 1e-3
        thr = keras_seg.card.threshold
        assert ((a.probability >= thr) == (b.probability >= thr)).mean() > 0.999


def test_provider_fallback_order() -> None:
    avail = ['CUDAExecutionProvider', 'CPUExecutionProvider']
    assert provider_order(('tensorrt', 'cuda', 'cpu'), avail) == avail
    assert provider_order(('cpu',), avail) == ['CPUExecutionProvider']
    with pytest.raises(OrtError, match='none of the execution providers'):
        provider_order(('tensorrt',), ['CPUExecutionProvider'])
    with pytest.raises(OrtError, match='unknown execution provider'):
        provider_order(('rocm',), avail)


def test_clear_errors(small_model_path: pathlib.Path, tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match='needs an .onnx file'):
        Segmenter(small_model_path, backend='onnxruntime')
    with pytest.raises(ValueError, match='backend must be one of'):
        Segmenter(small_model_path, backend='tensorrt')
    bad = tmp_path / 'bad.onnx'
    bad.write_bytes(b'not onnx')
    with pytest.raises(OrtError, match='cannot load'):
        Segmenter(bad, backend='onnxruntime', providers=('cpu',))
    code = ('import sys; sys.modules["onnxruntime"] = None\n'
            'from seg_perception.runtime.ort_session import OrtForward, OrtError\n'
            'try:\n    OrtForward("x.onnx")\nexcept OrtError as e:\n    print(e)\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=120)
    assert 'pip install onnxruntime' in out.stdout


def test_cli_rejects_bad_arguments_before_importing_tensorflow(tmp_path: pathlib.Path) -> None:
    model = tmp_path / 'm.segmodel'
    model.write_bytes(b'x')
    code = ('import sys\nfrom seg_perception.cli import export as export_cli\n'
            f'rc = export_cli.main(["--model", {str(model)!r}, "--out", "x.pb"])\n'
            'print(rc, "tensorflow" in sys.modules)\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.split() == ['1', 'False']
    assert out.stderr.strip().splitlines()[-1] == \
        'seg_export: error: --out x.pb: an ONNX export needs a .onnx file name'
    assert not (tmp_path / 'x.pb').exists()


def test_int8_export_runs_on_the_onnxruntime_backend(small_model_path: pathlib.Path,
                                                     tmp_path: pathlib.Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``--quantize int8``: a smaller QDQ model with the card inside, close to Keras on real
    frames the calibration did not see (demo KITTI frames calibrate, CamVid ones check).
    Written beside the .segmodel as ``<stem>.int8.onnx``, ``backend: auto`` runs it on a
    CPU with VNNI.
    """
    frames = pathlib.Path(__file__).resolve().parent.parent / 'demo' / 'frames'
    model = tmp_path / 'small.segmodel'
    shutil.copy(small_model_path, model)
    out = tmp_path / 'small.int8.onnx'
    rc = export_cli.main(['--model', str(model), '--out', str(out),
                          '--quantize', 'int8', '--calibration-frames', str(frames / 'kitti'),
                          '--check-frames', str(frames / 'camvid'), '--check-limit', '2'])
    assert rc == 0 and not (tmp_path / 'small.int8.float32.onnx').exists()
    check = json.loads(out.with_name(out.name + '.check.json').read_text())
    q = check['quantization']
    assert q['calibration_frames'] >= 1 and q['int8_bytes'] < q['float32_bytes'] / 2
    assert check['check_frames_are_calibration_frames'] is False
    assert check['label_agreement'] > 0.9  # random weights: a loose bound on closeness
    seg = Segmenter(out, backend='onnxruntime', providers=('cpu',))
    assert seg.card.to_json() == read_card(small_model_path).to_json()
    (res,) = seg.segment([np.zeros((70, 100, 3), np.uint8)])
    assert res.probability.shape == (70, 100) and np.isfinite(res.probability).all()
    import onnx
    graph = onnx.load(str(out)).graph
    assert {'QuantizeLinear', 'DequantizeLinear'} <= {n.op_type for n in graph.node}
    weights = {n.name: n.input[1] for n in graph.node if n.op_type in ('Conv', 'ConvTranspose')}
    dequantized = {n.output[0] for n in graph.node if n.op_type == 'DequantizeLinear'}
    scores = [name for name in weights if '/score_' in name or '/upscore' in name]
    assert scores and all(weights[name] not in dequantized for name in scores)  # float32
    assert sum(w in dequantized for w in weights.values()) >= len(weights) - len(scores)

    from seg_perception.core import hardware
    from seg_perception.core.params import settings_from_values
    from seg_perception.runtime.pipeline import Pipeline
    monkeypatch.setattr(hardware, 'cpu_flags', lambda: frozenset({'avx2', 'avx512_vnni'}))
    monkeypatch.setattr(hardware, 'nvidia_gpu_present', lambda: False)
    settings = settings_from_values({'model_path': str(model), 'backend': 'auto'})
    assert (settings.backend, settings.model_path, settings.providers) == (
        'onnxruntime', out, ('cpu',))
    assert 'small.int8.onnx' in settings.backend_note and 'avx512_vnni' in settings.backend_note
    pipe = Pipeline.from_settings(settings)
    assert (pipe.segmenter.backend, pipe.segmenter.precision) == ('onnxruntime', 'int8')
    result = pipe.run([np.zeros((70, 100, 3), np.uint8)])[0]
    assert result.labels.shape == (70, 100)


def test_int8_needs_calibration_frames(small_model_path: pathlib.Path,
                                       tmp_path: pathlib.Path) -> None:
    code = ('import sys\nfrom seg_perception.cli import export as export_cli\n'
            f'rc = export_cli.main(["--model", {str(small_model_path)!r}, "--out", '
            f'{str(tmp_path / "m.onnx")!r}, "--quantize", "int8"])\n'
            'print(rc, "tensorflow" in sys.modules)\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.split() == ['1', 'False']
    assert out.stderr.strip().splitlines()[-1].startswith(
        'seg_export: error: --quantize int8 needs --calibration-frames')


def test_7bit_int8_export_is_picked_without_vnni(small_model_path: pathlib.Path,
                                                 tmp_path: pathlib.Path) -> None:
    """``--reduce-range``: 7-bit weights, recorded in the metadata; ``backend: auto`` runs it
    on an AVX2-only CPU, where it would not run an 8-bit export."""
    frames = pathlib.Path(__file__).resolve().parent.parent / 'demo' / 'frames'
    model = tmp_path / 'small.segmodel'
    shutil.copy(small_model_path, model)
    out = tmp_path / 'small.int8.onnx'
    assert export_cli.main(['--model', str(model), '--out', str(out), '--quantize', 'int8',
                            '--reduce-range', '--calibration-frames', str(frames / 'kitti'),
                            '--no-check']) == 0
    seg = Segmenter(out, backend='onnxruntime', providers=('cpu',))
    assert seg.precision == 'int8-7bit'
    from seg_perception.core.backend_choice import choose_backend
    choice = choose_backend(model, 'cpu', flags=frozenset({'avx2', 'fma'}),
                            onnxruntime_installed=True)
    assert (choice.backend, choice.model_path) == ('onnxruntime', out)
    with pytest.raises(SystemExit):
        export_cli.build_parser().parse_args(['--model', str(model), '--out', 'x.onnx',
                                              '--reduce-range', '--quantize', 'int4'])
    assert export_cli.main(['--model', str(model), '--out', str(tmp_path / 'f.onnx'),
                            '--reduce-range', '--no-check']) == 1


def test_int8_from_a_float32_onnx_export(small_onnx_path: pathlib.Path,
                                         tmp_path: pathlib.Path) -> None:
    """An .onnx --model is quantized without exporting (the vehicle-side path), streamed
    calibration; the check compares with the float32 export on ONNX Runtime."""
    frames = pathlib.Path(__file__).resolve().parent.parent / 'demo' / 'frames'
    out = tmp_path / 'q.int8.onnx'
    rc = export_cli.main(['--model', str(small_onnx_path), '--out', str(out), '--quantize',
                          'int8', '--calibration-frames', str(frames), '--check-frames',
                          str(frames / 'camvid'), '--check-limit', '2'])
    assert rc == 0 and small_onnx_path.is_file()                  # the input is kept
    check = json.loads(out.with_name(out.name + '.check.json').read_text())
    assert check['reference'] == 'onnx_float32' and check['label_agreement'] > 0.9
    assert check['quantization']['calibration_frames'] == len(image_files(frames))
    seg = Segmenter(out, backend='onnxruntime', providers=('cpu',))
    assert seg.precision == 'int8'


def test_an_onnx_model_can_only_be_quantized(small_onnx_path: pathlib.Path,
                                             tmp_path: pathlib.Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    rc = export_cli.main(['--model', str(small_onnx_path), '--out', str(tmp_path / 'x.onnx')])
    err = capsys.readouterr().err
    assert rc == 1 and 'can only be quantized' in err and 'Traceback' not in err
