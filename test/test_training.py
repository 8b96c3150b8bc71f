"""seg_train end to end on tiny synthetic KITTI/CamVid layouts: loss, outputs, resume, errors."""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from data_factory import make_camvid, make_kitti

from seg_perception.cli import train as train_cli
from seg_perception.core.image_io import IGNORE
from seg_perception.datasets import open_dataset
from seg_perception.model.model_file import ModelCard, load_model, read_card
from seg_perception.training.config import GROUPS, DataSource, TrainConfig, from_flags
from seg_perception.training.input_pipeline import FrameStore, TrainSequence, augment, photometric
from seg_perception.training.lineage import stage_record

FAST = ['--input-size', '64', '96', '--batch-size', '2', '--steps-per-epoch', '4',
        '--lr', '3e-3', '--precision', 'float32', '--dropout', '0.0', '--jitter', '0.1']


def _epochs(run: pathlib.Path) -> list[dict[str, str]]:
    with open(run / 'log.csv') as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize('dataset', ['kitti', 'camvid'])
def test_two_epochs_lower_loss_and_write_everything(tmp_path: pathlib.Path, dataset: str) -> None:
    data = (make_kitti(tmp_path / 'data', per_category=4) if dataset == 'kitti'
            else make_camvid(tmp_path / 'data'))
    run = tmp_path / 'run'
    rc = train_cli.main(['--dataset', dataset, '--data-dir', str(data), '--out', str(run),
                         '--epochs', '2', *FAST])
    assert rc == 0
    rows = _epochs(run)
    assert [int(r['epoch']) for r in rows] == [0, 1]
    assert float(rows[1]['loss']) < float(rows[0]['loss'])
    assert 0.0 <= float(rows[1]['val_MaxF']) <= 1.0
    for rel in ('config.yaml', 'checkpoints/last.segmodel', 'checkpoints/best.segmodel',
                'backup/training_metadata.json', 'model.segmodel'):
        assert (run / rel).is_file(), rel
    card = read_card(run / 'model.segmodel')
    assert [s['dataset'] for s in card.training['sources']] == [dataset]
    frames = card.training['sources'][0]['frames']
    assert frames['train'] == len(open_dataset(dataset, data, 'train')) and frames['val'] >= 1
    assert card.training['init'] == 'hed' and card.training['freeze_blocks'] == 2
    assert card.input_size == [64, 96] and card.input_mode == 'fit'
    assert set(card.metrics) >= {'MaxF', 'AvgPrec', 'IoU', 'threshold', 'per_source'}
    assert set(card.metrics['per_source']) == {dataset}
    assert card.threshold == card.metrics['threshold']
    assert 'seg_train' in card.training['command']
    [stage] = card.training['stages']
    assert stage == {'stage': 1, 'command': card.training['command'], 'init': 'hed',
                     'steps': 8, 'selected_epoch': card.training['epoch']}
    model, _ = load_model(run / 'model.segmodel')
    out = model(np.zeros((1, 64, 96, 3), np.uint8))
    assert tuple(out.shape) == (1, 64, 96, 2)


def test_augment_keeps_image_and_labels_aligned() -> None:
    rng = np.random.default_rng(0)
    image = np.zeros((60, 80, 3), np.uint8)
    target = np.zeros((60, 80), np.uint8)
    image[30:, :, :] = 200
    target[30:, :] = 1
    for _ in range(20):
        img, tgt = augment(image, target, (64, 96), rng, (0.7, 1.4), True, 0.0)
        assert img.shape == (64, 96, 3) and tgt.shape == (64, 96)
        bright = img[:, :, 0] > 100
        agree = ((tgt == 1) == bright)[tgt != IGNORE]
        assert agree.mean() > 0.97
        assert (img[tgt == IGNORE] == 0).all()


