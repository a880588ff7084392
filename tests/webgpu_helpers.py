"""What the webgpu tests share: the skip marker for machines without wgpu or a WebGPU adapter."""
from __future__ import annotations

import pytest


def _unavailable() -> str:
    """Why the webgpu target cannot run here ("" where it can)."""
    try:
        from tcomp.targets.webgpu.device import WebGPUUnavailable, webgpu_device
    except ImportError as exc:
        return str(exc)
    try:
        webgpu_device()
    except WebGPUUnavailable as exc:
        return str(exc)
    return ""


requires_webgpu = pytest.mark.skipif(bool(_unavailable()), reason=f"no WebGPU device: {_unavailable() or '-'} "
                                                                   f"(CI installs wgpu and mesa-vulkan-drivers)")
