"""Vendor-neutral GPU lowering: default thread binding, binding checks, one device kernel per
thread-bound loop nest, barriers. Only the renderer (``targets/csource.py`` with a dialect)
is specific to CUDA, HIP or another C-like GPU language."""
