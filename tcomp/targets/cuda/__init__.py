"""The CUDA target: the CUDA dialect of the C-style renderer, NVRTC, the driver API, tensor cores."""
