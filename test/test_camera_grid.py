"""The node's grid without DDS: settings, one camera's grid state, the ROS outputs with fake
publishers, and the tf2 path against a stand-in of the tf2_ros Buffer API."""
from __future__ import annotations

import math
import sys
import types
from typing import Any

import numpy as np
import pytest
from geometry_msgs.msg import Transform
from std_msgs.msg import Header

from seg_perception.core.params import ConfigError
from seg_perception.geometry.camera import optical_pose, pose_matrix
from seg_perception.geometry.camera_grid import CameraGrid, CameraInfoFields, GridConfig, NoGrid
from seg_perception.geometry.ground_grid import build_tables
from seg_perception.ros import grid_output
from seg_perception.ros.worker import Camera

W, H = 320, 240
K = (250.0, 0.0, 160.0, 0.0, 250.0, 120.0, 0.0, 0.0, 1.0)
INFO = CameraInfoFields(W, H, K, (0.0,) * 5, 'plumb_bob')
POSE = [1.0, 0.0, 1.5, 0.0, 0.15, 0.0]


def config(**kw: Any) -> GridConfig:
    values = dict(frame='base_link', resolution=0.25, size=[20.0, 10.0], origin=[0.0, -5.0],
                  max_range=25.0, free=None, occupied=None, camera_pose=POSE, use_tf=False,
                  n_cameras=1)
    values.update(kw)
    return GridConfig.from_values(**values)