def test_pydataset_batches_are_deterministic(tmp_path: pathlib.Path) -> None:
    data = make_camvid(tmp_path / 'data', n_train=5, n_val=1)
    store = FrameStore(open_dataset('camvid', data, 'train'), cache=True)
    seq = TrainSequence(store, (64, 96), 2, (0.9, 1.1), True, 0.1, None, seed=3)
    x1, y1, w1 = seq[1]
    x2, y2, w2 = TrainSequence(store, (64, 96), 2, (0.9, 1.1), True, 0.1, None, seed=3)[1]
    assert x1.shape == (2, 64, 96, 3) and y1.dtype == np.uint8 and w1.dtype == np.float32
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2) and np.array_equal(w1, w2)
    assert set(np.unique(w1)) <= {0.0, 1.0} and y1.max() <= 1


def _wait_for(predicate, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f'seg_train exited early: {proc.stderr.read()}')
        if time.monotonic() > deadline:
            raise AssertionError('timed out waiting for the training run')
        time.sleep(0.2)


def test_resume_after_kill_mid_epoch(tmp_path: pathlib.Path) -> None:
    data = make_camvid(tmp_path / 'data', n_train=4, n_val=2)
    run = tmp_path / 'run'
    args = [sys.executable, '-m', 'seg_perception.cli.train', '--dataset', 'camvid',
            '--data-dir', str(data), '--out', str(run), '--epochs', '3', *FAST,
            '--steps-per-epoch', '12']
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        meta = run / 'backup' / 'training_metadata.json'
        _wait_for(meta.is_file, 600, proc)            # epoch 1 finished and backed up
        time.sleep(1.0)                                # let epoch 2 get under way
        assert proc.poll() is None, 'run finished before it could be killed mid-epoch'
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    saved_epoch = json.loads(meta.read_text())['epoch']
    assert saved_epoch in (0, 1)
    assert not (run / 'model.segmodel').exists()
    done = subprocess.run(args + ['--resume'], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert f'from epoch {saved_epoch + 2}' in done.stderr
    epochs = [int(r['epoch']) for r in _epochs(run)]
    assert epochs[-1] == 2 and sorted(set(epochs)) == [0, 1, 2]
    assert (run / 'model.segmodel').is_file()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'seg_perception.cli.train', *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'})


def test_clear_errors(tmp_path: pathlib.Path) -> None:
    r = _cli('--dataset', 'camvid', '--data-dir', str(tmp_path / 'missing'),
             '--out', str(tmp_path / 'r'))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith('seg_train: error: ')
    assert 'folder not found' in r.stderr
    run = tmp_path / 'r2'
    r = _cli('--dataset', 'camvid', '--data-dir', str(tmp_path), '--out', str(run), '--resume')
    assert r.returncode == 1 and 'nothing to resume' in r.stderr
    (run / 'backup').mkdir(parents=True)
    r = _cli('--dataset', 'camvid', '--data-dir', str(tmp_path), '--out', str(run))
    assert r.returncode == 1 and 'pass --resume' in r.stderr
    bad = tmp_path / 'bad.yaml'
    bad.write_text('epochz: 3\n')
    r = _cli('--config', str(bad), '--data-dir', str(tmp_path))
    assert r.returncode == 1 and 'unknown config keys: epochz' in r.stderr
    r = _cli('--dataset', 'camvid', '--data-dir', str(tmp_path), '--input-size', '100', '96')
    assert r.returncode == 1 and 'multiples of 32' in r.stderr


def test_yaml_then_flags_override(tmp_path: pathlib.Path) -> None:
    cfg = tmp_path / 'c.yaml'
    cfg.write_text('optim: {epochs: 7, batch_size: 3}\ndata:\n  input_size: [96, 128]\n'
                   '  sources: [{dataset: camvid, data_dir: /x, weight: 2}]\n')
    c = TrainConfig.from_yaml(cfg).updated({'optim': {'epochs': 9}})
    assert (c.optim.epochs, c.optim.batch_size, c.data.input_size) == (9, 3, (96, 128))
    assert c.data.sources == [DataSource('camvid', '/x', 2.0)]
    args = vars(train_cli.build_parser().parse_args(
        ['--epochs', '11', '--source', 'kitti:/k:0.5', '--no-flip', '--input-size', '64', '64']))
    c2 = from_flags(args, c)
    assert (c2.optim.epochs, c2.optim.batch_size, c2.data.flip) == (11, 3, False)
    assert c2.data.sources == [DataSource('kitti', '/k', 0.5)] and c2.data.input_size == (64, 64)
    assert TrainConfig.from_dict(c2.to_dict()) == c2


def test_every_config_field_has_a_flag() -> None:
    parser = train_cli.build_parser()
    dests = {a.dest for a in parser._actions}
    for group, cls in GROUPS.items():
        for f in dataclasses.fields(cls):
            assert f'{group}.{f.name}' in dests, f'{group}.{f.name} has no seg_train flag'
    flags = {o for a in parser._actions for o in a.option_strings}
    assert {'--lr', '--source', '--init', '--freeze-blocks', '--no-batch-norm',
            '--input-mode', '--epochs'} <= flags


def test_source_flag_and_validation() -> None:
    assert DataSource.parse('cityscapes:/d:0.3') == DataSource('cityscapes', '/d', 0.3)
    assert DataSource.parse('camvid:/data/camvid') == DataSource('camvid', '/data/camvid')
    with pytest.raises(ValueError, match='DATASET:DIR'):
        DataSource.parse('idd:/x')
    with pytest.raises(ValueError, match='no training data'):
        TrainConfig().validate()
    c = TrainConfig().updated({'data': {'sources': [{'dataset': 'kitti', 'data_dir': '/k'}]},
                               'model': {'batch_norm': True}})
    with pytest.raises(ValueError, match='plain VGG16'):
        c.validate()
    with pytest.raises(ValueError, match='unknown config keys: model.depth'):
        TrainConfig().updated({'model': {'depth': 3}})


def test_mixed_sampling_follows_source_weights(tmp_path: pathlib.Path) -> None:
    kitti = open_dataset('kitti', make_kitti(tmp_path / 'k', per_category=4), 'training')
    camvid = open_dataset('camvid', make_camvid(tmp_path / 'c', n_train=3, n_val=1), 'train')
    store = FrameStore([kitti, camvid], cache=False, weights=[0.75, 0.25])
    assert len(store) == 15
    seq = TrainSequence(store, (64, 96), 4, (1.0, 1.0), False, 0.0, None, seed=0, steps=500)
    from_kitti = np.mean(seq._order < len(kitti))
    assert abs(from_kitti - 0.75) < 0.03
    img, tgt = store.get(len(kitti))             # first CamVid frame comes after KITTI's
    assert img.shape == camvid[0].image.shape and np.array_equal(tgt, camvid[0].target)


def test_photometric_augmentation_is_deterministic() -> None:
    image = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    a = photometric(image, np.random.default_rng(5), 0.25)
    b = photometric(image, np.random.default_rng(5), 0.25)
    assert a.shape == image.shape and a.dtype == np.uint8 and np.array_equal(a, b)
    outs = [photometric(image, np.random.default_rng(i), 0.25) for i in range(6)]
    assert sum(not np.array_equal(o, image) for o in outs) >= 4


def test_fine_tuning_carries_the_stages_forward() -> None:
    config = TrainConfig()
    config.model.init = 'runs/a/model.segmodel'
    config.optim.epochs, config.optim.steps_per_epoch = 3, 10
    # a model from before stages were recorded: its own record becomes stage 1
    old = ModelCard(training={'command': 'seg_train --out runs/a', 'init': 'hed', 'epoch': 7})
    record = stage_record(config, old, 'seg_train --out runs/b', 2)
    assert record['stages'] == [
        {'stage': 1, 'command': 'seg_train --out runs/a', 'init': 'hed', 'selected_epoch': 7},
        {'stage': 2, 'command': 'seg_train --out runs/b', 'init': 'stage 1', 'steps': 30,
         'selected_epoch': 2}]
    assert record['init'] == 'the stage-1 model (seg_train --out runs/a): runs/a/model.segmodel'
    third = stage_record(config, ModelCard(training=record), 'seg_train --out runs/c', None)
    assert [s['stage'] for s in third['stages']] == [1, 2, 3]
    assert third['stages'][2]['init'] == 'stage 2' and 'selected_epoch' not in third['stages'][2]
    config.model.init = 'hed'
    assert stage_record(config, None, 'seg_train', 1) == {'stages': [
        {'stage': 1, 'command': 'seg_train', 'init': 'hed', 'steps': 30, 'selected_epoch': 1}]}
