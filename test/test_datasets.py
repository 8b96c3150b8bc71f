"""Dataset loaders: real files in ../shared/data, synthetic layouts and clear errors."""
from __future__ import annotations

import pathlib
import shutil

import cv2
import numpy as np
import pytest
from conftest import KITTI_SUBSET, KITTI_SUBSET_NAMES
from data_factory import make_camvid, make_kitti

from seg_perception.core.image_io import IGNORE, ImageReadError
from seg_perception.datasets import DatasetError, open_dataset
from seg_perception.datasets.cityscapes import label_to_target, split_pair
from seg_perception.datasets.kitti import split_names


def test_real_camvid_val(camvid_dir: pathlib.Path) -> None:
    ds = open_dataset('camvid', camvid_dir, 'val')
    assert len(ds) == 101
    s = ds[0]
    assert s.image.shape == (360, 480, 3) and s.image.dtype == np.uint8
    assert s.target.shape == (360, 480)
    assert set(np.unique(s.target)) <= {0, 1, IGNORE}
    raw = cv2.imread(str(ds.items[0].gt), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(s.target == 1, raw == 3)
    assert np.array_equal(s.target == IGNORE, raw == 11)


def test_real_kitti_frames_png_and_jpg(kitti_dir: pathlib.Path) -> None:
    ds = open_dataset('kitti', kitti_dir, str(KITTI_SUBSET))
    assert [it.name for it in ds.items] == KITTI_SUBSET_NAMES
    suffixes = {it.image.suffix for it in ds.items}
    assert suffixes == {'.png', '.jpg'}            # um_000000.png as distributed, others JPEG
    for item, s in zip(ds.items, ds):
        gt = cv2.imread(str(item.gt))  # BGR
        assert s.image.shape[2] == 3 and 370 <= s.image.shape[0] <= 376
        assert s.target.shape == s.image.shape[:2]
        assert np.array_equal(s.target == 1, (gt[:, :, 0] > 0) & (gt[:, :, 2] > 0))
        assert np.array_equal(s.target == IGNORE, gt[:, :, 2] == 0)
    training = open_dataset('kitti', kitti_dir, 'training')
    train, val = (open_dataset('kitti', kitti_dir, s) for s in ('train', 'val'))
    assert len(train) + len(val) == len(training) >= 200
    assert 35 <= len(val) <= 45                        # about 40, stratified
    for cat in ('um_', 'umm_', 'uu_'):
        assert 11 <= sum(it.name.startswith(cat) for it in val.items) <= 15
    testing = open_dataset('kitti', kitti_dir, 'testing')
    assert len(testing) == 30 and not testing.has_ground_truth
    assert testing[0].target is None


def test_real_cityscapes_pairs(cityscapes_dir: pathlib.Path) -> None:
    train = open_dataset('cityscapes', cityscapes_dir, 'train')
    val = open_dataset('cityscapes', cityscapes_dir, 'val')
    names = sorted(p.stem for p in (cityscapes_dir / 'train').glob('*.jpg'))
    assert [it.name for it in val.items] == names[::8]            # fixed: every 8th frame
    assert len(val) + len(train) == len(names)
    assert not {it.name for it in val.items} & {it.name for it in train.items}
    for s in (val[0], val[len(val) // 2]):
        assert s.image.shape == (256, 512, 3) and s.target.shape == (256, 512)
        fractions = np.bincount(s.target.ravel(), minlength=256)[[0, 1, IGNORE]] / s.target.size
        assert fractions[1] > 0.1 and fractions[0] > 0.2      # road and not-road present
        assert 0.01 < fractions[2] < 0.35                      # void and boundary band
        assert (s.target[-3:] == IGNORE).mean() > 0.5          # ego vehicle: void
        assert (s.target[-100:-60, 192:320] == 1).mean() > 0.5  # road ahead of the car


def test_cityscapes_colours_band_and_geometry(tmp_path: pathlib.Path) -> None:
    label = np.zeros((256, 256, 3), np.uint8)
    label[:, :] = (70, 70, 70)                      # building
    label[128:, :] = (128, 64, 128)                 # road, lower half
    label[250:, :] = (0, 0, 0)                      # void (ego vehicle)
    label[60:70, 60:70] = (250, 250, 250)           # no Cityscapes colour near it
    noisy = np.clip(label.astype(int) + np.random.default_rng(0).integers(-12, 13, label.shape),
                    0, 255).astype(np.uint8)       # JPEG-like colour noise
    t = label_to_target(noisy, tolerance=60, band=2)
    assert (t[:120] == 0)[~((np.arange(120)[:, None] >= 60) & (np.arange(120)[:, None] < 70)
                            & (np.arange(256) >= 60) & (np.arange(256) < 70))].all()
    assert (t[60:70, 60:70] == IGNORE).all()
    assert (t[126:130] == IGNORE).all() and (t[130:248] == 1).all()   # band: 2 px each side
    assert (t[250:] == IGNORE).all()
    frame = np.full((256, 256, 3), 90, np.uint8)
    root = tmp_path / 'cs' / 'train'
    root.mkdir(parents=True)
    for i in range(16):
        cv2.imwrite(str(root / f'{i + 1}.png'),
                    cv2.cvtColor(np.concatenate([frame, label], axis=1), cv2.COLOR_RGB2BGR))
    ds = open_dataset('cityscapes', tmp_path / 'cs', 'val')
    assert len(ds) == 2 and len(open_dataset('cityscapes', tmp_path / 'cs', 'train')) == 14
    s = ds[0]
    assert s.image.shape == (256, 512, 3) and s.target.shape == (256, 512)
    assert (s.target[140:240] == 1).all() and (s.target[:120, :100] == 0).all()
    with pytest.raises(DatasetError, match='twice as wide'):
        split_pair(np.zeros((256, 256, 3), np.uint8))
    with pytest.raises(DatasetError, match='unknown Cityscapes split'):
        open_dataset('cityscapes', tmp_path / 'cs', 'nope')


def test_kitti_split_is_stratified_deterministic_and_seedable() -> None:
    names = ([f'um_{i:06d}' for i in range(95)] + [f'umm_{i:06d}' for i in range(96)]
             + [f'uu_{i:06d}' for i in range(98)])
    train, val = split_names(names, seed=0)
    assert (len(train), len(val)) == (241, 48)        # KittiSeg's split sizes
    assert not set(train) & set(val)
    for cat in ('um_', 'umm_', 'uu_'):
        assert 14 <= sum(v.startswith(cat) for v in val) <= 18
    assert split_names(names, seed=0) == (train, val)
    assert split_names(names, seed=1)[1] != val


def test_synthetic_kitti_splits_and_list_file(tmp_path: pathlib.Path) -> None:
    root = make_kitti(tmp_path / 'data_road', per_category=6)
    train = open_dataset('kitti', root, 'train')
    val = open_dataset('kitti', root, 'val')
    assert len(train) + len(val) == 18 and len(val) == 3
    listed = tmp_path / 'list.txt'
    listed.write_text('um_000001\nuu_000002\n')
    ds = open_dataset('kitti', root, str(listed))
    assert [it.name for it in ds.items] == ['um_000001', 'uu_000002']
    assert ds[0].target is not None and (ds[0].target == IGNORE).any()


def test_camvid_any_split_name(tmp_path: pathlib.Path) -> None:
    root = make_camvid(tmp_path / 'camvid')
    shutil.copytree(root / 'val', root / 'test')
    shutil.copytree(root / 'valannot', root / 'testannot')
    assert len(open_dataset('camvid', root, 'test')) == 3


@pytest.mark.parametrize('breakage, message', [
    ('no_gt_file', 'ground truth for'),
    ('gt_size', 'does not match'),
    ('empty', 'no images found'),
    ('missing_dir', 'folder not found'),
])
def test_kitti_clear_errors(tmp_path: pathlib.Path, breakage: str, message: str) -> None:
    root = make_kitti(tmp_path / 'data_road', per_category=2)
    gt_dir = root / 'training' / 'gt_image_2'
    if breakage == 'no_gt_file':
        (gt_dir / 'um_road_000001.png').unlink()
    elif breakage == 'gt_size':
        cv2.imwrite(str(gt_dir / 'um_road_000000.png'), np.zeros((10, 10, 3), np.uint8))
    elif breakage == 'empty':
        shutil.rmtree(root / 'training' / 'image_2')
        (root / 'training' / 'image_2').mkdir()
    elif breakage == 'missing_dir':
        root = tmp_path / 'nowhere'
    with pytest.raises(DatasetError, match=message):
        ds = open_dataset('kitti', root, 'training')
        for _ in ds:
            pass


def test_unreadable_image_and_unknown_dataset(tmp_path: pathlib.Path) -> None:
    root = make_camvid(tmp_path / 'camvid', n_train=2, n_val=1)
    (root / 'train' / '0001TP_000000.png').write_bytes(b'not a png')
    ds = open_dataset('camvid', root, 'train')
    with pytest.raises(ImageReadError, match='not a readable image'):
        ds[0]
    with pytest.raises(DatasetError, match='unknown dataset'):
        open_dataset('idd', root, 'train')
    shutil.rmtree(root / 'valannot')
    with pytest.raises(DatasetError, match='label folder not found'):
        open_dataset('camvid', root, 'val')
