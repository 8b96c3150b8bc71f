"""seg_evaluate on real KITTI Road / CamVid frames: outputs, rescoring, bad inputs."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import pathlib
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import KITTI_SUBSET, KITTI_SUBSET_NAMES

from seg_perception.cli import evaluate as evaluate_cli
from seg_perception.core.image_io import read_gray, read_rgb
from seg_perception.core.metrics import RoadEvaluator
from seg_perception.datasets import open_dataset
from seg_perception.evaluation.bev import target_bev
from seg_perception.evaluation.run import REQUIRED_KEYS
from seg_perception.geometry.kitti_bev import BevSpec, devkit_bev, read_kitti_calib

FRACTIONS = ('MaxF', 'AvgPrec', 'PRE', 'REC', 'FPR', 'FNR', 'IoU', 'threshold', 'accuracy',
             'IoU_at_threshold', 'F_at_threshold')


def run_main(args: list[str]) -> tuple[int, str]:
    """``seg_evaluate`` in-process; returns (exit code, stdout)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = evaluate_cli.main([str(a) for a in args])
    return rc, out.getvalue()


def error_lines(err: str, prog: str = 'seg_evaluate') -> list[str]:
    return [line for line in err.splitlines() if line.startswith(f'{prog}: error:')]


def check_metrics(doc: dict, n_images: int) -> None:
    for key in REQUIRED_KEYS:
        assert key in doc, key
    for key in FRACTIONS:
        assert 0.0 <= doc[key] <= 1.0, (key, doc[key])
    assert doc['n_images'] == n_images
    assert doc['ground_truth'] is True and doc['partial'] is False


def camvid_subset(camvid_dir: pathlib.Path, dest: pathlib.Path, n: int) -> pathlib.Path:
    """A CamVid-layout folder holding the first ``n`` real val frames."""
    for sub in ('val', 'valannot'):
        (dest / sub).mkdir(parents=True)
    for p in sorted((camvid_dir / 'val').glob('*.png'))[:n]:
        shutil.copy(p, dest / 'val' / p.name)
        shutil.copy(camvid_dir / 'valannot' / p.name, dest / 'valannot' / p.name)
    return dest


@pytest.fixture(scope='module')
def kitti_run(kitti_dir: pathlib.Path, small_model_path: pathlib.Path,
              tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, int, str]:
    out = tmp_path_factory.mktemp('kitti_eval')
    rc, stdout = run_main(['--model', small_model_path, '--dataset', 'kitti', '--data-dir',
                           kitti_dir, '--split', KITTI_SUBSET, '--out', out,
                           '--save-probabilities', '--overlays', '2', '--bev', '--calib',
                           kitti_dir / 'training' / 'calib' / 'um_000000.txt'])
    return out, rc, stdout


def test_kitti_outputs(kitti_run: tuple[pathlib.Path, int, str], kitti_dir: pathlib.Path,
                       ) -> None:
    out, rc, stdout = kitti_run
    assert rc == 0
    doc = json.loads((out / 'metrics.json').read_text())
    check_metrics(doc, len(KITTI_SUBSET_NAMES))
    assert doc['threshold_fixed'] == 0.5 and doc['frames'] == len(KITTI_SUBSET_NAMES)
    assert doc['run']['dataset'] == 'kitti' and doc['run']['input_mode'] == 'pad'
    assert '| MaxF |' in stdout and f'{doc["MaxF"]:.4f}' in stdout
    image = read_rgb(kitti_dir / 'training' / 'image_2' / 'um_000000.png')
    prob = read_gray(out / 'prob' / 'um_000000.png')
    assert prob.shape == image.shape[:2] and prob.dtype == np.uint8
    assert len(np.unique(prob)) > 1
    overlay = read_rgb(out / 'overlays' / 'um_000000.png')
    assert overlay.shape == image.shape
    assert cv2.imread(str(out / 'pr_curve.png')) is not None
    summary = (out / 'summary.md').read_text()
    assert 'MaxF' in summary and 'pr_curve.png' in summary and 'overlays/um_000000.png' in summary
    rows = list(csv.DictReader((out / 'frames.csv').open()))
    assert [r['name'] for r in rows] == KITTI_SUBSET_NAMES
    assert 0.0 <= float(rows[0]['iou']) <= 1.0 and float(rows[0]['inference_ms']) > 0


def test_rescoring_probability_pngs_reproduces_metrics(
        kitti_run: tuple[pathlib.Path, int, str], kitti_dir: pathlib.Path) -> None:
    out, rc, _ = kitti_run
    assert rc == 0
    doc = json.loads((out / 'metrics.json').read_text())
    evaluator = RoadEvaluator()
    for sample in open_dataset('kitti', kitti_dir, str(KITTI_SUBSET)):
        evaluator.update(read_gray(out / 'prob' / f'{sample.name}.png'), sample.target)
    again = json.loads(json.dumps(evaluator.result(threshold=doc['threshold_fixed'])))
    for key, value in again.items():
        assert doc[key] == value, key


