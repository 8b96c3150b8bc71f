"""Layer 4: deployment exports: ONNX, int8, SavedModel."""
