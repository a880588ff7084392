"""The PyTorch frontend against torch eager: ATen converters op by op, the five models through
``tcomp.compile(module, example_inputs=...)`` and ``torch.compile(backend="tcomp")``, eager fallback,
and that ``import tcomp`` does not need torch."""
import os
import subprocess
import sys
import textwrap
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from model_zoo import MODEL_NAMES, _spec, build_torch_model

import tcomp
from tcomp.frontend import torch_backend
from tcomp.frontend.torch_backend import TcompFallbackWarning

ROOT = Path(__file__).resolve().parent.parent


class Fn(torch.nn.Module):
    """A module whose forward is ``fn``."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)


def _check(module, make_inputs, rtol=1e-4, atol=1e-5):
    """Compiles ``module`` on one random draw of ``make_inputs()``, runs two fresh draws against eager."""
    module = module.eval()
    compiled = tcomp.compile(module, example_inputs=make_inputs())
    for _ in range(2):
        inputs = make_inputs()
        outputs = compiled(*inputs)
        with torch.no_grad():
            expected = module(*inputs)
        expected = expected if isinstance(expected, (tuple, list)) else (expected,)
        assert len(outputs) == len(expected)
        for index, (ours, ref) in enumerate(zip(outputs, expected)):
            ref = ref.numpy()
            assert ours.dtype == ref.dtype and ours.shape == ref.shape, f"output {index}"
            np.testing.assert_allclose(ours, ref, rtol=rtol, atol=atol, err_msg=f"output {index}")
    return compiled


def _randn(*shape):
    return lambda: (torch.randn(*shape),)


# ATen converters ------------------------------------------------------------------
def test_arithmetic_with_type_promotion():
    def fn(x, y, i, j):
        return (x + y * 2, torch.add(x, y, alpha=3), x - 3, 2 - x, torch.rsub(x, y, alpha=2), x * y, x / y,
                i / j, i + 1.5, x * i, torch.div(i, j, rounding_mode="floor"), torch.div(x, y, rounding_mode="trunc"),
                torch.remainder(x, y), torch.fmod(x, y), torch.remainder(i, j), x.abs() ** 2.5, x ** 2,
                torch.maximum(x, y), torch.minimum(x, y), i * 2, x.neg())

    _check(Fn(fn), lambda: (torch.randn(3, 4), torch.randn(4).abs() + 0.5, torch.randint(-9, 9, (3, 4)),
                            torch.randint(1, 5, (4,))))


def test_unary_and_activations():
    def fn(x):
        return (torch.relu(x), F.gelu(x), F.gelu(x, approximate="tanh"), F.silu(x), torch.sigmoid(x), torch.tanh(x),
                torch.exp(x), torch.log(x.abs() + 1), torch.sqrt(x.abs()), torch.rsqrt(x.abs() + 1), torch.erf(x),
                torch.abs(x), torch.sin(x), torch.cos(x), torch.floor(x * 3), torch.ceil(x * 3), torch.round(x * 3),
                torch.sign(x), F.relu6(x * 4), torch.clamp(x, -0.5, 0.7), torch.clamp(x, min=0.1), F.leaky_relu(x, 0.2),
                F.elu(x), F.hardsigmoid(x * 4), F.hardswish(x * 4), F.softplus(x), F.softplus(x, beta=2),
                torch.reciprocal(x.abs() + 1), F.hardtanh(x, -0.3, 0.3), torch.log1p(x.abs() * 1e-3),
                torch.expm1(x), torch.expm1(x * 1e-4))

    _check(Fn(fn), _randn(2, 3, 8))


def test_comparisons_logical_where_casts():
    def fn(x, y, i):
        positive = x > 0
        return (x == y, x != y, x < y, x <= 0.5, x > y, x >= -0.2, i == 3, torch.logical_and(positive, y > 0),
                torch.logical_or(positive, y > 0), torch.logical_not(positive), torch.logical_xor(positive, y > 0),
                positive & (y < 0), positive | (y < 0), ~positive, torch.where(positive, x, y),
                torch.where(positive, x, 0.0), x.masked_fill(y > 0, -1.0), i.to(torch.float32), x.to(torch.int64),
                positive.to(torch.float32), torch.isnan(torch.log(x)), torch.clamp(x, min=y))

    _check(Fn(fn), lambda: (torch.randn(3, 5), torch.randn(3, 5), torch.randint(0, 6, (3, 5))))


def test_linear_algebra():
    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(8, 6)
            self.b = torch.nn.Linear(8, 5, bias=False)

        def forward(self, x, m, n, v):
            return (self.a(x), self.b(x), x @ m, torch.bmm(x, n), torch.matmul(x, v),
                    torch.addmm(v[:6], x[0, :3], m, beta=0.5, alpha=2.0), torch.matmul(v, m))

    _check(Linear(), lambda: (torch.randn(2, 7, 8), torch.randn(8, 6), torch.randn(2, 8, 3), torch.randn(8)))


def test_convolution_batchnorm_pooling():
    class Vision(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(4, 8, 3, stride=2, padding=1)
            self.grouped = torch.nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=4, bias=False)
            self.depthwise = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.bn = torch.nn.BatchNorm2d(8)
            self.conv1d = torch.nn.Conv1d(4, 6, 3, padding=1)
            self.bn1d = torch.nn.BatchNorm1d(6)
            for bn in (self.bn, self.bn1d):
                bn.running_mean.uniform_(-1, 1)
                bn.running_var.uniform_(0.5, 2)
                bn.weight.data.uniform_(0.5, 1.5)

        def forward(self, x, s):
            y = torch.relu(self.bn(self.conv(x)))
            z = self.depthwise(self.grouped(y))
            return (z, F.max_pool2d(x, 3, 2, 1), F.max_pool2d(x, 2, ceil_mode=True), F.avg_pool2d(x, 3, 2, 1),
                    F.avg_pool2d(x, 3, 2, 1, count_include_pad=False), F.adaptive_avg_pool2d(y, 1),
                    F.adaptive_avg_pool2d(x, (3, 5)), self.bn1d(self.conv1d(s)))

    _check(Vision(), lambda: (torch.randn(2, 4, 9, 15), torch.randn(2, 4, 10)))


def test_normalization_softmax_reductions():
    class Norms(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ln = torch.nn.LayerNorm(16)
            self.ln2 = torch.nn.LayerNorm((4, 16), elementwise_affine=False)
            self.ln.weight.data.uniform_(0.5, 1.5)
            self.ln.bias.data.uniform_(-1, 1)

        def forward(self, x):
            return (self.ln(x), self.ln2(x), torch.softmax(x, -1), torch.softmax(x, 1), F.log_softmax(x, -1),
                    x.mean(-1), x.mean((0, 2), keepdim=True), x.sum(1), x.sum(), x.amax(-1), x.amin(1, keepdim=True),
                    x.prod(-1), (x > 0).any(-1), (x > -2).all(1), *x.max(dim=1), *x.min(-1, keepdim=True), x.argmax(),
                    x.argmin(2), torch.cumsum(x, 1), torch.cumprod(x, -1), x.max(), x.min())

    _check(Norms(), _randn(3, 4, 16))


def test_shape_and_movement():
    def fn(x, y):
        return (x.view(6, 20), x.reshape(2, -1), x.permute(2, 0, 1), x.transpose(1, 2), x.unsqueeze(1).squeeze(1),
                x[:, :1].squeeze(1), x[:, 0:1].expand(2, 3, 20), x[..., 2:17:3], x[:, -2:], x[1], x[:, 1, 5],
                torch.cat([x, y], 1), torch.cat([x, x * 2, y], 1), *torch.split(x, [1, 2], 1), *x.chunk(2, -1),
                *x.unbind(1), x.flip(-1), x.flip(0, 2), x.repeat(1, 2, 1), F.pad(x, (1, 2)), F.pad(x, (0, 0, 1, -1), value=3.0),
                torch.flatten(x, 1), x.t() if x.dim() == 2 else x.mT)

    _check(Fn(fn), lambda: (torch.randn(2, 3, 20), torch.randn(2, 2, 20)))


def test_indexing():
    class Indexing(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(50, 8)
            self.register_buffer("rows", torch.tensor([2, 0, -1]))

        def forward(self, x, ids, idx, idx2):
            return (self.embed(ids), x[idx], x[:, idx], x[idx, :, idx2], x[:, self.rows], x[idx, idx2],
                    torch.index_select(x, 2, idx2), torch.gather(x, 2, idx2.view(1, 1, -1).expand(4, 5, -1)))

    def inputs():
        return (torch.randn(4, 5, 6), torch.randint(0, 50, (2, 7)), torch.randint(-4, 4, (3,)),
                torch.randint(0, 5, (3,)))

    _check(Indexing(), inputs)


def test_factories_fold_to_constants():
    def fn(x):
        positions = torch.arange(x.shape[-1])
        causal = torch.tril(torch.ones(x.shape[-1], x.shape[-1], dtype=torch.bool))
        return (x + positions, torch.where(causal, x, torch.full_like(x, -5.0)), torch.zeros_like(x) + 1,
                x.new_ones(3), x * torch.ones_like(x, dtype=torch.int64))

    compiled = _check(Fn(fn), _randn(6, 6))
    assert "Range" not in {node.op for node in compiled.graph.nodes}


@pytest.mark.parametrize("case", ["plain", "float_mask", "bool_mask", "causal", "gqa"])
def test_scaled_dot_product_attention(case):
    def fn(q, k, v, float_mask, bool_mask):
        if case == "plain":
            return F.scaled_dot_product_attention(q, k, v, scale=0.3)
        if case == "float_mask":
            return F.scaled_dot_product_attention(q, k, v, attn_mask=float_mask)
        if case == "bool_mask":
            return F.scaled_dot_product_attention(q, k, v, attn_mask=bool_mask)
        if case == "causal":
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return F.scaled_dot_product_attention(q, k[:, :2], v[:, :2], enable_gqa=True)

    def inputs():
        bool_mask = torch.rand(2, 1, 6, 6) > 0.3
        bool_mask[:, :, 1] = False  # a row that allows nothing gives zeros
        return (torch.randn(2, 4, 6, 8), torch.randn(2, 4, 6, 8), torch.randn(2, 4, 6, 8), torch.randn(2, 1, 6, 6),
                bool_mask)

    _check(Fn(fn), inputs)


# Errors -------------------------------------------------------------------------
def test_unsupported_op_names_node_target_and_reason():
    with pytest.raises(tcomp.UnsupportedOpError, match=r"node '_fft_r2c' \(op aten\._fft_r2c\.default\): no converter"):
        tcomp.compile(Fn(lambda x: torch.fft.rfft(x).abs()), example_inputs=(torch.randn(4, 3),))


def test_training_mode_and_missing_example_inputs_are_refused():
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))  # training mode
    with pytest.raises(tcomp.TcompError, match=r"module\.eval\(\)"):
        tcomp.compile(module, example_inputs=(torch.randn(1, 3, 8, 8),))
    with pytest.raises(tcomp.TcompError, match="example_inputs"):
        tcomp.compile(module.eval())


class MatMul(torch.nn.Module):
    def forward(self, x, y):
        return x @ y


def test_run_takes_torch_tensors_and_arrays():
    module = MatMul()
    x, y = torch.randn(3, 4), torch.randn(4, 2)
    compiled = tcomp.compile(module, example_inputs=(x, y))
    by_tensor = compiled(x, y)[0]
    by_array = compiled.run({name: t.numpy() for name, t in zip(compiled.input_names, (x, y))})[0]
    assert isinstance(by_tensor, np.ndarray)
    np.testing.assert_array_equal(by_tensor, by_array)
    np.testing.assert_allclose(by_tensor, (x @ y).numpy(), rtol=1e-5, atol=1e-6)
    assert compiled.input_names == ["x", "y"]  # named like the forward arguments


# Dynamic shapes: torch.export's size symbols become symbolic dimensions ---------------------------
def test_dynamic_batch_from_exported_program():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.fc = torch.nn.Linear(4 * 6 * 6, 5)

        def forward(self, x):
            y = torch.relu(self.conv(x))
            return torch.softmax(self.fc(y.flatten(1)), -1), y[:, 1:].sum(1) * x.shape[0]

    model = Net().eval()
    batch = torch.export.Dim("batch", max=16)
    program = torch.export.export(model, (torch.randn(2, 3, 6, 6),), dynamic_shapes={"x": {0: batch}}, strict=False)
    compiled = tcomp.compile(program)
    assert str(compiled.inputs[0].shape[0]).startswith("s")
    for size in np.random.default_rng().choice(np.arange(1, 17), 3, replace=False):
        x = torch.randn(int(size), 3, 6, 6)
        with torch.no_grad():
            expected = model(x)
        for ours, ref in zip(compiled(x), expected):
            np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(tcomp.InputError, match="torch.export"):
        compiled(torch.randn(17, 3, 6, 6))  # outside the Dim's range


def test_dynamic_sequence_bert():
    model = build_torch_model("bert", small=True)
    seq = torch.export.Dim("seq", min=2, max=128)
    ids, mask = _model_inputs("bert", True)
    program = torch.export.export(model, (ids, mask), dynamic_shapes={"input_ids": {1: seq}, "attention_mask": {1: seq}},
                                  strict=False)
    compiled = tcomp.compile(program)
    for length in (9, int(torch.randint(10, 129, ()))):
        ids, mask = torch.randint(0, 1024, (1, length)), torch.ones(1, length, dtype=torch.int64)
        mask[:, -3:] = 0
        with torch.no_grad():
            ref = model(ids, mask)
        assert _relative_error(compiled(ids, mask)[0], ref) <= 1e-4


# torch.compile ----------------------------------------------------------------------
@pytest.fixture
def dynamo():
    """A fresh Dynamo cache with the backend registered."""
    torch_backend.register()
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _recording_backend(compiled: list):
    def backend(gm, example_inputs):
        result = torch_backend.tcomp_backend(gm, example_inputs)
        compiled.append(getattr(result, "tcomp_module", None))
        return result

    return backend


def test_graph_breaks_compile_each_subgraph(dynamo):
    def forward(x):
        y = torch.relu(x) * 2
        torch._dynamo.graph_break()
        return y.softmax(-1) + 1

    compiled: list = []
    fn = torch.compile(forward, backend=_recording_backend(compiled))
    x = torch.randn(4, 8)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error", TcompFallbackWarning)
        out = fn(x)
    assert len(compiled) == 2 and all(m is not None for m in compiled)
    torch.testing.assert_close(out, forward(x))


def test_unsupported_subgraph_falls_back_to_eager_with_the_reason(dynamo):
    def forward(x):
        y = x * 3
        torch._dynamo.graph_break()
        return torch.fft.rfft(y).abs(), y + 1

    compiled: list = []
    fn = torch.compile(forward, backend=_recording_backend(compiled))
    x = torch.randn(5, 3)
    with torch.no_grad(), pytest.warns(TcompFallbackWarning, match=r"eager mode: unsupported: node '_fft_r2c' "
                                                                   r"\(op aten\._fft_r2c\.default\): no converter"):
        out = fn(x)
    assert compiled[0] is not None and compiled[1] is None  # the first subgraph still runs on tcomp
    for ours, ref in zip(out, forward(x)):
        torch.testing.assert_close(ours, ref)


def test_inference_mode_and_strided_inputs(dynamo):
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.GELU(), torch.nn.LayerNorm(8)).eval()
    fn = torch.compile(model, backend="tcomp")
    x = torch.randn(8, 4).T  # not contiguous
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("error", TcompFallbackWarning)
        torch.testing.assert_close(fn(x), model(x))


def test_autograd_graphs_fall_back(dynamo):
    module = torch.nn.Linear(4, 3)
    fn = torch.compile(module, backend="tcomp")
    x = torch.randn(2, 4)
    with pytest.warns(TcompFallbackWarning, match="torch.no_grad"):
        out = fn(x)
    assert out.requires_grad
    torch.testing.assert_close(out, module(x))


# The five models ------------------------------------------------------------------
def _model_inputs(name: str, small: bool) -> tuple:
    """Fresh random inputs: images, or token ids with an attention mask ending in 1..8 zeros."""
    spec = _spec(name, small)
    if spec.kind == "vision":
        return (torch.randn(1, 3, spec.image_size, spec.image_size),)
    ids = torch.randint(0, spec.vocab_size, (1, spec.seq_len))
    mask = torch.ones(1, spec.seq_len, dtype=torch.int64)
    mask[:, spec.seq_len - int(torch.randint(1, 9, ())):] = 0
    return ids, mask


def _relative_error(ours, ref) -> float:
    ours, ref = np.asarray(ours, dtype=np.float64), ref.numpy().astype(np.float64)
    return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


MODELS = [pytest.param(name, True, id=f"{name}-small") for name in MODEL_NAMES] + \
         [pytest.param(name, False, id=f"{name}-full", marks=pytest.mark.slow) for name in ("resnet18", "bert")]


@pytest.mark.parametrize("name, small", MODELS)
def test_model_through_tcomp_compile(name, small):
    model = build_torch_model(name, small)
    compiled = tcomp.compile(model, example_inputs=_model_inputs(name, small))
    for _ in range(2):
        inputs = _model_inputs(name, small)
        with torch.no_grad():
            ref = model(*inputs)
        ours = compiled(*inputs)[0]
        assert ours.shape == tuple(ref.shape)
        assert _relative_error(ours, ref) <= 1e-4


@pytest.mark.parametrize("name, small", MODELS)
def test_model_through_torch_compile(name, small, dynamo):
    model = build_torch_model(name, small)
    fn = torch.compile(model, backend="tcomp")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error", TcompFallbackWarning)
        for _ in range(2):
            inputs = _model_inputs(name, small)
            ours, ref = fn(*inputs), model(*inputs)
            assert isinstance(ours, torch.Tensor) and ours.shape == ref.shape
            assert _relative_error(ours, ref) <= 1e-4


# Packaging ----------------------------------------------------------------------------
def _python(code: str, env_path: str = "") -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (env_path, str(ROOT)) if p)}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=False, capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_import_tcomp_does_not_import_torch():
    assert _python("""
        import sys, numpy as np, tcomp
        from onnx import TensorProto, helper
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
        model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]))
        assert tcomp.compile(model)(np.array([-1.0, 2.0], np.float32))[0].tolist() == [0.0, 2.0]
        print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
    """).strip() == "[]"


def test_backend_registered_at_import_when_dynamo_is_loaded():
    assert _python("""
        import torch._dynamo, tcomp
        print("tcomp" in torch._dynamo.list_backends(exclude_tags=()))
    """).strip() == "True"


def test_backend_found_through_the_declared_entry_point(tmp_path):
    """torch.compile(backend="tcomp") with tcomp never imported: torch loads the entry point pyproject declares."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["torch_dynamo_backends"]
    dist = tmp_path / "tcomp_entry_point-0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tcomp-entry-point\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("[torch_dynamo_backends]\n" +
                                           "".join(f"{k} = {v}\n" for k, v in declared.items()))
    out = _python("""
        import sys, torch
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.GELU()).eval()
        x = torch.randn(3, 4)
        with torch.no_grad():
            ours = torch.compile(model, backend="tcomp")(x)
            torch.testing.assert_close(ours, model(x))
        print("tcomp" in sys.modules)
    """, str(tmp_path))
    assert out.strip() == "True"
