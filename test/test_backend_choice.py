"""``backend: auto``: the rule that picks the runtime and model file (no model is loaded)."""
from __future__ import annotations

import pathlib

import pytest

from seg_perception.core import backend_choice, hardware
from seg_perception.core.backend_choice import choose_backend, int8_export_of
from seg_perception.core.hardware import cpu_flags
from seg_perception.core.params import settings_from_values

VNNI = frozenset({'avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16'})
AVX2 = frozenset({'avx2', 'fma'})
AMX = frozenset({'avx2', 'avx512f', 'amx_bf16', 'amx_int8', 'amx_tile'})


@pytest.fixture
def model(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """A stand-in .segmodel path (never loaded); its int8 export counts as current, with
    8-bit weights."""
    monkeypatch.setattr(backend_choice, 'export_metadata', lambda segmodel, onnx_file: {})
    path = tmp_path / 'road.segmodel'
    path.write_bytes(b'not loaded here')
    return path


def with_int8(model: pathlib.Path) -> pathlib.Path:
    int8 = int8_export_of(model)
    int8.write_bytes(b'not loaded here')
    return int8


@pytest.mark.parametrize('flags', [VNNI, AMX, frozenset({'avx2', 'avx_vnni'})])
def test_int8_export_on_a_cpu_with_int8_dot_products(model: pathlib.Path, flags) -> None:
    int8 = with_int8(model)
    choice = choose_backend(model, 'auto', flags=flags, gpu=False, onnxruntime_installed=True)
    assert (choice.backend, choice.model_path, choice.providers) == ('onnxruntime', int8,
                                                                     ('cpu',))
    assert 'road.int8.onnx' in choice.reason


@pytest.mark.parametrize('case, kwargs, why', [
    ('avx2 only', dict(flags=AVX2, gpu=False, onnxruntime_installed=True), 'no int8 dot'),
    ('gpu', dict(flags=VNNI, gpu=True, onnxruntime_installed=True), 'on the GPU'),
    ('no onnxruntime', dict(flags=VNNI, gpu=False, onnxruntime_installed=False),
     'onnxruntime is not installed'),
])
def test_keras_otherwise(model: pathlib.Path, case: str, kwargs, why: str) -> None:
    with_int8(model)
    choice = choose_backend(model, 'auto', **kwargs)
    assert (choice.backend, choice.model_path, choice.providers) == ('keras', model, None), case
    assert why in choice.reason


def test_a_7bit_export_runs_without_vnni(model: pathlib.Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """``seg_export --reduce-range`` (7-bit weights, no saturation) suits AVX2-only CPUs."""
    int8 = with_int8(model)
    monkeypatch.setattr(backend_choice, 'export_metadata', lambda segmodel, onnx_file: {
        'seg_perception.precision': 'int8-7bit'})
    choice = choose_backend(model, 'auto', flags=AVX2, gpu=False, onnxruntime_installed=True)
    assert (choice.backend, choice.model_path) == ('onnxruntime', int8)
    assert '7-bit weights' in choice.reason and 'not measured' in choice.reason


def test_keras_without_an_int8_export_and_onnx_files_on_onnxruntime(
        model: pathlib.Path, tmp_path: pathlib.Path) -> None:
    choice = choose_backend(model, 'cpu', flags=VNNI, onnxruntime_installed=True)
    assert choice.backend == 'keras' and 'seg_export --quantize int8' in choice.reason
    onnx = tmp_path / 'road.onnx'
    assert choose_backend(onnx, 'auto', flags=AVX2, gpu=True).backend == 'onnxruntime'
    # device gpu asks for Keras on the GPU even where the int8 export would suit the CPU
    with_int8(model)
    assert choose_backend(model, 'gpu', flags=VNNI, onnxruntime_installed=True).backend == \
        'keras'


def test_cpu_flags_parsed_from_cpuinfo() -> None:
    text = 'processor\t: 0\nflags\t\t: fpu avx2 avx512_vnni\nbugs\t\t: none\n'
    assert cpu_flags(text) == {'fpu', 'avx2', 'avx512_vnni'}
    assert cpu_flags('no flags line') == frozenset()


def test_settings_resolve_auto_and_keep_explicit_backends(
        model: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, 'cpu_flags', lambda: AVX2)
    monkeypatch.setattr(hardware, 'nvidia_gpu_present', lambda: False)
    int8 = with_int8(model)
    s = settings_from_values({'model_path': str(model)})          # backend defaults to auto
    assert (s.backend, s.model_path) == ('keras', model) and 'no int8 dot' in s.backend_note
    monkeypatch.setattr(hardware, 'cpu_flags', lambda: VNNI)
    s = settings_from_values({'model_path': str(model)})
    assert (s.backend, s.model_path, s.providers) == ('onnxruntime', int8, ('cpu',))
    s = settings_from_values({'model_path': str(model), 'backend': 'keras'})
    assert (s.backend, s.model_path, s.backend_note) == ('keras', model, '')


def test_an_int8_export_of_another_model_is_not_used(small_model_path: pathlib.Path,
                                                      small_onnx_path: pathlib.Path,
                                                      tmp_path: pathlib.Path) -> None:
    """The export must carry the .segmodel's card: a file left from an earlier model (or an
    unreadable one) is skipped, and the log says why."""
    import shutil

    from seg_perception.model.fcn8s import ModelSpec
    from seg_perception.model.model_file import save_random_model
    model = tmp_path / 'small.segmodel'
    shutil.copy(small_model_path, model)
    shutil.copy(small_onnx_path, int8_export_of(model))
    assert backend_choice.export_metadata(model, int8_export_of(model)) is not None
    choice = choose_backend(model, 'cpu', flags=VNNI, onnxruntime_installed=True)
    assert choice.backend == 'onnxruntime'
    other = save_random_model(tmp_path / 'other.segmodel',
                              ModelSpec(num_classes=2, batch_norm=True, head='light'), seed=2,
                              input_size=[64, 96], input_mode='pad', threshold=0.4)
    shutil.copy(other, model)                            # retrained: the export is stale
    choice = choose_backend(model, 'cpu', flags=VNNI, onnxruntime_installed=True)
    assert choice.backend == 'keras' and 'card differs' in choice.reason
    int8_export_of(model).write_bytes(b'truncated')
    assert backend_choice.export_metadata(model, int8_export_of(model)) is None
