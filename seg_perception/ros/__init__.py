"""Layer 8: ROS 2 plumbing (rclpy lives here only): the node and what it is built from."""
