"""``road/grid`` from the real node over real DDS (nav_msgs/OccupancyGrid received by this
separate process): header, unknown cells, agreement with ``road/label``, camera_info updates,
degenerate inputs, and the fused grid of two cameras."""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from nav_msgs.msg import OccupancyGrid
from ros_harness import HarnessError, NodeProcess, RosTestNode, executable, ros_arguments
from sensor_msgs.msg import CameraInfo, Image

from seg_perception.core.image_msgs import decode_mono8, fill_image_msg
from seg_perception.geometry.camera import CameraModel, optical_pose, pose_matrix
from seg_perception.geometry.ground_grid import GridSpec, build_tables

pytestmark = pytest.mark.timeout(600)
START_TIMEOUT = 180.0
W, H = 320, 240
K = [250.0, 0.0, 160.0, 0.0, 250.0, 120.0, 0.0, 0.0, 1.0]
POSE = [1.0, 0.0, 1.5, 0.0, 0.15, 0.0]
LEFT_POSE = [1.0, 0.3, 1.5, 0.0, 0.15, math.radians(35)]
GRID = {'grid.enabled': True, 'grid.resolution': 0.25, 'grid.size': [20.0, 10.0],
        'grid.origin': [0.0, -5.0], 'grid.max_range': 25.0}
SPEC = GridSpec(frame='base_link', resolution=0.25, size=(20.0, 10.0), origin=(0.0, -5.0))
RNG = np.random.default_rng(3)


def stamp_of(msg: Any) -> tuple[int, int]:
    return msg.header.stamp.sec, msg.header.stamp.nanosec


def info_msg(k: list[float] = K, width: int = W, height: int = H) -> CameraInfo:
    return CameraInfo(width=width, height=height, k=k, d=[0.0] * 5,
                      distortion_model='plumb_bob')


def known_cells(k: list[float], pose: list[float]) -> np.ndarray:
    camera = CameraModel.from_camera_info(W, H, k, [0.0] * 5, 'plumb_bob')
    return build_tables(camera, optical_pose(pose_matrix(*pose)), SPEC, 25.0).known


def cells(msg: OccupancyGrid) -> np.ndarray:
    return np.asarray(msg.data, np.int8).reshape(msg.info.height, msg.info.width)


