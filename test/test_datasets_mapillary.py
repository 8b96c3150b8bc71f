"""The mapillary layout on real CamVid val frames re-laid as a Mapillary Vistas release
(palette label PNGs and a config in the release's format, written in the test): targets,
reports, errors, seg_train's split names and seg_bag make."""
from __future__ import annotations

import json
import pathlib

import cv2
import numpy as np
import pytest
from PIL import Image

from seg_perception.bag.bagfile import BagReader
from seg_perception.cli import bag as cli
from seg_perception.core.image_io import IGNORE, read_gray
from seg_perception.core.image_msgs import decode_mono8
from seg_perception.datasets import DatasetError, open_dataset
from seg_perception.datasets.mapillary import read_labels, target_class

N_FRAMES = 3
# A part of Mapillary's label list (names as in config_v2.0.json; the order is the test's)
LABELS = ['construction--flat--sidewalk', 'construction--flat--road', 'nature--sky',
          'construction--structure--building', 'object--vehicle--car',
          'marking--continuous--solid', 'construction--flat--parking', 'void--unlabeled',
          'nature--vegetation', 'human--person--individual']
# CamVid class (sky, building, pole, road, pavement, tree, sign, fence, car, pedestrian,
# bicyclist, unlabelled) -> index in LABELS
CAMVID_TO_LABEL = [2, 3, 3, 1, 0, 8, 3, 3, 4, 9, 9, 7]
STRAY = 40   # no label of the config has this index


def _write_config(root: pathlib.Path, name: str = 'config_v2.0.json') -> None:
    palette = np.random.default_rng(0).integers(0, 256, (len(LABELS), 3))
    labels = [{'name': n, 'readable': n.split('--')[-1], 'color': [int(c) for c in rgb],
               'instances': False, 'evaluate': True} for n, rgb in zip(LABELS, palette)]
    (root / name).write_text(json.dumps({'labels': labels, 'version': name[7:-5]}))


def _palette_png(path: pathlib.Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(labels, mode='P')
    image.putpalette(list(np.random.default_rng(1).integers(0, 256, 768).astype(np.uint8)))
    image.save(path)


@pytest.fixture(scope='module')
def vistas(camvid_dir: pathlib.Path, tmp_path_factory: pytest.TempPathFactory,
           ) -> tuple[pathlib.Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """A v2.0-release layout under a temporary folder; ``{name: (labels, CamVid target)}``."""
    root = tmp_path_factory.mktemp('vistas')
    ds = open_dataset('camvid', camvid_dir, 'val')
    frames = {}
    for i in np.linspace(0, len(ds) - 1, N_FRAMES).astype(int):
        s = ds[int(i)]
        labels = np.array(CAMVID_TO_LABEL, np.uint8)[read_gray(ds.items[int(i)].gt)]
        labels[:20, :30] = 5          # a lane marking
        labels[20:40, :30] = 6        # parking
        labels[40:50, :10] = STRAY
        for split in ('training', 'validation'):
            (root / split / 'images').mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / split / 'images' / f'{s.name}.jpg'), s.image[:, :, ::-1])
            _palette_png(root / split / 'v2.0' / 'labels' / f'{s.name}.png', labels)
        frames[s.name] = (labels, s.target)
    (root / 'testing' / 'images').mkdir(parents=True)
    cv2.imwrite(str(root / 'testing' / 'images' / 'x.jpg'), s.image)
    _write_config(root)
    return root, frames


def test_targets_follow_the_label_names(vistas: tuple) -> None:
    root, frames = vistas
    ds = open_dataset('mapillary', root, 'val')
    assert ds.split == 'val' and len(ds) == N_FRAMES
    assert len(open_dataset('mapillary', root, 'train')) == N_FRAMES      # seg_train's name
    assert len(open_dataset('mapillary', root, 'training', version='v2.0')) == N_FRAMES
    for s in ds:
        labels, camvid_target = frames[s.name]
        plain = labels < 5   # sidewalk, road, sky, building, car
        assert np.array_equal(s.target[plain], camvid_target[plain])
        assert (s.target[labels == 1] == 1).all() and (s.target[labels == 0] == 0).all()
        assert (s.target[labels == 5] == 1).all()                   # marking: road
        assert (s.target[(labels == 6) | (labels == 7)] == IGNORE).all()
        assert (s.target[labels == STRAY] == IGNORE).all()
    report = ds.report()
    assert report['frames_with_unknown'] == N_FRAMES
    assert report['unknown_values'] == [{'value': STRAY, 'pixels': 100 * N_FRAMES}]
    assert not open_dataset('mapillary', root, 'test').has_ground_truth
    assert [target_class(n) for n in LABELS] == [
        'not_road', 'road', 'not_road', 'not_road', 'not_road', 'road', 'ignore', 'ignore',
        'not_road', 'not_road']


def test_v1_release_layout_and_errors(vistas: tuple, tmp_path: pathlib.Path) -> None:
    src, frames = vistas
    root = tmp_path / 'v11'
    (root / 'validation').mkdir(parents=True)
    (root / 'validation' / 'images').symlink_to(src / 'validation' / 'images')
    (root / 'validation' / 'labels').symlink_to(src / 'validation' / 'v2.0' / 'labels')
    with pytest.raises(DatasetError, match='no Mapillary config'):
        open_dataset('mapillary', root, 'val')
    _write_config(root, 'config.json')
    ds = open_dataset('mapillary', root, 'val')
    name = sorted(frames)[0]
    assert np.array_equal(ds[0].target, open_dataset('mapillary', src, 'val')[0].target)
    assert ds.items[0].name == name
    with pytest.raises(DatasetError, match="version must be one of"):
        open_dataset('mapillary', root, 'val', version='v3')
    with pytest.raises(DatasetError, match='labels folder not found'):
        open_dataset('mapillary', root, 'val', version='v1.2')
    (root / 'config.json').write_text(json.dumps({'labels': [{'name': 'nature--sky'}]}))
    with pytest.raises(DatasetError, match='no label construction--flat--road'):
        open_dataset('mapillary', root, 'val')
    colour = tmp_path / 'colour.png'
    cv2.imwrite(str(colour), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DatasetError, match='RGB image; expected an 8-bit palette label PNG'):
        read_labels(colour)


def test_seg_bag_make_mapillary_labels(vistas: tuple, tmp_path: pathlib.Path) -> None:
    root, _ = vistas
    bag = tmp_path / 'vistas_bag'
    assert cli.main(['make', '--images', str(root / 'validation' / 'images'), '--labels',
                     str(root / 'validation' / 'v2.0' / 'labels'), '--label-format',
                     'mapillary', '--out', str(bag)]) == 0
    reader = BagReader(bag)
    gts = [decode_mono8(reader.deserialize(raw, msgtype))
           for topic, msgtype, _, raw in reader.messages() if topic == '/camera/road_gt']
    reader.close()
    ds = open_dataset('mapillary', root, 'val')
    assert len(gts) == N_FRAMES
    for gt, s in zip(gts, ds):
        assert np.array_equal(gt, s.target)
