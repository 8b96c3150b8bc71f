"""The road_segmentation lifecycle node over real DDS, driven through its lifecycle services.

The node is started as ``road.launch.py autostart:=false`` would start it (the launch file's
own ``node_arguments``), so it waits unconfigured; the test then walks it through configure,
activate, deactivate, cleanup, configure + activate again and shutdown with
``<node>/change_state`` and checks ``<node>/get_state``, the topics that exist in each state,
that frames are served only while active, and that shutdown ends the process with exit 0.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from ros_harness import SENSOR, HarnessError, NodeProcess, RosTestNode, launch_command
from sensor_msgs.msg import Image

from seg_perception.core.image_msgs import fill_image_msg

pytestmark = pytest.mark.timeout(600)
NODE = 'road_segmentation'
START_TIMEOUT = 180.0  # model load + warm-up on a loaded 2-core machine


def frame_msg(ros: RosTestNode, frame_id: str) -> Image:
    """A 64x96 rgb8 frame with the test node's stamp."""
    frame = np.random.default_rng(3).integers(0, 256, (64, 96, 3), np.uint8)
    msg = fill_image_msg(Image(), frame, 'rgb8')
    msg.header.stamp = ros.node.get_clock().now().to_msg()
    msg.header.frame_id = frame_id
    return msg


def wait_state(ros: RosTestNode, fqn: str, label: str, proc: NodeProcess) -> None:
    """Spin until the node reports ``label`` (its services answer once discovered)."""
    ros.spin_until(lambda: ros.lifecycle_state(fqn) == label, 60, f'{fqn} in state {label}',
                   proc)


def test_transitions_through_the_lifecycle_services(
        ros: RosTestNode, ros_namespace: str, small_model_path: Any,
        node_processes: Callable[..., NodeProcess]) -> None:
    ns = ros_namespace + '/managed'
    fqn = f'{ns}/{NODE}'
    image, label_topic = f'{ns}/camera/image_raw', f'{ns}/road/label'
    command, args, cfg = launch_command('road.launch.py', {
        'model': str(small_model_path), 'namespace': ns, 'device': 'cpu', 'image': image,
        'autostart': 'false'})
    assert cfg['parameters']['autostart'] is False
    proc = node_processes(command, args, name='road_segmentation_managed')
    pub = ros.publisher(Image, image, SENSOR)
    labels = ros.collect(label_topic, Image)

    wait_state(ros, fqn, 'unconfigured', proc)
    assert ros.node.count_publishers(label_topic) == 0
    assert ros.node.count_subscribers(image) == 0
    assert 'waiting for lifecycle transitions' in proc.log()

    # configure: model loaded, publishers exist, no input subscription yet.
    assert ros.change_state(fqn, 'configure', START_TIMEOUT)
    assert ros.lifecycle_state(fqn) == 'inactive'
    ros.wait_for_publishers(label_topic, timeout=30, process=proc)
    assert ros.node.count_subscribers(image) == 0
    assert 'configured: model=' in proc.log()

    def served(frame_id: str) -> Image:
        msg = frame_msg(ros, frame_id)
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        return ros.request(lambda: pub.publish(msg), labels,
                           lambda m: (m.header.stamp.sec, m.header.stamp.nanosec) == stamp, 60)

    # activate: frames come back with their header.
    assert ros.change_state(fqn, 'activate')
    assert ros.lifecycle_state(fqn) == 'active'
    ros.wait_matched(pub, timeout=30)
    reply = served('active_1')
    assert (reply.height, reply.width, reply.header.frame_id) == (64, 96, 'active_1')

    # deactivate: the input subscription goes away and nothing is published.
    assert ros.change_state(fqn, 'deactivate')
    assert ros.lifecycle_state(fqn) == 'inactive'
    ros.spin_until(lambda: ros.node.count_subscribers(image) == 0, 30,
                   'the input subscription to go away', proc)
    labels.clear()
    pub.publish(frame_msg(ros, 'inactive'))
    ros.spin_for(1.5)
    assert labels.messages == []

    # cleanup: the model is freed and the publishers are gone.
    assert ros.change_state(fqn, 'cleanup')
    assert ros.lifecycle_state(fqn) == 'unconfigured'
    ros.spin_until(lambda: ros.node.count_publishers(label_topic) == 0, 30,
                   'the output publishers to go away', proc)

    # configure + activate again: serving as before.
    assert ros.change_state(fqn, 'configure', START_TIMEOUT)
    assert ros.change_state(fqn, 'activate')
    ros.wait_matched(pub, timeout=30)
    assert served('active_2').header.frame_id == 'active_2'

    # shutdown (from active): finalized, and the process ends by itself with exit 0.
    try:
        assert ros.change_state(fqn, 'shutdown')
    except HarnessError:
        pass  # the response can race the process exit; the exit code below decides
    assert proc.wait_exit(60) == 0, proc.log_tail()
    log = proc.log()
    assert 'finalized (from active)' in log
    assert 'Traceback' not in log, log


def test_failed_configure_stays_unconfigured_and_reports_why(
        ros: RosTestNode, ros_namespace: str,
        node_processes: Callable[..., NodeProcess]) -> None:
    ns = ros_namespace + '/badmodel'
    fqn = f'{ns}/{NODE}'
    command, args, _ = launch_command('road.launch.py', {
        'model': '/nonexistent/model.segmodel', 'namespace': ns, 'autostart': 'false'})
    proc = node_processes(command, args, name='road_segmentation_badmodel')
    wait_state(ros, fqn, 'unconfigured', proc)
    assert not ros.change_state(fqn, 'configure')
    assert ros.lifecycle_state(fqn) == 'unconfigured'
    assert proc.poll() is None  # a lifecycle manager decides what happens next
    log = proc.log()
    assert "cannot start: parameter 'model_path': model file not found" in log, log
    try:
        ros.change_state(fqn, 'shutdown')
    except HarnessError:
        pass
    assert proc.wait_exit(60) == 0, proc.log_tail()
    assert 'Traceback' not in proc.log()