class Io:
    """Publishers and collectors of one running grid node."""

    def __init__(self, ros: RosTestNode, ns: str, cameras: tuple[str, ...] = ('',)) -> None:
        self.ros = ros
        pre = [f'{ns}/{c}/' if c else f'{ns}/' for c in cameras]
        self.pubs = [ros.publisher(Image, p + 'image') for p in pre]
        self.info = [ros.publisher(CameraInfo, p + 'camera_info') for p in pre]
        self.labels = [ros.collect(p + 'road/label', Image) for p in pre]
        self.grids = [ros.collect(p + 'road/grid', OccupancyGrid) for p in pre]
        self.fused = ros.collect(f'{ns}/road/grid', OccupancyGrid)
        self.diag = ros.collect('/diagnostics', DiagnosticArray)
        for pub in self.pubs + self.info:
            ros.wait_matched(pub)

    def image(self) -> Image:
        frame = RNG.integers(0, 255, (H, W, 3), dtype=np.uint8)
        frame[H // 2:] = (110, 110, 115)
        msg = fill_image_msg(Image(), frame, 'rgb8', None)
        msg.header.stamp = self.ros.node.get_clock().now().to_msg()
        msg.header.frame_id = 'camera_optical'
        return msg

    def send(self, i: int = 0, info: CameraInfo | None = None, msg: Image | None = None,
             ) -> tuple[Image, Image]:
        """Publish a frame on camera ``i`` (with ``info`` first), return it and its label."""
        if info is not None:
            self.info[i].publish(info)
            self.ros.spin_for(0.3)
        msg = msg or self.image()
        label = self.ros.request(lambda: self.pubs[i].publish(msg), self.labels[i],
                                 lambda m: stamp_of(m) == stamp_of(msg), timeout=60)
        return msg, label

    def grid_for(self, msg: Image, collector: Any = None, timeout: float = 10.0) -> Any:
        return (collector or self.grids[0]).wait_for(
            lambda m: stamp_of(m) == stamp_of(msg), timeout)

    def grid_status(self, fqn: str, timeout: float = 10.0) -> Any:
        self.diag.clear()
        diag = self.diag.wait_for(lambda m: any(s.name == f'{fqn}: grid' for s in m.status),
                                  timeout)
        return next(s for s in diag.status if s.name == f'{fqn}: grid')


def start(node_processes: Callable[..., NodeProcess], ros: RosTestNode, ns: str,
          model: Any, params: dict[str, Any], topics: list[str]) -> NodeProcess:
    args = ros_arguments([], {'model_path': str(model), 'device': 'cpu', **GRID, **params},
                         namespace=ns)
    proc = node_processes(executable('road_segmentation', 'seg_perception.ros.node'), args,
                          name=f'road_segmentation_{ns.rsplit("/", 1)[-1]}')
    proc.wait_ready(ros, publishers=topics, timeout=START_TIMEOUT)
    return proc


@pytest.fixture(scope='module')
def single(ros: RosTestNode, ros_namespace: str, small_model_path: Any,
           node_processes: Callable[..., NodeProcess]) -> Iterator[Io]:
    ns = ros_namespace + '/grid'
    start(node_processes, ros, ns, small_model_path, {'grid.camera_pose': POSE},
          [f'{ns}/road/grid'])
    yield Io(ros, ns)


def test_no_grid_before_camera_info_and_the_images_go_on(single: Io, ros_namespace: str,
                                                         ) -> None:
    msg, label = single.send()
    assert label.width == W
    with pytest.raises(HarnessError):
        single.grid_for(msg, timeout=2.0)
    status = single.grid_status(f'{ros_namespace}/grid/road_segmentation')
    assert status.level == DiagnosticStatus.WARN and 'no grid' in status.message
    assert {kv.key: kv.value for kv in status.values}['image'] == 'no camera_info received'


def test_grid_header_unknown_cells_and_agreement_with_the_label(single: Io) -> None:
    msg, label = single.send(info=info_msg())
    grid = single.grid_for(msg, timeout=20.0)
    assert stamp_of(grid) == stamp_of(msg) and grid.header.frame_id == 'base_link'
    info = grid.info
    assert (info.width, info.height, info.resolution) == (80, 40, pytest.approx(0.25))
    assert (info.origin.position.x, info.origin.position.y) == (0.0, -5.0)
    values = cells(grid)
    known = known_cells(K, POSE)
    assert np.array_equal(values >= 0, known) and known.sum() > 300
    assert values.min() >= -1 and values.max() <= 100
    # every known cell projected back into the image agrees with road/label there
    camera = CameraModel.from_camera_info(W, H, K, [0.0] * 5, 'plumb_bob')
    tables = build_tables(camera, optical_pose(pose_matrix(*POSE)), SPEC, 25.0)
    labels = decode_mono8(label)
    u = np.rint(tables.map_x[known]).astype(int)
    v = np.rint(tables.map_y[known]).astype(int)
    road_cells = values[known] <= 50                   # threshold 0.5 of the test model
    agree = (road_cells == (labels[v, u] == 1)).mean()
    assert agree > 0.95, agree


def test_grid_follows_a_new_camera_info(single: Io) -> None:
    wide = [125.0, 0.0, 160.0, 0.0, 125.0, 120.0, 0.0, 0.0, 1.0]
    deadline = time.monotonic() + 30
    while True:  # camera_info and images travel on different topics: until it is used
        msg, _ = single.send(info=info_msg(wide))
        values = cells(single.grid_for(msg, timeout=20.0))
        if np.array_equal(values >= 0, known_cells(wide, POSE)):
            break
        assert time.monotonic() < deadline, 'the grid never followed the new camera_info'
    assert (values >= 0).sum() > known_cells(K, POSE).sum()


@pytest.mark.parametrize('info, reason', [
    (info_msg([0.0] * 9), 'degenerate camera_info'),
    (info_msg(K, 640, 480), 'camera_info is 640x480 but the frames are 320x240'),
])
def test_degenerate_camera_info_gives_no_grid_and_a_grid_status(
        single: Io, ros_namespace: str, info: CameraInfo, reason: str) -> None:
    single.send(info=info)
    single.ros.spin_for(0.5)
    msg, label = single.send()
    assert label.height == H                            # the image outputs go on
    with pytest.raises(HarnessError):
        single.grid_for(msg, timeout=2.0)
    status = single.grid_status(f'{ros_namespace}/grid/road_segmentation')
    assert status.level == DiagnosticStatus.WARN
    assert reason in {kv.key: kv.value for kv in status.values}['image']
    msg, _ = single.send(info=info_msg())               # and it recovers
    single.grid_for(msg, timeout=20.0)


@pytest.fixture(scope='module')
def pair(ros: RosTestNode, ros_namespace: str, small_model_path: Any,
         node_processes: Callable[..., NodeProcess]) -> Iterator[Io]:
    ns = ros_namespace + '/pair'
    start(node_processes, ros, ns, small_model_path,
          {'cameras': ['front', 'left'], 'grid.camera_pose': POSE + LEFT_POSE},
          [f'{ns}/road/grid', f'{ns}/front/road/grid', f'{ns}/left/road/grid'])
    yield Io(ros, ns, ('front', 'left'))


def test_two_cameras_publish_their_grids_and_the_fused_one(pair: Io) -> None:
    pair.send(0, info=info_msg())
    pair.send(1, info=info_msg())
    front_msg, left_msg = pair.image(), pair.image()   # stamps a moment apart
    pair.send(0, msg=front_msg)
    pair.send(1, msg=left_msg)
    front = cells(pair.grid_for(front_msg, pair.grids[0], timeout=20.0))
    left = cells(pair.grid_for(left_msg, pair.grids[1], timeout=20.0))
    assert np.array_equal(front >= 0, known_cells(K, POSE))
    assert np.array_equal(left >= 0, known_cells(K, LEFT_POSE))
    fused = cells(pair.fused.wait_for(lambda m: stamp_of(m) == stamp_of(left_msg), 10.0))
    assert np.array_equal(fused >= 0, (front >= 0) | (left >= 0))
    only_left, only_front = (left >= 0) & (front < 0), (front >= 0) & (left < 0)
    assert only_left.any() and only_front.any()
    assert (fused[only_left] == left[only_left]).all()
    assert (fused[only_front] == front[only_front]).all()
    both = (front >= 0) & (left >= 0)
    f, le, fu = front[both].astype(int), left[both].astype(int), fused[both].astype(int)
    # per cell one view's value (the more confident; the exact rule is unit-tested on floats)
    # or, on a tie, their mean
    assert both.any() and np.all((abs(fu - f) <= 1) | (abs(fu - le) <= 1)
                                 | (abs(fu - (f + le) / 2) <= 1))
