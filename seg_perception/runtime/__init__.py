"""Layer 3: inference: the Segmenter, the ONNX Runtime session and the Pipeline."""
