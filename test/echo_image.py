"""Helper process for test_harness.py: republishes every sensor_msgs/Image from ``in`` on
``out`` unchanged (reliable QoS). Exits 0 on SIGINT/SIGTERM.

Usage: python test/echo_image.py --ros-args -r __ns:=/some_ns
"""
from __future__ import annotations

import sys

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from seg_perception.ros import spin as ros_spin


def main() -> int:
    ros_spin.init(sys.argv)
    node = Node('echo_image')
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                     reliability=ReliabilityPolicy.RELIABLE)
    pub = node.create_publisher(Image, 'out', qos)
    node.create_subscription(Image, 'in', pub.publish, qos)
    node.get_logger().info('echo_image ready')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        ros_spin.spin_until_signal(executor)
    except ExternalShutdownException:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
