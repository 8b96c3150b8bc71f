"""Shared pytest fixtures: real-data locations, DDS isolation, a small model file and the
ROS 2 harness (dedicated rclpy context, test node, node subprocesses).

ROS 2 isolation is set for the whole test session before anything imports rclpy: a random
``ROS_DOMAIN_ID`` and ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, inherited by every
subprocess a test starts. Each test module also gets its own namespace (``ros_namespace``)
so nodes of different modules never see each other's topics.
"""
from __future__ import annotations

import os
import pathlib
import random
import re
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from seg_perception.core.formats import DEFAULT_MODEL_NAME

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = pathlib.Path(os.environ.get('SEG_SHARED_DATA', REPO.parent / 'shared' / 'data'))
DEFAULT_MODEL = REPO / 'models' / DEFAULT_MODEL_NAME
# Fixed small subset of real KITTI Road training frames (one per category) for the tests that
# evaluate real frames: the whole split (240 full-size frames) would take minutes.
KITTI_SUBSET = REPO / 'test' / 'fixtures' / 'kitti_subset.txt'
KITTI_SUBSET_NAMES = KITTI_SUBSET.read_text().split()


def pytest_configure(config: pytest.Config) -> None:
    """Isolate DDS traffic of this test session (before any rclpy import)."""
    os.environ['ROS_DOMAIN_ID'] = str(random.Random().randint(1, 101))
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    os.environ.setdefault('PYTHONUNBUFFERED', '1')
    from seg_perception.ros.dds_env import use_large_image_profile
    use_large_image_profile()  # test publishers send camera-sized best-effort frames too


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
def cityscapes_dir() -> pathlib.Path:
    """The real Cityscapes (pix2pix layout) folder (skips when absent)."""
    return _require(SHARED_DATA / 'cityscapes_pix2pix')


@pytest.fixture(scope='session')
def default_model() -> pathlib.Path:
    """The shipped default model (skips until it exists)."""
    return _require(DEFAULT_MODEL)


@pytest.fixture(scope='session')
def small_model_path(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A real FCN-8s model file (VGG16-BN, light head, random weights with non-zero score
    layers so outputs vary) with a complete model card; input_size 64x96, pad mode."""
    from seg_perception.model.fcn8s import ModelSpec
    from seg_perception.model.model_file import save_random_model

    return save_random_model(
        tmp_path_factory.mktemp('model') / 'small.segmodel',
        ModelSpec(num_classes=2, batch_norm=True, head='light', dropout=0.0), seed=1,
        input_size=[64, 96], input_mode='pad', threshold=0.5,
        training={'dataset': 'none (random weights for tests)'})


@pytest.fixture(scope='session')
def small_onnx_path(small_model_path: pathlib.Path,
                    tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The small model exported by ``seg_export`` (ONNX, card inside); skips without
    onnxruntime/tf2onnx."""
    pytest.importorskip('onnxruntime')
    pytest.importorskip('tf2onnx')
    from seg_perception.export.onnx_export import export_onnx
    from seg_perception.model.model_file import load_model

    model, card = load_model(small_model_path)
    return export_onnx(model, card, tmp_path_factory.mktemp('onnx') / 'small.onnx')


# -- ROS 2 harness fixtures (see ros_harness.py) -------------------------------------------
@pytest.fixture(scope='module')
def ros_context() -> Iterator[Any]:
    """A dedicated, initialised rclpy Context for one test module (shut down afterwards)."""
    from ros_harness import make_context

    context = make_context()
    yield context
    context.try_shutdown()


@pytest.fixture(scope='module')
def ros(ros_context: Any) -> Iterator[Any]:
    """A test-side :class:`ros_harness.RosTestNode` on the module's context."""
    from ros_harness import RosTestNode

    harness = RosTestNode(ros_context)
    yield harness
    harness.close()


@pytest.fixture(scope='module')
def ros_namespace(request: pytest.FixtureRequest) -> str:
    """A namespace unique to this test module, e.g. ``/t_test_node_4821``."""
    name = re.sub(r'\W', '_', request.module.__name__.rsplit('.', 1)[-1])
    return f'/t_{name}_{random.Random().randint(1000, 9999)}'


@pytest.fixture(scope='module')
def node_processes() -> Iterator[Callable[..., Any]]:
    """Factory ``start(command, ros_args, name, env)`` -> :class:`ros_harness.NodeProcess`;
    every process still running at the end of the module is stopped with SIGINT."""
    from ros_harness import NodeProcess

    started: list[NodeProcess] = []

    def start(command: list[str], ros_args: list[str] = (), name: str = 'node',
              env: dict[str, str] | None = None) -> NodeProcess:
        proc = NodeProcess(command, ros_args, name, env, cwd=REPO)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.stop(signal.SIGINT)
