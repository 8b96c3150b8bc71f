"""seg_perception: FCN-8s road segmentation for ROS 2 (pure core + thin ROS shells)."""

__version__ = '0.1.0'
