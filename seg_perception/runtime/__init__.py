"""Layer 3: inference: the Segmenter, the ONNX Runtime session, the backend choice, the Pipeline."""
