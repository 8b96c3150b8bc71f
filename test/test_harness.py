"""The ROS 2 test harness itself: an Image round trip over real DDS through a subprocess."""
from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from ros_harness import REPO, RosTestNode, format_param, ros_arguments
from sensor_msgs.msg import Image

from seg_perception.core.image_msgs import decode_image, fill_image_msg


def test_ros_arguments_format() -> None:
    args = ros_arguments(['/p.yaml'], {'a': True, 'b': 2, 'c': "it's", 'd': ['x', 'y'],
                                       'e': 0.5}, [('image', '/cam/image_raw')], '/ns', 'warn')
    assert args == ['--ros-args', '--params-file', '/p.yaml', '-p', 'a:=true', '-p', 'b:=2',
                    '-p', "c:='it''s'", '-p', "d:=['x','y']", '-p', 'e:=0.5',
                    '-r', 'image:=/cam/image_raw', '-r', '__ns:=/ns', '--log-level', 'warn']
    assert format_param('') == "''"


def test_image_round_trip_through_subprocess(ros: RosTestNode, ros_namespace: str,
                                             node_processes: Callable[..., Any]) -> None:
    ns = ros_namespace + '/echo'
    proc = node_processes([sys.executable, str(REPO / 'test' / 'echo_image.py')],
                          ros_arguments(namespace=ns), name='echo_image')
    out = ros.collect(f'{ns}/out', Image)
    pub = ros.publisher(Image, f'{ns}/in')
    proc.wait_ready(ros, publishers=[f'{ns}/out'], subscribers=[f'{ns}/in'], timeout=60)
    ros.wait_matched(pub)

    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (24 + i, 40, 3), np.uint8) for i in range(3)]
    for i, frame in enumerate(frames):
        msg = fill_image_msg(Image(), frame, 'rgb8')
        msg.header.frame_id = f'cam_{i}'
        msg.header.stamp.sec, msg.header.stamp.nanosec = 100 + i, 7 * i
        echoed = ros.request(lambda m=msg: pub.publish(m), out,
                             lambda m, i=i: m.header.frame_id == f'cam_{i}', timeout=30)
        assert (echoed.header.stamp.sec, echoed.header.stamp.nanosec) == (100 + i, 7 * i)
        assert (echoed.height, echoed.width, echoed.encoding) == (24 + i, 40, 'rgb8')
        assert np.array_equal(decode_image(echoed), frame)
    proc.stop_and_check(signal.SIGTERM)
