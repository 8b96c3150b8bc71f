"""Shared pytest fixtures: real-data locations, DDS isolation and a small model file.

ROS 2 isolation is set for the whole test session before anything imports rclpy: a random
``ROS_DOMAIN_ID`` and ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, inherited by every
subprocess a test starts.
"""
from __future__ import annotations

import os
import pathlib
import random

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = pathlib.Path(os.environ.get('SEG_SHARED_DATA', REPO.parent / 'shared' / 'data'))
DEFAULT_MODEL = REPO / 'models' / 'road_camvid.segmodel'


def pytest_configure(config: pytest.Config) -> None:
    """Isolate DDS traffic of this test session (before any rclpy import)."""
    os.environ['ROS_DOMAIN_ID'] = str(random.Random().randint(1, 101))
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    os.environ.setdefault('PYTHONUNBUFFERED', '1')


def _require(path: pathlib.Path) -> pathlib.Path:
    if not path.exists():
        pytest.skip(f'real data not available: {path} is missing (see ../shared/data/README.md)')
    return path


@pytest.fixture(scope='session')
def camvid_dir() -> pathlib.Path:
    """The real CamVid folder (skips when absent)."""
    return _require(SHARED_DATA / 'camvid')


@pytest.fixture(scope='session')
def kitti_dir() -> pathlib.Path:
    """The real KITTI Road folder (data_road layout; skips when absent)."""
    return _require(SHARED_DATA / 'kitti_road')


@pytest.fixture(scope='session')
def default_model() -> pathlib.Path:
    """The shipped default model (skips until it exists)."""
    return _require(DEFAULT_MODEL)


@pytest.fixture(scope='session')
def small_model_path(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A real FCN-8s model file (VGG16-BN, light head, random weights with non-zero score
    layers so outputs vary) with a complete model card; input_size 64x96, pad mode."""
    import keras

    from seg_perception.model import ModelSpec, build_fcn8s
    from seg_perception.model_io import ModelCard, save_model

    keras.utils.set_random_seed(1)
    spec = ModelSpec(num_classes=2, batch_norm=True, head='light', dropout=0.0)
    model = build_fcn8s(spec)
    rng = np.random.default_rng(0)
    for name in ('score_fr', 'score_pool4', 'score_pool3'):
        layer = model.get_layer(name)
        kernel, bias = layer.get_weights()
        layer.set_weights([rng.normal(0, 0.05, kernel.shape).astype(np.float32), bias])
    card = ModelCard(spec=spec.to_dict(), input_size=[64, 96], input_mode='pad', threshold=0.5,
                     training={'dataset': 'none (random weights for tests)'})
    return save_model(model, card, tmp_path_factory.mktemp('model') / 'small.segmodel')
