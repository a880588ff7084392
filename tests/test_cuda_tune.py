"""The GPU design space: sampled candidates of ``design_space(func, "cuda")`` build to PTX (every
kernel bound: GPU lowering refuses unbound blocks), shared-memory sketches copy with vector
accesses, the tensorized sketch holds tensor-core instructions; on a GPU, sampled candidates and
the tuning worker agree with numpy on fresh random inputs (skipped without a device)."""
from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-python is not installed (pip install 'tcomp[cuda]')")

import cuda_kernels as kernels  # noqa: E402
from te_kernels import matmul_func  # noqa: E402

import tcomp  # noqa: E402
from tcomp.schedule.schedule import ScheduleError  # noqa: E402
from tcomp.tuning.space import design_space  # noqa: E402

SEEDS = range(6)


def _candidates(func, seeds=SEEDS):
    """(sketch index, candidate) of each sketch's draws; a draw the schedule refuses (tensor-core
    tiles that do not divide) is skipped, as the search skips it."""
    for index, sketch in enumerate(design_space(func, "cuda")):
        for seed in seeds:
            try:
                yield index, sketch.apply_to(func, resample=True, seed=seed)
            except ScheduleError:
                continue


def _builds(sch):
    """The kernel, or None where NVRTC/ptxas refuse a sampled candidate for its resources (too much
    shared memory) or the GPU lowering refuses its shape (on sm_90, a warpgroup tile as large as a
    small product: its block loops of extent 1 vanish): the tuner records those as build errors."""
    from tcomp.targets.cuda.nvrtc import CudaCompileError
    from tcomp.targets.gpu.binding import GPULoweringError

    try:
        return tcomp.build(sch.func, target="cuda -arch=sm_90")
    except CudaCompileError as exc:
        assert "shared" in str(exc) or "uses too much" in str(exc), str(exc)
        return None
    except GPULoweringError:
        return None


@pytest.mark.parametrize("func", [lambda: matmul_func(256, 192, 128), lambda: matmul_func(100, 72, 40, relu=True),
                                  lambda: kernels.half_gemm_func(128, 128, 64)], ids=["fp32", "tails_relu", "fp16"])
def test_sampled_candidates_build_to_ptx(func):
    func = func()
    built = 0
    for _, sch in _candidates(func):
        kernel = _builds(sch)
        if kernel is not None:
            assert ".entry " in kernel.ptx() and "%ctaid." in kernel.ptx()
            built += 1
    assert built >= len(SEEDS)


def test_shared_sketch_stages_operands_with_vector_copies():
    func = matmul_func(256, 256, 256)
    sources = [k.source() + k.ptx() for _, sch in _candidates(func, range(12))
               if "shared" in str(sch.func) and (k := _builds(sch)) is not None]
    assert sources and all("__syncthreads();" in s and "ld.shared" in s for s in sources)
    assert any("ld.global.v4" in s or "ld.global.nc.v4" in s for s in sources)


def test_tensorized_sketch_holds_mma_instructions():
    func = kernels.half_gemm_func(128, 128, 64)
    ptx = [k.ptx() for _, sch in _candidates(func, range(2)) if (k := _builds(sch)) is not None]
    assert any("wmma.mma.sync.aligned.row.row.m16n16k16.f32.f32" in p for p in ptx)


def _device():
    from tcomp.targets.cuda.driver import device_count

    return device_count() > 0


needs_gpu = pytest.mark.skipif(not _device(), reason="no CUDA device on this machine (CI has none); the "
                                                     "compile-only tests above check the generated code there")


@needs_gpu
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_sampled_candidates_match_numpy(dtype):
    rng = np.random.default_rng()
    func = matmul_func(100, 72, 40) if dtype == "float32" else kernels.half_gemm_func(64, 48, 32)
    (m, k), n = (e.value for e in func.params[0].shape), func.params[1].shape[1].value
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    for _, sch in _candidates(func, range(3)):
        kernel = tcomp.build(sch.func, target="cuda")
        c = np.full(expected.shape, np.nan, dtype=np.float32)
        kernel(a, b, c)
        np.testing.assert_allclose(c, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())


@needs_gpu
def test_measurer_on_gpu_checks_and_times_candidates():
    from tcomp.tuning.measure import Measurer

    func = matmul_func(128, 128, 128)
    traces = [sch.trace for _, sch in _candidates(func, range(2))]
    with Measurer(func, target="cuda", timeout_s=60) as measurer:
        results = measurer.measure(traces)
    assert all(r.status == "ok" and r.seconds > 0 for r in results), results


@needs_gpu
def test_tune_a_model_on_the_gpu_then_compile_with_its_database(tmp_path):
    """``tcomp.tune(model, target="cuda")``: tasks' templates and candidates measured on the GPU,
    records under "cuda", which ``tcomp.compile(model, target="cuda", db=)`` applies; the result
    matches onnxruntime."""
    import onnxruntime as ort
    from onnx_helpers import mlp_model

    from tcomp.tuning.database import Database

    model, path = mlp_model(64, 96), tmp_path / "tuning.db"
    results = tcomp.tune(model, target="cuda", trials=16, db=path, progress=False)
    assert results and sum(r.trials for r in results) == 16
    database = Database(path)
    assert all(r.template is not None and database.records(r.task.workload, "cuda") for r in results)
    module = tcomp.compile(model, target="cuda", db=path)
    tuned = {k.func.attrs.get("gpu_schedule") for k in module.kernels.values()}
    # a record beating the template in the worker, unless it lost to the template in the model (in_model.py)
    assert ("tuned" in tuned) == any(r.applied for r in results)
    assert all((r.verdict is not None) == (r.tuned is not None and r.tuned < r.template) for r in results)
    feeds = {i.name: np.random.default_rng().standard_normal(i.shape).astype(np.float32) for i in module.inputs}
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    np.testing.assert_allclose(module.run(feeds)[0], expected[0], rtol=1e-4, atol=1e-4)


def test_the_search_measures_the_untuned_schedule_first():
    """Tuning on a GPU starts from the schedule of the untuned build (``groups.tiled_trace``): the first
    batch holds it, so the tuned kernel is at least the untuned one by the worker's timing."""
    from tcomp.costmodel.model import RandomModel
    from tcomp.targets.gpu.groups import tiled_func, tiled_trace
    from tcomp.tuning.search import EvolutionarySearch

    func, target = kernels.half_gemm_func(256, 512, 256), "cuda -arch=sm_90"
    trace = tiled_trace(func, target)
    search = EvolutionarySearch(func, design_space(func, target), RandomModel(), target="cuda", seed=0,
                                first=(trace,))
    batch = search.next_batch(4)
    assert len(batch) == 4 and batch[0].key == trace.to_json() and "wgmma_64x" in batch[0].key
    assert len({c.key for c in batch}) == 4
    first, untuned = (tcomp.build(f, target=target) for f in (batch[0].func, tiled_func(func, target)))
    # the same kernel up to the order of its shared buffers (the untuned build binds before lowering)
    assert first.image.dynamic_shared == untuned.image.dynamic_shared
    assert sorted(re.findall(r"wgmma[.\w]+|__launch_bounds__\(\d+\)", first.source())) == \
        sorted(re.findall(r"wgmma[.\w]+|__launch_bounds__\(\d+\)", untuned.source()))
