"""Layer 0: names and formats, parameters, preprocessing, rendering, metrics, image I/O (numpy/OpenCV; no TensorFlow, no rclpy)."""
