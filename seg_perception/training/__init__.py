"""Offline training: configuration, input pipeline and the Keras fit loop."""