def test_bev_metrics_equal_the_metric_code_on_the_bev_maps(
        kitti_run: tuple[pathlib.Path, int, str], kitti_dir: pathlib.Path) -> None:
    out, rc, stdout = kitti_run
    assert rc == 0 and "bird's-eye view:" in stdout
    doc = json.loads((out / 'metrics.json').read_text())
    bev = doc['bev']
    assert bev['n_images'] == len(KITTI_SUBSET_NAMES) and 'um_000000.txt' in bev['calibration']
    assert bev['grid']['shape'] == [800, 400]
    calib = read_kitti_calib(kitti_dir / 'training' / 'calib' / 'um_000000.txt')
    evaluator = RoadEvaluator()
    for sample in open_dataset('kitti', kitti_dir, str(KITTI_SUBSET)):
        prob_bev = read_gray(out / 'prob_bev' / f'{sample.name}.png')
        # the BEV probability is the devkit's lookup of the perspective probability PNG
        assert np.array_equal(prob_bev, devkit_bev(read_gray(out / 'prob' / f'{sample.name}.png'),
                                                   calib))
        assert read_rgb(out / 'bev' / f'{sample.name}.png').shape == (800, 400, 3)
        evaluator.update(prob_bev, target_bev(sample.target, calib, BevSpec()))
    again = json.loads(json.dumps(evaluator.result(threshold=doc['threshold_fixed'])))
    for key in REQUIRED_KEYS:
        assert bev[key] == again[key], key
    assert 'bev_sheet.png' in (out / 'summary.md').read_text()


