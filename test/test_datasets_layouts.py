"""Your own labels: the folder, cityscapes_fine and bdd100k layouts on real frames re-laid in
temporary folders, their reports, errors, and their use by seg_train and seg_bag make."""
from __future__ import annotations

import logging
import pathlib
import shutil

import cv2
import numpy as np
import pytest

from seg_perception.bag.bagfile import BagReader
from seg_perception.bag.make import make_bag
from seg_perception.cli import bag as cli
from seg_perception.cli import train as train_cli
from seg_perception.core.image_io import IGNORE, read_gray, read_rgb
from seg_perception.core.image_msgs import decode_mono8
from seg_perception.datasets import DatasetError, dataset_option, open_dataset
from seg_perception.datasets.cityscapes import split_pair
from seg_perception.training.config import DataSource, TrainConfig

N_FRAMES = 4
CAMVID_CLASSES = 12
# SegNet CamVid colours: sky, building, pole, road, pavement, tree, sign, fence, car,
# pedestrian, bicyclist, unlabelled
CAMVID_PALETTE = [(128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
                  (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
                  (0, 128, 192), (0, 0, 0)]
EXTRA = (255, 255, 255)   # in no mapping: far from every CamVid colour
# Cityscapes labels.py: (labelId, colour); ids 0-4 share black, 17/18 share grey (first wins)
CITYSCAPES_IDS = [
    (0, (0, 0, 0)), (5, (111, 74, 0)), (6, (81, 0, 81)), (7, (128, 64, 128)),
    (8, (244, 35, 232)), (9, (250, 170, 160)), (10, (230, 150, 140)), (11, (70, 70, 70)),
    (12, (102, 102, 156)), (13, (190, 153, 153)), (14, (180, 165, 180)), (15, (150, 100, 100)),
    (16, (150, 120, 90)), (17, (153, 153, 153)), (19, (250, 170, 30)), (20, (220, 220, 0)),
    (21, (107, 142, 35)), (22, (152, 251, 152)), (23, (70, 130, 180)), (24, (220, 20, 60)),
    (25, (255, 0, 0)), (26, (0, 0, 142)), (27, (0, 0, 70)), (28, (0, 60, 100)),
    (29, (0, 0, 90)), (30, (0, 0, 110)), (31, (0, 80, 100)), (32, (0, 0, 230)),
    (33, (119, 11, 32))]
CITYSCAPES_IGNORE = (0, 1, 2, 3, 4, 5, 6, 9, 10)


def _write(path: pathlib.Path, image: np.ndarray, *params: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image[:, :, ::-1] if image.ndim == 3 else image, list(params))


@pytest.fixture(scope='module')
def camvid_val(camvid_dir: pathlib.Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``{name: (image, CamVid labels, CamVid loader target)}`` of N_FRAMES real val frames
    from different sequences."""
    ds = open_dataset('camvid', camvid_dir, 'val')
    picked = {}
    for i in np.linspace(0, len(ds) - 1, N_FRAMES).astype(int):
        s = ds[int(i)]
        picked[s.name] = (s.image, read_gray(ds.items[int(i)].gt), s.target)
    return picked


def _folder(root: pathlib.Path, camvid_val: dict, classes_yaml: str | None,
            masks: dict[str, np.ndarray] | None = None, suffix: str = '.png',
            *params: int) -> pathlib.Path:
    """images/ + masks/ (CamVid labels, or ``masks``) + classes.yaml under ``root``."""
    for name, (image, labels, _) in camvid_val.items():
        _write(root / 'images' / f'{name}.png', image)
        _write(root / 'masks' / f'{name}{suffix}', labels if masks is None else masks[name],
               *params)
    if classes_yaml is not None:
        (root / 'classes.yaml').write_text(classes_yaml)
    return root


def test_camvid_as_folder_dataset_equals_camvid_loader(camvid_val: dict,
                                                       tmp_path: pathlib.Path) -> None:
    root = _folder(tmp_path / 'mine', camvid_val, 'road: [3]\nignore: [11]\nnot_road: rest\n')
    ds = open_dataset('folder', root, 'all')
    assert [it.name for it in ds.items] == sorted(camvid_val)
    for s in ds:
        image, _, target = camvid_val[s.name]
        assert np.array_equal(s.image, image) and np.array_equal(s.target, target)
    assert ds.report()['frames_read'] == N_FRAMES and ds.report()['unknown_pixels'] == 0
    val, train = (open_dataset('folder', root, split) for split in ('val', 'train'))
    assert [it.name for it in val.items] == sorted(camvid_val)[::8]    # every 8th by name
    assert len(train) == N_FRAMES - len(val)
    listed = tmp_path / 'mine' / 'two.txt'
    listed.write_text('\n'.join(f'{n}.png' for n in sorted(camvid_val)[:2]) + '\n')
    (root / 'classes.yaml').write_text('road: [3]\nignore: [11]\nsplits: {few: two.txt}\n')
    assert len(open_dataset('folder', root, 'few')) == 2
    with pytest.raises(DatasetError, match="unknown split 'train'"):
        open_dataset('folder', root, 'train')


def test_jpeg_colour_masks_nearest_colour_and_unknown_colours(
        camvid_val: dict, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    palette = np.array(CAMVID_PALETTE, np.uint8)
    masks = {n: palette[labels] for n, (_, labels, _) in camvid_val.items()}
    first = sorted(masks)[0]
    masks[first][40:60, 200:220] = EXTRA                          # 400 px of a stray colour
    others = [list(c) for i, c in enumerate(CAMVID_PALETTE) if i not in (3, 11)]
    yaml_text = (f'road: [[128, 64, 128]]\nnot_road: {others}\nignore: [[0, 0, 0]]\n'
                 'tolerance: 60\n')
    root = _folder(tmp_path / 'colour', camvid_val, yaml_text, masks, '.jpg',
                   cv2.IMWRITE_JPEG_QUALITY, 80)
    ds = open_dataset('folder', root, 'all')
    with caplog.at_level(logging.WARNING, logger='seg_perception.datasets'):
        samples = list(ds)
    patch = np.zeros((360, 480), bool)
    patch[36:64, 196:224] = True                                  # the patch and its blur
    for s in samples:
        reference = camvid_val[s.name][2]
        keep = ~patch if s.name == first else np.ones_like(patch)
        assert (s.target == reference)[keep].mean() > 0.98, s.name
    assert (samples[0].target[42:58, 202:218] == IGNORE).all()   # unknown: ignored
    report = ds.report()
    assert report['unknown_per_frame'][first] >= 16 * 16
    assert np.abs(np.subtract(report['unknown_values'][0]['value'], EXTRA)).max() <= 12
    assert any('unknown label values' in r.getMessage() and first in r.getMessage()
               for r in caplog.records)
    assert any(r.getMessage().startswith(f'folder {root}: ') and 'frame(s) read' in
               r.getMessage() for r in caplog.records)            # summary after the split


def _cityscapes_ids(label_rgb: np.ndarray) -> np.ndarray:
    """Nearest Cityscapes colour -> its labelId, (H, W) uint8."""
    colours = np.array([c for _, c in CITYSCAPES_IDS], np.float32)
    ids = np.array([i for i, _ in CITYSCAPES_IDS], np.uint8)
    d2 = ((label_rgb.reshape(-1, 1, 3).astype(np.float32) - colours[None]) ** 2).sum(axis=2)
    return ids[d2.argmin(axis=1)].reshape(label_rgb.shape[:2])


def test_cityscapes_official_layout(cityscapes_dir: pathlib.Path, tmp_path: pathlib.Path,
                                    ) -> None:
    root = tmp_path / 'cityscapes'
    ids_of = {}
    for k, pair in enumerate(sorted((cityscapes_dir / 'train').glob('*.jpg'))[:3]):
        frame, label = split_pair(read_rgb(pair))
        city = ('aachen', 'bochum')[k % 2]
        name = f'{city}_{k:06d}_000019'
        ids = _cityscapes_ids(label)
        if k == 0:
            ids[:4, :4] = 40                                      # no such labelId
        _write(root / 'leftImg8bit' / 'val' / city / f'{name}_leftImg8bit.png', frame)
        _write(root / 'gtFine' / 'val' / city / f'{name}_gtFine_labelIds.png', ids)
        ids_of[name] = ids
    _write(root / 'leftImg8bit' / 'test' / 'berlin' / 'berlin_000000_000019_leftImg8bit.png',
           frame)
    ds = open_dataset('cityscapes_fine', root, 'val')
    assert sorted(it.name for it in ds.items) == sorted(ids_of)
    for s in ds:
        ids = ids_of[s.name]
        assert np.array_equal(s.target == 1, ids == 7)
        assert np.array_equal(s.target == IGNORE, np.isin(ids, CITYSCAPES_IGNORE) | (ids == 40))
        assert ((s.target == 0) == ~np.isin(ids, (7, 40, *CITYSCAPES_IGNORE))).all()
        assert (s.target == 1).mean() > 0.1 and (s.target == 0).mean() > 0.1
    report = ds.report()
    assert report['unknown_values'] == [{'value': 40, 'pixels': 16}]
    assert report['frames_with_unknown'] == 1
    info = make_bag(root / 'leftImg8bit' / 'val' / 'aachen', tmp_path / 'bag',
                    root / 'gtFine' / 'val' / 'aachen', 'cityscapes')
    targets = {s.name: s.target for s in ds}
    aachen = sorted(n for n in ids_of if n.startswith('aachen'))
    assert [np.array_equal(gt, targets[n]) for gt, n in zip(_road_gt(info['path']), aachen)
            ] == [True] * len(aachen)
    assert info['labels']['unknown_values'] == [{'value': 40, 'pixels': 16}]
    test = open_dataset('cityscapes_fine', root, 'test')
    assert len(test) == 1 and not test.has_ground_truth and test[0].target is None
    with pytest.raises(DatasetError, match=r"no Cityscapes split 'train' \(found: test, val\)"):
        open_dataset('cityscapes_fine', root, 'train')
    next(root.glob('gtFine/val/bochum/*.png')).unlink()
    with pytest.raises(DatasetError, match='no labelIds for 1 of 3'):
        open_dataset('cityscapes_fine', root, 'val')


def _bdd(root: pathlib.Path, camvid_val: dict) -> dict[str, np.ndarray]:
    masks = {}
    for name, (image, _, _) in camvid_val.items():
        mask = np.full((360, 480), 2, np.uint8)
        mask[240:, 120:360] = 0                                   # direct
        mask[240:, :120] = 1                                      # alternative
        mask[10:20, 10:20] = 7                                    # stray value
        _write(root / 'images' / '100k' / 'val' / f'{name}.jpg', image)
        _write(root / 'labels' / 'drivable' / 'masks' / 'val' / f'{name}.png', mask)
        masks[name] = mask
    _write(root / 'images' / '100k' / 'test' / 'x.jpg', image)
    return masks


@pytest.mark.parametrize('alternative', ['road', 'ignore'])
def test_bdd100k_drivable_masks(camvid_val: dict, tmp_path: pathlib.Path,
                                alternative: str) -> None:
    masks = _bdd(tmp_path / 'bdd', camvid_val)
    kwargs = {} if alternative == 'road' else {'alternative': alternative}   # road: default
    ds = open_dataset('bdd100k', tmp_path / 'bdd', 'val', **kwargs)
    for s in ds:
        mask = masks[s.name]
        assert s.image.shape == (360, 480, 3)
        assert (s.target[mask == 0] == 1).all() and (s.target[mask == 2] == 0).all()
        assert (s.target[mask == 1] == (1 if alternative == 'road' else IGNORE)).all()
        assert (s.target[mask == 7] == IGNORE).all()
    report = ds.report()
    assert report['frames_with_unknown'] == N_FRAMES and report['unknown_pixels'] == 100 * N_FRAMES
    assert report['unknown_values'] == [{'value': 7, 'pixels': 100 * N_FRAMES}]
    assert not open_dataset('bdd100k', tmp_path / 'bdd', 'test').has_ground_truth
    with pytest.raises(DatasetError, match="alternative must be 'road' or 'ignore'"):
        open_dataset('bdd100k', tmp_path / 'bdd', 'val', alternative='maybe')


def test_folder_errors_and_reports(camvid_val: dict, tmp_path: pathlib.Path,
                                   caplog: pytest.LogCaptureFixture) -> None:
    root = _folder(tmp_path / 'mine', camvid_val, 'road: [3]\nignore: [11]\n')
    names = sorted(camvid_val)
    (root / 'masks' / f'{names[1]}.png').unlink()
    with pytest.raises(DatasetError, match=f'no mask for 1 of {N_FRAMES} image.*{names[1]}'):
        open_dataset('folder', root, 'all')
    _write(root / 'masks' / f'{names[1]}.png', np.zeros((10, 10), np.uint8))
    with pytest.raises(DatasetError, match=f'{names[1]}.png: ground truth.*does not match'):
        open_dataset('folder', root, 'all')[1]
    _write(root / 'masks' / f'{names[1]}.png', np.full((360, 480), 11, np.uint8))  # all ignore
    _write(root / 'masks' / 'orphan.png', np.zeros((360, 480), np.uint8))
    with caplog.at_level(logging.WARNING, logger='seg_perception.datasets'):
        ds = open_dataset('folder', root, 'all')
        list(ds)
    report = ds.report()
    assert report['empty_frames'] == [names[1]] and report['masks_without_image'] == 1
    messages = ' '.join(r.getMessage() for r in caplog.records)
    assert 'mask is all ignore' in messages and '1 mask(s) without an image' in messages
    with pytest.raises(DatasetError, match='colour mask, but the mapping lists class ids'):
        _write(root / 'masks' / f'{names[1]}.png', np.zeros((360, 480, 3), np.uint8) + [1, 2, 3])
        open_dataset('folder', root, 'all')[1]
    (root / 'classes.yaml').write_text('road: [3]\nsky: [0]\n')
    with pytest.raises(DatasetError, match='unknown key.*sky'):
        open_dataset('folder', root, 'all')
    (root / 'classes.yaml').write_text('road: [3]\nignore: [3]\n')
    with pytest.raises(DatasetError, match='listed as road and as ignore'):
        open_dataset('folder', root, 'all')
    (root / 'classes.yaml').unlink()
    with pytest.raises(DatasetError, match='class mapping not found'):
        open_dataset('folder', root, 'all')
    with pytest.raises(DatasetError, match="dataset 'folder' has no option colour"):
        open_dataset('folder', root, 'all', colour=True)


def test_seg_train_config_passes_options(camvid_val: dict, tmp_path: pathlib.Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    mine = _folder(tmp_path / 'mine', camvid_val, None)           # mapping kept elsewhere
    (tmp_path / 'my_classes.yaml').write_text('road: [3]\nignore: [11]\nnot_road: rest\n')
    _bdd(tmp_path / 'bdd', camvid_val)
    config_file = tmp_path / 'train.yaml'
    config_file.write_text(f'''
out: {tmp_path / 'run'}
data:
  sources:
    - {{dataset: folder, data_dir: {mine}, weight: 2,
        options: {{mapping: {tmp_path / 'my_classes.yaml'}}}}}
    - {{dataset: bdd100k, data_dir: {tmp_path / 'bdd'}, train_split: val, val_split: '',
        options: {{alternative: ignore}}}}
''')
    config = TrainConfig.from_yaml(config_file)
    config.validate()
    assert config.data.sources[1].options == {'alternative': 'ignore'}
    assert TrainConfig.from_dict(config.to_dict()) == config
    calls = []

    def recording(name: str, data_dir: str, split: str, **kwargs: object) -> object:
        calls.append((name, split, kwargs))
        return open_dataset(name, data_dir, split, **kwargs)

    monkeypatch.setattr(train_cli, 'open_dataset', recording)
    train_cli.check_start(config, resume=False)
    mapping = {'mapping': str(tmp_path / 'my_classes.yaml')}
    assert calls == [('folder', 'train', mapping), ('folder', 'val', mapping),
                     ('bdd100k', 'val', {'alternative': 'ignore'})]
    assert DataSource.parse(f'folder:{mine}:0.5') == DataSource('folder', str(mine), 0.5)
    assert DataSource.parse('cityscapes_fine:/d') == DataSource('cityscapes_fine', '/d')
    config.data.sources[1].options = {'alterative': 'ignore'}
    with pytest.raises(ValueError, match='unknown option.*alterative'):
        config.validate()
    assert dataset_option('tolerance=12') == ('tolerance', 12)
    assert dataset_option('mapping=my.yaml') == ('mapping', 'my.yaml')
    with pytest.raises(ValueError, match='KEY=VALUE'):
        dataset_option('alternative')


def _road_gt(bag: str | pathlib.Path) -> list[np.ndarray]:
    reader = BagReader(bag)
    out = [decode_mono8(reader.deserialize(raw, msgtype))
           for topic, msgtype, _, raw in reader.messages() if topic == '/camera/road_gt']
    reader.close()
    return out


def test_seg_bag_make_folder_and_bdd100k_labels(camvid_val: dict, tmp_path: pathlib.Path,
                                                ) -> None:
    root = _folder(tmp_path / 'mine', camvid_val, None)
    mapping = tmp_path / 'classes.yaml'
    mapping.write_text('road: [3]\nignore: [11]\n')
    bag = tmp_path / 'folder_bag'
    assert cli.main(['make', '--images', str(root / 'images'), '--labels', str(root / 'masks'),
                     '--label-format', 'folder', '--mapping', str(mapping),
                     '--out', str(bag)]) == 0
    ds = open_dataset('folder', root, 'all', mapping=str(mapping))
    gts = _road_gt(bag)
    assert len(gts) == N_FRAMES
    for gt, s in zip(gts, ds):
        assert np.array_equal(gt, s.target)
    bdd = tmp_path / 'bdd'
    masks = _bdd(bdd, camvid_val)
    bag = tmp_path / 'bdd_bag'
    assert cli.main(['make', '--images', str(bdd / 'images' / '100k' / 'val'), '--labels',
                     str(bdd / 'labels' / 'drivable' / 'masks' / 'val'), '--label-format',
                     'bdd100k', '--alternative', 'ignore', '--out', str(bag)]) == 0
    for gt, name in zip(_road_gt(bag), sorted(masks)):
        expected = np.array([1, IGNORE, 0] + [IGNORE] * 253, np.uint8)[masks[name]]
        assert np.array_equal(gt, expected)
    shutil.rmtree(bag)
