"""PR-curve plots and contact sheets."""
import numpy as np
import pytest

from seg_perception.core.image_io import read_rgb
from seg_perception.core.metrics import RoadEvaluator
from seg_perception.evaluation.plots import contact_sheet, save_pr_curve


def _curves(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    target = (rng.random((40, 50)) > 0.6).astype(np.uint8)
    prob = np.clip(0.35 * target + 0.8 * rng.random(target.shape), 0, 1)
    ev = RoadEvaluator()
    ev.update(prob, target)
    return ev.curves()


def test_pr_curve_single_run(tmp_path):
    path = save_pr_curve(_curves(0), tmp_path / 'sub' / 'pr.png', title='test')
    assert path.is_file() and path.stat().st_size > 1000
    image = read_rgb(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 5  # something was drawn


def test_pr_curve_several_runs(tmp_path):
    path = save_pr_curve([('run a', _curves(0)), ('run b', _curves(1))], tmp_path / 'pr.png')
    assert read_rgb(path).shape[2] == 3


def test_pr_curve_rejects_empty_list(tmp_path):
    with pytest.raises(ValueError):
        save_pr_curve([], tmp_path / 'pr.png')


def test_contact_sheet_layout_and_captions():
    a = np.full((360, 480, 3), 100, np.uint8)     # CamVid size
    b = np.full((375, 1242, 3), 50, np.uint8)     # KITTI size
    c = np.full((20, 30), 200, np.uint8)          # gray
    sheet = contact_sheet([a, b, c], columns=2, tile_width=160)
    tile_h = round(360 * 160 / 480)               # tallest scaled frame
    assert sheet.shape == (2 * tile_h, 2 * 160, 3) and sheet.dtype == np.uint8
    assert (sheet[:tile_h, :160] == 100).all()
    kitti_h = round(375 * 160 / 1242)
    assert (sheet[:kitti_h, 160:] == 50).all()
    assert (sheet[kitti_h:tile_h, 160:] == 0).all()  # filler below a shorter tile
    gray_h = round(20 * 160 / 30)
    assert (sheet[tile_h:tile_h + gray_h, :160] == 200).all()
    assert (sheet[tile_h + gray_h:, :160] == 0).all()
    assert (sheet[tile_h:, 160:] == 0).all()  # no fourth image: empty cell

    captioned = contact_sheet([a, b, c], columns=2, tile_width=160, captions=['x1', 'y', ''])
    assert captioned.shape == sheet.shape
    assert (captioned[:tile_h, :160] > 200).any()       # white (antialiased) caption text
    assert not (captioned[tile_h:, :160] > 200).any()   # empty caption: nothing drawn


def test_contact_sheet_single_row_and_validation():
    images = [np.zeros((10, 20, 3), np.uint8)] * 3
    assert contact_sheet(images, columns=8, tile_width=40).shape == (20, 120, 3)
    with pytest.raises(ValueError):
        contact_sheet([])
    with pytest.raises(ValueError):
        contact_sheet(images, columns=0)
    with pytest.raises(ValueError):
        contact_sheet(images, captions=['only one'])
    with pytest.raises(ValueError):
        contact_sheet([np.zeros((10, 20, 3), np.float32)])