def test_bev_without_calibration_fails_before_loading(
        kitti_dir: pathlib.Path, small_model_path: pathlib.Path, tmp_path: pathlib.Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    rc, _ = run_main(['--model', small_model_path, '--dataset', 'kitti', '--data-dir',
                      kitti_dir, '--split', KITTI_SUBSET, '--out', tmp_path / 'o', '--bev'])
    lines = error_lines(capsys.readouterr().err)
    assert rc == 1 and len(lines) == 1
    assert 'no calibration' in lines[0] and 'umm_000000.txt' in lines[0] and '--calib' in lines[0]
    assert not (tmp_path / 'o' / 'metrics.json').exists()


def test_crf_refines_the_probabilities(kitti_run: tuple[pathlib.Path, int, str],
                                       kitti_dir: pathlib.Path, small_model_path: pathlib.Path,
                                       tmp_path: pathlib.Path) -> None:
    plain = read_gray(kitti_run[0] / 'prob' / 'um_000000.png')
    out = tmp_path / 'out'
    rc, _ = run_main(['--model', small_model_path, '--dataset', 'kitti', '--data-dir',
                      kitti_dir, '--split', KITTI_SUBSET, '--out', out, '--crf-scale', '0.25',
                      '--save-probabilities', '--overlays', '0'])
    assert rc == 0
    doc = json.loads((out / 'metrics.json').read_text())
    check_metrics(doc, len(KITTI_SUBSET_NAMES))
    assert doc['run']['crf'] is True and doc['run']['crf_scale'] == 0.25
    refined = read_gray(out / 'prob' / 'um_000000.png')
    assert refined.shape == plain.shape and not np.array_equal(refined, plain)


def test_console_script_kitti_resize(kitti_dir: pathlib.Path, small_model_path: pathlib.Path,
                                     tmp_path: pathlib.Path) -> None:
    script = pathlib.Path(sys.executable).parent / 'seg_evaluate'
    if not script.is_file():
        pytest.skip(f'console script not installed beside {sys.executable} (pip install -e .)')
    out = tmp_path / 'out'
    result = subprocess.run(
        [str(script), '--model', str(small_model_path), '--dataset', 'kitti', '--data-dir',
         str(kitti_dir), '--split', str(KITTI_SUBSET), '--out', str(out),
         '--input-mode', 'resize', '--input-size', '64', '96', '--threshold', '0.4',
         '--overlays', '0'],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    doc = json.loads((out / 'metrics.json').read_text())
    check_metrics(doc, len(KITTI_SUBSET_NAMES))
    assert doc['threshold_fixed'] == 0.4
    assert doc['run']['input_mode'] == 'resize' and doc['run']['input_size'] == [64, 96]
    assert not (out / 'prob').exists() and not (out / 'overlays').exists()
    assert '| MaxF |' in result.stdout


def test_camvid_val_frames(camvid_dir: pathlib.Path, small_model_path: pathlib.Path,
                           tmp_path: pathlib.Path) -> None:
    out = tmp_path / 'out'
    rc, _ = run_main(['--model', small_model_path, '--dataset', 'camvid', '--data-dir',
                      camvid_dir, '--split', 'val', '--limit', '3', '--out', out,
                      '--save-probabilities', '--batch-size', '2'])
    assert rc == 0
    doc = json.loads((out / 'metrics.json').read_text())
    check_metrics(doc, 3)
    names = [p.stem for p in sorted((camvid_dir / 'val').glob('*.png'))[:3]]
    assert sorted(p.stem for p in (out / 'prob').glob('*.png')) == names
    evaluator = RoadEvaluator()
    dataset = open_dataset('camvid', camvid_dir, 'val')
    for i in range(3):
        sample = dataset[i]
        prob = read_gray(out / 'prob' / f'{sample.name}.png')
        assert prob.shape == sample.image.shape[:2]
        evaluator.update(prob, sample.target)
    assert evaluator.result()['MaxF'] == doc['MaxF']
    assert len(list((out / 'overlays').glob('*.png'))) == 3


def test_kitti_testing_is_prediction_only(kitti_dir: pathlib.Path, small_model_path: pathlib.Path,
                                          tmp_path: pathlib.Path) -> None:
    if not (kitti_dir / 'testing' / 'image_2').is_dir():
        pytest.skip('no KITTI testing frames in the shared data')
    out = tmp_path / 'out'
    rc, stdout = run_main(['--model', small_model_path, '--dataset', 'kitti', '--data-dir',
                           kitti_dir, '--split', 'testing', '--limit', '2', '--out', out,
                           '--save-probabilities', '--overlays', '1'])
    assert rc == 0
    doc = json.loads((out / 'metrics.json').read_text())
    assert doc['ground_truth'] is False and doc['n_images'] == 0 and doc['frames'] == 2
    assert 'MaxF' not in doc and 'no metrics' in stdout
    assert len(list((out / 'prob').glob('*.png'))) == 2
    assert len(list((out / 'overlays').glob('*.png'))) == 1


# -- bad inputs: exit 1 with one readable line ------------------------------------------
def test_missing_model(kitti_dir: pathlib.Path, tmp_path: pathlib.Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    rc, _ = run_main(['--model', tmp_path / 'nope.segmodel', '--dataset', 'kitti',
                      '--data-dir', kitti_dir, '--split', KITTI_SUBSET, '--out', tmp_path / 'o'])
    lines = error_lines(capsys.readouterr().err)
    assert rc == 1 and len(lines) == 1
    assert 'nope.segmodel' in lines[0] and 'not found' in lines[0]


def test_corrupt_model(kitti_dir: pathlib.Path, small_model_path: pathlib.Path,
                       tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / 'cut.segmodel'
    bad.write_bytes(small_model_path.read_bytes()[:5000])  # a download cut short
    rc, _ = run_main(['--model', bad, '--dataset', 'kitti', '--data-dir', kitti_dir,
                      '--split', KITTI_SUBSET, '--out', tmp_path / 'o'])
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert rc == 1 and len(lines) == 1 and 'Traceback' not in err
    assert 'cut.segmodel' in lines[0] and 'corrupt' in lines[0]


def test_missing_data_dir(small_model_path: pathlib.Path, tmp_path: pathlib.Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    rc, _ = run_main(['--model', small_model_path, '--dataset', 'camvid', '--data-dir',
                      tmp_path / 'no_such_dir', '--split', 'val', '--out', tmp_path / 'o'])
    lines = error_lines(capsys.readouterr().err)
    assert rc == 1 and len(lines) == 1 and 'no_such_dir' in lines[0]
    assert not (tmp_path / 'o').exists()


def test_bad_flag_value(kitti_dir: pathlib.Path, small_model_path: pathlib.Path,
                        tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _ = run_main(['--model', small_model_path, '--dataset', 'kitti', '--data-dir',
                      kitti_dir, '--split', KITTI_SUBSET, '--out', tmp_path / 'o',
                      '--input-size', '50', '60'])
    lines = error_lines(capsys.readouterr().err)
    assert rc == 1 and len(lines) == 1 and 'multiples of 32' in lines[0]


def test_mismatched_ground_truth_keeps_partial_results(
        camvid_dir: pathlib.Path, small_model_path: pathlib.Path, tmp_path: pathlib.Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    data = camvid_subset(camvid_dir, tmp_path / 'camvid', 2)
    second = sorted((data / 'valannot').glob('*.png'))[1]
    labels = read_gray(second)
    cv2.imwrite(str(second), cv2.resize(labels, (labels.shape[1] // 2, labels.shape[0] // 2),
                                        interpolation=cv2.INTER_NEAREST))
    out = tmp_path / 'out'
    rc, _ = run_main(['--model', small_model_path, '--dataset', 'camvid', '--data-dir', data,
                      '--split', 'val', '--out', out, '--batch-size', '1'])
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert rc == 1 and len(lines) == 1 and 'Traceback' not in err
    assert second.name in lines[0] and 'does not match' in lines[0]
    doc = json.loads((out / 'metrics.json').read_text())
    assert doc['partial'] is True and doc['frames'] == 1 and doc['n_images'] == 1
    assert 'does not match' in doc['error']