@pytest.mark.parametrize('kw, message', [
    ({'camera_pose': [1.0, 2.0]}, "'grid.camera_pose' needs 6"),
    ({'camera_pose': POSE, 'n_cameras': 2}, "'grid.camera_pose' needs 6"),
    ({'frame': '/base_link'}, "'grid.frame'"),
    ({'size': [20.0]}, "'grid.size'"),
    ({'resolution': 0.3}, 'grid'),                 # 20 m is not a whole number of 0.3 m cells
    ({'free': 20.0}, 'go together'),
    ({'free': 60.0, 'occupied': 40.0}, 'free < occupied'),
])
def test_config_rejects_bad_values_with_one_line(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        config(**kw)
    assert '\n' not in str(info.value)


def test_config_poses_follow_rep103_and_the_trinary_values() -> None:
    cfg = config(free=25.0, occupied=65.0)
    assert np.allclose(cfg.optical_poses[0], optical_pose(pose_matrix(*POSE)))
    assert cfg.spec.shape == (40, 80)      # rows along y (10 m), columns along x (20 m)
    grid = np.array([[1.0, 0.5, 0.0, np.nan]], np.float32)
    assert cfg.occupancy(grid).tolist() == [[0, -1, 100, -1]]
    assert config().occupancy(grid).tolist() == [[0, 50, 100, -1]]
    assert config(camera_pose=None).optical_poses == ()       # no pose: no grid, not an error
    assert config(camera_pose=None, use_tf=True).use_tf


def test_camera_grid_states_and_table_reuse() -> None:
    cam = CameraGrid(config())
    prob = np.full((H, W), 0.8, np.float32)
    pose = config().optical_poses[0]
    with pytest.raises(NoGrid, match='no camera_info'):
        cam.project(prob, None, pose)
    bad = CameraInfoFields(W, H, (0.0,) * 9, (), '')
    with pytest.raises(NoGrid, match='degenerate camera_info'):
        cam.project(prob, bad, pose)
    other = CameraInfoFields(640, 480, K, (0.0,) * 5, 'plumb_bob')
    with pytest.raises(NoGrid, match='640x480 but the frames are 320x240'):
        cam.project(prob, other, pose)
    with pytest.raises(NoGrid, match='no camera pose'):
        cam.project(prob, INFO, None)
    grid = cam.project(prob, INFO, pose)
    expected = build_tables(cam.model_for(INFO, W, H), pose, config().spec, 25.0).known
    assert np.array_equal(~np.isnan(grid), expected) and expected.any()
    assert np.allclose(grid[expected], 0.8)
    cam.project(prob, INFO, pose)
    assert cam.projector.builds == 1                          # same camera and pose: reused
    wider = CameraInfoFields(W, H, (125.0, 0.0, 160.0, 0.0, 125.0, 120.0, 0.0, 0.0, 1.0),
                             (0.0,) * 5, 'plumb_bob')
    grid2 = cam.project(prob, wider, pose)
    assert cam.projector.builds == 2
    assert (~np.isnan(grid2)).sum() > (~np.isnan(grid)).sum()  # shorter focal: sees more


class FakePub:
    def __init__(self, msg_type: Any, topic: str) -> None:
        self.topic, self.sent = topic, []

    def publish(self, msg: Any) -> None:
        self.sent.append((msg.header.stamp.sec, msg.header.frame_id, bytes(msg.data),
                          msg.info.width, msg.info.height))


def header(sec: int, frame: str = 'camera_optical', nanosec: int = 0) -> Header:
    h = Header(frame_id=frame)
    h.stamp.sec, h.stamp.nanosec = sec, nanosec
    return h


def camera_with_info(name: str, info: CameraInfoFields = INFO) -> Camera:
    cam = Camera(name)
    cam.camera_info = types.SimpleNamespace(width=info.width, height=info.height, k=info.k,
                                            d=info.d, distortion_model=info.distortion_model)
    return cam


def test_outputs_publish_per_camera_and_fused_grids() -> None:
    pubs: dict[str, FakePub] = {}

    def create(msg_type: Any, topic: str) -> FakePub:
        pubs[topic] = FakePub(msg_type, topic)
        return pubs[topic]

    front, left = camera_with_info('front'), camera_with_info('left')
    cfg = config(camera_pose=POSE + [1.0, 0.5, 1.5, 0.0, 0.15, math.radians(30)], n_cameras=2)
    out = grid_output.GridOutputs(cfg, [front, left], create)
    assert sorted(pubs) == ['front/road/grid', 'left/road/grid', 'road/grid']
    road = np.full((H, W), 0.9, np.float32)
    states = out.publish([(front, header(7), road),
                         (left, header(7, nanosec=500_000_000), 1 - road)])
    assert [(c.name, s) for c, s, _ in states] == [('front', 'ok'), ('left', 'ok')]
    sec, frame, data, width, height = pubs['road/grid'].sent[-1]
    assert (sec, frame, width, height) == (7, 'base_link', 80, 40)  # the newest stamp
    fused = np.frombuffer(data, np.int8).reshape(height, width)
    f = np.frombuffer(pubs['front/road/grid'].sent[-1][2], np.int8).reshape(40, 80)
    le = np.frombuffer(pubs['left/road/grid'].sent[-1][2], np.int8).reshape(40, 80)
    only_front, only_left = (f >= 0) & (le < 0), (le >= 0) & (f < 0)
    assert only_front.any() and only_left.any() and ((f >= 0) & (le >= 0)).any()
    assert (fused[only_front] == f[only_front]).all() and (fused[only_left] == 90).all()
    assert ((fused == -1) == ((f < 0) & (le < 0))).all()
    left.camera_info = None
    states = out.publish([(front, header(8), road), (left, header(8), road)])
    assert states[1][1] == 'no camera_info received'
    assert pubs['road/grid'].sent[-1][0] == 8                  # the fused grid of what is left
    sent = np.frombuffer(pubs['road/grid'].sent[-1][2], np.int8).reshape(40, 80)
    assert np.array_equal(sent, f)
    states = out.publish([(front, header(10), road)])            # front alone, left too old
    assert np.array_equal(np.frombuffer(pubs['road/grid'].sent[-1][2], np.int8), f.ravel())
    left.camera_info = front.camera_info
    out.publish([(left, header(10, nanosec=100), 1 - road)])     # left joins front's grid
    assert pubs['road/grid'].sent[-1][2] == data


class StandInBuffer:
    """The tf2_ros.Buffer calls the node makes (ros2/geometry2 tf2_ros_py/tf2_ros/buffer.py):
    ``Buffer(node=...)`` and ``lookup_transform(target_frame, source_frame, time)``."""

    instances: list[StandInBuffer] = []

    def __init__(self, cache_time: Any = None, node: Any = None) -> None:
        self.node, self.calls, self.transform = node, [], None
        StandInBuffer.instances.append(self)

    def lookup_transform(self, target_frame: str, source_frame: str, time: Any,
                         timeout: Any = None) -> Any:
        self.calls.append((target_frame, source_frame, time))
        if self.transform is None:
            raise LookupError(f'"{target_frame}" passed to lookupTransform argument '
                              'target_frame does not exist.')
        return types.SimpleNamespace(transform=self.transform)


class StandInListener:
    def __init__(self, buffer: Any, node: Any, *, spin_thread: bool = False) -> None:
        self.buffer, self.node = buffer, node


def ros_transform(pose: np.ndarray) -> Transform:
    from scipy.spatial.transform import Rotation

    t = Transform()
    t.translation.x, t.translation.y, t.translation.z = pose[:3, 3]
    q = Rotation.from_matrix(pose[:3, :3]).as_quat()  # x, y, z, w
    t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w = q
    return t


def test_tf_path_against_a_standin_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, 'tf2_ros', types.SimpleNamespace(
        Buffer=StandInBuffer, TransformListener=StandInListener))
    node = object()
    cam = camera_with_info('')
    out = grid_output.grid_outputs(node, {
        'frame': 'base_link', 'resolution': 0.25, 'size': [20.0, 10.0], 'origin': [0.0, -5.0],
        'max_range': 25.0, 'free_threshold': None, 'occupied_threshold': None,
        'camera_pose': None, 'use_tf': True}, [cam], lambda t, topic: FakePub(t, topic))
    buffer = StandInBuffer.instances[-1]
    assert buffer.node is node and out.listener.buffer is buffer and out.listener.node is node
    prob = np.full((H, W), 0.9, np.float32)
    (_, state, _), = out.publish([(cam, header(3, 'cam_optical'), prob)])
    assert state.startswith('no transform cam_optical -> base_link at the image stamp')
    target, source, time = buffer.calls[-1]
    assert (target, source, time.nanoseconds) == ('base_link', 'cam_optical', 3_000_000_000)
    pose = optical_pose(pose_matrix(*POSE))
    buffer.transform = ros_transform(pose)
    assert np.allclose(grid_output.transform_matrix(buffer.transform), pose)
    (_, state, _), = out.publish([(cam, header(4, 'cam_optical'), prob)])
    assert state == 'ok'
    direct = CameraGrid(config()).project(prob, INFO, pose)
    sent = np.frombuffer(out.fused_pub.sent[-1][2], np.int8).reshape(40, 80)
    assert ((sent >= 0) == ~np.isnan(direct)).all()


def test_use_tf_without_tf2_is_one_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, 'tf2_ros', None)
    with pytest.raises(ConfigError, match='grid.use_tf needs tf2_ros'):
        grid_output.tf_lookup_for(object())
