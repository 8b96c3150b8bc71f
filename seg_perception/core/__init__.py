"""Layer 0: names and formats, parameters, preprocessing, rendering, metrics, image I/O.

numpy and OpenCV only: no TensorFlow, no ONNX Runtime, no rclpy.
"""
