"""The WebGPU device through wgpu-py (wgpu-native): memory, shader pipelines, dispatches.

One device per process, on the adapter wgpu prefers (a GPU; on a machine without one, Mesa's
software Vulkan driver lavapipe, "llvmpipe" in ``adapter_info()``), with the adapter's own
limits requested (WebGPU's defaults allow 256 invocations per workgroup and 16 KiB of workgroup
memory). It implements the device executor's backend protocol (``runtime/device_executor.py``):

    device = webgpu_device()
    buffer = device.allocate(nbytes)               # a GPUBuffer
    device.upload(buffer, offset, array)           # host bytes as they are (int64: checked to fit 32 bits)
    device.launch(compiled, grid, block, [(buffer, offset), ...], sizes)   # recorded
    device.synchronize()                           # recorded dispatches submitted in one compute pass, waited for
    device.download(buffer, offset, array)

A kernel that checks its 64-bit arithmetic (``WGSLKernel.status``, ``overflow.py``) is bound a word of
the device's status buffer of its own; ``synchronize`` reads the words of the kernels launched since
the last one and refuses a run where one is set (an int64 result beyond 32 bits), naming the kernel.

Shaders are compiled without naga's runtime checks (index clamps, loop counters), which halved a
tiled GEMM's speed on an H100; the WGSL keeps its accesses in bounds itself (``wgsl.py``).

A buffer argument is a buffer and a byte offset (a multiple of 256 from the executor); it is
bound with the size of the kernel's parameter. A kernel keeps the bind group of each set of
buffers, offsets and sizes it was launched with while those buffers live (a model's runs bind the
same arena regions each time: recording a dispatch took ~100 us of Python, mostly that). Dispatches are recorded and submitted together
(one compute pass: WebGPU orders dispatches and makes each see the previous one's writes);
uploads, downloads and copies submit what was recorded first, so everything happens in program
order.
"""
from __future__ import annotations

import functools
import time
import weakref

import numpy as np

from ...errors import InputError, TcompError
from ...tir import arith
from ...tir.expr import IntImm, dtype_bits, substitute
from .wgsl import MAX_WORKGROUPS_PER_DIMENSION, WGSLKernel

ALIGN = 256   # the executor's offsets: WebGPU's largest minStorageBufferOffsetAlignment
STATUS_SLOTS = 64  # status words the status buffer holds at first (one per checking kernel, ALIGN apart)
LIMITS = ("max-compute-invocations-per-workgroup", "max-compute-workgroup-size-x", "max-compute-workgroup-size-y",
          "max-compute-workgroup-size-z", "max-compute-workgroup-storage-size", "max-storage-buffers-per-shader-stage",
          "max-storage-buffer-binding-size", "max-buffer-size")
NO_RUNTIME_CHECKS = 0  # WGPUShaderRuntimeChecks: neither BoundsChecks (1) nor ForceLoopBounding (2)
NARROWED = {"int64": (np.int32, "int32"), "uint64": (np.uint32, "uint32")}


class WebGPUUnavailable(TcompError):
    """No wgpu package, or no WebGPU adapter on this machine."""


@functools.cache
def webgpu_device() -> "WebGPUDevice":
    return WebGPUDevice()


def adapter_info() -> dict:
    """The adapter in use: vendor, device, description, adapter_type ("CPU" for a software one), backend_type."""
    return dict(webgpu_device().info)


