"""Layer 2: the FCN-8s builder and the model file (Keras)."""
