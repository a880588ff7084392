"""The WebGPU target: WGSL compute shaders (``wgsl.py``, a sibling of the C-style renderer) from
the vendor-neutral GPU lowering, run through wgpu-py (``device.py``); ``kernel.py`` builds a
PrimFunc into a kernel called like the CPU's."""