class WebGPUDevice:
    align = ALIGN

    def __init__(self):
        try:
            import wgpu
        except ImportError:
            raise WebGPUUnavailable("the webgpu target needs wgpu: pip install 'tcomp[webgpu]'") from None
        self._wgpu = wgpu
        _vulkan_metal_dx12_only(wgpu)
        try:
            adapter = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
        except RuntimeError as exc:  # wgpu-native finds no Vulkan/Metal/DX12 driver at all
            raise WebGPUUnavailable(f"no WebGPU adapter ({exc}): no GPU driver found (a software one: apt "
                                    f"install mesa-vulkan-drivers)") from None
        if adapter is None:
            raise WebGPUUnavailable("no WebGPU adapter: no GPU driver found (a software one: apt install "
                                    "mesa-vulkan-drivers)")
        self.info = adapter.info
        self.limits = {name: adapter.limits[name] for name in LIMITS}
        self.device = adapter.request_device_sync(required_limits=self.limits)
        self._usage = wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST
        self._recorded: list = []
        self._uniforms: dict = {}
        self._fence = self.allocate(4)
        self._status_kernels: list = []   # slot -> the kernel whose status word it is
        self._status = self.allocate(STATUS_SLOTS * ALIGN)
        self._status_pending: set = set()  # slots launched since the last synchronize

    # -------------------------------------------------------------- memory
    def allocate(self, nbytes: int):
        size = max(4, -(-nbytes // 4) * 4)
        if size > self.limits["max-buffer-size"]:
            raise TcompError(f"webgpu: a buffer of {nbytes} bytes is larger than the adapter allows "
                             f"({self.limits['max-buffer-size']})")
        return self.device.create_buffer(size=size, usage=self._usage)

    def upload(self, buffer, offset: int, array: np.ndarray, name: str | None = None) -> None:
        check_uploadable(array, name or f"a tensor of shape {list(array.shape)}")
        self._submit()
        data = np.ascontiguousarray(array).view(np.uint8).reshape(-1)
        if data.nbytes % 4:  # WebGPU writes whole words: the rest of the last one is padding
            data = np.concatenate([data, np.zeros(4 - data.nbytes % 4, np.uint8)])
        if data.nbytes:
            self.device.queue.write_buffer(buffer, offset, data)

    def download(self, buffer, offset: int, array: np.ndarray) -> None:
        self._submit()
        if array.nbytes:
            data = self.device.queue.read_buffer(buffer, offset, -(-array.nbytes // 4) * 4)
            array.reshape(-1).view(np.uint8)[:] = np.frombuffer(data, np.uint8)[:array.nbytes]

    def copy(self, src, src_offset: int, dst, dst_offset: int, nbytes: int) -> None:
        self._submit()
        encoder = self.device.create_command_encoder()
        encoder.copy_buffer_to_buffer(src, src_offset, dst, dst_offset, -(-nbytes // 4) * 4)
        self.device.queue.submit([encoder.finish()])

    def external(self, value):
        return None  # no foreign tensors live on a wgpu device

    def export(self, buffer, offset, shape, dtype, owner):
        raise TcompError("webgpu: outputs stay on the device only as wgpu buffers; run without device_outputs")

    # -------------------------------------------------------------- shaders
    def compile(self, shader: WGSLKernel) -> "CompiledKernel":
        """The shader's compute pipeline; a WGSL error raises a TcompError naming the kernel, with the log."""
        threads = shader.workgroup[0] * shader.workgroup[1] * shader.workgroup[2]
        if threads > self.limits["max-compute-invocations-per-workgroup"]:
            raise TcompError(f"kernel {shader.name}: {threads} threads per workgroup, more than the adapter's "
                             f"{self.limits['max-compute-invocations-per-workgroup']}; bind fewer to threadIdx")
        params = len(shader.params) + shader.status
        if params > self.limits["max-storage-buffers-per-shader-stage"]:
            status = " (one a status word: it checks int64 overflow)" if shader.status else ""
            raise TcompError(f"kernel {shader.name}: {params} buffers{status}, more than the adapter binds "
                             f"({self.limits['max-storage-buffers-per-shader-stage']})")
        try:
            module = self._shader_module(shader.name, shader.source)
            pipeline = self.device.create_compute_pipeline(layout="auto", compute={"module": module,
                                                                                   "entry_point": shader.name})
        except self._wgpu.GPUError as exc:
            raise TcompError(f"kernel {shader.name}: the WebGPU shader does not compile:\n{exc}") from None
        compiled = CompiledKernel(shader, pipeline, pipeline.get_bind_group_layout(0))
        if shader.status:
            compiled.status_slot = self._status_slot(shader.name)
        return compiled

    def _shader_module(self, label: str, code: str):
        """The WGSL module, compiled without naga's runtime checks where wgpu-native offers that
        (``wgpuDeviceCreateShaderModuleTrusted``, which wgpu-py does not wrap): no index clamped into its
        array (the renderer clamps what it cannot prove in bounds, ``WGSLRenderer._element``), no counter
        bounding each loop (every loop's extent is finite). Checked, a workgroup array's index became
        ``min(i, n - 1)`` on every load of a tile: the NVIDIA driver vectorized none of them."""
        try:
            from wgpu.backends.wgpu_native import _api
            create = _api.libf.wgpuDeviceCreateShaderModuleTrusted
        except (ImportError, AttributeError):  # an older wgpu-native: its checks stay
            return self.device.create_shader_module(label=label, code=code)
        source = _api.new_struct_p("WGPUShaderSourceWGSL *", code=_api.to_c_string_view(code))
        source[0].chain.next = _api.ffi.NULL
        source[0].chain.sType = _api.lib.WGPUSType_ShaderSourceWGSL
        descriptor = _api.new_struct_p("WGPUShaderModuleDescriptor *", label=_api.to_c_string_view(label),
                                       nextInChain=_api.ffi.cast("WGPUChainedStruct *", source))
        return _api.GPUShaderModule(label, create(self.device._internal, descriptor, NO_RUNTIME_CHECKS), self.device)

    def _status_slot(self, kernel: str) -> int:
        """A word of the status buffer for ``kernel`` (the buffer doubled where it is full)."""
        slot = len(self._status_kernels)
        self._status_kernels.append(kernel)
        if slot * ALIGN >= self._status.size:
            self.synchronize()
            self._status = self.allocate(2 * self._status.size)
        return slot

    # -------------------------------------------------------------- dispatches
    def launch(self, compiled: "CompiledKernel", grid: tuple, block: tuple, buffers: list, sizes: list,
               tile_maps: list = ()) -> None:
        """Records one dispatch: ``grid`` blocks of ``block`` threads (as launched on CUDA), the kernel's
        buffers as (buffer, byte offset), its size variables' values (WebGPU has no bulk copies, so
        no ``tile_maps``)."""
        shader = compiled.shader
        if tile_maps:
            raise TcompError(f"kernel {shader.name}: WebGPU has no bulk tile copies (tile maps)")
        if 0 in tuple(grid) + tuple(block):
            return  # a zero-sized tensor: nothing to compute
        if tuple(block) != shader.workgroup:
            raise TcompError(f"kernel {shader.name}: launched with {tuple(block)} threads per block, compiled for "
                             f"{shader.workgroup}")
        groups = shader.dispatch(tuple(grid))
        if not shader.grid_folded and max(groups) > MAX_WORKGROUPS_PER_DIMENSION:
            raise TcompError(f"kernel {shader.name}: grid {groups} is larger than the shader was compiled for")
        if shader.status:
            self._status_pending.add(compiled.status_slot)
        bound = [buffer for buffer, _ in buffers] + ([self._status] if shader.status else [])
        key = (tuple(sizes), tuple(offset for _, offset in buffers), tuple(id(buffer) for buffer in bound))
        group = compiled.groups.get(key)
        if group is None:
            group = compiled.groups[key] = self._bind_group(compiled, buffers, sizes)
            for buffer in {id(buffer): buffer for buffer in bound}.values():
                weakref.finalize(buffer, compiled.groups.pop, key, None)
        self._recorded.append((compiled.pipeline, group, groups))

    def _bind_group(self, compiled: "CompiledKernel", buffers: list, sizes: list):
        """The bind group of one launch's buffers, size values and status word (``launch`` keeps it while
        its buffers live: a model's runs bind the same arena regions every time)."""
        shader = compiled.shader
        values = {v: IntImm(n) for v, n in zip(shader.size_vars, sizes)}
        entries = []
        for binding, (buf, (buffer, offset)) in enumerate(zip(shader.params, buffers)):
            nbytes = bytes_of(buf, values, shader.name)
            if nbytes > self.limits["max-storage-buffer-binding-size"]:
                raise TcompError(f"kernel {shader.name}: buffer {buf.name} has {nbytes} bytes, more than the adapter "
                                 f"binds ({self.limits['max-storage-buffer-binding-size']})")
            entries.append({"binding": binding, "resource": {"buffer": buffer, "offset": offset,
                                                             "size": max(4, -(-nbytes // 4) * 4)}})
        if shader.size_vars:
            uniform = self._uniform(shader.name, sizes)
            entries.append({"binding": len(entries), "resource": {"buffer": uniform, "offset": 0,
                                                                  "size": uniform.size}})
        if shader.status:
            entries.append({"binding": len(entries), "resource": {"buffer": self._status,
                                                                  "offset": compiled.status_slot * ALIGN, "size": 4}})
        return self.device.create_bind_group(layout=compiled.layout, entries=entries)

    def synchronize(self) -> None:
        """Waits for everything launched; refuses (``InputError``) a run whose status words are set."""
        self._submit()
        if not self._status_pending:
            self.device.queue.read_buffer(self._fence)  # a copy after all submitted work, mapped when done
            return
        words = np.frombuffer(self.device.queue.read_buffer(self._status), np.uint32)[::ALIGN // 4]
        pending, self._status_pending = sorted(self._status_pending), set()
        failed = [self._status_kernels[slot] for slot in pending if words[slot]]
        if failed:
            self.device.queue.write_buffer(self._status, 0, np.zeros(self._status.size // 4, np.uint32))
            raise InputError(f"kernel {failed[0]}: int64 results beyond 32 bits (WebGPU computes int64 in 32 bits: "
                             f"the inputs fit, a result computed from them does not)")

    def timed(self, action) -> float:
        """Wall seconds of ``action()`` (which records launches) until they completed."""
        self.synchronize()
        start = time.perf_counter()
        action()
        self.synchronize()
        return time.perf_counter() - start

    def _submit(self) -> None:
        if not self._recorded:
            return
        encoder = self.device.create_command_encoder()
        compute = encoder.begin_compute_pass()
        for pipeline, group, groups in self._recorded:
            compute.set_pipeline(pipeline)
            compute.set_bind_group(0, group)
            compute.dispatch_workgroups(*groups)
        compute.end()
        self.device.queue.submit([encoder.finish()])
        self._recorded = []

    def _uniform(self, kernel: str, sizes) -> object:
        """A uniform buffer holding ``sizes`` as i32 (one per distinct tuple of sizes)."""
        key = tuple(sizes)
        if key not in self._uniforms:
            if any(not -2**31 <= n < 2**31 for n in key):
                raise InputError(f"kernel {kernel}: sizes {list(key)} do not fit 32 bits (WebGPU indexes with i32)")
            data = np.zeros(-(-max(len(key), 1) // 4) * 4, np.int32)
            data[:len(key)] = key
            self._uniforms[key] = self.device.create_buffer_with_data(data=data, usage=self._wgpu.BufferUsage.UNIFORM)
        return self._uniforms[key]


class CompiledKernel:
    """A shader's compute pipeline and its bind group layout."""

    def __init__(self, shader: WGSLKernel, pipeline, layout):
        self.shader = shader
        self.pipeline = pipeline
        self.layout = layout
        self.status_slot = None  # where ``shader.status``: its word of the device's status buffer
        self.groups: dict = {}   # (sizes, offsets, buffers' ids) -> bind group, dropped when a buffer is


def check_uploadable(array: np.ndarray, name: str) -> None:
    """Refuses what the device cannot hold exactly: float64, 64-bit integers beyond 32 bits."""
    dtype = array.dtype.name
    if dtype == "float64":
        raise InputError(f"{name}: float64, which WebGPU has no type for; convert it to float32")
    if dtype in NARROWED and array.size:
        narrow, label = NARROWED[dtype]
        info = np.iinfo(narrow)
        low, high = int(array.min()), int(array.max())
        if low < info.min or high > info.max:
            raise InputError(f"{name}: {dtype} values in [{low}, {high}] do not fit {label} (WebGPU computes "
                             f"{dtype} in 32 bits)")


def bytes_of(buf, values: dict, kernel: str) -> int:
    """Bytes of ``buf`` (host layout) for the given size-variable values."""
    count = arith.simplify(substitute(buf.storage_elements(), values))
    if not isinstance(count, IntImm):
        raise TcompError(f"kernel {kernel}: cannot evaluate the size of {buf.name} from the sizes given")
    return max(0, count.value) * max(1, dtype_bits(buf.dtype) // 8)


def _vulkan_metal_dx12_only(wgpu) -> None:
    """Keeps wgpu off its OpenGL backend (a second, slower llvmpipe adapter that prints EGL errors)."""
    try:
        from wgpu.backends.wgpu_native.extras import set_instance_extras

        set_instance_extras(backends=["Vulkan", "Metal", "DX12"])
    except Exception:  # noqa: BLE001 - the instance exists already (someone used wgpu first): keep it
        pass
