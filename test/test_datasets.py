"""Dataset loaders: real files in ../shared/data, synthetic layouts and clear errors."""
from __future__ import annotations

import pathlib
import shutil

import cv2
import numpy as np
import pytest
from data_factory import make_camvid, make_kitti

from seg_perception.datasets import DatasetError, open_dataset
from seg_perception.datasets.kitti import split_names
from seg_perception.image_io import IGNORE, ImageReadError


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


def test_real_kitti_training_frame(kitti_dir: pathlib.Path) -> None:
    ds = open_dataset('kitti', kitti_dir, 'training')
    assert [it.name for it in ds.items] == ['um_000000']
    s = ds[0]
    gt = cv2.imread(str(ds.items[0].gt))  # BGR
    assert s.image.shape == (375, 1242, 3)
    assert np.array_equal(s.target == 1, (gt[:, :, 0] > 0) & (gt[:, :, 2] > 0))
    assert np.array_equal(s.target == IGNORE, gt[:, :, 2] == 0)
    testing = open_dataset('kitti', kitti_dir, 'testing')
    assert len(testing) == 30 and not testing.has_ground_truth
    assert testing[0].target is None


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
        open_dataset('cityscapes', root, 'train')
    shutil.rmtree(root / 'valannot')
    with pytest.raises(DatasetError, match='label folder not found'):
        open_dataset('camvid', root, 'val')
