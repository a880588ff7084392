"""Frontends: model formats imported into the graph IR (ONNX)."""
